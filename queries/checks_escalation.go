package queries

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kiem-io/kiem/graph"
	rbacv1 "k8s.io/api/rbac/v1"
)

const rbacGroup = "rbac.authorization.k8s.io"

func init() {
	register(&check{
		name:   "bind-escalation",
		target: TargetSubject,
		doc: "the subject can write bindings and holds bind on a role that grants more than it already holds " +
			"in that scope (RISKS.md KIEM-ESC-007, M9)",
		run: bindEscalation,
	})
	register(&check{
		name:   "escalate-bound-role",
		target: TargetSubject,
		doc:    "the subject holds escalate and can update (or create) a role that a binding of it references (KIEM-ESC-008)",
		run:    escalateBoundRole,
	})
}

// scopePerms returns the rules of the permissions that apply in scope.
func scopePerms(ev *evaluation, scope string) []*rbacv1.PolicyRule {
	var out []*rbacv1.PolicyRule
	for i := range ev.perms {
		if ns := ev.perms[i].Namespace; ns == "" || ns == scope {
			out = append(out, ev.perms[i].Rule)
		}
	}
	return out
}

// coversAll reports whether owner covers every rule of role.
func coversAll(owner []*rbacv1.PolicyRule, role *graph.Role) bool {
	for i := range role.Rules {
		if !covers(owner, &role.Rules[i]) {
			return false
		}
	}
	return true
}

func bindEscalation(w *worker, r *Rule, k itemKey, scope string) ([]hit, error) {
	ev := w.cur.ev
	ev.reset()
	// Where the subject can write bindings: in its namespace, RoleBindings; cluster-wide, ClusterRoleBindings
	// and the RoleBindings of every namespace.
	resources := []string{"rolebindings"}
	if scope == "" {
		resources = append(resources, "clusterrolebindings")
	}
	creates := false
	for _, res := range resources {
		if ev.ask(graph.Action{Verb: "create", APIGroup: rbacGroup, Resource: res}, false) {
			creates = true
		}
	}
	// roleRef is immutable: without create, update or patch only adds subjects to bindings that exist, so only
	// the roles those reference can be gained.
	var existing map[graph.ObjectRef]bool
	if !creates {
		existing = map[graph.ObjectRef]bool{}
		visit := func(o graph.Object) bool {
			b := o.(*graph.Binding)
			res := "rolebindings"
			if b.Kind == graph.KindClusterRoleBinding {
				res = "clusterrolebindings"
			}
			for _, verb := range []string{"update", "patch"} {
				if ev.ask(graph.Action{Verb: verb, APIGroup: rbacGroup, Resource: res, Name: b.Name}, false) {
					if ref, ok := b.RoleRefObject(); ok {
						existing[ref] = true
					}
				}
			}
			return true
		}
		w.ec.snap.Each(graph.KindRoleBinding, scope, visit) // "" visits every namespace
		if scope == "" {
			w.ec.snap.Each(graph.KindClusterRoleBinding, "", visit)
		}
		if len(existing) == 0 {
			return nil, nil
		}
	}
	owner := scopePerms(ev, scope)
	var stronger []string
	consider := func(role *graph.Role, resource string) {
		if existing != nil && !existing[role.Ref()] {
			return
		}
		if !ev.ask(graph.Action{Verb: "bind", APIGroup: rbacGroup, Resource: resource, Name: role.Name}, false) {
			return
		}
		if !coversAll(owner, role) {
			stronger = append(stronger, refName(role.Ref()))
		}
	}
	w.ec.snap.Each(graph.KindClusterRole, "", func(o graph.Object) bool {
		consider(o.(*graph.Role), "clusterroles")
		return true
	})
	if scope != "" {
		w.ec.snap.Each(graph.KindRole, scope, func(o graph.Object) bool {
			consider(o.(*graph.Role), "roles")
			return true
		})
	}
	if len(stronger) == 0 {
		return nil, nil
	}
	slices.Sort(stronger)
	shown := stronger
	if len(shown) > 3 {
		shown = shown[:3]
	}
	how := "new " + bindingKindPlural(scope)
	if !creates {
		how = "bindings it can update"
	}
	msg := fmt.Sprintf("%s can bind %s to itself through %s %s", refName(k.ref), strings.Join(shown, ", "), how, where(scope))
	if n := len(stronger) - len(shown); n > 0 {
		msg += fmt.Sprintf(" (and %d more roles stronger than its own)", n)
	}
	return []hit{{subject: &k.ref, namespace: scope, message: msg, grants: ev.evidence()}}, nil
}

func bindingKindPlural(scope string) string {
	if scope == "" {
		return "ClusterRoleBindings or RoleBindings"
	}
	return "RoleBindings"
}

func escalateBoundRole(w *worker, r *Rule, k itemKey, scope string) ([]hit, error) {
	ev := w.cur.ev
	ev.reset()
	// The roles bindings of the identity reference in this scope, existing or not: the subject itself and its
	// groups.
	refs := []graph.ObjectRef{k.ref}
	for _, g := range w.cur.Groups {
		refs = append(refs, graph.ObjectRef{Kind: graph.KindGroup, Name: g})
	}
	seen := map[graph.ObjectRef]bool{}
	var targets []string
	for _, ref := range refs {
		for _, bref := range w.ec.snap.BindingsOf(ref) {
			if bref.Namespace != scope {
				continue
			}
			o, ok := w.ec.snap.Object(bref)
			if !ok {
				continue
			}
			roleRef, ok := o.(*graph.Binding).RoleRefObject()
			if !ok || seen[roleRef] {
				continue
			}
			seen[roleRef] = true
			resource := "clusterroles"
			if roleRef.Kind == graph.KindRole {
				resource = "roles"
			}
			esc := graph.Action{Verb: "escalate", APIGroup: rbacGroup, Resource: resource, Name: roleRef.Name}
			if !ev.ask(esc, false) {
				continue
			}
			_, exists := w.ec.snap.Object(roleRef)
			change := false
			if exists {
				for _, verb := range []string{"update", "patch"} {
					if ev.ask(graph.Action{Verb: verb, APIGroup: rbacGroup, Resource: resource, Name: roleRef.Name}, false) {
						change = true
					}
				}
			} else {
				change = ev.ask(graph.Action{Verb: "create", APIGroup: rbacGroup, Resource: resource}, false)
			}
			if change {
				targets = append(targets, refName(roleRef))
			}
		}
	}
	if len(targets) == 0 {
		return nil, nil
	}
	slices.Sort(targets)
	msg := fmt.Sprintf("%s can add any permission to %s, which is bound to it %s", refName(k.ref),
		strings.Join(targets, ", "), where(scope))
	return []hit{{subject: &k.ref, namespace: scope, message: msg, grants: ev.evidence()}}, nil
}
