package graph

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// aggregated is the outcome of recomputing one aggregated ClusterRole.
type aggregated struct {
	rules []rbacv1.PolicyRule
	keys  []string // keys[i] is ruleKey(&rules[i])
	// selectors are the role's parsed selectors.
	selectors []labels.Selector
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
		parsed    []labels.Selector
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
			a.parsed = append(a.parsed, sel)
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
	// Keys of the rules of roles that are not recomputed, made once: passes look them up many times.
	leafKeys := make(map[int][]string)
	rulesOf := func(i int) ([]rbacv1.PolicyRule, []string) {
		if cur, ok := out[clusterRoles[i].Name]; ok {
			return cur.rules, cur.keys
		}
		keys, ok := leafKeys[i]
		if !ok {
			keys = make([]string, len(clusterRoles[i].Rules))
			for k := range keys {
				keys[k] = ruleKey(&clusterRoles[i].Rules[k])
			}
			leafKeys[i] = keys
		}
		return clusterRoles[i].Rules, keys
	}
	// Rule sets only grow, so they settle after at most one pass per distinct rule. Once they have, a pass can
	// still reorder rules along chains of aggregates; that settles within one pass per aggregated role, except
	// in cycles whose members keep reordering each other, which the controller would rewrite forever too. Then
	// kiem stops at the last pass and says so.
	stableSets := 0
	for {
		setsChanged, orderChanged := false, false
		var unsettled []string
		for _, a := range aggs {
			var next aggregated
			seen := make(map[string]struct{})
			for _, matched := range a.selectors {
				for _, j := range matched {
					rules, keys := rulesOf(j)
					for r := range rules {
						k := keys[r]
						if _, dup := seen[k]; dup {
							continue
						}
						seen[k] = struct{}{}
						next.rules = append(next.rules, rules[r])
						next.keys = append(next.keys, k)
						next.from = append(next.from, clusterRoles[j].Ref())
					}
				}
			}
			prev := out[a.name]
			if slices.Equal(prev.keys, next.keys) {
				continue
			}
			orderChanged = true
			unsettled = append(unsettled, a.name)
			if len(prev.keys) != len(next.keys) || !allIn(prev.keys, seen) {
				setsChanged = true
			}
			out[a.name] = next
		}
		if !orderChanged {
			break
		}
		if setsChanged {
			stableSets = 0
			continue
		}
		if stableSets++; stableSets > len(aggs) {
			warnings = append(warnings, Warning{Message: fmt.Sprintf(
				"aggregated ClusterRoles %s select each other in a cycle whose rule order never settles: the aggregation "+
					"controller would rewrite them forever; their rules are complete, their order (and rule indexes) is one "+
					"point of that cycle", strings.Join(unsettled, ", "))})
			break
		}
	}
	for _, a := range aggs {
		v := out[a.name]
		v.selectors = a.parsed
		out[a.name] = v
	}
	return out, warnings
}

func allIn(keys []string, set map[string]struct{}) bool {
	for _, k := range keys {
		if _, ok := set[k]; !ok {
			return false
		}
	}
	return true
}

// ruleKey encodes a rule so that two rules have the same key exactly when the controller's semantic deep
// equality holds (field by field, order kept, nil equal to empty).
func ruleKey(r *rbacv1.PolicyRule) string {
	var b []byte
	for _, field := range [][]string{r.Verbs, r.APIGroups, r.Resources, r.ResourceNames, r.NonResourceURLs} {
		b = strconv.AppendInt(b, int64(len(field)), 10)
		b = append(b, ':')
		for _, s := range field {
			b = strconv.AppendInt(b, int64(len(s)), 10)
			b = append(b, ':')
			b = append(b, s...)
		}
		b = append(b, '|')
	}
	return string(b)
}
