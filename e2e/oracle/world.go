package oracle

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// worldVocabulary is what random worlds are drawn from: small, so that rules, requests and subjects collide
// often, and holding every case the RBAC semantics treat specially.
type worldVocabulary struct {
	ruleVerbs, ruleGroups, ruleResources, ruleURLs []string
	resourceNames                                  [][]string
	namespaces                                     []string
	users, groups                                  []string
	serviceAccounts                                []string
	roleNames, clusterRoleNames                    []string
	labels                                         []map[string]string
	selectors                                      []metav1.LabelSelector
	invalidSelectors                               []metav1.LabelSelector
}

func newWorldVocabulary() worldVocabulary {
	expr := func(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: key, Operator: op, Values: values},
		}}
	}
	return worldVocabulary{
		ruleVerbs: []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
			"impersonate", "bind", "escalate", "use", "*", "GET"},
		ruleGroups: []string{"", "apps", "rbac.authorization.k8s.io", "example.com", "*"},
		ruleResources: []string{"pods", "pods/exec", "pods/log", "pods/*", "*/scale", "*/status", "*",
			"deployments", "deployments/scale", "secrets", "serviceaccounts", "serviceaccounts/token", "nodes",
			"nodes/proxy", "widgets"},
		resourceNames: [][]string{nil, nil, nil, {"a"}, {"a", "b"}, {""}},
		ruleURLs:      []string{"/healthz", "/healthz/*", "/api", "/api/*", "/apis*", "/metrics", "/logs/", "*", "/a**"},
		namespaces:    []string{"ns1", "ns2", "ns3"},
		users: []string{"alice", "bob", "system:serviceaccount:ns1:sa1", "system:anonymous", "carol@example.com",
			"https://idp.example.com/u:dave"},
		groups: []string{"system:authenticated", "system:unauthenticated", "system:serviceaccounts",
			"system:serviceaccounts:ns1", "system:masters", "devs"},
		serviceAccounts: []string{"sa1", "sa2"},
		// A Role named like a ClusterRole and the reverse: roleRef kinds must not be confused.
		roleNames:        []string{"r1", "r2", "view", "r3"},
		clusterRoleNames: []string{"admin", "edit", "view", "aa-agg", "c1", "c2", "c3", "c4", "r1", "zz-agg"},
		labels: []map[string]string{
			{"agg": "x"}, {"agg": "y"}, {"agg": "z"}, {"agg": ""}, {"tier": "a"}, {"tier": "b"},
			{"example.com/aggregate-to-view": "true"},
		},
		selectors: []metav1.LabelSelector{
			{MatchLabels: map[string]string{"agg": "x"}},
			{MatchLabels: map[string]string{"agg": "y"}},
			{MatchLabels: map[string]string{"agg": ""}}, // the label must be present, with an empty value
			{MatchLabels: map[string]string{"example.com/aggregate-to-view": "true"}},
			{MatchLabels: map[string]string{"tier": "b"}, MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "agg", Operator: metav1.LabelSelectorOpIn, Values: []string{"z"}},
			}},
			expr("agg", metav1.LabelSelectorOpIn, "x", "y"),
			expr("agg", metav1.LabelSelectorOpNotIn, "z"), // also matches roles without the label
			expr("tier", metav1.LabelSelectorOpExists),
			expr("tier", metav1.LabelSelectorOpDoesNotExist),
			{}, // matches every ClusterRole
		},
		invalidSelectors: []metav1.LabelSelector{
			expr("agg", "Bogus", "x"),
			expr("agg", metav1.LabelSelectorOpIn), // In needs values
			{MatchLabels: map[string]string{"bad key!": "x"}},
		},
	}
}

// worldGen draws one world.
type worldGen struct {
	rng *rand.Rand
	v   worldVocabulary
}

