package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTokens is a TokenReviewer whose behaviour is a function; it counts calls.
type fakeTokens struct {
	calls  atomic.Int32
	review func(ctx context.Context, token string) (Identity, error)
}

func (f *fakeTokens) ReviewToken(ctx context.Context, token string) (Identity, error) {
	f.calls.Add(1)
	return f.review(ctx, token)
}

// fakeAccess is an AccessReviewer whose behaviour is a function; it counts calls.
type fakeAccess struct {
	calls   atomic.Int32
	allowed func(ctx context.Context, id Identity, verb string) (bool, error)
}

func (f *fakeAccess) Allowed(ctx context.Context, id Identity, verb string) (bool, error) {
	f.calls.Add(1)
	return f.allowed(ctx, id, verb)
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rbac is a tiny cluster: tokens map to users, users to the verbs they hold on the virtual resource.
type rbac struct {
	users map[string]string   // token → user
	verbs map[string][]string // user → verbs
}

func (r rbac) reviewers() (*fakeTokens, *fakeAccess) {
	tokens := &fakeTokens{review: func(_ context.Context, token string) (Identity, error) {
		u, ok := r.users[token]
		if !ok {
			return Identity{}, fmt.Errorf("%w: token not recognised", ErrUnauthenticated)
		}
		return Identity{User: u, UID: "uid-" + u, Groups: []string{"system:authenticated"}}, nil
	}}
	access := &fakeAccess{allowed: func(_ context.Context, id Identity, verb string) (bool, error) {
		for _, v := range r.verbs[id.User] {
			if v == verb {
				return true, nil
			}
		}
		return false, nil
	}}
	return tokens, access
}

var cluster = rbac{
	users: map[string]string{"t-admin": "ann", "t-view": "vic", "t-none": "nob", "t-upd": "ued", "t-audit": "aud"},
	verbs: map[string][]string{"ann": {"get", "update"}, "vic": {"get"}, "ued": {"update"}, "aud": {"create"}},
}

func newTestDelegate(t *testing.T, tokens TokenReviewer, access AccessReviewer, opts DelegateOptions) (*Delegate, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	opts.Tokens, opts.Access, opts.Now = tokens, access, c.Now
	d, err := NewDelegate(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func TestDelegateRoles(t *testing.T) {
	for _, tc := range []struct {
		token    string
		wantUser string
		wantRole Role
		wantErr  error
		wantSARs int32
	}{
		{"t-admin", "ann", RoleAdmin, nil, 1},
		{"t-upd", "ued", RoleAdmin, nil, 1},
		{"t-view", "vic", RoleViewer, nil, 2},
		{"t-audit", "aud", RoleAuditWriter, nil, 3},
		{"t-none", "", 0, ErrForbidden, 3},
		{"garbage", "", 0, ErrUnauthenticated, 0},
		{"", "", 0, ErrNoToken, 0},
	} {
		t.Run(tc.token, func(t *testing.T) {
			tokens, access := cluster.reviewers()
			d, _ := newTestDelegate(t, tokens, access, DelegateOptions{})
			p, err := d.Authenticate(context.Background(), tc.token)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Authenticate: %v, want %v", err, tc.wantErr)
			}
			if p.User != tc.wantUser || p.Role != tc.wantRole {
				t.Errorf("Authenticate=%+v, want %s as %v", p, tc.wantUser, tc.wantRole)
			}
			if err == nil && (p.Mode != ModeKubernetes || len(p.Groups) != 1) {
				t.Errorf("Authenticate=%+v, want mode kubernetes and the reviewed groups", p)
			}
			if got := access.calls.Load(); got != tc.wantSARs {
				t.Errorf("SubjectAccessReviews: %d, want %d", got, tc.wantSARs)
			}
		})
	}
}

func TestDelegateUnavailable(t *testing.T) {
	boom := errors.New("connection refused")
	ctx := context.Background()

	tokens := &fakeTokens{review: func(context.Context, string) (Identity, error) { return Identity{}, boom }}
	_, access := cluster.reviewers()
	d, _ := newTestDelegate(t, tokens, access, DelegateOptions{})
	for range 2 {
		if _, err := d.Authenticate(ctx, "t-admin"); !errors.Is(err, ErrUnavailable) || !errors.Is(err, boom) {
			t.Fatalf("token review failing: %v, want ErrUnavailable wrapping the cause", err)
		}
	}
	if got := tokens.calls.Load(); got != 2 {
		t.Errorf("token reviews: %d, want 2 (failures are not cached)", got)
	}

	tokens, _ = cluster.reviewers()
	access = &fakeAccess{allowed: func(context.Context, Identity, string) (bool, error) { return false, boom }}
	d, _ = newTestDelegate(t, tokens, access, DelegateOptions{})
	if _, err := d.Authenticate(ctx, "t-admin"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrForbidden) {
		t.Fatalf("access review failing: %v, want ErrUnavailable", err)
	}
}

func TestDelegateCacheTTL(t *testing.T) {
	tokens, access := cluster.reviewers()
	d, clk := newTestDelegate(t, tokens, access, DelegateOptions{AllowTTL: 10 * time.Second, DenyTTL: 2 * time.Second})
	ctx := context.Background()
	auth := func(token string) error {
		_, err := d.Authenticate(ctx, token)
		return err
	}
	steps := []struct {
		advance time.Duration
		token   string
		reviews int32 // token reviews so far
	}{
		{0, "t-view", 1},
		{9 * time.Second, "t-view", 1},
		{time.Second, "t-view", 2}, // 10 s after the first review: expired
		{0, "t-none", 3},
		{1900 * time.Millisecond, "t-none", 3},
		{100 * time.Millisecond, "t-none", 4},
		{0, "garbage", 5},
		{time.Second, "garbage", 5},
		{time.Second, "garbage", 6},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		_ = auth(s.token)
		if got := tokens.calls.Load(); got != s.reviews {
			t.Fatalf("step %d (%s after +%v): %d token reviews, want %d", i, s.token, s.advance, got, s.reviews)
		}
	}
	if err := auth("t-none"); !errors.Is(err, ErrForbidden) {
		t.Errorf("cached refusal: %v, want ErrForbidden", err)
	}
	if err := auth("garbage"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("cached refusal: %v, want ErrUnauthenticated", err)
	}
}

func TestDelegateCacheBound(t *testing.T) {
	users := map[string]string{}
	verbs := map[string][]string{}
	for _, u := range []string{"a", "b", "c"} {
		users[u] = u
		verbs[u] = []string{"get"}
	}
	tokens, access := rbac{users, verbs}.reviewers()
	d, _ := newTestDelegate(t, tokens, access, DelegateOptions{CacheSize: 2})
	ctx := context.Background()
	for i, s := range []struct {
		token   string
		reviews int32
	}{
		{"a", 1}, {"b", 2}, {"a", 2}, // a is now the most recently used
		{"c", 3},           // evicts b
		{"a", 3}, {"b", 4}, // b was evicted; its return evicts c
		{"c", 5},
	} {
		if _, err := d.Authenticate(ctx, s.token); err != nil {
			t.Fatal(err)
		}
		if got := tokens.calls.Load(); got != s.reviews {
			t.Fatalf("step %d (%s): %d token reviews, want %d", i, s.token, got, s.reviews)
		}
	}
	if n := d.lru.Len(); n != 2 || len(d.entries) != 2 {
		t.Errorf("cache holds %d (map %d), want 2", n, len(d.entries))
	}
}

// waitWaiters waits until n requests wait for the in-flight review of token.
func waitWaiters(t *testing.T, d *Delegate, token string, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		got := 0
		if el, ok := d.entries[hashToken(token)]; ok {
			got = el.Value.(*cacheEntry).waiters
		}
		d.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("%d requests wait for the review, want %d", got, n)
		case <-tick.C:
		}
	}
}

