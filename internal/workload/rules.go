package workload

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
)

// rules returns n rules drawn from catalog, for an object of app. extra holds CRD resources the rules may also
// name (an app's own CRDs, or an operator's).
func (g *generator) rules(n int, catalog, extra []resource, app string) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, 0, n)
	for range n {
		c := catalog
		if len(extra) > 0 && g.chance(0.25) {
			c = extra
		}
		out = append(out, g.rule(c, app))
	}
	return out
}

// rule builds one resource rule from catalog: one group (rarely two), one to four resources of that group, a
// common verb list (or the verbs a subresource calls for), and sometimes resourceNames.
func (g *generator) rule(catalog []resource, app string) rbacv1.PolicyRule {
	if g.chance(0.005) {
		// Status writers of "every resource" are rare but real (controllers that report conditions).
		return rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*/status"}, Verbs: []string{"get", "patch", "update"}}
	}
	first := pick(g.r, catalog)
	pr := rbacv1.PolicyRule{APIGroups: []string{first.group}, Resources: []string{first.name}}
	if first.verbs != nil {
		pr.Verbs = slices.Clone(first.verbs)
		if first.name == "pods/exec" && g.chance(0.5) {
			pr.Resources = append(pr.Resources, "pods/attach", "pods/portforward")
		}
		return pr
	}
	for range g.r.IntN(4) {
		c := pick(g.r, catalog)
		if c.group == first.group && c.verbs == nil && !slices.Contains(pr.Resources, c.name) {
			pr.Resources = append(pr.Resources, c.name)
		}
	}
	pr.Verbs = slices.Clone(pick(g.r, verbSets()))
	if g.chance(0.03) {
		// Helm charts of old often list a resource under two groups ("extensions" and "apps").
		if c := pick(g.r, catalog); c.group != first.group && c.verbs == nil {
			pr.APIGroups = append(pr.APIGroups, c.group)
			if !slices.Contains(pr.Resources, c.name) {
				pr.Resources = append(pr.Resources, c.name)
			}
		}
	}
	if len(pr.Resources) == 1 && g.chance(0.12) {
		pr.ResourceNames = g.resourceNames(first.name, app)
		pr.Verbs = slices.Clone(pick(g.r, [][]string{{"get"}, {"get", "update", "patch"}, {"get", "watch"}, {"update", "patch"}, {"get", "list", "watch"}, {"delete"}}))
	}
	return pr
}

// resourceNames returns one to three object names of resource that belong to app, as named-object rules list them.
func (g *generator) resourceNames(resource, app string) []string {
	var stems []string
	switch resource {
	case "configmaps":
		stems = []string{"-config", "-settings", "-leader", "-feature-flags"}
	case "secrets":
		stems = []string{"-tls", "-credentials", "-db-password", "-api-key", "-token"}
	case "leases":
		stems = []string{"-leader", "-leader-election", "-lock"}
	default:
		stems = []string{"", "-primary", "-canary", "-blue", "-green"}
	}
	n := 1 + g.r.IntN(3)
	out := make([]string, 0, n)
	for range n {
		if name := app + pick(g.r, stems); !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// crdResources returns the resources an operator's CRDs expose: each kind, and its status and finalizers.
func crdResources(op operator) []resource {
	var out []resource
	for _, k := range op.kinds {
		out = append(out,
			resource{group: op.group, name: k},
			resource{group: op.group, name: k + "/status", verbs: []string{"get", "patch", "update"}},
			resource{group: op.group, name: k + "/finalizers", verbs: []string{"update"}})
	}
	return out
}

// roleTemplate returns the fixed rules of a Role stem that real charts always write the same way, or nil.
func roleTemplate(stem, app string) []rbacv1.PolicyRule {
	all := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	switch stem {
	case "leader-election":
		return []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: all},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: slices.Clone(all)},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		}
	case "pod-exec":
		return []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}},
		}
	case "log-reader":
		return []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list", "watch"}},
		}
	case "secret-reader":
		return []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
		}
	case "scaler":
		return []rbacv1.PolicyRule{
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets"}, Verbs: []string{"get", "list"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale", "statefulsets/scale"}, Verbs: []string{"get", "update", "patch"}},
		}
	case "namespace-admin":
		return []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}
	case "viewer":
		return []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}}
	}
	return nil
}

// ruleCount returns how many rules a generated role has: mostly one to three, up to upto.
func (g *generator) ruleCount(upto int) int {
	if g.chance(0.6) {
		return 1 + g.r.IntN(3)
	}
	return 1 + g.r.IntN(upto)
}
