package graph

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// relationsObjects is a small cluster with every relation the explorer shows: bindings naming users, groups and
// a ServiceAccount both ways, a dangling Role and ClusterRole reference, aggregation with two selectors, an
// aggregate of an aggregate and an invalid selector, pods, declared users, and a namespace without its object.
func relationsObjects() *Objects {
	badSel := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "agg", Operator: metav1.LabelSelectorOpIn}}}
	return &Objects{
		Namespaces:      []Namespace{*ns("team-a"), *ns("apps")},
		ServiceAccounts: []ServiceAccount{*sa("apps", "default", ""), *sa("ci", "deployer", ""), *sa("apps", "builder", "")},
		ClusterRoles: []Role{
			labelled(role("", "base-a", rule("get", "", "pods")), "agg", "x"),
			labelled(role("", "base-b", rule("get", "", "secrets")), "agg", "x", "extra", "y"),
			labelled(role("", "base-c", rule("get", "", "nodes")), "extra", "y"),
			aggregating("agg1", sel("extra", "y"), sel("agg", "x")),
			labelled(aggregating("agg2", sel("agg", "x")), "extra", "y"),
			labelled(aggregating("self", sel("me", "1")), "me", "1"),
			aggregating("broken", sel("agg", "x"), badSel),
			role("", "view", rule("get", "", "configmaps")),
		},
		Roles: []Role{role("apps", "local", rule("get", "", "pods"))},
		ClusterRoleBindings: []Binding{
			binding("", "crb-sa", "ClusterRole/view", "ServiceAccount:apps/builder"),
			binding("", "crb-alice", "ClusterRole/view", "User:alice"),
			binding("", "crb-ops", "ClusterRole/agg1", "Group:ops"),
		},
		RoleBindings: []Binding{
			binding("ci", "rb-ci", "ClusterRole/view", "ServiceAccount:apps/builder", "Group:ops"),
			binding("apps", "rb-user-sa", "ClusterRole/view", "User:system:serviceaccount:apps:builder"),
			binding("apps", "rb-local", "Role/local", "ServiceAccount:builder"),
			binding("apps", "rb-dangling", "Role/missing", "User:alice", "User:system:serviceaccount:Bad:x", "ServiceAccount:apps/Not_A_Name"),
			binding("ci", "rb-missing-cr", "ClusterRole/nope", "User:bob"),
		},
		Pods: []Pod{
			{Meta: Meta{Namespace: "apps", Name: "p1"}, ServiceAccount: "builder"},
			{Meta: Meta{Namespace: "apps", Name: "p2"}, ServiceAccount: "default"},
			{Meta: Meta{Namespace: "apps", Name: "p0"}, ServiceAccount: "builder"},
			{Meta: Meta{Namespace: "ci", Name: "p3"}, ServiceAccount: "builder"},
		},
		Users: []User{
			{Meta: Meta{Name: "carol"}, Groups: []string{"ops", "devs"}},
			{Meta: Meta{Name: "dave"}, Groups: []string{"devs"}},
		},
	}
}

// refs parses "Kind/name" and "Kind/namespace/name".
func refs(ss ...string) []ObjectRef {
	var out []ObjectRef
	for _, s := range ss {
		kind, rest, _ := strings.Cut(s, "/")
		ref := ObjectRef{Kind: Kind(kind), Name: rest}
		if ns, name, ok := strings.Cut(rest, "/"); ok {
			ref.Namespace, ref.Name = ns, name
		}
		out = append(out, ref)
	}
	return out
}

func TestBindingsOf(t *testing.T) {
	s := NewSnapshot(relationsObjects())
	builder := refs("ClusterRoleBinding/crb-sa", "RoleBinding/apps/rb-local", "RoleBinding/apps/rb-user-sa", "RoleBinding/ci/rb-ci")
	tests := []struct {
		ref  ObjectRef
		want []ObjectRef
	}{
		{ObjectRef{Kind: KindServiceAccount, Namespace: "apps", Name: "builder"}, builder},
		// The same identity named as a user: the authorizer matches the two alike.
		{ObjectRef{Kind: KindUser, Name: "system:serviceaccount:apps:builder"}, builder},
		{ObjectRef{Kind: KindUser, Name: "alice"}, refs("ClusterRoleBinding/crb-alice", "RoleBinding/apps/rb-dangling")},
		{ObjectRef{Kind: KindGroup, Name: "ops"}, refs("ClusterRoleBinding/crb-ops", "RoleBinding/ci/rb-ci")},
		{ObjectRef{Kind: KindGroup, Name: "system:serviceaccounts"}, nil}, // groups are not expanded
		{ObjectRef{Kind: KindUser, Name: "carol"}, nil},                   // her group's bindings are the group's
		{ObjectRef{Kind: KindServiceAccount, Name: "builder"}, nil},
		{ObjectRef{Kind: KindRole, Namespace: "apps", Name: "local"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.ref.String(), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, s.BindingsOf(tt.ref)); diff != "" {
				t.Errorf("BindingsOf(%s) (-want +got):\n%s", tt.ref, diff)
			}
		})
	}
}