func TestDelegateBurstMakesOneReview(t *testing.T) {
	release := make(chan struct{})
	tokens, access := cluster.reviewers()
	inner := tokens.review
	tokens.review = func(ctx context.Context, token string) (Identity, error) {
		<-release
		return inner(ctx, token)
	}
	d, _ := newTestDelegate(t, tokens, access, DelegateOptions{})
	const n = 20
	var wg sync.WaitGroup
	results := make([]Principal, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = d.Authenticate(context.Background(), "t-view") })
	}
	waitWaiters(t, d, "t-view", n-1)
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i].User != "vic" {
			t.Fatalf("request %d: %+v, %v", i, results[i], errs[i])
		}
	}
	if got := tokens.calls.Load(); got != 1 {
		t.Errorf("token reviews: %d, want 1", got)
	}
	if got := access.calls.Load(); got != 2 {
		t.Errorf("access reviews: %d, want 2 (update, then get)", got)
	}
}

func TestDelegateBurstSharesFailure(t *testing.T) {
	release := make(chan struct{})
	tokens := &fakeTokens{review: func(context.Context, string) (Identity, error) {
		<-release
		return Identity{}, errors.New("apiserver down")
	}}
	_, access := cluster.reviewers()
	d, _ := newTestDelegate(t, tokens, access, DelegateOptions{})
	const n = 5
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = d.Authenticate(context.Background(), "t-view") })
	}
	waitWaiters(t, d, "t-view", n-1)
	close(release)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("request %d: %v, want ErrUnavailable", i, err)
		}
	}
	if got := tokens.calls.Load(); got != 1 {
		t.Errorf("token reviews: %d, want 1: a burst against a down apiserver must not multiply", got)
	}
}

