package graph

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// binding builds a RoleBinding (ns set) or ClusterRoleBinding (ns empty):
// binding("ns1", "rb", "ClusterRole/admin", "User:alice", "Group:ops", "ServiceAccount:ns2/sa", "ServiceAccount:sa").
func binding(ns, name, roleRef string, subjects ...string) Binding {
	kind, role, _ := strings.Cut(roleRef, "/")
	b := Binding{Kind: KindRoleBinding, Meta: Meta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}}
	if ns == "" {
		b.Kind = KindClusterRoleBinding
	}
	for _, s := range subjects {
		k, n, _ := strings.Cut(s, ":")
		subj := rbacv1.Subject{Kind: k, Name: n}
		if k == rbacv1.ServiceAccountKind {
			if sns, sn, ok := strings.Cut(n, "/"); ok {
				subj.Namespace, subj.Name = sns, sn
			}
		}
		b.Subjects = append(b.Subjects, subj)
	}
	return b
}

func role(ns, name string, rules ...rbacv1.PolicyRule) Role {
	r := Role{Kind: KindRole, Meta: Meta{Namespace: ns, Name: name}, Rules: rules}
	if ns == "" {
		r.Kind = KindClusterRole
	}
	return r
}

func labelled(r Role, kv ...string) Role {
	r.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Labels[kv[i]] = kv[i+1]
	}
	return r
}

func aggregating(name string, selectors ...metav1.LabelSelector) Role {
	return Role{Kind: KindClusterRole, Meta: Meta{Name: name}, AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: selectors}}
}

