package workload

import (
	"math"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// Label keys of ClusterRole aggregation: the built-in ones the kubeadm view, edit and admin roles select, and the
// custom ones of this workload's team and platform aggregates.
const (
	labelAggregateToView   = "rbac.authorization.k8s.io/aggregate-to-view"
	labelAggregateToEdit   = "rbac.authorization.k8s.io/aggregate-to-edit"
	labelAggregateToAdmin  = "rbac.authorization.k8s.io/aggregate-to-admin"
	labelAggregateToTeam   = "rbac.example.com/aggregate-to-" // + team
	labelAggregatePlatform = "rbac.example.com/aggregate-to-platform"
)

// clusterRoleSets sorts the synthetic ClusterRoles by who real clusters bind them to.
type clusterRoleSets struct {
	tenant   []string // namespaced permissions that RoleBindings grant inside one namespace
	machine  []string // operator, proxy and metrics roles, bound to ServiceAccounts
	human    []string // editor, viewer, reader, break-glass and aggregated roles, bound to people
	teamKeys []string // team aggregation label keys that some ClusterRole carries
}

// aggregatedShare is the share of the synthetic ClusterRoles that are aggregated.
const aggregatedShare = 0.05

// clusterRoles creates the custom ClusterRoles, then the aggregated ones (about 5%), whose selectors pick the
// custom ones by label, the built-in aggregate-to-view sources, or other aggregates.
func (g *generator) clusterRoles() {
	n := g.spec.ClusterRoles
	nAgg := 0
	if n >= 4 {
		nAgg = max(1, int(math.Round(float64(n)*aggregatedShare)))
	}
	for range n - nAgg {
		g.customClusterRole()
	}
	for i := range nAgg {
		g.aggregatedClusterRole(i)
	}
}

// operator returns the operator a ClusterRole belongs to: a well-known one, or an in-house one with its own
// example.com API group.
func (g *generator) operator() operator {
	var op operator
	if g.chance(0.3) {
		op = pick(g.r, knownOperators())
	} else {
		team, app := pick(g.r, teams()), pick(g.r, apps())
		op = operator{name: team + "-" + app + "-operator", group: app + "." + team + ".example.com"}
		if g.chance(0.3) {
			op.group = app + ".example.com"
		}
		op.kinds = append(op.kinds, []string{plural(app), app + "configs", app + "policies", app + "bindings"}[:1+g.r.IntN(3)]...)
	}
	g.ops = append(g.ops, op)
	return op
}

// customClusterRole creates one non-aggregated ClusterRole of a random sort.
func (g *generator) customClusterRole() {
	op := g.operator()
	crd := crdResources(op)
	team := pick(g.r, teams())
	labels := map[string]string{}
	var name string
	var rules []rbacv1.PolicyRule
	set := &g.crs.human
	switch n := g.r.IntN(100); {
	case n < 30:
		name = op.name + pick(g.r, []string{"-manager-role", "-controller", "", "-manager"})
		all := []string{"create", "delete", "get", "list", "patch", "update", "watch"}
		rules = append([]rbacv1.PolicyRule{{APIGroups: []string{op.group}, Resources: slices.Clone(op.kinds), Verbs: all}},
			g.rules(1+g.r.IntN(10), append(clusterResources(), namespacedResources()...), crd, op.name)...)
		if g.chance(0.2) {
			rules = append(rules, rbacv1.PolicyRule{NonResourceURLs: slices.Clone(pick(g.r, nonResourceURLSets())), Verbs: []string{"get"}})
		}
		set = &g.crs.machine
	case n < 60:
		kind := pick(g.r, op.kinds)
		verbs, role := []string{"get", "list", "watch"}, "-viewer-role"
		if g.chance(0.5) {
			verbs, role = []string{"create", "delete", "get", "list", "patch", "update", "watch"}, "-editor-role"
		}
		name = op.name + "-" + kind + role
		rules = []rbacv1.PolicyRule{
			{APIGroups: []string{op.group}, Resources: []string{kind}, Verbs: verbs},
			{APIGroups: []string{op.group}, Resources: []string{kind + "/status"}, Verbs: []string{"get"}},
		}
		// Operators that want `kubectl` users of view/edit/admin to see their kinds label these roles.
		if g.chance(0.5) {
			if role == "-viewer-role" {
				labels[labelAggregateToView] = "true"
			} else {
				labels[labelAggregateToEdit] = "true"
				labels[labelAggregateToAdmin] = "true"
			}
		}
	case n < 72:
		name = "tenant:" + team + "-" + pick(g.r, []string{"developer", "viewer", "deployer", "operator", "debugger"})
		rules = g.rules(g.ruleCount(8), namespacedResources(), crd, team)
		set = &g.crs.tenant
	case n < 78:
		name = op.name + "-metrics-reader"
		rules = []rbacv1.PolicyRule{{NonResourceURLs: slices.Clone(pick(g.r, nonResourceURLSets())), Verbs: []string{"get"}}}
		set = &g.crs.machine
	case n < 84:
		name = op.name + "-proxy-role"
		rules = []rbacv1.PolicyRule{
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
		}
		set = &g.crs.machine
	case n < 88:
		name = pick(g.r, []string{"break-glass-", "impersonator-", "node-debugger-", "rbac-manager-"}) + team
		rules = g.rules(1+g.r.IntN(3), riskyResources(), nil, team)
		if g.chance(0.1) {
			rules = []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}
		}
	default:
		name = team + "-cluster-" + pick(g.r, []string{"reader", "access", "auditor", "ops"})
		rules = g.rules(g.ruleCount(6), append(namespacedResources(), clusterResources()...), crd, team)
	}
	if g.chance(0.25) {
		key := labelAggregateToTeam + team
		labels[key] = "true"
		if !slices.Contains(g.crs.teamKeys, key) {
			g.crs.teamKeys = append(g.crs.teamKeys, key)
		}
	}
	if len(labels) == 0 {
		labels = nil
	}
	name = claim(g.clusterN[graph.KindClusterRole], name)
	*set = append(*set, name)
	g.out.ClusterRoles = append(g.out.ClusterRoles, graph.Role{Kind: graph.KindClusterRole, Meta: g.meta("", name, labels), Rules: rules})
}