func TestDelegateLeaderGone(t *testing.T) {
	// The first request's client goes away mid-review; the request waiting on it reviews for itself.
	tokens, access := cluster.reviewers()
	inner := tokens.review
	tokens.review = func(ctx context.Context, token string) (Identity, error) {
		if tokens.calls.Load() == 1 {
			<-ctx.Done()
			return Identity{}, ctx.Err()
		}
		return inner(ctx, token)
	}
	d, _ := newTestDelegate(t, tokens, access, DelegateOptions{})
	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := d.Authenticate(leaderCtx, "t-admin")
		leaderErr <- err
	}()
	// The leader is the only caller of ReviewToken until the waiter registers.
	waitCalls(t, tokens, 1)
	waiter := make(chan error, 1)
	go func() {
		p, err := d.Authenticate(context.Background(), "t-admin")
		if err == nil && p.Role != RoleAdmin {
			err = fmt.Errorf("role %v, want admin", p.Role)
		}
		waiter <- err
	}()
	waitWaiters(t, d, "t-admin", 1)
	cancel()
	if err := <-leaderErr; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("leader: %v, want ErrUnavailable wrapping context.Canceled", err)
	}
	if err := <-waiter; err != nil {
		t.Errorf("waiter: %v", err)
	}
	if got := tokens.calls.Load(); got != 2 {
		t.Errorf("token reviews: %d, want 2", got)
	}
}

func waitCalls(t *testing.T, f *fakeTokens, n int32) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for f.calls.Load() < n {
		select {
		case <-deadline:
			t.Fatalf("%d token reviews, want %d", f.calls.Load(), n)
		case <-tick.C:
		}
	}
}

func TestDelegateWaiterGone(t *testing.T) {
	release := make(chan struct{})
	tokens := &fakeTokens{review: func(context.Context, string) (Identity, error) {
		<-release
		return Identity{}, errors.New("late")
	}}
	_, access := cluster.reviewers()
	d, _ := newTestDelegate(t, tokens, access, DelegateOptions{})
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		_, _ = d.Authenticate(context.Background(), "t-view")
	}()
	defer func() {
		close(release)
		<-leaderDone
	}()
	waitCalls(t, tokens, 1)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := d.Authenticate(ctx, "t-view")
		errc <- err
	}()
	waitWaiters(t, d, "t-view", 1)
	cancel()
	if err := <-errc; !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("waiter whose context ended: %v, want ErrUnavailable wrapping context.Canceled", err)
	}
}

func TestNewDelegateNeedsReviewers(t *testing.T) {
	if _, err := NewDelegate(DelegateOptions{}); err == nil {
		t.Error("NewDelegate without reviewers succeeded")
	}
}
