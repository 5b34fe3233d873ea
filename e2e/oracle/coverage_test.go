package oracle

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac"

	"github.com/kiem-io/kiem/graph"
)

// coverage counts, from the oracle's side, how often the queries exercised each case that RBAC treats specially,
// so that a 0-mismatch run cannot hide a vocabulary that stopped reaching one of them.
type coverage map[string]int

// coverageCases lists every case TestCanRandomWorlds must reach in its default run.
func coverageCases() []string {
	return []string{
		"allow: RoleBinding of Role", "allow: RoleBinding of ClusterRole", "allow: ClusterRoleBinding",
		"allow: subject User", "allow: subject Group", "allow: subject ServiceAccount",
		"allow: subject ServiceAccount without namespace", "allow: User subject with a ServiceAccount name",
		"allow: aggregated ClusterRole", "allow: aggregate of aggregates", "allow: aggregation cycle",
		"allow: selector matchLabels", "allow: selector In", "allow: selector NotIn", "allow: selector Exists",
		"allow: selector DoesNotExist", "allow: selector {}",
		"allow: verb *", "allow: apiGroup *", "allow: resource *", "allow: resource */sub",
		"allow: literal pods/* with subresource *", "allow: subresource", "allow: resourceNames",
		"allow: resourceNames [\"\"] unnamed request", "allow: cluster-wide resource request",
		"allow: nonResourceURL exact", "allow: nonResourceURL prefix", "allow: nonResourceURL *",
		"allow: rule with resources and nonResourceURLs", "allow: duplicate rule",
		"deny: nonResourceURL rule through RoleBinding", "deny: RoleBinding of another namespace",
		"deny: dangling roleRef", "deny: ClusterRoleBinding of Role",
		"deny: ServiceAccount without namespace in ClusterRoleBinding", "deny: pods/* is no glob",
		"deny: resourceNames without name", "deny: verb case", "deny: invalid selector",
	}
}

func (c coverage) observe(p *Policy, q Query, res canResult) {
	switch {
	case res.superuser:
	case res.allowed:
		c.observeGrants(p, q, res.grants)
	default:
		c.observeDenial(p, q)
	}
}

func (c coverage) observeGrants(p *Policy, q Query, grants []Grant) {
	a := q.Action
	for i, g := range grants {
		b := bindingOf(p, g.Source)
		if b.ns == "" {
			c["allow: ClusterRoleBinding"]++
		} else {
			c["allow: RoleBinding of "+b.ref.Kind]++
		}
		if s := firstApplying(b.subjects, q.ID, b.ns); s != nil {
			c["allow: subject "+s.Kind]++
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" {
				c["allow: subject ServiceAccount without namespace"]++
			}
			if s.Kind == rbacv1.UserKind && strings.HasPrefix(s.Name, "system:serviceaccount:") {
				c["allow: User subject with a ServiceAccount name"]++
			}
		}
		if b.ref.Kind == "ClusterRole" {
			c.observeAggregation(p, p.ClusterRole(b.ref.Name), &g.Rule)
		}
		r := &g.Rule
		if slices.Contains(r.Verbs, "*") {
			c["allow: verb *"]++
		}
		if slices.ContainsFunc(grants[:i], func(o Grant) bool {
			return o.Source == g.Source && equality.Semantic.DeepEqual(o.Rule, g.Rule)
		}) {
			c["allow: duplicate rule"]++
		}
		if len(r.Resources) > 0 && len(r.NonResourceURLs) > 0 {
			c["allow: rule with resources and nonResourceURLs"]++
		}
		if !a.IsResource() {
			switch {
			case slices.Contains(r.NonResourceURLs, a.NonResourceURL):
				c["allow: nonResourceURL exact"]++
			case slices.Contains(r.NonResourceURLs, "*"):
				c["allow: nonResourceURL *"]++
			default:
				c["allow: nonResourceURL prefix"]++
			}
			continue
		}
		if a.Namespace == "" {
			c["allow: cluster-wide resource request"]++
		}
		if slices.Contains(r.APIGroups, "*") {
			c["allow: apiGroup *"]++
		}
		switch {
		case slices.Contains(r.Resources, "*"):
			c["allow: resource *"]++
		case a.Subresource != "" && slices.Contains(r.Resources, "*/"+a.Subresource):
			c["allow: resource */sub"]++
		case a.Subresource == "*":
			c["allow: literal pods/* with subresource *"]++
		}
		if a.Subresource != "" {
			c["allow: subresource"]++
		}
		if len(r.ResourceNames) > 0 {
			c["allow: resourceNames"]++
			if a.Name == "" {
				c["allow: resourceNames [\"\"] unnamed request"]++
			}
		}
	}
}

// observeAggregation notes how an aggregated ClusterRole came to hold rule r: through which kind of selector,
// from another aggregated role, in a cycle.
func (c coverage) observeAggregation(p *Policy, cr *rbacv1.ClusterRole, r *rbacv1.PolicyRule) {
	if cr == nil || cr.AggregationRule == nil {
		return
	}
	c["allow: aggregated ClusterRole"]++
	for i := range cr.AggregationRule.ClusterRoleSelectors {
		sel := &cr.AggregationRule.ClusterRoleSelectors[i]
		for _, src := range p.ClusterRoles {
			if src.Name == cr.Name || !matches(sel, src) || !slices.ContainsFunc(src.Rules, func(o rbacv1.PolicyRule) bool {
				return equality.Semantic.DeepEqual(o, *r)
			}) {
				continue
			}
			switch {
			case len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0:
				c["allow: selector {}"]++
			case len(sel.MatchExpressions) == 0:
				c["allow: selector matchLabels"]++
			default:
				for _, e := range sel.MatchExpressions {
					c["allow: selector "+string(e.Operator)]++
				}
			}
			if src.AggregationRule != nil {
				c["allow: aggregate of aggregates"]++
				if selects(src.AggregationRule, cr) {
					c["allow: aggregation cycle"]++
				}
			}
			return
		}
	}
}