func TestBindingsOfRole(t *testing.T) {
	s := NewSnapshot(relationsObjects())
	tests := []struct {
		ref  ObjectRef
		want []ObjectRef
	}{
		{ObjectRef{Kind: KindClusterRole, Name: "view"},
			refs("ClusterRoleBinding/crb-alice", "ClusterRoleBinding/crb-sa", "RoleBinding/apps/rb-user-sa", "RoleBinding/ci/rb-ci")},
		{ObjectRef{Kind: KindRole, Namespace: "apps", Name: "local"}, refs("RoleBinding/apps/rb-local")},
		{ObjectRef{Kind: KindRole, Namespace: "apps", Name: "missing"}, refs("RoleBinding/apps/rb-dangling")},
		{ObjectRef{Kind: KindClusterRole, Name: "nope"}, refs("RoleBinding/ci/rb-missing-cr")},
		{ObjectRef{Kind: KindRole, Namespace: "ci", Name: "local"}, nil},
		{ObjectRef{Kind: KindRole, Namespace: "nowhere", Name: "local"}, nil},
		{ObjectRef{Kind: KindClusterRole, Name: "base-a"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.ref.String(), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, s.BindingsOfRole(tt.ref)); diff != "" {
				t.Errorf("BindingsOfRole(%s) (-want +got):\n%s", tt.ref, diff)
			}
		})
	}
}

func TestAggregatedFromAndInto(t *testing.T) {
	for _, opts := range []SnapshotOptions{{}, {APIAggregation: true}} {
		s := NewSnapshotWith(relationsObjects(), opts)
		from := map[string][]ObjectRef{
			// Selector order, then name order within a selector, each role once, itself skipped.
			"agg1":   refs("ClusterRole/agg2", "ClusterRole/base-b", "ClusterRole/base-c", "ClusterRole/base-a"),
			"agg2":   refs("ClusterRole/base-a", "ClusterRole/base-b"),
			"self":   nil,
			"broken": nil, // the controller never syncs a role with an invalid selector
			"base-a": nil,
			"absent": nil,
		}
		into := map[string][]ObjectRef{
			"base-a": refs("ClusterRole/agg1", "ClusterRole/agg2"),
			"base-b": refs("ClusterRole/agg1", "ClusterRole/agg2"),
			"base-c": refs("ClusterRole/agg1"),
			"agg2":   refs("ClusterRole/agg1"),
			"self":   nil,
			"view":   nil,
			"absent": nil,
		}
		for name, want := range from {
			if diff := cmp.Diff(want, s.AggregatedFrom(name)); diff != "" {
				t.Errorf("%+v: AggregatedFrom(%q) (-want +got):\n%s", opts, name, diff)
			}
		}
		for name, want := range into {
			if diff := cmp.Diff(want, s.AggregatedInto(name)); diff != "" {
				t.Errorf("%+v: AggregatedInto(%q) (-want +got):\n%s", opts, name, diff)
			}
		}
	}
}

func TestPodsOf(t *testing.T) {
	s := NewSnapshot(relationsObjects())
	if diff := cmp.Diff(refs("Pod/apps/p0", "Pod/apps/p1"), s.PodsOf("apps", "builder")); diff != "" {
		t.Errorf("PodsOf(apps, builder) (-want +got):\n%s", diff)
	}
	if got := s.PodsOf("nowhere", "builder"); got != nil {
		t.Errorf("PodsOf(nowhere, builder) = %v, want none", got)
	}
}

func TestEachAndCount(t *testing.T) {
	s := NewSnapshot(relationsObjects())
	tests := []struct {
		kind Kind
		ns   string
		want []ObjectRef
	}{
		{KindServiceAccount, "", refs("ServiceAccount/apps/builder", "ServiceAccount/apps/default", "ServiceAccount/ci/deployer")},
		{KindServiceAccount, "ci", refs("ServiceAccount/ci/deployer")},
		{KindServiceAccount, "nowhere", nil},
		{KindRoleBinding, "", refs("RoleBinding/apps/rb-dangling", "RoleBinding/apps/rb-local", "RoleBinding/apps/rb-user-sa",
			"RoleBinding/ci/rb-ci", "RoleBinding/ci/rb-missing-cr")},
		{KindRole, "", refs("Role/apps/local")},
		{KindPod, "apps", refs("Pod/apps/p0", "Pod/apps/p1", "Pod/apps/p2")},
		{KindSecret, "", nil},
		{KindClusterRoleBinding, "apps", refs("ClusterRoleBinding/crb-alice", "ClusterRoleBinding/crb-ops", "ClusterRoleBinding/crb-sa")},
		{KindNamespace, "", refs("Namespace/apps", "Namespace/team-a")},
		{KindUser, "", refs("User/carol", "User/dave")},
		{KindGroup, "", nil},
		{KindNode, "", nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+"/"+tt.ns, func(t *testing.T) {
			var got []ObjectRef
			s.Each(tt.kind, tt.ns, func(o Object) bool { got = append(got, o.Ref()); return true })
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Each(%s, %q) (-want +got):\n%s", tt.kind, tt.ns, diff)
			}
			if got, want := s.Count(tt.kind, tt.ns), len(tt.want); got != want {
				t.Errorf("Count(%s, %q) = %d, want %d", tt.kind, tt.ns, got, want)
			}
		})
	}

	t.Run("stops", func(t *testing.T) {
		for _, k := range []Kind{KindServiceAccount, KindClusterRole, KindRole, KindPod, KindRoleBinding} {
			n := 0
			s.Each(k, "", func(Object) bool { n++; return false })
			if n != 1 {
				t.Errorf("Each(%s) called fn %d times after it returned false, want 1", k, n)
			}
		}
	})
	t.Run("aggregated rules", func(t *testing.T) {
		s.Each(KindClusterRole, "", func(o Object) bool {
			if r := o.(*Role); r.Name == "agg2" && len(r.Rules) != 2 {
				t.Errorf("Each gives agg2 with rules %v, want the 2 it aggregates", r.Rules)
			}
			return true
		})
	})
}

