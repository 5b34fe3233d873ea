package queries

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
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