// NewRand returns the deterministic random source the tests derive everything of one seed from.
func NewRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// RandomWorld draws a small random policy from a vocabulary that makes collisions likely and that covers the
// tricky cases of RBAC: wildcards, subresources, resourceNames, nonResourceURL prefixes (also in Roles), subjects
// of every kind (ServiceAccounts without namespace, User subjects with ServiceAccount names, odd kinds),
// dangling roleRefs, RoleBindings to ClusterRoles, ClusterRoleBindings to Roles, and aggregated ClusterRoles
// (matchLabels and matchExpressions, aggregates of aggregates, cycles, self-selection, empty and invalid
// selectors). Aggregated ClusterRoles hold no rules, or stale ones when their selectors are valid (the controller
// overwrites them either way). The same seed always yields the same world.
func RandomWorld(seed uint64) *Policy {
	g := &worldGen{rng: NewRand(seed), v: newWorldVocabulary()}
	p := &Policy{}
	for _, ns := range g.v.namespaces {
		for _, sa := range g.v.serviceAccounts {
			p.ServiceAccounts = append(p.ServiceAccounts, &corev1.ServiceAccount{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
			})
		}
		for _, name := range g.v.roleNames[:1+g.rng.IntN(len(g.v.roleNames))] {
			p.Roles = append(p.Roles, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: g.rules(1, 4),
			})
		}
	}
	g.clusterRoles(p)
	for _, ns := range g.v.namespaces {
		for i := range 2 + g.rng.IntN(4) {
			p.RoleBindings = append(p.RoleBindings, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("rb%d", i+1)},
				RoleRef:    g.roleRef(p, ns), Subjects: g.subjects(),
			})
		}
	}
	// rb0 always grants something, so that every world allows some requests. ClusterRoleBindings are named like
	// the RoleBindings (rb0, rb1, …): binding kinds must not be confused either.
	var plain []string
	for _, cr := range p.ClusterRoles {
		if cr.AggregationRule == nil && len(cr.Rules) > 0 {
			plain = append(plain, cr.Name)
		}
	}
	p.ClusterRoleBindings = append(p.ClusterRoleBindings, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "rb0"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: pick(g.rng, plain)},
		Subjects:   g.subjects(),
	})
	for i := range 2 + g.rng.IntN(5) {
		p.ClusterRoleBindings = append(p.ClusterRoleBindings, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rb%d", i+1)},
			RoleRef:    g.roleRef(p, ""), Subjects: g.subjects(),
		})
	}
	return p
}

// clusterRoles adds the ClusterRoles: some of the names are aggregated, the rest hold rules; every role carries
// random labels, so selectors pick plain roles, aggregated ones (aggregates of aggregates, cycles) and themselves.
func (g *worldGen) clusterRoles(p *Policy) {
	names := slices.Clone(g.v.clusterRoleNames)
	g.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	nAgg := 1 + g.rng.IntN(4)
	for i, name := range names {
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		for _, l := range g.v.labels {
			if g.rng.IntN(4) == 0 {
				for k, v := range l {
					cr.Labels[k] = v
				}
			}
		}
		if i < nAgg {
			ar := &rbacv1.AggregationRule{}
			// Now and then no selector at all: still aggregated, so the controller empties the role.
			for range g.rng.IntN(12)/3 + min(1, g.rng.IntN(12)) {
				ar.ClusterRoleSelectors = append(ar.ClusterRoleSelectors, *copySelector(pick(g.rng, g.v.selectors)))
			}
			if g.rng.IntN(8) == 0 {
				bad := copySelector(pick(g.rng, g.v.invalidSelectors))
				at := g.rng.IntN(len(ar.ClusterRoleSelectors) + 1)
				ar.ClusterRoleSelectors = slices.Insert(ar.ClusterRoleSelectors, at, *bad)
			}
			cr.AggregationRule = ar
			if ValidSelectors(ar) && g.rng.IntN(3) == 0 {
				cr.Rules = g.rules(1, 2) // stale rules from a manifest: the controller replaces them
			}
		} else {
			cr.Rules = g.rules(1, 5)
		}
		p.ClusterRoles = append(p.ClusterRoles, cr)
	}
	slices.SortFunc(p.ClusterRoles, func(a, b *rbacv1.ClusterRole) int { return cmp.Compare(a.Name, b.Name) })
}

