package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/kubetest"
	"github.com/kiem-io/kiem/internal/testutil"
)

// countingTokens counts the TokenReviews a reviewer makes.
type countingTokens struct {
	next  auth.TokenReviewer
	calls atomic.Int32
}

func (c *countingTokens) ReviewToken(ctx context.Context, token string) (auth.Identity, error) {
	c.calls.Add(1)
	return c.next.ReviewToken(ctx, token)
}

// authServer is the real middleware over the kubernetes authenticator, echoing the principal as JSON.
type authServer struct {
	url    string
	tokens *countingTokens
	now    time.Time
	mu     sync.Mutex // guards now
	logs   *testutil.Buffer
}

func (s *authServer) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// advance moves the authenticator's clock past every cache TTL.
func (s *authServer) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(time.Minute)
}

func newAuthServer(t *testing.T, cfg *rest.Config, audiences ...string) *authServer {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &authServer{
		tokens: &countingTokens{next: kubeTokenReviewer{client: cs.AuthenticationV1().TokenReviews(), audiences: audiences}},
		now:    time.Now(),
		logs:   &testutil.Buffer{},
	}
	d, err := auth.NewDelegate(auth.DelegateOptions{
		Tokens: s.tokens,
		Access: kubeAccessReviewer{client: cs.AuthorizationV1().SubjectAccessReviews()},
		Now:    s.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	srv := httptest.NewServer(auth.Middleware(d, log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.PrincipalFrom(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]any{"user": p.User, "role": p.Role.String(), "groups": p.Groups})
	})))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/graphql"
	return s
}

type echoed struct {
	status int
	User   string   `json:"user"`
	Role   string   `json:"role"`
	Groups []string `json:"groups"`
}

func (s *authServer) get(t *testing.T, token string) echoed {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	e := echoed{status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
	}
	return e
}

