package graph_test

import (
	"context"
	"slices"
	"strings"
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

// TestBoundIndex: where the index says a principal is bound is where a walk over every binding finds it, after
// changes too.
func TestBoundIndex(t *testing.T) {
	spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
		ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 10}
	s := graph.NewSnapshot(workload.Generate(nil, spec, 5))
	objs := s.Objects()
	// Drop a third of the RoleBindings and half the ClusterRoleBindings, then put some back under other names:
	// the index each snapshot derives from its predecessor's must follow.
	var drop, readd []graph.Change
	for i := range objs.RoleBindings {
		if i%3 == 0 {
			drop = append(drop, graph.NewChange(&objs.RoleBindings[i], nil))
			if i%2 == 0 {
				b := objs.RoleBindings[i]
				b.Name += "-again"
				readd = append(readd, graph.NewChange(nil, &b))
			}
		}
	}
	for i := range objs.ClusterRoleBindings {
		if i%2 == 0 {
			drop = append(drop, graph.NewChange(&objs.ClusterRoleBindings[i], nil))
		}
	}
	s.BoundIn(graph.ObjectRef{Kind: graph.KindGroup, Name: "build-the-index"})
	s2 := s.Apply(drop)
	s2.BoundIn(graph.ObjectRef{Kind: graph.KindGroup, Name: "build-the-index"})
	s3 := s2.Apply(readd)
	everyone := map[graph.ObjectRef]bool{}
	for _, snap := range []*graph.Snapshot{s, s2, s3} {
		want := map[graph.ObjectRef][]string{}
		accounts := map[string][]graph.ObjectRef{}
		all := snap.Objects()
		for _, b := range append(all.ClusterRoleBindings, all.RoleBindings...) {
			for _, sub := range b.Subjects {
				var ref graph.ObjectRef
				switch sub.Kind {
				case "ServiceAccount":
					ns := sub.Namespace
					if ns == "" {
						ns = b.Namespace
					}
					if ns == "" {
						continue
					}
					ref = graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: sub.Name}
				case "User":
					ref = graph.ObjectRef{Kind: graph.KindUser, Name: sub.Name}
					if ns, name, ok := graph.SplitServiceAccountUsername(sub.Name); ok {
						ref = graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: name}
					}
				case "Group":
					ref = graph.ObjectRef{Kind: graph.KindGroup, Name: sub.Name}
				default:
					continue
				}
				if !slices.Contains(want[ref], b.Namespace) {
					want[ref] = append(want[ref], b.Namespace)
				}
				if ref.Kind == graph.KindServiceAccount && !slices.Contains(accounts[ref.Namespace], ref) {
					accounts[ref.Namespace] = append(accounts[ref.Namespace], ref)
				}
			}
		}
		if len(want) == 0 {
			t.Fatal("no binding names anybody: the test proves nothing")
		}
		for ref := range everyone {
			if _, ok := want[ref]; !ok {
				if got := snap.BoundIn(ref); len(got) > 0 {
					t.Fatalf("BoundIn(%s) = %v, but no binding names it", ref, got)
				}
			}
		}
		for ref, nss := range want {
			everyone[ref] = true
			slices.Sort(nss)
			if got := snap.BoundIn(ref); !slices.Equal(got, nss) {
				t.Fatalf("BoundIn(%s) = %v, want %v", ref, got, nss)
			}
			if got := len(snap.BindingsOf(ref)); got == 0 {
				t.Fatalf("BindingsOf(%s) is empty, but it is bound in %v", ref, nss)
			}
		}
		for ns, refs := range accounts {
			slices.SortFunc(refs, func(a, b graph.ObjectRef) int { return strings.Compare(a.Name, b.Name) })
			if got := snap.BoundServiceAccounts(ns); !slices.Equal(got, refs) {
				t.Fatalf("BoundServiceAccounts(%s) = %v, want %v", ns, got, refs)
			}
		}
		for _, sa := range all.ServiceAccounts {
			id := graph.ServiceAccountIdentity(sa.Namespace, sa.Name)
			var nss []string
			for _, g := range append([]string{id.User}, id.Groups...) {
				kind := graph.KindGroup
				if g == id.User {
					kind = graph.KindUser
				}
				ref := graph.ObjectRef{Kind: kind, Name: g}
				if kind == graph.KindUser {
					ref = graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: sa.Namespace, Name: sa.Name}
				}
				for _, ns := range want[ref] {
					if ns != "" && !slices.Contains(nss, ns) {
						nss = append(nss, ns)
					}
				}
			}
			slices.Sort(nss)
			if got := snap.BoundNamespaces(id); !slices.Equal(got, nss) {
				t.Fatalf("BoundNamespaces(%s) = %v, want %v", id.User, got, nss)
			}
		}
	}
}

// TestRoleBoundBy: RoleBoundBy and BindingsOfRoleIn agree with BindingsOfRole.
func TestRoleBoundBy(t *testing.T) {
	spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
		ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 10}
	s := graph.NewSnapshot(workload.Generate(nil, spec, 6))
	var roles []graph.ObjectRef
	s.Each(graph.KindClusterRole, "", func(o graph.Object) bool { roles = append(roles, o.Ref()); return true })
	s.Each(graph.KindRole, "", func(o graph.Object) bool { roles = append(roles, o.Ref()); return true })
	seen := map[[2]bool]int{}
	for _, ref := range roles {
		all := s.BindingsOfRole(ref)
		cw, ns := s.RoleBoundBy(ref)
		wantCW := slices.ContainsFunc(all, func(b graph.ObjectRef) bool { return b.Kind == graph.KindClusterRoleBinding })
		wantNS := slices.ContainsFunc(all, func(b graph.ObjectRef) bool { return b.Kind == graph.KindRoleBinding })
		if cw != wantCW || ns != wantNS {
			t.Fatalf("RoleBoundBy(%s) = %v, %v; its bindings are %v", ref, cw, ns, all)
		}
		seen[[2]bool{cw, ns}]++
		for _, scope := range append([]string{""}, s.NamespaceNames()...) {
			var want []graph.ObjectRef
			for _, b := range all {
				if b.Namespace == scope {
					want = append(want, b)
				}
			}
			if got := s.BindingsOfRoleIn(ref, scope); !slices.Equal(got, want) {
				t.Fatalf("BindingsOfRoleIn(%s, %q) = %v, want %v", ref, scope, got, want)
			}
		}
	}
	if len(seen) < 3 {
		t.Fatalf("roles bound in only %d ways (%v): the test proves little", len(seen), seen)
	}
}
