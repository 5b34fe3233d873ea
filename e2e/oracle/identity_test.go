package oracle

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/kiem-io/kiem/graph"
)

// impersonate returns the user the apiserver's impersonation filter hands to the next handler for
// `Impersonate-User: u` and one `Impersonate-Group` header per group.
func impersonate(t *testing.T, u string, groups []string) user.Info {
	t.Helper()
	var got user.Info
	next := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got, _ = request.UserFrom(r.Context()) })
	h := filters.WithImpersonation(next, authorizerfactory.NewAlwaysAllowAuthorizer(),
		serializer.NewCodecFactory(runtime.NewScheme()))
	req := httptest.NewRequestWithContext(
		request.WithUser(t.Context(), &user.DefaultInfo{Name: "admin", Groups: []string{user.SystemPrivilegedGroup}}),
		http.MethodGet, "/api/v1/namespaces/ns1/pods", nil)
	req.Header.Set(authenticationv1.ImpersonateUserHeader, u)
	for _, g := range groups {
		req.Header.Add(authenticationv1.ImpersonateGroupHeader, g)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got == nil {
		t.Fatalf("impersonating %q %q: status %d: %s", u, groups, rec.Code, rec.Body.String())
	}
	return got
}

// TestImpersonatedIdentityMatchesFilter checks graph.ImpersonatedIdentity, which the random queries use for
// `kubectl --as` callers, against the apiserver's impersonation filter itself.
func TestImpersonatedIdentityMatchesFilter(t *testing.T) {
	users := []string{"alice", user.Anonymous, "system:serviceaccount:ns1:sa1", "system:serviceaccount:ns1:sa.dotted",
		"system:serviceaccount:NS1:sa1", "system:serviceaccount:ns1:sa1:extra", "system:serviceaccount:ns1:",
		"system:serviceaccount::sa1", "https://idp.example.com/u:dave"}
	groupSets := [][]string{nil, {"devs"}, {user.AllAuthenticated}, {user.AllUnauthenticated},
		{user.SystemPrivilegedGroup, "devs"}, {serviceaccount.AllServiceAccountsGroup}}
	for _, u := range users {
		for _, gs := range groupSets {
			want := impersonate(t, u, gs)
			got := graph.ImpersonatedIdentity(u, gs)
			wantGroups := slices.Sorted(slices.Values(want.GetGroups()))
			gotGroups := slices.Sorted(slices.Values(got.Groups))
			if got.User != want.GetName() || !slices.Equal(gotGroups, wantGroups) {
				t.Errorf("ImpersonatedIdentity(%q, %q) = %+v, the filter builds %q %q", u, gs, got,
					want.GetName(), want.GetGroups())
			}
		}
	}
}

// TestServiceAccountIdentityMatchesUpstream checks graph.ServiceAccountIdentity against the user a ServiceAccount
// token authenticates as (serviceaccount.UserInfo) plus system:authenticated, which the authenticator adds to
// every caller.
func TestServiceAccountIdentityMatchesUpstream(t *testing.T) {
	for _, sa := range [][2]string{{"ns1", "sa1"}, {"kube-system", "coredns"}, {"a", "b.c"}} {
		want := serviceaccount.UserInfo(sa[0], sa[1], "uid")
		got := graph.ServiceAccountIdentity(sa[0], sa[1])
		if diff := gocmp.Diff(
			graph.Identity{User: want.GetName(), Groups: append(want.GetGroups(), user.AllAuthenticated)},
			got); diff != "" {
			t.Errorf("ServiceAccountIdentity(%q, %q) (-upstream +kiem):\n%s", sa[0], sa[1], diff)
		}
	}
}
