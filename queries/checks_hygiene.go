package queries

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kiem-io/kiem/graph"
	rbacv1 "k8s.io/api/rbac/v1"
)

func init() {
	register(&check{name: "duplicate-binding", target: TargetBinding,
		doc: "another binding in the same scope has the same roleRef and the same subjects (KIEM-HYG-010a)",
		run: duplicateBinding})
	register(&check{name: "redundant-rolebinding", target: TargetBinding,
		doc: "a ClusterRoleBinding grants the same ClusterRole to the same subject cluster-wide (KIEM-HYG-010d)",
		run: redundantRoleBinding})
	register(&check{name: "subsumed-rule", target: TargetRole,
		doc: "a rule allows nothing another rule of the same role does not (KIEM-HYG-010c)",
		run: subsumedRule})
	register(&check{name: "ineffective-rules", target: TargetRole,
		doc: "rules that can never grant what they name: cluster-scoped resources or URLs in a Role or in a " +
			"ClusterRole bound only by RoleBindings, 'x/*' pseudo-globs, unknown verbs (KIEM-HYG-012)",
		run: ineffectiveRules})
	register(&check{name: "shared-serviceaccount", target: TargetServiceAccount,
		doc: "pods of two or more different workloads run as the ServiceAccount (KIEM-HYG-016)",
		run: sharedServiceAccount,
		probes: slices.Concat(probesFor(false, []string{"create", "update", "patch", "delete"}, "pods", "secrets", "configmaps", "deployments.apps"),
			probesFor(false, []string{"get", "list", "watch"}, "secrets"))})
	register(&check{name: "modified-default-binding", target: TargetBinding,
		doc: "a binding that has a platform default's name but not its content",
		run: modifiedDefault})
	register(&check{name: "modified-default-role", target: TargetRole,
		doc: "a role that has a platform default's name but not its content",
		run: modifiedDefault})
}