func (c coverage) observeDenial(p *Policy, q Query) {
	a := q.Action
	ruleAllows := func(rules []rbacv1.PolicyRule, a graph.Action) bool {
		attrs := Attributes(q.ID, a)
		return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return rbac.RuleAllows(attrs, &r) })
	}
	for _, rb := range p.RoleBindings {
		if !appliesTo(rb.Subjects, q.ID, rb.Namespace) {
			continue
		}
		rules, ok := p.RoleRules(rb.RoleRef, rb.Namespace)
		switch {
		case !ok && rb.Namespace == a.Namespace && a.IsResource():
			c["deny: dangling roleRef"]++
		case ruleAllows(rules, a) && !a.IsResource():
			c["deny: nonResourceURL rule through RoleBinding"]++
		case ruleAllows(rules, a):
			c["deny: RoleBinding of another namespace"]++
		}
	}
	for _, crb := range p.ClusterRoleBindings {
		if _, ok := p.RoleRules(crb.RoleRef, ""); !ok && appliesTo(crb.Subjects, q.ID, "") {
			c["deny: dangling roleRef"]++
			if crb.RoleRef.Kind == "Role" {
				c["deny: ClusterRoleBinding of Role"]++
			}
		}
		for _, s := range crb.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" &&
				strings.HasPrefix(q.ID.User, "system:serviceaccount:") && strings.HasSuffix(q.ID.User, ":"+s.Name) {
				c["deny: ServiceAccount without namespace in ClusterRoleBinding"]++
			}
		}
		if cr := p.ClusterRole(crb.RoleRef.Name); cr != nil && cr.AggregationRule != nil &&
			!ValidSelectors(cr.AggregationRule) && appliesTo(crb.Subjects, q.ID, "") {
			c["deny: invalid selector"]++
		}
	}
	if !a.IsResource() {
		return
	}
	if a.Subresource != "" && a.Subresource != "*" {
		c.denyIf(p, q, "deny: pods/* is no glob", graph.Action{Subresource: "*"})
	}
	if a.Name == "" {
		c.denyIf(p, q, "deny: resourceNames without name", graph.Action{Name: "a"})
	}
	if a.Verb == "GET" {
		c.denyIf(p, q, "deny: verb case", graph.Action{Verb: "get"})
	}
}

// denyIf counts case when changing the denied request by the non-empty fields of change lets some rule of a
// binding that applies in scope allow it: the request was denied by the difference alone.
func (c coverage) denyIf(p *Policy, q Query, name string, change graph.Action) {
	a := q.Action
	a.Subresource = cmp.Or(change.Subresource, a.Subresource)
	a.Name = cmp.Or(change.Name, a.Name)
	a.Verb = cmp.Or(change.Verb, a.Verb)
	attrs := Attributes(q.ID, a)
	check := func(rules []rbacv1.PolicyRule) bool {
		return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return rbac.RuleAllows(attrs, &r) })
	}
	for _, crb := range p.ClusterRoleBindings {
		if rules, ok := p.RoleRules(crb.RoleRef, ""); ok && appliesTo(crb.Subjects, q.ID, "") && check(rules) {
			c[name]++
			return
		}
	}
	for _, rb := range p.RoleBindings {
		if rb.Namespace != a.Namespace || !appliesTo(rb.Subjects, q.ID, rb.Namespace) {
			continue
		}
		if rules, ok := p.RoleRules(rb.RoleRef, rb.Namespace); ok && check(rules) {
			c[name]++
			return
		}
	}
}

// boundTo is a binding found from a grant's source text.
type boundTo struct {
	ns       string // "" for a ClusterRoleBinding
	ref      rbacv1.RoleRef
	subjects []rbacv1.Subject
}

// bindingOf finds the binding a source describer names: `RoleBinding "name/ns" of …` or
// `ClusterRoleBinding "name" of …`.
func bindingOf(p *Policy, source string) boundTo {
	kind, rest, _ := strings.Cut(source, " ")
	quoted, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return boundTo{}
	}
	id, _ := strconv.Unquote(quoted)
	if kind == "ClusterRoleBinding" {
		for _, b := range p.ClusterRoleBindings {
			if b.Name == id {
				return boundTo{ref: b.RoleRef, subjects: b.Subjects}
			}
		}
		return boundTo{}
	}
	i := strings.LastIndex(id, "/")
	for _, b := range p.RoleBindings {
		if i >= 0 && b.Name == id[:i] && b.Namespace == id[i+1:] {
			return boundTo{ns: b.Namespace, ref: b.RoleRef, subjects: b.Subjects}
		}
	}
	return boundTo{}
}

func firstApplying(subjects []rbacv1.Subject, id graph.Identity, ns string) *rbacv1.Subject {
	for i := range subjects {
		if appliesTo(subjects[i:i+1], id, ns) {
			return &subjects[i]
		}
	}
	return nil
}

func matches(sel *metav1.LabelSelector, cr *rbacv1.ClusterRole) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(cr.Labels))
}

// check fails t for every case the run never reached.
func (c coverage) check(t *testing.T) {
	t.Helper()
	for _, name := range coverageCases() {
		if c[name] == 0 {
			t.Errorf("coverage: no query reached %q", name)
		}
	}
}
