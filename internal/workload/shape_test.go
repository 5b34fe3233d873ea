package workload

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kiem-io/kiem/graph"
)

func TestGenerateWellFormed(t *testing.T) {
	base := kubeadm(t)
	tests := []struct {
		name        string
		base        *graph.Objects
		spec        Spec
		maxDangling float64 // share of synthetic bindings whose role does not exist
	}{
		{"S on kubeadm", base, S(), 0.04},
		{"mid on kubeadm", base, mid(), 0.02},
		// Without the kubeadm policy the references to view, edit, system:auth-delegator, … dangle.
		{"mid alone", nil, mid(), 0.6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Generate(tt.base, tt.spec, 5)
			syn := synthetic(tt.base, out)
			probs := problems(out, syn)
			for _, p := range probs[:min(len(probs), 20)] {
				t.Error(p)
			}
			if len(probs) > 0 {
				t.Fatalf("%d problems", len(probs))
			}
			dangling, total := 0, 0
			for _, b := range slices.Concat(syn.RoleBindings, syn.ClusterRoleBindings) {
				total++
				if !exists(out, b) {
					dangling++
				}
			}
			if got := float64(dangling) / float64(total); got > tt.maxDangling || (tt.base != nil && tt.spec == mid() && dangling == 0) {
				t.Errorf("%d of %d bindings dangle (%.3f), want some and at most %.3f", dangling, total, got, tt.maxDangling)
			}
		})
	}
}

// exists reports whether the role b references is in out.
func exists(out *graph.Objects, b graph.Binding) bool {
	ref, ok := b.RoleRefObject()
	if !ok {
		return false
	}
	roles := out.ClusterRoles
	if ref.Kind == graph.KindRole {
		roles = out.Roles
	}
	return slices.ContainsFunc(roles, func(r graph.Role) bool { return r.Ref() == ref })
}

// problems lists what the API server would reject or what breaks the generator's promises in syn, the synthetic
// part of out.
func problems(out, syn *graph.Objects) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	refs, uids := map[graph.ObjectRef]bool{}, map[string]bool{}
	nss, sas := map[string]bool{}, map[string]bool{}
	metas := func(o *graph.Objects, fn func(graph.ObjectRef, graph.Meta)) {
		for _, n := range o.Namespaces {
			fn(n.Ref(), n.Meta)
		}
		for _, s := range o.ServiceAccounts {
			fn(s.Ref(), s.Meta)
		}
		for _, r := range slices.Concat(o.Roles, o.ClusterRoles) {
			fn(r.Ref(), r.Meta)
		}
		for _, b := range slices.Concat(o.RoleBindings, o.ClusterRoleBindings) {
			fn(b.Ref(), b.Meta)
		}
		for _, p := range o.Pods {
			fn(p.Ref(), p.Meta)
		}
	}
	metas(out, func(ref graph.ObjectRef, m graph.Meta) {
		if refs[ref] || uids[m.UID] {
			bad("%s: duplicate name or UID %s", ref, m.UID)
		}
		refs[ref], uids[m.UID] = true, true
		switch ref.Kind {
		case graph.KindNamespace:
			nss[m.Name] = true
		case graph.KindServiceAccount:
			sas[m.Namespace+"/"+m.Name] = true
		}
	})
	metas(syn, func(ref graph.ObjectRef, m graph.Meta) {
		var errs []string
		switch ref.Kind {
		case graph.KindNamespace:
			errs = validation.IsDNS1123Label(m.Name)
		case graph.KindServiceAccount, graph.KindPod:
			errs = validation.IsDNS1123Subdomain(m.Name)
		default:
			errs = content.IsPathSegmentName(m.Name)
		}
		if ref.Namespace != "" && !nss[ref.Namespace] {
			errs = append(errs, "namespace does not exist")
		}
		if m.UID == "" || m.ResourceVersion == "" || m.Created.IsZero() {
			errs = append(errs, "uid, resourceVersion or creationTimestamp missing")
		}
		for k, v := range m.Labels {
			errs = append(errs, validation.IsQualifiedName(k)...)
			errs = append(errs, validation.IsValidLabelValue(v)...)
		}
		if len(errs) > 0 {
			bad("%s: %s", ref, strings.Join(errs, "; "))
		}
	})
	for _, r := range slices.Concat(syn.Roles, syn.ClusterRoles) {
		for _, pr := range r.Rules {
			switch {
			case len(pr.Verbs) == 0 || slices.Contains(pr.Verbs, ""):
				bad("%s: rule %v has no verbs", r.Ref(), pr)
			case len(pr.NonResourceURLs) > 0 && (r.Kind == graph.KindRole || len(pr.APIGroups)+len(pr.Resources)+len(pr.ResourceNames) > 0):
				bad("%s: nonResourceURLs rule %v in a Role or with resources", r.Ref(), pr)
			case len(pr.NonResourceURLs) == 0 && (len(pr.APIGroups) == 0 || len(pr.Resources) == 0):
				bad("%s: resource rule %v without groups or resources", r.Ref(), pr)
			}
			for _, u := range pr.NonResourceURLs {
				if !strings.HasPrefix(u, "/") {
					bad("%s: nonResourceURL %q", r.Ref(), u)
				}
			}
		}
	}
	for _, b := range slices.Concat(syn.RoleBindings, syn.ClusterRoleBindings) {
		rr := b.RoleRef
		if rr.APIGroup != rbacv1.GroupName || rr.Name == "" || (rr.Kind != "ClusterRole" && (rr.Kind != "Role" || b.Kind != graph.KindRoleBinding)) {
			bad("%s: roleRef %+v", b.Ref(), rr)
		}
		if len(b.Subjects) == 0 {
			bad("%s: no subjects", b.Ref())
		}
		for i, s := range b.Subjects {
			if slices.Contains(b.Subjects[:i], s) {
				bad("%s: duplicate subject %+v", b.Ref(), s)
			}
			switch s.Kind {
			case rbacv1.UserKind, rbacv1.GroupKind:
				if s.APIGroup != rbacv1.GroupName || s.Namespace != "" || s.Name == "" {
					bad("%s: subject %+v", b.Ref(), s)
				}
			case rbacv1.ServiceAccountKind:
				ns := s.Namespace
				if ns == "" {
					ns = b.Namespace
				}
				if s.APIGroup != "" || ns == "" || len(validation.IsDNS1123Subdomain(s.Name)) > 0 || !sas[ns+"/"+s.Name] {
					bad("%s: subject %+v is not an existing ServiceAccount", b.Ref(), s)
				}
			default:
				bad("%s: subject kind %q", b.Ref(), s.Kind)
			}
		}
	}
	owners := []string{"ReplicaSet", "StatefulSet", "DaemonSet", "Job"}
	for _, p := range syn.Pods {
		if !sas[p.Namespace+"/"+p.ServiceAccount] {
			bad("%s: ServiceAccount %q does not exist", p.Ref(), p.ServiceAccount)
		}
		if p.Owner != nil && !slices.Contains(owners, p.Owner.Kind) {
			bad("%s: owner %+v", p.Ref(), p.Owner)
		}
	}
	return probs
}

