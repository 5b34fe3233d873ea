package graph

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// aggregated is the outcome of recomputing one aggregated ClusterRole.
type aggregated struct {
	rules []rbacv1.PolicyRule
	// from[i] names the ClusterRole rules[i] was first taken from.
	from []ObjectRef
}

// aggregate recomputes the rules of every aggregated ClusterRole the way kube-controller-manager's
// clusterrole-aggregation controller does, and returns them by role name. Roles without an aggregationRule are
// not in the result.
//
// One controller sync of role A: for each selector of A in order, the ClusterRoles it matches in name order, A
// itself skipped, each rule appended unless an equal rule is already there. The controller repeats syncs as
// roles change until nothing changes; here every aggregated role starts with no rules (as when applied from
// manifests, which ship them empty) and syncs are repeated in name order until a whole pass changes nothing. Rule
// sets only grow from that start, so this reaches the least fixed point: aggregates of aggregates resolve, and
// cycles terminate with exactly the rules that some non-aggregated role contributes.
//
// A role with a selector the controller cannot parse fails every sync, so it keeps the rules it was given; it is
// reported in the returned warnings.
func aggregate(clusterRoles []Role) (map[string]aggregated, []Warning) {
	type aggRole struct {
		name      string
		selectors [][]int // per selector, indexes into clusterRoles of the roles it matches, in name order
	}
	byName := make([]int, len(clusterRoles))
	for i := range byName {
		byName[i] = i
	}
	slices.SortStableFunc(byName, func(a, b int) int { return strings.Compare(clusterRoles[a].Name, clusterRoles[b].Name) })

	var warnings []Warning
	var aggs []aggRole
	for _, i := range byName {
		r := &clusterRoles[i]
		if r.AggregationRule == nil {
			continue
		}
		a := aggRole{name: r.Name}
		valid := true
		for si := range r.AggregationRule.ClusterRoleSelectors {
			sel, err := metav1.LabelSelectorAsSelector(&r.AggregationRule.ClusterRoleSelectors[si])
			if err != nil {
				warnings = append(warnings, Warning{Object: r.Ref(), Message: fmt.Sprintf(
					"aggregationRule selector %d is invalid, so the aggregation controller never updates this role: %v", si, err)})
				valid = false
				break
			}
			var matched []int
			for _, j := range byName {
				if clusterRoles[j].Name != r.Name && sel.Matches(labels.Set(clusterRoles[j].Labels)) {
					matched = append(matched, j)
				}
			}
			a.selectors = append(a.selectors, matched)
		}
		if valid {
			aggs = append(aggs, a)
		}
	}
	if len(aggs) == 0 {
		return nil, warnings
	}

	out := make(map[string]aggregated, len(aggs))
	for _, a := range aggs {
		out[a.name] = aggregated{}
	}
	rulesOf := func(i int) []rbacv1.PolicyRule {
		if cur, ok := out[clusterRoles[i].Name]; ok {
			return cur.rules
		}
		return clusterRoles[i].Rules
	}
	// Rule sets only grow, so passes are bounded by the number of distinct rules; the cap only guards against a
	// reordering that never settles, which the controller would also never settle.
	for pass, changed := 0, true; changed; pass++ {
		if pass == maxAggregationPasses {
			warnings = append(warnings, Warning{Message: fmt.Sprintf(
				"aggregated ClusterRoles did not settle after %d passes; rules are those of the last pass", pass)})
			break
		}
		changed = false
		for _, a := range aggs {
			var next aggregated
			seen := make(map[string]struct{})
			for _, matched := range a.selectors {
				for _, j := range matched {
					for _, rule := range rulesOf(j) {
						k := ruleKey(&rule)
						if _, dup := seen[k]; dup {
							continue
						}
						seen[k] = struct{}{}
						next.rules = append(next.rules, rule)
						next.from = append(next.from, clusterRoles[j].Ref())
					}
				}
			}
			if !sameRules(out[a.name].rules, next.rules) {
				out[a.name] = next
				changed = true
			}
		}
	}
	return out, warnings
}

// maxAggregationPasses bounds the fixed-point iteration of aggregate.
const maxAggregationPasses = 10000

// ruleKey encodes a rule so that two rules have the same key exactly when the controller's semantic deep
// equality holds (field by field, order kept, nil equal to empty).
func ruleKey(r *rbacv1.PolicyRule) string {
	var b strings.Builder
	for _, field := range [][]string{r.Verbs, r.APIGroups, r.Resources, r.ResourceNames, r.NonResourceURLs} {
		fmt.Fprintf(&b, "%d:", len(field))
		for _, s := range field {
			fmt.Fprintf(&b, "%d:%s", len(s), s)
		}
		b.WriteByte('|')
	}
	return b.String()
}

func sameRules(a, b []rbacv1.PolicyRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if ruleKey(&a[i]) != ruleKey(&b[i]) {
			return false
		}
	}
	return true
}