// aggregatedClusterRole creates the i-th aggregated ClusterRole, with an aggregationRule and no rules, as
// manifests ship them. Of every five: three aggregate a team's labelled roles, the first of which feeds the
// platform aggregates and the second the built-in view or edit (aggregates of aggregates); one extends view;
// one aggregates the platform aggregates. No selector can pick the role itself or close a cycle.
func (g *generator) aggregatedClusterRole(i int) {
	team := pick(g.r, teams())
	labels := map[string]string{}
	var name string
	var sel []metav1.LabelSelector
	match := func(k string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{k: "true"}}
	}
	switch i % 5 {
	case 0, 1, 2:
		name = "team:" + team + ":" + pick(g.r, []string{"developer", "admin", "reader", "aggregate"})
		for range 1 + g.r.IntN(2) {
			key := labelAggregateToTeam + team
			if len(g.crs.teamKeys) > 0 {
				key = pick(g.r, g.crs.teamKeys)
			}
			if !slices.ContainsFunc(sel, func(s metav1.LabelSelector) bool { return s.MatchLabels[key] != "" }) {
				sel = append(sel, match(key))
			}
		}
		switch {
		case i%5 == 0:
			labels[labelAggregatePlatform] = "true"
		case i%5 == 1 && i%2 == 0:
			labels[labelAggregateToView] = "true"
		case i%5 == 1:
			labels[labelAggregateToEdit] = "true"
		}
	case 3:
		name = team + "-view-plus"
		sel = []metav1.LabelSelector{match(labelAggregateToView), match(labelAggregateToTeam + team)}
	default:
		name = "platform-" + pick(g.r, []string{"admin", "operator", "reader"})
		sel = []metav1.LabelSelector{match(labelAggregatePlatform)}
	}
	if len(labels) == 0 {
		labels = nil
	}
	name = claim(g.clusterN[graph.KindClusterRole], name)
	g.crs.human = append(g.crs.human, name)
	g.out.ClusterRoles = append(g.out.ClusterRoles, graph.Role{
		Kind:            graph.KindClusterRole,
		Meta:            g.meta("", name, labels),
		AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: sel},
	})
}

// roles creates the namespaced Roles, spread by namespace size: common stems (leader-election, pod-exec, …) with
// their usual rules, the rest with one to eight random rules over core, named and the namespace's CRD groups.
func (g *generator) roles() {
	stems, catalog := roleNames(), namespacedResources()
	for i, k := range apportion(g.spec.Roles, g.weightsFor()) {
		if k == 0 {
			continue
		}
		t := g.tenants[i]
		taken := g.nsSet(graph.KindRole, t.name)
		extra := crdResources(operator{group: t.app + "." + t.team + ".example.com", kinds: []string{plural(t.app)}})
		if len(g.ops) > 0 {
			extra = append(extra, crdResources(pick(g.r, g.ops))...)
		}
		for range k {
			stem, app := pick(g.r, stems), t.app
			if len(t.sas) > 1 && g.chance(0.4) {
				app = pick(g.r, t.sas[1:])
			}
			name := stem
			if g.chance(0.5) {
				name = app + "-" + stem
			}
			rules := roleTemplate(stem, app)
			if rules == nil || g.chance(0.2) {
				rules = g.rules(g.ruleCount(8), catalog, extra, app)
			}
			name = claim(taken, name)
			t.roles = append(t.roles, name)
			var labels map[string]string
			if g.chance(0.5) {
				labels = map[string]string{labelAppName: app, labelManagedBy: "Helm"}
			}
			g.out.Roles = append(g.out.Roles, graph.Role{Kind: graph.KindRole, Meta: g.meta(t.name, name, labels), Rules: rules})
		}
	}
}

// plural returns the resource name of a kind named word, as CRD authors pluralise.
func plural(word string) string {
	switch {
	case strings.HasSuffix(word, "s"), strings.HasSuffix(word, "x"), strings.HasSuffix(word, "ch"), strings.HasSuffix(word, "sh"):
		return word + "es"
	case strings.HasSuffix(word, "y") && !strings.ContainsAny(word[len(word)-2:len(word)-1], "aeiou"):
		return word[:len(word)-1] + "ies"
	}
	return word + "s"
}
