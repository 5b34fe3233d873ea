package auth

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The virtual resource that kubernetes mode authorizes against, as kube-rbac-proxy does: nothing is stored
// under it, it exists only so that RBAC can grant access to kiem. Verb get makes a viewer, update an admin
// (with or without get), e.g.
//
//	rules: [{apiGroups: ["kiem.io"], resources: ["graph"], verbs: ["get"]}]
const (
	VirtualGroup    = "kiem.io"
	VirtualResource = "graph"
	VerbView        = "get"
	VerbAdmin       = "update"
	// VerbAuditWrite on the virtual resource makes an identity an audit-writer: it may post audit events only.
	VerbAuditWrite = "create"
)

// Defaults for DelegateOptions.
const (
	DefaultAllowTTL  = 10 * time.Second
	DefaultDenyTTL   = 2 * time.Second
	DefaultCacheSize = 4096
)

// Identity is a user as the apiserver's TokenReview reports it; AccessReviewer passes it back in full so a
// SubjectAccessReview sees what an apiserver request by that user would (UID and extra matter to webhooks).
type Identity struct {
	User   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// TokenReviewer authenticates a token with the apiserver (a TokenReview).
type TokenReviewer interface {
	// ReviewToken returns an error wrapping ErrUnauthenticated when the apiserver refuses the token (its
	// message may say why; it never holds the token). Any other error means the review could not be made.
	ReviewToken(ctx context.Context, token string) (Identity, error)
}

// AccessReviewer authorizes an identity with the apiserver (a SubjectAccessReview) for verb on the virtual
// resource VirtualGroup/VirtualResource.
type AccessReviewer interface {
	Allowed(ctx context.Context, id Identity, verb string) (bool, error)
}

// DelegateOptions configures NewDelegate. Tokens and Access are required.
type DelegateOptions struct {
	Tokens TokenReviewer
	Access AccessReviewer
	// AllowTTL is how long an admitted token's principal is reused (default DefaultAllowTTL): a role revoked
	// in RBAC, or a token revoked in the cluster, still works for up to this long.
	AllowTTL time.Duration
	// DenyTTL is how long a refusal (401 or 403) is reused (default DefaultDenyTTL); shorter, so a user who was
	// just granted a role need not wait.
	DenyTTL time.Duration
	// CacheSize bounds the number of cached tokens (default DefaultCacheSize); the least recently used goes.
	CacheSize int
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

// Delegate is the kubernetes mode: TokenReview authenticates the bearer token, SubjectAccessReviews on the
// virtual resource decide the role. Outcomes are cached per token, keyed by the token's SHA-256, and
// concurrent requests with the same token wait for one review instead of making their own: a page load's
// burst of requests costs one TokenReview. Failures to reach the apiserver are not cached.
type Delegate struct {
	tokens   TokenReviewer
	access   AccessReviewer
	allowTTL time.Duration
	denyTTL  time.Duration
	size     int
	now      func() time.Time

	mu      sync.Mutex // guards entries, lru and the fields of every entry not yet done
	entries map[tokenHash]*list.Element
	lru     *list.List // of *cacheEntry, most recently used first
}

// cacheEntry is one token's review, in flight until done is closed; p and err are set before that.
type cacheEntry struct {
	key     tokenHash
	done    chan struct{}
	filled  bool // under Delegate.mu: p, err and expires are set
	p       Principal
	err     error
	expires time.Time
	waiters int // under Delegate.mu: requests that found the entry in flight (tests wait on it)
	// abandoned means the review failed because the context of the request that made it ended; the requests
	// waiting for it should review on their own behalf.
	abandoned bool
}

// NewDelegate returns a kubernetes-mode authenticator.
func NewDelegate(opts DelegateOptions) (*Delegate, error) {
	if opts.Tokens == nil || opts.Access == nil {
		return nil, errors.New("kubernetes authenticator: need both a token reviewer and an access reviewer")
	}
	d := &Delegate{
		tokens:   opts.Tokens,
		access:   opts.Access,
		allowTTL: opts.AllowTTL,
		denyTTL:  opts.DenyTTL,
		size:     opts.CacheSize,
		now:      opts.Now,
		entries:  make(map[tokenHash]*list.Element),
		lru:      list.New(),
	}
	if d.allowTTL <= 0 {
		d.allowTTL = DefaultAllowTTL
	}
	if d.denyTTL <= 0 {
		d.denyTTL = DefaultDenyTTL
	}
	if d.size <= 0 {
		d.size = DefaultCacheSize
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d, nil
}

// Authenticate implements Authenticator.
func (d *Delegate) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	key := hashToken(token)
	for {
		e, leader := d.lookup(key)
		if leader {
			d.fill(ctx, e, token)
			return e.p, e.err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return Principal{}, fmt.Errorf("%w: waiting for a review: %w", ErrUnavailable, context.Cause(ctx))
		}
		if !e.abandoned {
			return e.p, e.err
		}
	}
}

// lookup returns the fresh or in-flight entry for key, or a new entry that the caller (the leader) must fill.
func (d *Delegate) lookup(key tokenHash) (e *cacheEntry, leader bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		if !e.filled {
			e.waiters++
			d.lru.MoveToFront(el)
			return e, false
		}
		if d.now().Before(e.expires) {
			d.lru.MoveToFront(el)
			return e, false
		}
		d.removeLocked(el)
	}
	e = &cacheEntry{key: key, done: make(chan struct{})}
	d.entries[key] = d.lru.PushFront(e)
	for d.lru.Len() > d.size {
		d.removeLocked(d.lru.Back())
	}
	return e, true
}

// fill reviews token and publishes the outcome in e, keeping it cached only if it is a decision.
func (d *Delegate) fill(ctx context.Context, e *cacheEntry, token string) {
	p, err := d.review(ctx, token)
	d.mu.Lock()
	defer d.mu.Unlock()
	e.p, e.err, e.filled = p, err, true
	var ttl time.Duration
	switch {
	case err == nil:
		ttl = d.allowTTL
	case errors.Is(err, ErrUnauthenticated), errors.Is(err, ErrForbidden):
		ttl = d.denyTTL
	default:
		e.abandoned = ctx.Err() != nil
	}
	if ttl > 0 {
		e.expires = d.now().Add(ttl)
	} else if el, ok := d.entries[e.key]; ok && el.Value == e {
		d.removeLocked(el)
	}
	close(e.done)
}

// review asks the apiserver: who is this, and may they update (admin), get (viewer) or create (audit-writer) the
// virtual resource?
func (d *Delegate) review(ctx context.Context, token string) (Principal, error) {
	id, err := d.tokens.ReviewToken(ctx, token)
	if err != nil {
		if errors.Is(err, ErrUnauthenticated) {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("%w: token review: %w", ErrUnavailable, err)
	}
	for _, c := range []struct {
		verb string
		role Role
	}{{VerbAdmin, RoleAdmin}, {VerbView, RoleViewer}, {VerbAuditWrite, RoleAuditWriter}} {
		ok, err := d.access.Allowed(ctx, id, c.verb)
		if err != nil {
			return Principal{}, fmt.Errorf("%w: access review of %s for %s: %w", ErrUnavailable, id.User, c.verb, err)
		}
		if ok {
			return Principal{User: id.User, Groups: id.Groups, Role: c.role, Mode: ModeKubernetes}, nil
		}
	}
	return Principal{}, fmt.Errorf("%w: %s may not %s, %s or %s %s.%s", ErrForbidden, id.User, VerbAdmin, VerbView,
		VerbAuditWrite, VirtualResource, VirtualGroup)
}

func (d *Delegate) removeLocked(el *list.Element) {
	delete(d.entries, el.Value.(*cacheEntry).key)
	d.lru.Remove(el)
}