// TestKubeAuthE2E authenticates ServiceAccount tokens through the real middleware, TokenReview and
// SubjectAccessReview of a real kube-apiserver.
func TestKubeAuthE2E(t *testing.T) {
	cl := kubetest.Start(t, kubetest.Options{})
	ctx := t.Context()
	cfg := cl.RESTConfig("admin")
	cs := kubernetes.NewForConfigOrDie(cfg)

	const ns, teamNS = "kiem-auth", "kiem-team"
	for _, n := range []string{ns, teamNS} {
		mustCreate(t, func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
			return err
		})
	}
	for name, verbs := range map[string][]string{"kiem-viewer": {"get"}, "kiem-admin": {"get", "update"}} {
		mustCreate(t, func() error {
			_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{auth.VirtualGroup}, Resources: []string{auth.VirtualResource}, Verbs: verbs}},
			}, metav1.CreateOptions{})
			return err
		})
	}
	sas := map[string]*corev1.ServiceAccount{}
	for _, s := range []struct{ ns, name string }{{ns, "viewer"}, {ns, "admin"}, {ns, "unbound"}, {ns, "doomed"}, {teamNS, "member"}} {
		mustCreate(t, func() error {
			sa, err := cs.CoreV1().ServiceAccounts(s.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: s.name}}, metav1.CreateOptions{})
			sas[s.name] = sa
			return err
		})
	}
	saSubject := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	}
	for name, b := range map[string]struct {
		role     string
		subjects []rbacv1.Subject
	}{
		"kiem-viewers": {"kiem-viewer", []rbacv1.Subject{saSubject("viewer"), saSubject("doomed"),
			// A group binding: the groups from the TokenReview must reach the SubjectAccessReview.
			{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccounts:" + teamNS}}},
		"kiem-admins": {"kiem-admin", []rbacv1.Subject{saSubject("admin")}},
	} {
		mustCreate(t, func() error {
			_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.role},
				Subjects:   b.subjects,
			}, metav1.CreateOptions{})
			return err
		})
	}
	// The apiserver's authorizer reads bindings from its informers: wait until it applies the ones just created,
	// or a review in the first milliseconds would refuse what the bindings grant.
	for _, w := range []struct{ ns, name, verb string }{{ns, "viewer", auth.VerbView}, {ns, "admin", auth.VerbAdmin}, {teamNS, "member", auth.VerbView}} {
		eventually(t, 15*time.Second, "the kiem bindings take effect for "+w.ns+"/"+w.name, func() bool {
			sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: graph.ServiceAccountUsername(w.ns, w.name), Groups: graph.ServiceAccountGroups(w.ns),
				ResourceAttributes: &authorizationv1.ResourceAttributes{Group: auth.VirtualGroup, Resource: auth.VirtualResource, Verb: w.verb},
			}}, metav1.CreateOptions{})
			return err == nil && sar.Status.Allowed
		})
	}
	tokenFor := func(sa *corev1.ServiceAccount, audiences ...string) string {
		t.Helper()
		tr, err := cs.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s/%s: %v", sa.Namespace, sa.Name, err)
		}
		return tr.Status.Token
	}
	saUser := func(name string) string { return "system:serviceaccount:" + ns + ":" + name }

	t.Run("roles", func(t *testing.T) {
		srv := newAuthServer(t, cfg)
		for _, tc := range []struct {
			name   string
			token  string
			status int
			user   string
			role   string
		}{
			{"viewer", tokenFor(sas["viewer"]), 200, saUser("viewer"), "viewer"},
			{"admin", tokenFor(sas["admin"]), 200, saUser("admin"), "admin"},
			{"group binding", tokenFor(sas["member"]), 200, "system:serviceaccount:" + teamNS + ":member", "viewer"},
			{"system:masters", cl.Token("admin"), 200, "admin", "admin"},
			{"unbound", tokenFor(sas["unbound"]), 403, "", ""},
			{"garbage", "garbage", 401, "", ""},
			{"garbage JWT", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", 401, "", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := srv.get(t, tc.token)
				if got.status != tc.status || got.User != tc.user || got.Role != tc.role {
					t.Errorf("got %d %q %q, want %d %q %q", got.status, got.User, got.Role, tc.status, tc.user, tc.role)
				}
			})
		}
		if logs := srv.logs.String(); !strings.Contains(logs, `"reason":"forbidden"`) || !strings.Contains(logs, saUser("unbound")) {
			t.Errorf("the 403 is not logged with the user: %s", logs)
		}
	})

	t.Run("deleted ServiceAccount", func(t *testing.T) {
		// Not used before the deletion, so neither kiem's nor the apiserver's token cache holds it.
		token := tokenFor(sas["doomed"])
		if err := cs.CoreV1().ServiceAccounts(ns).Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		srv := newAuthServer(t, cfg)
		// The apiserver looks accounts up through an informer, which learns of the deletion a moment later.
		eventually(t, 15*time.Second, "the deleted account's token is refused", func() bool {
			srv.advance()
			return srv.get(t, token).status == http.StatusUnauthorized
		})
	})

	t.Run("minted tokens", func(t *testing.T) {
		srv := newAuthServer(t, cfg)
		sa := sas["viewer"]
		claims := kubetest.ServiceAccountToken{Namespace: ns, Name: sa.Name, UID: string(sa.UID)}
		// A fresh token signed the same way proves the signing is right, so the expired one fails for its expiry.
		if got := srv.get(t, cl.MintServiceAccountToken(claims)); got.status != 200 || got.Role != "viewer" {
			t.Fatalf("fresh minted token: %+v, want 200 viewer", got)
		}
		claims.IssuedAt = time.Now().Add(-2 * time.Hour)
		claims.Expiry = time.Now().Add(-time.Hour)
		if got := srv.get(t, cl.MintServiceAccountToken(claims)); got.status != http.StatusUnauthorized {
			t.Errorf("expired token: %+v, want 401", got)
		}
		if logs := srv.logs.String(); !strings.Contains(logs, "expired") {
			t.Errorf("the refusal's log does not say why: %s", logs)
		}
	})

	t.Run("audiences", func(t *testing.T) {
		srv := newAuthServer(t, cfg, "kiem")
		if got := srv.get(t, tokenFor(sas["viewer"], "kiem")); got.status != 200 || got.Role != "viewer" {
			t.Errorf("token for audience kiem: %+v, want 200 viewer", got)
		}
		if got := srv.get(t, tokenFor(sas["viewer"])); got.status != http.StatusUnauthorized {
			t.Errorf("token for the apiserver's audience: %+v, want 401", got)
		}
	})

	t.Run("cache", func(t *testing.T) {
		srv := newAuthServer(t, cfg)
		viewer, admin := tokenFor(sas["viewer"]), tokenFor(sas["admin"])
		for range 2 {
			if got := srv.get(t, viewer); got.status != 200 {
				t.Fatalf("viewer: %+v", got)
			}
		}
		if got := srv.tokens.calls.Load(); got != 1 {
			t.Fatalf("two requests within the TTL made %d TokenReviews, want 1", got)
		}
		var wg sync.WaitGroup
		statuses := make([]int, 20)
		for i := range statuses {
			wg.Go(func() {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.url, nil)
				if err != nil {
					return
				}
				req.Header.Set("Authorization", "Bearer "+admin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				statuses[i] = resp.StatusCode
				resp.Body.Close()
			})
		}
		wg.Wait()
		for i, s := range statuses {
			if s != 200 {
				t.Fatalf("burst request %d: status %d", i, s)
			}
		}
		if got := srv.tokens.calls.Load(); got != 2 {
			t.Fatalf("a burst of 20 requests made %d TokenReviews, want 1", got-1)
		}
		srv.advance()
		if got := srv.get(t, viewer); got.status != 200 || srv.tokens.calls.Load() != 3 {
			t.Errorf("after the TTL: %+v, %d TokenReviews, want a new one", got, srv.tokens.calls.Load())
		}
	})

	t.Run("apiserver unreachable", func(t *testing.T) {
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		srv := newAuthServer(t, &rest.Config{Host: gone.URL})
		if got := srv.get(t, tokenFor(sas["viewer"])); got.status != http.StatusServiceUnavailable {
			t.Errorf("unreachable apiserver: %+v, want 503", got)
		}
	})
}