func sel(kv ...string) metav1.LabelSelector {
	s := metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func world(roles []Role, bindings ...Binding) *Snapshot {
	var o Objects
	for _, r := range roles {
		if r.Kind == KindClusterRole {
			o.ClusterRoles = append(o.ClusterRoles, r)
		} else {
			o.Roles = append(o.Roles, r)
		}
	}
	for _, b := range bindings {
		if b.Kind == KindClusterRoleBinding {
			o.ClusterRoleBindings = append(o.ClusterRoleBindings, b)
		} else {
			o.RoleBindings = append(o.RoleBindings, b)
		}
	}
	return NewSnapshot(&o)
}

func reasons(d Decision) []string {
	var out []string
	for _, p := range d.Reasons {
		out = append(out, p.Binding.String()+"#"+string(rune('0'+p.RuleIndex)))
	}
	return out
}

func TestCan(t *testing.T) {
	s := world(
		[]Role{
			role("", "pod-reader", rule("get,list", "", "pods")),
			role("", "secret-admin", rule("*", "", "secrets")),
			role("", "metrics", urlRule("get", "/metrics")),
			role("ns1", "exec", rule("create", "", "pods/exec")),
			role("ns1", "urls", urlRule("get", "/healthz")),
			role("", "nodes", rule("get", "", "nodes")),
		},
		binding("", "crb-alice", "ClusterRole/pod-reader", "User:alice"),
		binding("", "crb-devs-metrics", "ClusterRole/metrics", "Group:devs"),
		binding("", "crb-sa-nons", "ClusterRole/secret-admin", "ServiceAccount:nobody"),
		binding("", "crb-role-ref", "Role/exec", "User:carol"),
		binding("", "crb-dangling", "ClusterRole/missing", "User:alice"),
		binding("", "crb-badkind", "Other/pod-reader", "User:alice"),
		binding("ns1", "rb-bob", "ClusterRole/secret-admin", "User:bob"),
		binding("ns1", "rb-local-sa", "Role/exec", "ServiceAccount:builder"),
		binding("ns1", "rb-urls", "Role/urls", "User:bob"),
		binding("ns1", "rb-sa-as-user", "ClusterRole/pod-reader", "User:system:serviceaccount:ns2:robot"),
		binding("ns2", "rb-auth", "ClusterRole/nodes", "Group:system:authenticated"),
		binding("ns1", "rb-alice-twice", "ClusterRole/pod-reader", "Group:devs", "User:alice"),
	)
	sa := func(ns, name string) Identity { return ServiceAccountIdentity(ns, name) }
	tests := []struct {
		name    string
		id      Identity
		act     Action
		allowed bool
		super   bool
		reasons []string
	}{
		{"crb cluster-wide in any namespace", Identity{User: "alice"}, Action{Verb: "list", Resource: "pods", Namespace: "ns9"}, true, false,
			[]string{"ClusterRoleBinding/crb-alice#0"}},
		{"crb and rb both listed", Identity{User: "alice"}, Action{Verb: "get", Resource: "pods", Namespace: "ns1"}, true, false,
			[]string{"ClusterRoleBinding/crb-alice#0", "RoleBinding/ns1/rb-alice-twice#0"}},
		{"crb applies to cluster scope", Identity{User: "alice"}, Action{Verb: "get", Resource: "pods"}, true, false,
			[]string{"ClusterRoleBinding/crb-alice#0"}},
		{"rb to clusterrole only in its namespace", Identity{User: "bob"}, Action{Verb: "get", Resource: "secrets", Namespace: "ns1"}, true, false,
			[]string{"RoleBinding/ns1/rb-bob#0"}},
		{"rb not in other namespace", Identity{User: "bob"}, Action{Verb: "get", Resource: "secrets", Namespace: "ns2"}, false, false, nil},
		{"rb not at cluster scope", Identity{User: "bob"}, Action{Verb: "get", Resource: "secrets"}, false, false, nil},
		{"sa subject without namespace in rb", sa("ns1", "builder"), Action{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "ns1"}, true, false,
			[]string{"RoleBinding/ns1/rb-local-sa#0"}},
		{"sa of other namespace", sa("ns2", "builder"), Action{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "ns1"}, false, false, nil},
		{"sa without namespace in crb matches nobody", Identity{User: "system:serviceaccount::nobody"}, Action{Verb: "get", Resource: "secrets"}, false, false, nil},
		{"crb to Role never resolves", Identity{User: "carol"}, Action{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "ns1"}, false, false, nil},
		{"user subject naming a sa", sa("ns2", "robot"), Action{Verb: "get", Resource: "pods", Namespace: "ns1"}, true, false,
			[]string{"RoleBinding/ns1/rb-sa-as-user#0"}},
		{"non-resource via crb group", Identity{User: "x", Groups: []string{"devs"}}, Action{Verb: "get", NonResourceURL: "/metrics"}, true, false,
			[]string{"ClusterRoleBinding/crb-devs-metrics#0"}},
		{"non-resource never via rb", Identity{User: "bob"}, Action{Verb: "get", NonResourceURL: "/healthz", Namespace: "ns1"}, false, false, nil},
		{"implicit authenticated group", sa("ns7", "x"), Action{Verb: "get", Resource: "nodes", Namespace: "ns2"}, true, false,
			[]string{"RoleBinding/ns2/rb-auth#0"}},
		{"groups taken literally", Identity{User: "x"}, Action{Verb: "get", Resource: "nodes", Namespace: "ns2"}, false, false, nil},
		{"masters before rbac", Identity{User: "root", Groups: []string{"system:masters"}}, Action{Verb: "delete", Resource: "nodes"}, true, true, nil},
		{"masters keeps rbac reasons", Identity{User: "alice", Groups: []string{"system:masters"}}, Action{Verb: "get", Resource: "pods"}, true, true,
			[]string{"ClusterRoleBinding/crb-alice#0"}},
		{"dangling grants nothing", Identity{User: "alice"}, Action{Verb: "delete", Resource: "pods"}, false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Can(tt.id, tt.act)
			if d.Allowed != tt.allowed || d.Superuser != tt.super {
				t.Fatalf("Can(%+v, %+v) = allowed %v superuser %v, want %v %v", tt.id, tt.act, d.Allowed, d.Superuser, tt.allowed, tt.super)
			}
			if diff := cmp.Diff(tt.reasons, reasons(d)); diff != "" {
				t.Fatalf("reasons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCanReportsFirstMatchingSubject(t *testing.T) {
	s := world([]Role{role("", "r", rule("get", "", "pods"))},
		binding("ns1", "rb", "ClusterRole/r", "User:bob", "Group:devs", "User:alice"))
	d := s.Can(Identity{User: "alice", Groups: []string{"devs"}}, Action{Verb: "get", Resource: "pods", Namespace: "ns1"})
	if len(d.Reasons) != 1 {
		t.Fatalf("reasons = %d, want 1 (one path per binding and rule)", len(d.Reasons))
	}
	if got, want := d.Reasons[0].SubjectIndex, 1; got != want {
		t.Fatalf("SubjectIndex = %d, want %d (the authorizer reports the first subject that matches)", got, want)
	}
	if got, want := d.Reasons[0].String(), `RoleBinding "rb/ns1" of ClusterRole "r" to Group "devs"`; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestGrantPathString(t *testing.T) {
	s := world([]Role{role("", "r", rule("get", "", "pods"))},
		binding("ns1", "rb", "ClusterRole/r", "ServiceAccount:sa"),
		binding("", "crb", "ClusterRole/r", "ServiceAccount:ns2/robot"))
	d := s.Can(ServiceAccountIdentity("ns1", "sa"), Action{Verb: "get", Resource: "pods", Namespace: "ns1"})
	if got, want := d.Reasons[0].String(), `RoleBinding "rb/ns1" of ClusterRole "r" to ServiceAccount "sa/ns1"`; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	d = s.Can(ServiceAccountIdentity("ns2", "robot"), Action{Verb: "get", Resource: "pods"})
	if got, want := d.Reasons[0].String(), `ClusterRoleBinding "crb" of ClusterRole "r" to ServiceAccount "robot/ns2"`; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if got := d.Reasons[0].Explain(); !strings.Contains(got, `rule 0 {verbs: get; apiGroups: ""; resources: pods}`) {
		t.Fatalf("Explain() = %q, want the rule", got)
	}
}

func TestWhoCan(t *testing.T) {
	s := world(
		[]Role{
			role("", "pod-reader", rule("get,list", "", "pods")),
			role("ns1", "local", rule("get", "", "pods")),
			role("ns2", "local", rule("get", "", "pods")),
			role("", "other", rule("get", "", "secrets")),
		},
		binding("", "crb", "ClusterRole/pod-reader", "Group:devs", "User:alice", "Group:devs"),
		binding("ns1", "rb1", "Role/local", "ServiceAccount:builder", "User:system:serviceaccount:ns1:builder"),
		binding("ns1", "rb2", "ClusterRole/pod-reader", "User:alice", "ServiceAccount:ns3/x"),
		binding("ns2", "rb3", "Role/local", "User:carol"),
		binding("ns1", "rb4", "ClusterRole/other", "User:dave"),
		binding("", "crb-nons", "ClusterRole/pod-reader", "ServiceAccount:nons"),
	)
	got := func(a Action) []string {
		es, err := s.WhoCan(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			var bs []string
			for _, p := range e.Paths {
				bs = append(bs, p.Binding.Name)
			}
			out = append(out, e.Subject.String()+"="+strings.Join(bs, ","))
		}
		return out
	}
	tests := []struct {
		name string
		act  Action
		want []string
	}{
		{"namespace", Action{Verb: "get", Resource: "pods", Namespace: "ns1"}, []string{
			"Group/system:masters=", "Group/devs=crb", "ServiceAccount/ns1/builder=rb1", "ServiceAccount/ns3/x=rb2", "User/alice=crb,rb2"}},
		{"other namespace", Action{Verb: "get", Resource: "pods", Namespace: "ns2"}, []string{
			"Group/system:masters=", "Group/devs=crb", "User/alice=crb", "User/carol=rb3"}},
		{"cluster scope", Action{Verb: "list", Resource: "pods"}, []string{
			"Group/system:masters=", "Group/devs=crb", "User/alice=crb"}},
		{"nobody", Action{Verb: "delete", Resource: "pods", Namespace: "ns1"}, []string{"Group/system:masters="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, got(tt.act)); diff != "" {
				t.Fatalf("WhoCan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEffectivePermissions(t *testing.T) {
	s := world(
		[]Role{
			role("", "pod-reader", rule("get,list", "", "pods"), rule("watch", "", "pods")),
			role("ns1", "local", rule("get", "", "secrets")),
		},
		binding("", "crb", "ClusterRole/pod-reader", "Group:system:serviceaccounts:ns1"),
		binding("ns1", "rb", "Role/local", "ServiceAccount:builder"),
		binding("ns2", "rb", "ClusterRole/pod-reader", "ServiceAccount:ns1/builder"),
		binding("ns3", "rb", "ClusterRole/pod-reader", "User:someone-else"),
	)
	ps, err := s.EffectivePermissions(context.Background(), ServiceAccountIdentity("ns1", "builder"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Namespace+"|"+p.Binding.String()+"|"+FormatRule(p.Rule))
	}
	want := []string{
		"|ClusterRoleBinding/crb|{verbs: get,list; apiGroups: \"\"; resources: pods}",
		"|ClusterRoleBinding/crb|{verbs: watch; apiGroups: \"\"; resources: pods}",
		"ns1|RoleBinding/ns1/rb|{verbs: get; apiGroups: \"\"; resources: secrets}",
		"ns2|RoleBinding/ns2/rb|{verbs: get,list; apiGroups: \"\"; resources: pods}",
		"ns2|RoleBinding/ns2/rb|{verbs: watch; apiGroups: \"\"; resources: pods}",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("EffectivePermissions (-want +got):\n%s", diff)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.EffectivePermissions(ctx, ServiceAccountIdentity("ns1", "builder")); err == nil {
		t.Fatal("EffectivePermissions with a cancelled context succeeded")
	}
}

func TestAggregation(t *testing.T) {
	leafA := labelled(role("", "leaf-a", rule("get", "", "pods")), "agg", "x", "view", "true")
	leafB := labelled(role("", "leaf-b", rule("get", "", "pods"), rule("list", "", "pods")), "agg", "x")
	tests := []struct {
		name  string
		roles []Role
		want  map[string][]string // role -> rules formatted
		warn  bool
	}{
		{"union dedup in selector then name order", []Role{leafB, leafA, aggregating("x", sel("agg", "x"))},
			map[string][]string{"x": {"get pods", "list pods"}}, false},
		{"aggregate of aggregate", []Role{leafA, leafB,
			labelled(aggregating("mid", sel("view", "true")), "top", "1"),
			aggregating("top", sel("top", "1"))},
			map[string][]string{"mid": {"get pods"}, "top": {"get pods"}}, false},
		{"cycle reaches least fixed point", []Role{leafA,
			labelled(aggregating("c1", sel("ring", "2"), sel("view", "true")), "ring", "1"),
			labelled(aggregating("c2", sel("ring", "1")), "ring", "2")},
			map[string][]string{"c1": {"get pods"}, "c2": {"get pods"}}, false},
		{"selects itself", []Role{leafA, labelled(aggregating("self", sel("s", "1"), sel("view", "true")), "s", "1")},
			map[string][]string{"self": {"get pods"}}, false},
		{"empty selector selects all others", []Role{leafA, leafB, aggregating("all", metav1.LabelSelector{})},
			map[string][]string{"all": {"get pods", "list pods"}}, false},
		{"stale rules are replaced", []Role{leafA, func() Role {
			r := aggregating("v", sel("view", "true"))
			r.Rules = []rbacv1.PolicyRule{rule("*", "*", "*")}
			return r
		}()},
			map[string][]string{"v": {"get pods"}}, false},
		{"invalid selector keeps own rules", []Role{leafA, func() Role {
			r := aggregating("bad", metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "view", Operator: metav1.LabelSelectorOpIn}}})
			r.Rules = []rbacv1.PolicyRule{rule("delete", "", "pods")}
			return r
		}()}, map[string][]string{"bad": {"delete pods"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := world(tt.roles)
			for name, want := range tt.want {
				r, ok := s.ClusterRole(name)
				if !ok {
					t.Fatalf("ClusterRole(%q) missing", name)
				}
				var got []string
				for _, rl := range r.Rules {
					got = append(got, strings.Join(rl.Verbs, ",")+" "+strings.Join(rl.Resources, ","))
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("rules of %s (-want +got):\n%s", name, diff)
				}
			}
			if got := len(s.Warnings()) > 0; got != tt.warn {
				t.Fatalf("warnings = %v, want some: %v", s.Warnings(), tt.warn)
			}
		})
	}
}

func TestAggregatedPathNamesSource(t *testing.T) {
	s := world([]Role{
		labelled(role("", "leaf", rule("get", "", "pods")), "view", "true"),
		aggregating("view", sel("view", "true")),
	}, binding("", "crb", "ClusterRole/view", "User:u"))
	d := s.Can(Identity{User: "u"}, Action{Verb: "get", Resource: "pods"})
	if !d.Allowed || d.Reasons[0].AggregatedFrom == nil || d.Reasons[0].AggregatedFrom.Name != "leaf" {
		t.Fatalf("Can = %+v, want allowed through view with the rule aggregated from leaf", d)
	}
}

func TestNewSnapshotLastWinsAndKeepsInput(t *testing.T) {
	in := &Objects{
		ClusterRoles: []Role{role("", "r", rule("get", "", "pods")), role("", "r", rule("get", "", "secrets")),
			labelled(role("", "l", rule("list", "", "x")), "a", "b"), aggregating("agg", sel("a", "b"))},
		ClusterRoleBindings: []Binding{binding("", "b", "ClusterRole/r", "User:u")},
	}
	s := NewSnapshot(in)
	if !s.Can(Identity{User: "u"}, Action{Verb: "get", Resource: "secrets"}).Allowed {
		t.Fatal("the later definition of ClusterRole r did not win")
	}
	if s.Can(Identity{User: "u"}, Action{Verb: "get", Resource: "pods"}).Allowed {
		t.Fatal("the earlier definition of ClusterRole r still grants")
	}
	if in.ClusterRoles[3].Rules != nil || len(in.ClusterRoles) != 4 {
		t.Fatal("NewSnapshot modified its input")
	}
	if got, want := len(s.Objects().ClusterRoles), 3; got != want {
		t.Fatalf("len(ClusterRoles) = %d, want %d", got, want)
	}
}

func TestWarnings(t *testing.T) {
	s := world([]Role{role("", "r", rule("get", "", "pods"))},
		binding("", "dangling", "ClusterRole/missing", "User:u"),
		binding("", "nons", "ClusterRole/r", "ServiceAccount:x"),
		binding("", "kind", "Foo/r", "User:u"),
		binding("ns", "lower", "ClusterRole/r", "user:u"))
	var got []string
	for _, w := range s.Warnings() {
		got = append(got, w.Object.Name)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"dangling", "kind", "lower", "nons"}, got); diff != "" {
		t.Fatalf("warned objects (-want +got):\n%s", diff)
	}
}

func TestWhoCanNamesServiceAccountsAsBindingsDo(t *testing.T) {
	s := world([]Role{role("", "r", rule("get", "", "pods"))},
		binding("ns1", "a", "ClusterRole/r", "User:system:serviceaccount:ns1:Bad_SA"),
		binding("ns1", "b", "ClusterRole/r", "ServiceAccount:Bad_SA"),
		binding("ns1", "c", "ClusterRole/r", "User:system:serviceaccount:ns1:good"))
	es, err := s.WhoCan(context.Background(), Action{Verb: "get", Resource: "pods", Namespace: "ns1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es[1:] {
		got = append(got, e.Subject.String()+"="+strconv.Itoa(len(e.Paths)))
	}
	want := []string{"ServiceAccount/ns1/Bad_SA=2", "ServiceAccount/ns1/good=1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("WhoCan subjects (-want +got):\n%s", diff)
	}
}

// TestAggregationCycleThatNeverSettles: the rule sets of a and r settle, but each sync reorders the other's rules,
// as the controller would forever. kiem must stop, keep complete rule sets, and say so.
func TestAggregationCycleThatNeverSettles(t *testing.T) {
	s := world([]Role{
		aggregating("a", metav1.LabelSelector{}),
		aggregating("c", sel("agg", "y")),
		role("", "e", rule("get", "", "pods")),
		labelled(aggregating("r", metav1.LabelSelector{}), "agg", "y"),
		labelled(role("", "v", rule("list", "", "pods")), "agg", "y"),
	})
	for _, name := range []string{"a", "c", "r"} {
		r, _ := s.ClusterRole(name)
		var got []string
		for _, rl := range r.Rules {
			got = append(got, rl.Verbs[0])
		}
		slices.Sort(got)
		if diff := cmp.Diff([]string{"get", "list"}, got); diff != "" {
			t.Errorf("rules of %s (-want +got):\n%s", name, diff)
		}
	}
	found := false
	for _, w := range s.Warnings() {
		found = found || strings.Contains(w.Message, "never settles")
	}
	if !found {
		t.Fatalf("warnings %v lack the unsettled cycle", s.Warnings())
	}
}
