package oracle

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// TestCanRandomWorlds compares graph.Snapshot.Can with the apiserver's authorizer chain on random worlds:
// Allowed and Superuser always, and for callers outside system:masters the exact set of grants (source
// describer text and rule index) the rule resolver visits with RuleAllows true.
func TestCanRandomWorlds(t *testing.T) {
	cfg := loadConfig(t, 200, 600)
	var total tally
	cov := coverage{}
	for _, seed := range cfg.seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			w := newWorld(t, seed)
			gen := w.queryGen(0)
			var tl tally
			for range cfg.queries {
				q := gen.Next()
				res := compareCan(t.Context(), t, w.oracle, q, w.snap.Can(q.ID, q.Action))
				cov.observe(w.oracle.Policy(), q, res)
				tl.add(t, res, func() string {
					return w.rerun(t.Name()) + "\n" +
						Repro(w.policy, w.oracle.Policy(), q, res.kiem, res.oracle, reasonBindings(res.kiem.Reasons))
				})
			}
			if tl.allowed == 0 || tl.denied == 0 {
				t.Errorf("%s: world needs both allowed and denied answers: %s", w.rerun(t.Name()), &tl)
			}
			if tl.mismatches > 0 {
				t.Errorf("%s: %s", w.rerun(t.Name()), &tl)
			}
			total.merge(tl)
		})
	}
	t.Logf("%d worlds, %s", len(cfg.seeds), &total)
	t.Logf("coverage: %v", map[string]int(cov))
	if !cfg.custom {
		if total.queries < 100_000 {
			t.Errorf("only %d queries; the default run must ask at least 100,000", total.queries)
		}
		cov.check(t)
	}
}

// TestAggregateController pins the controller simulation the oracle relies on to the behaviour of
// syncClusterRole, on cases small enough to work out by hand.
func TestAggregateController(t *testing.T) {
	rule := func(verb string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: []string{verb}, APIGroups: []string{""}, Resources: []string{"pods"}}
	}
	cr := func(name string, lbls map[string]string, sel []metav1.LabelSelector, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		c := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Rules: rules}
		if sel != nil {
			c.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: sel}
		}
		return c
	}
	match := func(k, v string) []metav1.LabelSelector {
		return []metav1.LabelSelector{{MatchLabels: map[string]string{k: v}}}
	}
	bad := []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}}
	all := []metav1.LabelSelector{{}}
	tests := []struct {
		name      string
		roles     []*rbacv1.ClusterRole
		want      map[string][]rbacv1.PolicyRule
		unordered []string
	}{{
		name: "chain view-edit-admin, stale rules dropped, duplicates kept once",
		roles: []*rbacv1.ClusterRole{
			cr("admin", nil, match("to", "admin"), rule("stale")),
			cr("edit", map[string]string{"to": "admin"}, match("to", "edit")),
			cr("view", map[string]string{"to": "edit"}, match("to", "view")),
			cr("b", map[string]string{"to": "view"}, nil, rule("list"), rule("get")),
			cr("a", map[string]string{"to": "view"}, nil, rule("get")),
		},
		want: map[string][]rbacv1.PolicyRule{
			"view": {rule("get"), rule("list")}, "edit": {rule("get"), rule("list")},
			"admin": {rule("get"), rule("list")},
		},
	}, {
		name: "cycle and self-selection converge to the least fixed point",
		roles: []*rbacv1.ClusterRole{
			cr("x", map[string]string{"c": "1"}, match("c", "1")),
			cr("y", map[string]string{"c": "1"}, match("c", "1")),
			cr("z", map[string]string{"c": "1"}, nil, rule("watch")),
		},
		want: map[string][]rbacv1.PolicyRule{"x": {rule("watch")}, "y": {rule("watch")}},
	}, {
		name: "an invalid selector fails the sync: the role keeps its rules",
		roles: []*rbacv1.ClusterRole{
			cr("bad", map[string]string{"c": "1"}, append(match("c", "1"), bad...)),
			cr("src", map[string]string{"c": "1"}, nil, rule("get")),
		},
		want: map[string][]rbacv1.PolicyRule{"bad": nil},
	}, {
		// Pass 1: a=[E V], c=[V], r=[E V]; pass 2: a=[V E], c=[E V], r=[V E]; pass 3 as pass 1, for ever. The sets
		// settle, the order flips with every sync, as the controller's writes would.
		name: "a cycle whose rule order never settles",
		roles: []*rbacv1.ClusterRole{
			cr("a", nil, all),
			cr("c", nil, match("agg", "y")),
			cr("e", nil, nil, rule("get")),
			cr("r", map[string]string{"agg": "y"}, all),
			cr("v", map[string]string{"agg": "y"}, nil, rule("list")),
		},
		unordered: []string{"a", "c", "r"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Aggregate(tc.roles)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range got.ClusterRoles {
				want, ok := tc.want[c.Name]
				if ok && !equality.Semantic.DeepEqual(c.Rules, want) {
					t.Errorf("%s rules = %v, want %v", c.Name, c.Rules, want)
				}
			}
			if unordered := slices.Sorted(maps.Keys(got.Unordered)); !slices.Equal(unordered, tc.unordered) {
				t.Errorf("unordered = %v, want %v", unordered, tc.unordered)
			}
			for _, name := range tc.unordered {
				for _, c := range got.ClusterRoles {
					if c.Name == name && len(c.Rules) != 2 {
						t.Errorf("%s rules = %v, want get and list in some order", name, c.Rules)
					}
				}
			}
		})
	}
}

