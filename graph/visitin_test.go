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
