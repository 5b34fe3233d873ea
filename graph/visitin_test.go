package graph_test

import (
	"context"
	"testing"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
)

// TestVisitPermissionsIn: limited to every namespace it equals VisitPermissions; limited to some, it gives the
// ClusterRoleBindings' grants and those namespaces' only.
func TestVisitPermissionsIn(t *testing.T) {
	ctx := context.Background()
	spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
		ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 10}
	s := graph.NewSnapshot(workload.Generate(nil, spec, 2))
	all := s.NamespaceNames()
	some := all[:len(all)/2]
	checked := 0
	for _, sa := range s.Objects().ServiceAccounts {
		id := graph.ServiceAccountIdentity(sa.Namespace, sa.Name)
		want, err := s.EffectivePermissions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var got, part []graph.Permission
		if err := s.VisitPermissionsIn(ctx, id, all, func(p graph.Permission) bool { got = append(got, p); return true }); err != nil {
			t.Fatal(err)
		}
		if err := s.VisitPermissionsIn(ctx, id, some, func(p graph.Permission) bool { part = append(part, p); return true }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d permissions in every namespace, EffectivePermissions gives %d", id.User, len(got), len(want))
		}
		n := 0
		for _, p := range want {
			in := p.Namespace == ""
			for _, ns := range some {
				in = in || p.Namespace == ns
			}
			if in {
				n++
			}
		}
		if len(part) != n {
			t.Fatalf("%s: %d permissions in %v, want %d", id.User, len(part), some, n)
		}
		for _, p := range part {
			if p.Namespace != "" && p.Namespace > some[len(some)-1] {
				t.Fatalf("%s: permission from namespace %s outside %v", id.User, p.Namespace, some)
			}
		}
		if len(want) > len(part) {
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no identity had grants outside the chosen namespaces: the test proves nothing")
	}
}

// TestVisitBound: the rules of the bindings VisitBound gives, cluster-wide and in every namespace, are exactly
// EffectivePermissions, with the same grant paths.
func TestVisitBound(t *testing.T) {
	ctx := context.Background()
	spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
		ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 10}
	s := graph.NewSnapshot(workload.Generate(nil, spec, 4))
	var ids []graph.Identity
	for _, sa := range s.Objects().ServiceAccounts {
		ids = append(ids, graph.ServiceAccountIdentity(sa.Namespace, sa.Name))
	}
	for _, u := range s.Subjects(graph.KindUser) {
		ids = append(ids, graph.ImpersonatedIdentity(u, s.GroupsOf(u)))
	}
	granted := 0
	for _, id := range ids {
		want, err := s.EffectivePermissions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []graph.Permission
		for _, ns := range append([]string{""}, s.NamespaceNames()...) {
			s.VisitBound(id, ns, func(b graph.Bound) bool {
				if b.Namespace() != ns {
					t.Fatalf("%s: VisitBound(%q) gave a binding of %q", id.User, ns, b.Namespace())
				}
				for i := range b.Role().Rules {
					got = append(got, b.Permission(i))
				}
				return true
			})
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d permissions through VisitBound, EffectivePermissions gives %d", id.User, len(got), len(want))
		}
		for i := range want {
			if got[i].Explain() != want[i].Explain() || got[i].Namespace != want[i].Namespace {
				t.Fatalf("%s: permission %d is %s, want %s", id.User, i, got[i].Explain(), want[i].Explain())
			}
		}
		granted += len(want)
	}
	if granted == 0 {
		t.Fatal("no identity holds a permission: the test proves nothing")
	}
}
