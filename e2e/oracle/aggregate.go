package oracle

import (
	"cmp"
	"fmt"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// maxAggregationPasses bounds the growth of the rule sets: each pass that does not settle them adds a rule, and
// real policies settle in a handful of passes (one per level of aggregates of aggregates).
const maxAggregationPasses = 1000

// orderPasses is how many passes Aggregate keeps going once the rule sets have settled, waiting for the rule
// order to settle too. Orders that still change by then cycle for ever: some aggregation cycles make each sync
// reorder another role's rules (each sync keeps the order of the roles it copies from).
const orderPasses = 16

// Aggregation is what the clusterrole-aggregation controller makes of a set of ClusterRoles.
type Aggregation struct {
	// ClusterRoles are deep copies of the input with the rules of the aggregated ClusterRoles computed.
	ClusterRoles []*rbacv1.ClusterRole
	// Unordered names the aggregated ClusterRoles whose rule set is settled but whose rule order never is: the
	// controller keeps rewriting them, so which rule has which index depends on timing. Their rules in
	// ClusterRoles are one phase of that cycle.
	Unordered map[string]bool
}

// Aggregate computes the rules every aggregated ClusterRole ends up with when the roles are created from
// manifests and kube-controller-manager's clusterrole-aggregation controller runs:
//
//   - every ClusterRole with an aggregationRule starts with no rules (the controller overwrites whatever the
//     manifest held; created from bootstrap policy or manifests they are empty);
//   - passes sync every aggregated ClusterRole in name order, each sync seeing the results of the syncs before it
//     (the controller writes each result back to the API, and its lister sees it), until a whole pass changes
//     nothing;
//   - one sync of role A does what syncClusterRole does: for each selector of A in order
//     (metav1.LabelSelectorAsSelector), list the ClusterRoles it matches sorted by name, skip A itself, and append
//     each rule not already present (equality.Semantic.DeepEqual, which treats nil and empty lists alike). If any
//     selector of A is invalid, the sync fails and A keeps its rules.
//
// Rule sets only grow from empty, so they settle (at the least fixed point). The order of the rules may not: see
// Aggregation.Unordered. It returns an error only if the sets do not settle, which would be a bug here.
func Aggregate(clusterRoles []*rbacv1.ClusterRole) (Aggregation, error) {
	out := make([]*rbacv1.ClusterRole, len(clusterRoles))
	for i, cr := range clusterRoles {
		out[i] = cr.DeepCopy()
		if out[i].AggregationRule != nil {
			out[i].Rules = nil
		}
	}
	byName := slices.Clone(out)
	slices.SortStableFunc(byName, func(a, b *rbacv1.ClusterRole) int { return cmp.Compare(a.Name, b.Name) })
	var aggregated []*rbacv1.ClusterRole
	for _, cr := range byName {
		if cr.AggregationRule != nil {
			aggregated = append(aggregated, cr)
		}
	}
	// pass syncs every aggregated role once and reports which changed at all and whether any rule set grew.
	pass := func() (changed map[string]bool, grew bool) {
		changed = map[string]bool{}
		for _, cr := range aggregated {
			rules, err := syncAggregated(cr, byName)
			if err != nil {
				continue // the controller returns the error and requeues; the role keeps its rules
			}
			if !equality.Semantic.DeepEqual(rules, cr.Rules) {
				grew = grew || len(rules) != len(cr.Rules) // a sync never drops a rule: same length, same set
				cr.Rules = rules
				changed[cr.Name] = true
			}
		}
		return changed, grew
	}
	settled := false
	for range maxAggregationPasses {
		changed, grew := pass()
		if len(changed) == 0 {
			return Aggregation{ClusterRoles: out}, nil
		}
		if !grew {
			settled = true
			break
		}
	}
	if !settled {
		return Aggregation{}, fmt.Errorf("aggregated rule sets did not settle in %d passes", maxAggregationPasses)
	}
	// The sets are final; give the order time to settle, then note the roles whose order still moves.
	for range orderPasses {
		if changed, _ := pass(); len(changed) == 0 {
			return Aggregation{ClusterRoles: out}, nil
		}
	}
	unordered := map[string]bool{}
	for range orderPasses {
		changed, _ := pass()
		for name := range changed {
			unordered[name] = true
		}
	}
	return Aggregation{ClusterRoles: out, Unordered: unordered}, nil
}

// syncAggregated computes the rules one controller sync gives cr. byName lists every ClusterRole sorted by name.
func syncAggregated(cr *rbacv1.ClusterRole, byName []*rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	rules := []rbacv1.PolicyRule{}
	for i := range cr.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&cr.AggregationRule.ClusterRoleSelectors[i])
		if err != nil {
			return nil, err
		}
		for _, other := range byName {
			if other.Name == cr.Name || !sel.Matches(labels.Set(other.Labels)) {
				continue
			}
			for _, r := range other.Rules {
				if !slices.ContainsFunc(rules, func(have rbacv1.PolicyRule) bool {
					return equality.Semantic.DeepEqual(have, r)
				}) {
					rules = append(rules, *r.DeepCopy())
				}
			}
		}
	}
	return rules, nil
}

// ValidSelectors reports whether every selector of an aggregationRule parses, that is, whether the controller can
// sync the role at all.
func ValidSelectors(ar *rbacv1.AggregationRule) bool {
	for i := range ar.ClusterRoleSelectors {
		if _, err := metav1.LabelSelectorAsSelector(&ar.ClusterRoleSelectors[i]); err != nil {
			return false
		}
	}
	return true
}
