package graph

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// RuleAllows reports whether rule r allows action a, exactly as the kube-apiserver's RBAC authorizer decides it
// for one rule. Where a binding applies is the caller's business (see Snapshot.Can).
//
// The matching is literal, with these upstream quirks kept on purpose:
//   - verbs, apiGroups and resources match by equality or "*"; verbs are case-sensitive ("GET" is not "get");
//   - a subresource request r/s matches "r/s", "*/s" or "*", never "r/*" ("pods/*" is not a glob);
//   - resourceNames restrict every verb: a request without a name (create, list, watch, deletecollection without
//     a name) is allowed only by a rule without resourceNames, or by resourceNames: [""] which names the empty name;
//   - a non-resource URL matches "*", itself, or a rule URL ending in '*' whose prefix, with every trailing '*'
//     trimmed, begins the request's URL ("/api*" matches "/apis");
//   - resource rules never allow non-resource requests and the other way round, but one rule may carry both.
func RuleAllows(r *rbacv1.PolicyRule, a Action) bool {
	return ruleAllowsCombined(r, a, combinedResource(a))
}

// ruleAllowsCombined is RuleAllows with the combined resource name computed once per request.
func ruleAllowsCombined(r *rbacv1.PolicyRule, a Action, combined string) bool {
	if !a.IsResource() {
		return verbMatches(r, a.Verb) && nonResourceURLMatches(r, a.NonResourceURL)
	}
	return verbMatches(r, a.Verb) && apiGroupMatches(r, a.APIGroup) &&
		resourceMatches(r, combined, a.Subresource) && resourceNameMatches(r, a.Name)
}

// combinedResource is how the authorizer names a subresource request: "pods/exec".
func combinedResource(a Action) string {
	if a.Subresource == "" {
		return a.Resource
	}
	return a.Resource + "/" + a.Subresource
}

func verbMatches(r *rbacv1.PolicyRule, verb string) bool {
	for _, v := range r.Verbs {
		if v == rbacv1.VerbAll || v == verb {
			return true
		}
	}
	return false
}

func apiGroupMatches(r *rbacv1.PolicyRule, group string) bool {
	for _, g := range r.APIGroups {
		if g == rbacv1.APIGroupAll || g == group {
			return true
		}
	}
	return false
}

// resourceMatches takes the combined resource so that callers in a hot loop build it once per request.
func resourceMatches(r *rbacv1.PolicyRule, combined, subresource string) bool {
	for _, res := range r.Resources {
		if res == rbacv1.ResourceAll || res == combined {
			return true
		}
		// "*/s" names subresource s of every resource; it says nothing about requests without a subresource.
		if subresource != "" && len(res) == len(subresource)+2 && strings.HasPrefix(res, "*/") &&
			strings.HasSuffix(res, subresource) {
			return true
		}
	}
	return false
}

func resourceNameMatches(r *rbacv1.PolicyRule, name string) bool {
	if len(r.ResourceNames) == 0 {
		return true
	}
	for _, n := range r.ResourceNames {
		if n == name {
			return true
		}
	}
	return false
}

func nonResourceURLMatches(r *rbacv1.PolicyRule, url string) bool {
	for _, u := range r.NonResourceURLs {
		if u == rbacv1.NonResourceAll || u == url {
			return true
		}
		if strings.HasSuffix(u, "*") && strings.HasPrefix(url, strings.TrimRight(u, "*")) {
			return true
		}
	}
	return false
}