func (g *worldGen) rules(lo, hi int) []rbacv1.PolicyRule {
	n := lo + g.rng.IntN(hi-lo+1)
	rules := make([]rbacv1.PolicyRule, 0, n)
	for range n {
		rules = append(rules, g.rule())
	}
	// A duplicate rule: aggregation must keep one copy, and both indices grant.
	if g.rng.IntN(10) == 0 {
		rules = append(rules, *rules[0].DeepCopy())
	}
	return rules
}

func (g *worldGen) rule() rbacv1.PolicyRule {
	r := rbacv1.PolicyRule{Verbs: pickSome(g.rng, g.v.ruleVerbs, 3)}
	resource, nonResource := true, false
	switch x := g.rng.IntN(10); {
	case x >= 9:
		nonResource = true // both kinds in one rule: invalid in the API, possible in files
	case x >= 7:
		resource, nonResource = false, true
	}
	if resource {
		r.APIGroups = pickSome(g.rng, g.v.ruleGroups, 2)
		r.Resources = pickSome(g.rng, g.v.ruleResources, 3)
		r.ResourceNames = slices.Clone(pick(g.rng, g.v.resourceNames))
		if g.rng.IntN(40) == 0 {
			r.APIGroups = nil // matches no resource request
		}
	}
	if nonResource {
		r.NonResourceURLs = pickSome(g.rng, g.v.ruleURLs, 2)
	}
	if g.rng.IntN(40) == 0 {
		r.Verbs = nil // matches nothing
	}
	return r
}

// roleRef picks what a binding in namespace ns ("" for a ClusterRoleBinding) references: existing roles mostly,
// dangling ones, Roles from a ClusterRoleBinding, and now and then an unsupported kind.
func (g *worldGen) roleRef(p *Policy, ns string) rbacv1.RoleRef {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole"}
	// Cumulative weights: existing-looking Role, r1-or-missing Role, ClusterRole, missing ClusterRole, bad kind.
	weights := [5]int{40, 50, 85, 95, 100}
	if ns == "" {
		weights = [5]int{0, 12, 85, 95, 100} // a ClusterRoleBinding's Role never resolves: fewer of them
	}
	switch x := g.rng.IntN(100); {
	case x < weights[0]:
		ref.Kind, ref.Name = "Role", pick(g.rng, g.v.roleNames) // r3 may exist in another namespace only
	case x < weights[1]:
		ref.Kind, ref.Name = "Role", pick(g.rng, []string{"r1", "missing"})
	case x < weights[2]:
		ref.Name = pick(g.rng, g.v.clusterRoleNames)
	case x < weights[3]:
		ref.Name = "missing"
	default:
		ref.Kind, ref.Name = "Bogus", "c1"
	}
	return ref
}

func (g *worldGen) subjects() []rbacv1.Subject {
	n := 1 + g.rng.IntN(3)
	if g.rng.IntN(30) == 0 {
		n = 0 // a binding without subjects grants nobody
	}
	subjects := make([]rbacv1.Subject, 0, n)
	for range n {
		var s rbacv1.Subject
		switch x := g.rng.IntN(100); {
		case x < 35:
			s = rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: pick(g.rng, g.v.users)}
		case x < 65:
			s = rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: pick(g.rng, g.v.groups)}
		case x < 96:
			ns := pick(g.rng, append(slices.Clone(g.v.namespaces), ""))
			s = rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: pick(g.rng, g.v.serviceAccounts)}
		case x < 97:
			// An invalid ServiceAccount name, refused by the API but possible in files: the authorizer still
			// matches it by user name.
			s = rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "ns1", Name: "Bad_SA"}
		default:
			s = rbacv1.Subject{Kind: "user", Name: "alice"} // kinds match exactly: this names nobody
		}
		subjects = append(subjects, s)
	}
	return subjects
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// pickSome returns 1 to max distinct elements of xs in random order.
func pickSome(rng *rand.Rand, xs []string, max int) []string {
	n := 1 + rng.IntN(max)
	perm := rng.Perm(len(xs))
	out := make([]string, 0, n)
	for _, i := range perm[:min(n, len(xs))] {
		out = append(out, xs[i])
	}
	return out
}

func copySelector(s metav1.LabelSelector) *metav1.LabelSelector { return s.DeepCopy() }