// TestCanUnsettledAggregation covers an aggregation cycle whose rule order never settles (see
// TestAggregateController): the answers are still well defined, and grants from those roles are compared by
// rule instead of by index.
func TestCanUnsettledAggregation(t *testing.T) {
	all := []metav1.LabelSelector{{}}
	mk := func(name string, lbls map[string]string, sel []metav1.LabelSelector, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		c := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Rules: rules}
		if sel != nil {
			c.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: sel}
		}
		return c
	}
	pods := func(verbs ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{Verbs: verbs, APIGroups: []string{""}, Resources: []string{"pods"}}
	}
	p := &Policy{ClusterRoles: []*rbacv1.ClusterRole{
		mk("a", nil, all),
		mk("c", nil, []metav1.LabelSelector{{MatchLabels: map[string]string{"agg": "y"}}}),
		mk("e", nil, nil, pods("get")),
		mk("r", map[string]string{"agg": "y"}, all),
		mk("v", map[string]string{"agg": "y"}, nil, pods("list"), pods("watch")),
	}}
	for _, name := range []string{"a", "c", "r", "e"} {
		p.ClusterRoleBindings = append(p.ClusterRoleBindings, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "to-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "u-" + name}, {Kind: rbacv1.GroupKind, Name: "all"}},
		})
	}
	o, err := New(p, Options{Aggregate: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(o.Unordered())); !slices.Equal(got, []string{"a", "c", "r"}) {
		t.Fatalf("unordered = %v, want [a c r]", got)
	}
	snap := graph.NewSnapshot(p.GraphObjects())
	var tl tally
	for _, user := range []string{"u-a", "u-c", "u-r", "u-e", "u-v", "nobody"} {
		for _, groups := range [][]string{nil, {"all"}} {
			for _, verb := range []string{"get", "list", "watch", "create"} {
				for _, ns := range []string{"", "ns1"} {
					q := Query{ID: graph.Identity{User: user, Groups: groups},
						Action: graph.Action{Verb: verb, Resource: "pods", Namespace: ns}}
					res := compareCan(t.Context(), t, o, q, snap.Can(q.ID, q.Action))
					tl.add(t, res, func() string {
						return Repro(p, o.Policy(), q, res.kiem, res.oracle, reasonBindings(res.kiem.Reasons))
					})
				}
			}
		}
	}
	t.Log(&tl)
}