// TestGenerateShape checks that a mid-size workload has every trait of a real multi-tenant cluster that the
// generator promises, so that benchmarks on it exercise every path of the engine.
func TestGenerateShape(t *testing.T) {
	base := kubeadm(t)
	out := Generate(base, mid(), 9)
	syn := synthetic(base, out)
	rule := func(fn func(graph.Role, rbacv1.PolicyRule) bool) func() bool {
		return func() bool {
			for _, r := range slices.Concat(syn.Roles, syn.ClusterRoles) {
				for _, pr := range r.Rules {
					if fn(r, pr) {
						return true
					}
				}
			}
			return false
		}
	}
	resource := func(name string) func() bool {
		return rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return slices.Contains(pr.Resources, name) })
	}
	binding := func(fn func(graph.Binding) bool) func() bool {
		return func() bool { return slices.ContainsFunc(slices.Concat(syn.RoleBindings, syn.ClusterRoleBindings), fn) }
	}
	subject := func(kind string, fn func(b graph.Binding, s rbacv1.Subject) bool) func() bool {
		return binding(func(b graph.Binding) bool {
			return slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool { return s.Kind == kind && fn(b, s) })
		})
	}
	user := func(fn func(string) bool) func() bool {
		return subject(rbacv1.UserKind, func(_ graph.Binding, s rbacv1.Subject) bool { return fn(s.Name) })
	}
	roleRef := func(kind graph.Kind, fn func(rbacv1.RoleRef) bool) func() bool {
		return binding(func(b graph.Binding) bool { return b.Kind == kind && fn(b.RoleRef) })
	}
	isBuiltin := func(name string) bool {
		return slices.ContainsFunc(base.ClusterRoles, func(r graph.Role) bool { return r.Name == name })
	}
	labelled := func(key string, aggregated bool) func() bool {
		return func() bool {
			return slices.ContainsFunc(syn.ClusterRoles, func(r graph.Role) bool {
				return r.Labels[key] == "true" && (r.AggregationRule != nil) == aggregated
			})
		}
	}
	pod := func(fn func(graph.Pod) bool) func() bool {
		return func() bool { return slices.ContainsFunc(syn.Pods, fn) }
	}
	owned := func(kind string) func() bool {
		return pod(func(p graph.Pod) bool { return p.Owner != nil && p.Owner.Kind == kind })
	}
	traits := []struct {
		name string
		has  func() bool
	}{
		{"rule with resourceNames", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return len(pr.ResourceNames) > 0 })},
		{"rule with verb *", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return slices.Equal(pr.Verbs, []string{"*"}) })},
		{"rule on */*", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return slices.Contains(pr.Resources, "*") })},
		{"rule on two API groups", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return len(pr.APIGroups) > 1 })},
		{"rule on a CRD group", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool {
			return slices.ContainsFunc(pr.APIGroups, func(g string) bool { return strings.HasSuffix(g, "example.com") })
		})},
		{"rule on apps", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return slices.Contains(pr.APIGroups, "apps") })},
		{"rule on batch", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return slices.Contains(pr.APIGroups, "batch") })},
		{"rule on networking.k8s.io", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool {
			return slices.Contains(pr.APIGroups, "networking.k8s.io")
		})},
		{"pods/exec", resource("pods/exec")},
		{"pods/log", resource("pods/log")},
		{"deployments/scale", resource("deployments/scale")},
		{"serviceaccounts/token", resource("serviceaccounts/token")},
		{"*/status", resource("*/status")},
		{"nonResourceURL /metrics", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool { return slices.Contains(pr.NonResourceURLs, "/metrics") })},
		{"nonResourceURL prefix", rule(func(_ graph.Role, pr rbacv1.PolicyRule) bool {
			return slices.ContainsFunc(pr.NonResourceURLs, func(u string) bool { return strings.HasSuffix(u, "*") })
		})},
		{"Role with 8 rules", func() bool {
			return slices.ContainsFunc(syn.Roles, func(r graph.Role) bool { return len(r.Rules) == 8 })
		}},
		{"RoleBinding to a Role", roleRef(graph.KindRoleBinding, func(r rbacv1.RoleRef) bool { return r.Kind == "Role" })},
		{"RoleBinding to view", roleRef(graph.KindRoleBinding, func(r rbacv1.RoleRef) bool { return r.Name == "view" })},
		{"RoleBinding to edit", roleRef(graph.KindRoleBinding, func(r rbacv1.RoleRef) bool { return r.Name == "edit" })},
		{"RoleBinding to admin", roleRef(graph.KindRoleBinding, func(r rbacv1.RoleRef) bool { return r.Name == "admin" })},
		{"RoleBinding to a custom ClusterRole", roleRef(graph.KindRoleBinding, func(r rbacv1.RoleRef) bool {
			return r.Kind == "ClusterRole" && !isBuiltin(r.Name)
		})},
		{"RoleBinding in kube-system to the authentication reader", roleRef(graph.KindRoleBinding, func(r rbacv1.RoleRef) bool {
			return r.Name == authReaderRole
		})},
		{"ClusterRoleBinding to cluster-admin", roleRef(graph.KindClusterRoleBinding, func(r rbacv1.RoleRef) bool { return r.Name == "cluster-admin" })},
		{"ClusterRoleBinding to a system: role", roleRef(graph.KindClusterRoleBinding, func(r rbacv1.RoleRef) bool {
			return strings.HasPrefix(r.Name, "system:") && isBuiltin(r.Name)
		})},
		{"ClusterRoleBinding to a custom role", roleRef(graph.KindClusterRoleBinding, func(r rbacv1.RoleRef) bool { return !isBuiltin(r.Name) })},
		{"binding with four subjects", binding(func(b graph.Binding) bool { return len(b.Subjects) == 4 })},
		{"ServiceAccount subject without namespace", subject(rbacv1.ServiceAccountKind, func(_ graph.Binding, s rbacv1.Subject) bool { return s.Namespace == "" })},
		{"ServiceAccount subject of another namespace", subject(rbacv1.ServiceAccountKind, func(b graph.Binding, s rbacv1.Subject) bool {
			return b.Kind == graph.KindRoleBinding && s.Namespace != "" && s.Namespace != b.Namespace
		})},
		{"ServiceAccount subject of a ClusterRoleBinding", subject(rbacv1.ServiceAccountKind, func(b graph.Binding, _ rbacv1.Subject) bool {
			return b.Kind == graph.KindClusterRoleBinding
		})},
		{"User subject of a ClusterRoleBinding", subject(rbacv1.UserKind, func(b graph.Binding, _ rbacv1.Subject) bool { return b.Kind == graph.KindClusterRoleBinding })},
		{"Group subject of a ClusterRoleBinding", subject(rbacv1.GroupKind, func(b graph.Binding, _ rbacv1.Subject) bool { return b.Kind == graph.KindClusterRoleBinding })},
		{"e-mail user", user(func(n string) bool { return strings.Contains(n, "@") && !strings.Contains(n, ":") })},
		{"OIDC URL user", user(func(n string) bool { return strings.HasPrefix(n, "https://") && strings.Contains(n, "#") })},
		{"user with : and /", user(func(n string) bool { return strings.HasPrefix(n, "arn:") && strings.Contains(n, "/") })},
		{"user with a space", user(func(n string) bool { return strings.Contains(n, " ") })},
		{"user with non-ASCII letters", user(func(n string) bool { return strings.ContainsFunc(n, func(r rune) bool { return r > 127 }) })},
		{"user named like a ServiceAccount", user(func(n string) bool { return strings.HasPrefix(n, "system:serviceaccount:") })},
		{"group with : and /", subject(rbacv1.GroupKind, func(_ graph.Binding, s rbacv1.Subject) bool {
			return strings.Contains(s.Name, ":") && strings.Contains(s.Name, "/")
		})},
		{"LDAP group", subject(rbacv1.GroupKind, func(_ graph.Binding, s rbacv1.Subject) bool { return strings.HasPrefix(s.Name, "cn=") })},
		{"dangling roleRef", binding(func(b graph.Binding) bool { return !exists(out, b) })},
		{"custom ClusterRole for view", labelled(labelAggregateToView, false)},
		{"custom ClusterRole for edit", labelled(labelAggregateToEdit, false)},
		{"custom ClusterRole for admin", labelled(labelAggregateToAdmin, false)},
		{"aggregated ClusterRole for edit", labelled(labelAggregateToEdit, true)},
		{"aggregate of aggregates", func() bool {
			for _, a := range syn.ClusterRoles {
				for _, b := range syn.ClusterRoles {
					if a.AggregationRule != nil && b.AggregationRule != nil && selects(a.AggregationRule, b.Labels) {
						return true
					}
				}
			}
			return false
		}},
		{"aggregate extending view", func() bool {
			return slices.ContainsFunc(syn.ClusterRoles, func(r graph.Role) bool {
				return r.AggregationRule != nil && selects(r.AggregationRule, map[string]string{labelAggregateToView: "true"})
			})
		}},
		{"ServiceAccount without token automount", func() bool {
			return slices.ContainsFunc(syn.ServiceAccounts, func(s graph.ServiceAccount) bool { return s.AutomountToken != nil && !*s.AutomountToken })
		}},
		{"namespace with a Pod Security level", func() bool {
			return slices.ContainsFunc(syn.Namespaces, func(n graph.Namespace) bool { return n.Labels[labelPSAEnforce] != "" })
		}},
		{"pod without token automount", pod(func(p graph.Pod) bool { return p.AutomountToken != nil && !*p.AutomountToken })},
		{"pod of the default ServiceAccount", pod(func(p graph.Pod) bool { return p.ServiceAccount == "default" })},
		{"pod of another ServiceAccount", pod(func(p graph.Pod) bool { return p.ServiceAccount != "default" })},
		{"pending pod", pod(func(p graph.Pod) bool { return p.NodeName == "" })},
		{"bare pod", pod(func(p graph.Pod) bool { return p.Owner == nil })},
		{"ReplicaSet pod", owned("ReplicaSet")},
		{"StatefulSet pod", owned("StatefulSet")},
		{"DaemonSet pod", owned("DaemonSet")},
		{"Job pod", owned("Job")},
	}
	for _, tr := range traits {
		if !tr.has() {
			t.Errorf("no %s", tr.name)
		}
	}

	nodes := map[string]bool{}
	for _, p := range syn.Pods {
		if p.NodeName != "" {
			nodes[p.NodeName] = true
		}
	}
	if got, want := len(nodes), mid().Pods/200; got != want {
		t.Errorf("pods run on %d nodes, want %d", got, want)
	}
	for _, n := range syn.Namespaces {
		if !slices.ContainsFunc(syn.ServiceAccounts, func(s graph.ServiceAccount) bool { return s.Namespace == n.Name && s.Name == "default" }) {
			t.Errorf("namespace %s has no default ServiceAccount", n.Name)
		}
	}
}
