package graph

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestImpersonatedIdentity(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		groups []string
		want   []string
	}{
		{"user gets authenticated", "alice", nil, []string{"system:authenticated"}},
		{"groups kept and authenticated added", "alice", []string{"devs"}, []string{"devs", "system:authenticated"}},
		{"authenticated not repeated", "alice", []string{"system:authenticated"}, []string{"system:authenticated"}},
		{"unauthenticated suppresses authenticated", "alice", []string{"system:unauthenticated"}, []string{"system:unauthenticated"}},
		{"service account groups when none given", "system:serviceaccount:ns1:sa", nil,
			[]string{"system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"}},
		{"service account with groups given gets only those", "system:serviceaccount:ns1:sa", []string{"devs"}, []string{"devs", "system:authenticated"}},
		{"invalid service account name is a user", "system:serviceaccount:NS:sa", nil, []string{"system:authenticated"}},
		{"three parts is a user", "system:serviceaccount:a:b:c", nil, []string{"system:authenticated"}},
		{"anonymous", "system:anonymous", nil, []string{"system:unauthenticated"}},
		{"anonymous with group", "system:anonymous", []string{"devs"}, []string{"devs", "system:unauthenticated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ImpersonatedIdentity(tt.user, tt.groups)
			if diff := cmp.Diff(tt.want, got.Groups); diff != "" || got.User != tt.user {
				t.Fatalf("ImpersonatedIdentity(%q, %q) = %+v (-want +got groups):\n%s", tt.user, tt.groups, got, diff)
			}
		})
	}
}

func TestSplitServiceAccountUsername(t *testing.T) {
	long := strings.Repeat("a", 70) // a subdomain label may exceed 63 characters: the apiserver only checks the regexp
	tests := []struct {
		user     string
		ns, name string
		ok       bool
	}{
		{"system:serviceaccount:kube-system:default", "kube-system", "default", true},
		{"system:serviceaccount:ns:a.b", "ns", "a.b", true},
		{"system:serviceaccount:ns:" + long, "ns", long, true},
		{"system:serviceaccount:" + long + ":x", "", "", false},
		{"system:serviceaccount:ns", "", "", false},
		{"system:serviceaccount::x", "", "", false},
		{"system:serviceaccounts:ns:x", "", "", false},
		{"alice", "", "", false},
	}
	for _, tt := range tests {
		ns, name, ok := SplitServiceAccountUsername(tt.user)
		if ns != tt.ns || name != tt.name || ok != tt.ok {
			t.Errorf("SplitServiceAccountUsername(%q) = %q, %q, %v; want %q, %q, %v", tt.user, ns, name, ok, tt.ns, tt.name, tt.ok)
		}
	}
	if got, want := ServiceAccountIdentity("ns1", "sa"), (Identity{User: "system:serviceaccount:ns1:sa",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"}}); !cmp.Equal(got, want) {
		t.Fatalf("ServiceAccountIdentity = %+v, want %+v", got, want)
	}
}
