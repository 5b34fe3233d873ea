package workload

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// danglingPerMille is how many bindings in a thousand reference a role that does not exist, as clusters keep
// bindings of uninstalled software.
const danglingPerMille = 5

// Well-known objects of a kubeadm cluster that operators bind to in kube-system.
const (
	kubeSystem     = "kube-system"
	authReaderRole = "extension-apiserver-authentication-reader"
)

// roleBindings creates the RoleBindings: for platform namespaces, the kube-system RoleBindings that let operators
// read the apiserver's authentication configmap (when base has that Role); the rest spread by namespace size.
func (g *generator) roleBindings() {
	total := g.spec.RoleBindings
	if slices.ContainsFunc(g.out.Roles, func(r graph.Role) bool { return r.Namespace == kubeSystem && r.Name == authReaderRole }) {
		taken := g.nsSet(graph.KindRoleBinding, kubeSystem)
		limit := total / 100 // at most one RoleBinding in a hundred
		for _, t := range g.tenants {
			if !t.platform || len(t.sas) == 0 || g.spec.RoleBindings-total >= limit {
				continue
			}
			sa := t.sas[len(t.sas)-1]
			b := graph.Binding{
				Kind:     graph.KindRoleBinding,
				Meta:     g.meta(kubeSystem, claim(taken, t.name+"-"+sa+"-auth-reader"), nil),
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: authReaderRole},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: t.name, Name: sa}},
			}
			g.out.RoleBindings = append(g.out.RoleBindings, b)
			total--
		}
	}
	for i, k := range apportion(total, g.weightsFor()) {
		for range k {
			g.out.RoleBindings = append(g.out.RoleBindings, g.roleBinding(g.tenants[i]))
		}
	}
}

// roleBinding returns one RoleBinding in t: to one of t's Roles (about 45%), to view, edit or admin, to a custom
// ClusterRole, or (0.5%) to a role that does not exist; with one to four subjects.
func (g *generator) roleBinding(t *tenant) graph.Binding {
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole"}
	machine := false
	switch n := g.r.IntN(1000); {
	case n < danglingPerMille:
		if g.chance(0.5) {
			ref.Kind, ref.Name = "Role", g.absentName(g.nsSet(graph.KindRole, t.name), t.app+"-legacy-")
		} else {
			ref.Name = g.absentName(g.clusterN[graph.KindClusterRole], "removed-operator-")
		}
	case n < 455 && len(t.roles) > 0:
		ref.Kind, ref.Name = "Role", pick(g.r, t.roles)
		machine = g.chance(0.5)
	case len(g.crs.tenant) > 0 && g.chance(0.2):
		ref.Name = pick(g.r, g.crs.tenant)
	case len(g.crs.human) > 0 && g.chance(0.1):
		ref.Name = pick(g.r, g.crs.human)
	case len(g.crs.machine) > 0 && g.chance(0.05):
		ref.Name, machine = pick(g.r, g.crs.machine), true
	default:
		ref.Name = pickWeighted(g.r, []weighted{{"view", 45}, {"edit", 35}, {"admin", 20}})
	}
	var subjects []rbacv1.Subject
	for range g.subjectCount() {
		var s rbacv1.Subject
		if (machine && g.chance(0.8)) || (!machine && g.chance(0.4)) {
			s = g.serviceAccount(t, t.name)
		} else {
			s = g.human()
		}
		if !slices.Contains(subjects, s) {
			subjects = append(subjects, s)
		}
	}
	name := ref.Name + "-" + pick(g.r, bindingStems())
	if g.chance(0.3) {
		name = t.team + "-" + ref.Name
	}
	var labels map[string]string
	if g.chance(0.4) {
		labels = map[string]string{labelManagedBy: "Helm"}
	}
	return graph.Binding{
		Kind:     graph.KindRoleBinding,
		Meta:     g.meta(t.name, claim(g.nsSet(graph.KindRoleBinding, t.name), name), labels),
		RoleRef:  ref,
		Subjects: subjects,
	}
}

// clusterRoleBindings creates the ClusterRoleBindings: operators' ServiceAccounts bound to their manager,
// proxy and metrics roles or to system:auth-delegator; people bound to readers, aggregates and built-in roles.
func (g *generator) clusterRoleBindings() {
	var platform []*tenant
	for _, t := range g.tenants {
		if t.platform {
			platform = append(platform, t)
		}
	}
	if len(platform) == 0 {
		platform = g.tenants
	}
	for range g.spec.ClusterRoleBindings {
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole"}
		machine := false
		switch n := g.r.IntN(1000); {
		case n < danglingPerMille:
			ref.Name = g.absentName(g.clusterN[graph.KindClusterRole], "removed-operator-")
		case n < 400 && len(g.crs.machine) > 0:
			ref.Name, machine = pick(g.r, g.crs.machine), true
		case n < 550 && len(g.crs.human) > 0:
			ref.Name = pick(g.r, g.crs.human)
		case n < 600 && len(g.crs.tenant) > 0:
			ref.Name = pick(g.r, g.crs.tenant)
		default:
			ref.Name = pickWeighted(g.r, builtinClusterWide())
			machine = strings.HasPrefix(ref.Name, "system:")
		}
		n := g.subjectCount()
		if machine {
			n = 1 + g.r.IntN(2)
		}
		var subjects []rbacv1.Subject
		for range n {
			var s rbacv1.Subject
			// Operators' roles go to their ServiceAccounts, people's roles to users and groups; one in ten not.
			if toSA := g.chance(0.9); toSA == machine {
				// A ClusterRoleBinding must name a ServiceAccount's namespace.
				s = g.serviceAccount(pick(g.r, platform), "")
			} else {
				s = g.human()
			}
			if !slices.Contains(subjects, s) {
				subjects = append(subjects, s)
			}
		}
		name := ref.Name
		if g.chance(0.5) {
			name += "-" + pick(g.r, bindingStems())
		}
		g.out.ClusterRoleBindings = append(g.out.ClusterRoleBindings, graph.Binding{
			Kind:     graph.KindClusterRoleBinding,
			Meta:     g.meta("", claim(g.clusterN[graph.KindClusterRoleBinding], name), nil),
			RoleRef:  ref,
			Subjects: subjects,
		})
	}
}

// subjectCount returns how many subjects a binding names: one in half the bindings, up to four.
func (g *generator) subjectCount() int {
	switch n := g.r.IntN(20); {
	case n < 10:
		return 1
	case n < 15:
		return 2
	case n < 18:
		return 3
	}
	return 4
}

// absentName returns prefix plus a random suffix that names nothing in taken, for dangling role references.
func (g *generator) absentName(taken names, prefix string) string {
	for {
		if name := prefix + g.hash(5); !taken[name] {
			return name
		}
	}
}
