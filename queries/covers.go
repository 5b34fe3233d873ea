package queries

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// covers reports whether the owner rules together allow everything rule r allows, as the API server's
// escalation check decides it (k8s.io/kubernetes pkg/registry/rbac/validation): r is broken down into rules of
// one verb, one group, one resource and one name (or URL), and each piece must be covered by a single owner
// rule. '*' covers only where the owner rule holds '*' itself (or '*/sub' for a subresource); an owner rule with
// resourceNames covers only pieces that name one of them.
func covers(owner []*rbacv1.PolicyRule, r *rbacv1.PolicyRule) bool {
	for _, verb := range r.Verbs {
		for _, url := range r.NonResourceURLs {
			if !slices.ContainsFunc(owner, func(o *rbacv1.PolicyRule) bool {
				return has(o.Verbs, verb) && urlCovers(o.NonResourceURLs, url)
			}) {
				return false
			}
		}
		for _, group := range r.APIGroups {
			for _, resource := range r.Resources {
				names := r.ResourceNames
				if len(names) == 0 {
					names = []string{""}
				}
				for _, name := range names {
					if !slices.ContainsFunc(owner, func(o *rbacv1.PolicyRule) bool {
						return has(o.Verbs, verb) && has(o.APIGroups, group) && resourceCovers(o.Resources, resource) &&
							(len(o.ResourceNames) == 0 || (name != "" && slices.Contains(o.ResourceNames, name)))
					}) {
						return false
					}
				}
			}
		}
	}
	return true
}

// has is set membership with '*' matching anything.
func has(set []string, v string) bool {
	return slices.Contains(set, rbacv1.VerbAll) || slices.Contains(set, v)
}

func resourceCovers(set []string, resource string) bool {
	if has(set, resource) {
		return true
	}
	_, sub, ok := strings.Cut(resource, "/")
	return ok && slices.Contains(set, "*/"+sub)
}

func urlCovers(set []string, url string) bool {
	for _, s := range set {
		if s == "*" || s == url || (strings.HasSuffix(s, "*") && strings.HasPrefix(url, strings.TrimRight(s, "*"))) {
			return true
		}
	}
	return false
}

// ruleIndex holds owner rules by API group and resource, so that covering the many pieces of a large role asks
// a few map entries instead of every owner rule.
type ruleIndex struct {
	byGroupResource map[[2]string][]*rbacv1.PolicyRule // group or "*", resource or "*" or "*/sub"
	urls            []*rbacv1.PolicyRule
	// scope, when set, is the namespace a role would be bound in: what a RoleBinding cannot grant there
	// (URLs, cluster-scoped resources) is not asked to be covered.
	scope string
}

func indexRules(owner []*rbacv1.PolicyRule) *ruleIndex {
	idx := &ruleIndex{byGroupResource: map[[2]string][]*rbacv1.PolicyRule{}}
	for _, r := range owner {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				k := [2]string{g, res}
				idx.byGroupResource[k] = append(idx.byGroupResource[k], r)
			}
		}
		if len(r.NonResourceURLs) > 0 {
			idx.urls = append(idx.urls, r)
		}
	}
	return idx
}

// candidates returns the owner rules that may cover a piece on group/resource: up to six lists (the group or
// "*", times the resource, "*" or "*/sub"), in an array so that the many pieces of a role allocate nothing.
func (idx *ruleIndex) candidates(group, resource string) (out [6][]*rbacv1.PolicyRule, n int) {
	resources := [3]string{resource, "*"}
	nr := 2
	if _, sub, ok := strings.Cut(resource, "/"); ok {
		resources[2], nr = "*/"+sub, 3
	}
	for _, g := range [2]string{group, "*"} {
		for _, r := range resources[:nr] {
			if rs := idx.byGroupResource[[2]string{g, r}]; len(rs) > 0 {
				out[n], n = rs, n+1
			}
		}
	}
	return out, n
}

// coversAll reports whether the indexed owner rules cover every rule of role, as covers decides.
func (idx *ruleIndex) coversAll(role *graph.Role) bool {
	for i := range role.Rules {
		r := &role.Rules[i]
		for _, verb := range r.Verbs {
			for _, url := range r.NonResourceURLs {
				if idx.scope == "" && !slices.ContainsFunc(idx.urls, func(o *rbacv1.PolicyRule) bool {
					return has(o.Verbs, verb) && urlCovers(o.NonResourceURLs, url)
				}) {
					return false
				}
			}
			for _, group := range r.APIGroups {
				for _, resource := range r.Resources {
					if idx.scope != "" && resource != "namespaces" && clusterScoped(group, strings.SplitN(resource, "/", 2)[0]) {
						continue
					}
					cands, n := idx.candidates(group, resource)
					names := r.ResourceNames
					if len(names) == 0 {
						names = []string{""} // any object
					}
					for _, name := range names {
						ok := false
						for _, rs := range cands[:n] {
							if slices.ContainsFunc(rs, func(o *rbacv1.PolicyRule) bool {
								return has(o.Verbs, verb) && (len(o.ResourceNames) == 0 || (name != "" && slices.Contains(o.ResourceNames, name)))
							}) {
								ok = true
								break
							}
						}
						if !ok {
							return false
						}
					}
				}
			}
		}
	}
	return true
}