func TestSubjects(t *testing.T) {
	fresh := func() *Snapshot { return NewSnapshot(relationsObjects()) }
	wantUsers := []string{"alice", "bob", "carol", "dave", "system:serviceaccount:Bad:x"} // not a valid ServiceAccount name
	wantGroups := []string{"devs", "ops"}
	s := fresh()
	if diff := cmp.Diff(wantUsers, s.Subjects(KindUser)); diff != "" {
		t.Errorf("Subjects(User) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantGroups, s.Subjects(KindGroup)); diff != "" {
		t.Errorf("Subjects(Group) (-want +got):\n%s", diff)
	}
	if got := s.Subjects(KindServiceAccount); got != nil {
		t.Errorf("Subjects(ServiceAccount) = %v, want nil", got)
	}

	has := []struct {
		kind Kind
		name string
		want bool
	}{
		{KindUser, "alice", true},
		{KindUser, "carol", true}, // declared only
		{KindUser, "system:serviceaccount:apps:builder", false},
		{KindUser, "system:serviceaccount:Bad:x", true},
		{KindUser, "system:serviceaccount:apps:Not_A_Name", false}, // named by a ServiceAccount subject
		{KindUser, "ops", false},
		{KindGroup, "ops", true},
		{KindGroup, "devs", true}, // a declared user's only
		{KindGroup, "system:authenticated", false},
		{KindServiceAccount, "builder", false},
	}
	// Once through the shards' indexes, once through the built lists.
	for _, s := range []*Snapshot{fresh(), s} {
		for _, tt := range has {
			if got := s.HasSubject(tt.kind, tt.name); got != tt.want {
				t.Errorf("HasSubject(%s, %q) = %v, want %v (lists built: %v)", tt.kind, tt.name, got, tt.want, s.subjects.built.Load())
			}
		}
	}

	// A new snapshot has its own lists.
	b := binding("apps", "rb-erin", "ClusterRole/view", "User:erin", "Group:newcomers")
	next := s.Apply([]Change{NewChange(nil, &b)})
	if got := next.Subjects(KindUser); len(got) != len(wantUsers)+1 || !next.HasSubject(KindGroup, "newcomers") {
		t.Errorf("after Apply, Subjects(User) = %v and HasSubject(Group, newcomers) = %v; want erin and newcomers added",
			got, next.HasSubject(KindGroup, "newcomers"))
	}
	if s.HasSubject(KindUser, "erin") {
		t.Error("Apply changed the subjects of the snapshot it came from")
	}
}

func TestMembersOfAndNamespaceNames(t *testing.T) {
	s := NewSnapshot(relationsObjects())
	if diff := cmp.Diff([]string{"carol", "dave"}, s.MembersOf("devs")); diff != "" {
		t.Errorf("MembersOf(devs) (-want +got):\n%s", diff)
	}
	if got := s.MembersOf(GroupAuthenticated); got != nil {
		t.Errorf("MembersOf(%s) = %v, want none: implicit memberships are not listed", GroupAuthenticated, got)
	}
	// ci has objects but no Namespace object; team-a has only its object.
	if diff := cmp.Diff([]string{"apps", "ci", "team-a"}, s.NamespaceNames()); diff != "" {
		t.Errorf("NamespaceNames() (-want +got):\n%s", diff)
	}
	withEmpty := s.Apply([]Change{NewChange(nil, sa("", "orphan", ""))})
	if diff := cmp.Diff([]string{"apps", "ci", "team-a"}, withEmpty.NamespaceNames()); diff != "" {
		t.Errorf("NamespaceNames() with an object in no namespace (-want +got):\n%s", diff)
	}
}
