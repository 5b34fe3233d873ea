package baseline

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// Content is compared the way the authorizer reads it, so that only differences that can change a decision (or
// the controller's aggregation) count: rules as a set, each field of a rule as a set; subjects as a set, with the
// API's defaults applied; selectors as a set. Names are compared exactly: RBAC is case-sensitive.

// normRule returns r with every field sorted and without repeats.
func normRule(r *rbacv1.PolicyRule) rbacv1.PolicyRule {
	set := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		s = slices.Clone(s)
		slices.Sort(s)
		return slices.Compact(s)
	}
	return rbacv1.PolicyRule{Verbs: set(r.Verbs), APIGroups: set(r.APIGroups), Resources: set(r.Resources),
		ResourceNames: set(r.ResourceNames), NonResourceURLs: set(r.NonResourceURLs)}
}

// ruleKey identifies a rule's content: two rules have the same key exactly when they allow the same requests
// field by field.
func ruleKey(r *rbacv1.PolicyRule) string {
	n := normRule(r)
	var b []byte
	for _, field := range [][]string{n.Verbs, n.APIGroups, n.Resources, n.ResourceNames, n.NonResourceURLs} {
		b = strconv.AppendInt(b, int64(len(field)), 10)
		for _, s := range field {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(len(s)), 10)
			b = append(b, ':')
			b = append(b, s...)
		}
		b = append(b, '|')
	}
	return string(b)
}

// formatRule renders a rule for people: verbs, then what they apply to, as kubectl describe names resources
// ("deployments.apps", a core resource without a group): "get,list secrets", "get configmaps named cluster-info",
// "get /healthz,/livez", "* *.*".
func formatRule(r *rbacv1.PolicyRule) string {
	var what []string
	if len(r.Resources) > 0 {
		var res []string
		groups := r.APIGroups
		if len(groups) == 0 {
			groups = []string{""} // grants nothing; shown as written
		}
		for _, g := range groups {
			for _, x := range r.Resources {
				if g == "" {
					res = append(res, x)
				} else {
					res = append(res, x+"."+g)
				}
			}
		}
		s := strings.Join(res, ",")
		if len(r.ResourceNames) > 0 {
			s += " named " + strings.Join(r.ResourceNames, ",")
		}
		what = append(what, s)
	}
	if len(r.NonResourceURLs) > 0 {
		what = append(what, strings.Join(r.NonResourceURLs, ","))
	}
	if len(what) == 0 {
		what = append(what, "nothing")
	}
	return strings.Join(r.Verbs, ",") + " " + strings.Join(what, " and ")
}

// subjectRef is a binding subject with the API's defaults applied: the apiGroup every kind gets when left out
// (rbac.authorization.k8s.io for User and Group, "" for ServiceAccount), and the namespace of a RoleBinding for a
// ServiceAccount subject that names none. A User's or Group's namespace means nothing and is dropped.
type subjectRef struct {
	Kind, APIGroup, Namespace, Name string
}

func normSubject(s rbacv1.Subject, bindingNamespace string) subjectRef {
	r := subjectRef{Kind: s.Kind, APIGroup: s.APIGroup, Name: s.Name}
	switch s.Kind {
	case rbacv1.UserKind, rbacv1.GroupKind:
		r.APIGroup = cmp.Or(s.APIGroup, rbacv1.GroupName)
	case rbacv1.ServiceAccountKind:
		r.Namespace = cmp.Or(s.Namespace, bindingNamespace)
	}
	return r
}

// String names the subject as kiem names objects: Group/system:masters, ServiceAccount/kube-system/coredns. An
// apiGroup other than the one the kind implies (which the apiserver refuses) is shown too.
func (s subjectRef) String() string {
	str := s.Kind + "/" + s.Name
	if s.Kind == rbacv1.ServiceAccountKind {
		str = s.Kind + "/" + s.Namespace + "/" + s.Name
	}
	want := rbacv1.GroupName
	if s.Kind == rbacv1.ServiceAccountKind {
		want = ""
	}
	if s.APIGroup != want {
		str += " (apiGroup " + strconv.Quote(s.APIGroup) + ")"
	}
	return str
}

// roleRefOf returns what a binding's roleRef names, resolved as graph resolves it (a Role in the binding's
// namespace, or a ClusterRole), with its apiGroup defaulted; a kind that resolves to nothing is kept as written.
func roleRefOf(b *graph.Binding) (ref graph.ObjectRef, group string) {
	group = cmp.Or(b.RoleRef.APIGroup, rbacv1.GroupName)
	if r, ok := b.RoleRefObject(); ok {
		return r, group
	}
	return graph.ObjectRef{Kind: graph.Kind(b.RoleRef.Kind), Name: b.RoleRef.Name}, group
}

// formatRoleRef renders a roleRef as "ClusterRole/view", with an unusual apiGroup shown.
func formatRoleRef(ref graph.ObjectRef, group string) string {
	s := string(ref.Kind) + "/" + ref.Name
	if group != rbacv1.GroupName {
		s += " (apiGroup " + strconv.Quote(group) + ")"
	}
	return s
}

// selectorKeys renders each selector of an aggregationRule in a canonical form, sorted and without repeats: the
// order of selectors changes only the order of aggregated rules, never which rules are aggregated.
func selectorKeys(a *rbacv1.AggregationRule) []string {
	if a == nil {
		return nil
	}
	keys := make([]string, 0, len(a.ClusterRoleSelectors))
	for i := range a.ClusterRoleSelectors {
		keys = append(keys, selectorKey(&a.ClusterRoleSelectors[i]))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// selectorKey renders a selector as "k=v,k2 In (a,b)" with labels and requirements sorted; "{}" matches all.
func selectorKey(s *metav1.LabelSelector) string {
	var parts []string
	for k, v := range s.MatchLabels {
		parts = append(parts, k+"="+v)
	}
	for _, e := range s.MatchExpressions {
		vals := slices.Clone(e.Values)
		slices.Sort(vals)
		vals = slices.Compact(vals)
		parts = append(parts, e.Key+" "+string(e.Operator)+" ("+strings.Join(vals, ",")+")")
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	if len(parts) == 0 {
		return "{}"
	}
	return strings.Join(parts, ",")
}

// formatSelectors renders an aggregationRule's canonical selectors, "none" for a role without one.
func formatSelectors(keys []string, aggregated bool) string {
	if !aggregated {
		return "none"
	}
	if len(keys) == 0 {
		return "no selectors"
	}
	return "[" + strings.Join(keys, "; ") + "]"
}