// TestKubeAuthAdapters checks what the client-go adapters send and how they read answers the real apiserver
// gives rarely: audiences it did not honour, extra fields, errors.
func TestKubeAuthAdapters(t *testing.T) {
	ctx := context.Background()
	reviewWith := func(status authenticationv1.TokenReviewStatus, err error, audiences ...string) (auth.Identity, *authenticationv1.TokenReview, error) {
		cs := fake.NewClientset()
		var sent *authenticationv1.TokenReview
		cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			sent = a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
			return true, &authenticationv1.TokenReview{Status: status}, err
		})
		id, rerr := kubeTokenReviewer{client: cs.AuthenticationV1().TokenReviews(), audiences: audiences}.ReviewToken(ctx, "tok")
		return id, sent, rerr
	}

	user := authenticationv1.UserInfo{Username: "u", UID: "1", Groups: []string{"g"}, Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}}}
	id, sent, err := reviewWith(authenticationv1.TokenReviewStatus{Authenticated: true, User: user, Audiences: []string{"kiem"}}, nil, "kiem")
	if err != nil || id.User != "u" || id.UID != "1" || len(id.Groups) != 1 || id.Extra["k"][0] != "v" {
		t.Errorf("authenticated: %+v, %v", id, err)
	}
	if sent.Spec.Token != "tok" || len(sent.Spec.Audiences) != 1 || sent.Spec.Audiences[0] != "kiem" {
		t.Errorf("sent %+v, want the token and audience kiem", sent.Spec)
	}
	if _, _, err := reviewWith(authenticationv1.TokenReviewStatus{Authenticated: true, User: user}, nil, "kiem"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("audience not honoured: %v, want ErrUnauthenticated", err)
	}
	if _, _, err := reviewWith(authenticationv1.TokenReviewStatus{Error: "token has expired"}, nil); !errors.Is(err, auth.ErrUnauthenticated) || !strings.Contains(err.Error(), "token has expired") {
		t.Errorf("refused: %v, want ErrUnauthenticated with the reason", err)
	}
	if _, _, err := reviewWith(authenticationv1.TokenReviewStatus{}, errors.New("etcd down")); err == nil || errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("failed review: %v, want an error that is not ErrUnauthenticated", err)
	}

	cs := fake.NewClientset()
	var sar *authorizationv1.SubjectAccessReview
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar = a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview)
		return true, &authorizationv1.SubjectAccessReview{Status: authorizationv1.SubjectAccessReviewStatus{Allowed: true}}, nil
	})
	ok, err := kubeAccessReviewer{client: cs.AuthorizationV1().SubjectAccessReviews()}.Allowed(ctx,
		auth.Identity{User: "u", UID: "1", Groups: []string{"g"}, Extra: map[string][]string{"k": {"v"}}}, "update")
	if !ok || err != nil {
		t.Fatalf("Allowed: %v, %v", ok, err)
	}
	want := authorizationv1.SubjectAccessReviewSpec{
		User: "u", UID: "1", Groups: []string{"g"}, Extra: map[string]authorizationv1.ExtraValue{"k": {"v"}},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Group: "kiem.io", Resource: "graph", Verb: "update"},
	}
	if diff := cmp.Diff(want, sar.Spec); diff != "" {
		t.Errorf("SubjectAccessReview spec (-want +got):\n%s", diff)
	}
}