func sameSubjects(a, b *graph.Binding) bool {
	key := func(bd *graph.Binding) []string {
		var out []string
		for i := range bd.Subjects {
			if p, ok := principalOf(&bd.Subjects[i], bd.Namespace); ok {
				out = append(out, p.String())
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(key(a), key(b))
}

func bindingOf(w *worker, ref graph.ObjectRef) *graph.Binding {
	if o, ok := w.ec.snap.Object(ref); ok {
		if b, ok := o.(*graph.Binding); ok {
			return b
		}
	}
	return nil
}

func duplicateBinding(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	b := bindingOf(w, k.ref)
	if b == nil || len(b.Subjects) == 0 {
		return nil, nil
	}
	if _, ok := b.RoleRefObject(); !ok {
		return nil, nil
	}
	// Only bindings of the same kind and namespace can be twins: a namespace's few, or the ClusterRoleBindings.
	var twins []graph.ObjectRef
	w.ec.snap.Each(b.Kind, b.Namespace, func(o graph.Object) bool {
		ob := o.(*graph.Binding)
		if ob.Name != b.Name && ob.RoleRef == b.RoleRef && sameSubjects(b, ob) {
			twins = append(twins, ob.Ref())
		}
		return true
	})
	if len(twins) == 0 {
		return nil, nil
	}
	return []hit{{object: &k.ref, namespace: b.Namespace, objects: twins, classify: b,
		message: fmt.Sprintf("%s grants the same role to the same subjects as %s", refName(k.ref), refName(twins[0]))}}, nil
}

func redundantRoleBinding(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	b := bindingOf(w, k.ref)
	if b == nil || b.Kind != graph.KindRoleBinding || b.RoleRef.Kind != "ClusterRole" {
		return nil, nil
	}
	var out []hit
	crbs := w.ec.clusterRoleBindingsOf(b.RoleRef.Name)
	for i := range b.Subjects {
		p, ok := principalOf(&b.Subjects[i], b.Namespace)
		if !ok {
			continue
		}
		for _, cref := range crbs {
			crb := bindingOf(w, cref)
			if crb == nil || !slices.ContainsFunc(crb.Subjects, func(s rbacv1.Subject) bool {
				q, ok := principalOf(&s, "")
				return ok && q == p
			}) {
				continue
			}
			out = append(out, hit{subject: &p, object: &k.ref, namespace: b.Namespace, objects: []graph.ObjectRef{cref},
				classify: b, message: fmt.Sprintf("%s is redundant for %s: %s grants ClusterRole %s cluster-wide",
					refName(k.ref), refName(p), refName(cref), b.RoleRef.Name)})
			break
		}
	}
	return out, nil
}

func roleOf(w *worker, ref graph.ObjectRef) *graph.Role {
	if ref.Kind == graph.KindClusterRole {
		if r, ok := w.ec.snap.ClusterRole(ref.Name); ok {
			return r
		}
		return nil
	}
	if r, ok := w.ec.snap.Role(ref.Namespace, ref.Name); ok {
		return r
	}
	return nil
}

func subsumedRule(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	role := roleOf(w, k.ref)
	if role == nil || role.AggregationRule != nil {
		return nil, nil // aggregated roles overlap their sources by design
	}
	var idx []string
	for i := range role.Rules {
		for j := range role.Rules {
			if i == j {
				continue
			}
			// Of two identical rules, the later one is the redundant one.
			same := covers([]*rbacv1.PolicyRule{&role.Rules[i]}, &role.Rules[j])
			if covers([]*rbacv1.PolicyRule{&role.Rules[j]}, &role.Rules[i]) && (!same || j < i) {
				idx = append(idx, fmt.Sprintf("rule %d %s (covered by rule %d)", i, graph.FormatRule(&role.Rules[i]), j))
				break
			}
		}
	}
	if len(idx) == 0 {
		return nil, nil
	}
	return []hit{{object: &k.ref, namespace: role.Namespace, classify: role,
		message: fmt.Sprintf("%s: %s", refName(k.ref), strings.Join(idx, "; "))}}, nil
}

// knownVerbs are the verbs the API server's built-in resources understand, plus the RBAC, impersonation and
// CSR special verbs.
var knownVerbs = []string{"*", "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection",
	"bind", "escalate", "impersonate", "approve", "sign", "attest", "use", "proxy", "put", "post", "head", "options"}

func ineffectiveRules(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	role := roleOf(w, k.ref)
	if role == nil {
		return nil, nil
	}
	namespacedOnly := role.Kind == graph.KindRole
	if !namespacedOnly {
		clusterWide, inNamespace := w.ec.snap.RoleBoundBy(k.ref)
		namespacedOnly = inNamespace && !clusterWide
	}
	var problems []string
	for i := range role.Rules {
		rule := &role.Rules[i]
		builtin := false
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				name, sub, _ := strings.Cut(res, "/")
				if sub == "*" && name != "*" {
					problems = append(problems, fmt.Sprintf("rule %d: %q is not a wildcard: it names only a subresource called \"*\"", i, res))
				}
				if _, known := graph.ClusterScoped(g, name); known {
					builtin = true
				}
				// bind on ClusterRoles is checked in the binding's namespace, so a RoleBinding grants it.
				bindOnly := g == rbacGroup && name == "clusterroles" && len(rule.Verbs) == 1 && rule.Verbs[0] == "bind"
				if namespacedOnly && clusterScoped(g, name) && !(g == "" && name == "namespaces") && !bindOnly {
					problems = append(problems, fmt.Sprintf("rule %d: %s is cluster-scoped, which a %s cannot grant",
						i, res, grantorOf(role)))
				}
			}
		}
		if namespacedOnly && len(rule.NonResourceURLs) > 0 {
			problems = append(problems, fmt.Sprintf("rule %d: non-resource URLs are granted only through ClusterRoleBindings", i))
		}
		if builtin {
			for _, v := range rule.Verbs {
				if !slices.Contains(knownVerbs, v) {
					problems = append(problems, fmt.Sprintf("rule %d: verb %q means nothing to built-in resources (verbs are case-sensitive)", i, v))
				}
			}
		}
	}
	if len(problems) == 0 {
		return nil, nil
	}
	slices.Sort(problems)
	return []hit{{object: &k.ref, namespace: role.Namespace, classify: role,
		message: fmt.Sprintf("%s: %s", refName(k.ref), strings.Join(slices.Compact(problems), "; "))}}, nil
}

func grantorOf(role *graph.Role) string {
	if role.Kind == graph.KindRole {
		return "Role"
	}
	return "ClusterRole bound only by RoleBindings"
}

// workloadOf names the workload that owns a pod: a ReplicaSet made by a Deployment counts as the Deployment
// (its name without the pod-template-hash suffix), so that two ReplicaSets of one rollout are one workload.
func workloadOf(p *graph.Pod) string {
	if p.Owner == nil {
		return "Pod/" + p.Name
	}
	name := p.Owner.Name
	if hash := p.Labels["pod-template-hash"]; p.Owner.Kind == "ReplicaSet" && hash != "" {
		if base, ok := strings.CutSuffix(name, "-"+hash); ok {
			return "Deployment/" + base
		}
	}
	return p.Owner.Kind + "/" + name
}

func sharedServiceAccount(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	var owners []string
	for _, pref := range w.ec.snap.PodsOf(k.ref.Namespace, k.ref.Name) {
		if o, ok := w.ec.snap.Object(pref); ok {
			owners = append(owners, workloadOf(o.(*graph.Pod)))
		}
	}
	slices.Sort(owners)
	owners = slices.Compact(owners)
	if len(owners) < 2 {
		return nil, nil
	}
	h := hit{subject: &k.ref, object: &k.ref, namespace: k.ref.Namespace,
		message: fmt.Sprintf("%s is used by %d workloads: %s", refName(k.ref), len(owners), strings.Join(owners, ", "))}
	subj := w.subjectFor(k.ref, k.ref.Namespace)
	ev := subj.evaluation()
	ev.reset()
	write := false
	for _, verb := range []string{"create", "update", "patch", "delete"} {
		for _, res := range []string{"pods", "secrets", "configmaps", "deployments.apps"} {
			group, resource, _ := parseResource(res)
			if ev.ask(graph.Action{Verb: verb, APIGroup: group, Resource: resource}, false) {
				write = true
			}
		}
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if ev.ask(graph.Action{Verb: verb, Resource: "secrets"}, false) {
			write = true
		}
	}
	if write {
		sev := SeverityMedium
		h.severity = &sev
		h.grants = ev.evidence()
	}
	return []hit{h}, nil
}

func modifiedDefault(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	base := w.ec.e.opts.Baseline
	if base == nil {
		return nil, nil
	}
	o, ok := w.ec.snap.Object(k.ref)
	if !ok {
		return nil, nil
	}
	if _, modified, reason := base.Classify(o); modified {
		return []hit{{object: &k.ref, namespace: k.ref.Namespace,
			message: fmt.Sprintf("%s differs from the platform default: %s", refName(k.ref), reason)}}, nil
	}
	return nil, nil
}
