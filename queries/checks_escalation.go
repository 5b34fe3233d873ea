package queries

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kiem-io/kiem/graph"
)

const rbacGroup = "rbac.authorization.k8s.io"

// bindRelevant and escalateRelevant are what the two checks need a grant of the subject's own for: bind, or
// escalate, and writing bindings, or roles.
var (
	bindRelevant = slices.Concat(
		probesFor(true, []string{"bind"}, "clusterroles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io"),
		probesFor(true, []string{"create", "update", "patch"}, "rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io"))
	escalateRelevant = probesFor(true, []string{"escalate", "create", "update", "patch"},
		"clusterroles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io")
)

func init() {
	register(&check{
		name:   "bind-escalation",
		target: TargetSubject,
		doc: "the subject can write bindings and holds bind on a role that grants more than it already holds " +
			"in that scope (RISKS.md KIEM-ESC-007, M9)",
		run: bindEscalation,
		probes: slices.Concat(bindRelevant,
			probesFor(false, []string{"bind"}, "clusterroles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io"),
			probesFor(false, []string{"create", "update", "patch"}, "rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io")),
	})
	register(&check{
		name:   "escalate-bound-role",
		target: TargetSubject,
		doc:    "the subject holds escalate and can update (or create) a role that a binding of it references (KIEM-ESC-008)",
		run:    escalateBoundRole,
		probes: slices.Concat(escalateRelevant,
			probesFor(false, []string{"create"}, "clusterroles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io")),
	})
}

// ownsAny reports whether one of the grants is granted by a binding naming p itself in scope.
func ownsAny(grants []graph.Permission, p graph.ObjectRef, scope string) bool {
	for i := range grants {
		if perm := &grants[i]; perm.Namespace == scope && names(&perm.GrantPath, p) {
			return true
		}
	}
	return false
}

// holdsEverything reports whether a rule the identity holds in the scope grants every verb on every resource of
// every group and, cluster-wide, every URL (a RoleBinding cannot grant URLs, so in a namespace they do not count).
func (ev *evaluation) holdsEverything() bool {
	ev.ensure()
	res, url := false, false
	for _, bs := range [2][]bound{ev.cluster, ev.local} {
		for i := range bs {
			res = res || bs[i].bits.everything
			url = url || bs[i].bits.everyURL
		}
	}
	return res && (url || ev.scope != "")
}

// bindNames returns the roles of one resource (roles or clusterroles) the subject may bind in scope: all is true
// when a rule without resourceNames allows it, else names lists those the rules name.
func bindNames(ev *evaluation, resource string) (all bool, names []string) {
	a := graph.Action{Verb: "bind", APIGroup: rbacGroup, Resource: resource}
	if ev.allows(a, false) {
		return true, nil
	}
	for _, g := range ev.answer(a, true) {
		names = append(names, g.Rule.ResourceNames...)
	}
	slices.Sort(names)
	return false, slices.Compact(names)
}

func bindEscalation(w *worker, r *Rule, k itemKey, scope string) ([]hit, error) {
	ev := w.cur.evaluation()
	ev.reset()
	// Most subjects hold no bind at all: nothing to walk.
	allCR, crNames := bindNames(ev, "clusterroles")
	allR, rNames := false, []string(nil)
	if scope != "" {
		allR, rNames = bindNames(ev, "roles")
	}
	if !allCR && !allR && len(crNames) == 0 && len(rNames) == 0 {
		return nil, nil
	}
	// A subject finding needs a grant naming the subject itself in this scope: when bind and the binding
	// writes all come through its groups, the groups' own evaluation reports them.
	if !ev.owns(bindRelevant) {
		return nil, nil
	}
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
		// The bindings it may update: every one of a kind (asked once), or those its rules name.
		all, named := map[string]bool{}, map[string]map[string]bool{}
		for _, res := range resources {
			for _, verb := range []string{"update", "patch"} {
				a := graph.Action{Verb: verb, APIGroup: rbacGroup, Resource: res}
				if ev.ask(a, false) {
					all[res] = true
					continue
				}
				for _, g := range ev.answer(a, true) {
					if named[res] == nil {
						named[res] = map[string]bool{}
					}
					for _, n := range g.Rule.ResourceNames {
						named[res][n] = true
					}
				}
			}
		}
		visit := func(o graph.Object) bool {
			b := o.(*graph.Binding)
			res := "rolebindings"
			if b.Kind == graph.KindClusterRoleBinding {
				res = "clusterrolebindings"
			}
			ref, ok := b.RoleRefObject()
			switch {
			case !ok:
			case all[res]:
				existing[ref] = true
			case named[res][b.Name]:
				for _, verb := range []string{"update", "patch"} {
					if ev.ask(graph.Action{Verb: verb, APIGroup: rbacGroup, Resource: res, Name: b.Name}, false) {
						existing[ref] = true
					}
				}
			}
			return true
		}
		if len(all) > 0 || len(named) > 0 {
			w.ec.snap.Each(graph.KindRoleBinding, scope, visit) // "" visits every namespace
			if scope == "" {
				w.ec.snap.Each(graph.KindClusterRoleBinding, "", visit)
			}
		}
		if len(existing) == 0 {
			return nil, nil
		}
	}
	// What the subject holds here decides which roles are stronger than its own, and many subjects hold the
	// same roles bound the same way: those answers are worked out once per set of roles.
	var idx *ruleIndex
	index := func() *ruleIndex {
		if idx == nil {
			idx = indexRules(ev.scopeRules())
			idx.scope = scope
		}
		return idx
	}
	if ev.holdsEverything() {
		return nil, nil // nothing is stronger than every verb on every resource
	}
	// Roles are tried broadest first and the search stops at the third stronger one: the finding needs one,
	// the message names a few, and a namespace administrator who may bind any ClusterRole is found at
	// cluster-admin.
	const enough = 3
	var stronger []string
	consider := func(role *graph.Role, resource string, all bool) bool {
		if existing != nil && !existing[role.Ref()] {
			return true
		}
		bind := graph.Action{Verb: "bind", APIGroup: rbacGroup, Resource: resource}
		if !all {
			bind.Name = role.Name
		}
		if !ev.ask(bind, false) {
			return true
		}
		if !index().coversAll(role) {
			stronger = append(stronger, refName(role.Ref()))
		}
		return len(stronger) < enough
	}
	switch {
	case allCR && existing == nil:
		// Every ClusterRole may be bound.
		ev.ask(graph.Action{Verb: "bind", APIGroup: rbacGroup, Resource: "clusterroles"}, false)
		stronger = w.ec.perRoleSet("stronger", w.ec.roleSetKey(ev, scope), func() any {
			var out []string
			for _, role := range w.ec.clusterRolesByBreadth() {
				if !index().coversAll(role) {
					if out = append(out, refName(role.Ref())); len(out) == enough {
						break
					}
				}
			}
			return out
		}).([]string)
	case allCR:
		for _, role := range w.ec.clusterRolesByBreadth() {
			if !consider(role, "clusterroles", true) {
				break
			}
		}
	default:
		for _, n := range crNames {
			if role := roleOf(w, graph.ObjectRef{Kind: graph.KindClusterRole, Name: n}); role != nil && !consider(role, "clusterroles", false) {
				break
			}
		}
	}
	stronger = slices.Clone(stronger)
	if scope != "" && len(stronger) < enough {
		if allR {
			w.ec.snap.Each(graph.KindRole, scope, func(o graph.Object) bool { return consider(o.(*graph.Role), "roles", true) })
		} else {
			for _, n := range rNames {
				if role := roleOf(w, graph.ObjectRef{Kind: graph.KindRole, Namespace: scope, Name: n}); role != nil && !consider(role, "roles", false) {
					break
				}
			}
		}
	}
	if len(stronger) == 0 {
		return nil, nil
	}
	slices.Sort(stronger)
	shown := stronger
	how := "new " + bindingKindPlural(scope)
	if !creates {
		how = "bindings it can update"
	}
	msg := fmt.Sprintf("%s can bind %s to itself through %s %s", refName(k.ref), strings.Join(shown, ", "), how, where(scope))
	if len(stronger) == enough {
		msg += ", and possibly more roles stronger than its own"
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
	ev := w.cur.evaluation()
	ev.reset()
	if !ev.allows(graph.Action{Verb: "escalate", APIGroup: rbacGroup, Resource: "roles"}, true) &&
		!ev.allows(graph.Action{Verb: "escalate", APIGroup: rbacGroup, Resource: "clusterroles"}, true) {
		return nil, nil // the common case: no escalate at all
	}
	if !ev.owns(escalateRelevant) {
		return nil, nil
	}
	// The roles bound to the identity in this scope: those its permissions come from, and those the subject's
	// own bindings here name even when they grant nothing yet (empty, or missing: creating it is the way in).
	seen := map[graph.ObjectRef]bool{}
	var roles []graph.ObjectRef
	for _, b := range ev.scopeBounds() {
		if ref := *b.RoleRef(); len(b.Role().Rules) > 0 && !seen[ref] {
			seen[ref] = true
			roles = append(roles, ref)
		}
	}
	kind := graph.KindRoleBinding
	if scope == "" {
		kind = graph.KindClusterRoleBinding
	}
	w.ec.snap.Each(kind, scope, func(o graph.Object) bool {
		b := o.(*graph.Binding)
		for i := range b.Subjects {
			if p, ok := principalOf(&b.Subjects[i], b.Namespace); ok && p == k.ref {
				if ref, ok := b.RoleRefObject(); ok && !seen[ref] {
					seen[ref] = true
					roles = append(roles, ref)
				}
			}
		}
		return true
	})
	var targets []string
	for _, roleRef := range roles {
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
	if len(targets) == 0 {
		return nil, nil
	}
	slices.Sort(targets)
	msg := fmt.Sprintf("%s can add any permission to %s, which is bound to it %s", refName(k.ref),
		strings.Join(targets, ", "), where(scope))
	return []hit{{subject: &k.ref, namespace: scope, message: msg, grants: ev.evidence()}}, nil
}

// roleSetKey names the set of roles bound to ev's identity in scope, and whether the scope is cluster-wide.
func (ec *evalContext) roleSetKey(ev *evaluation, scope string) string {
	var ids []int64
	for _, b := range ev.scopeBounds() {
		ids = append(ids, ec.roleID(b.Role()))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	key := make([]byte, 0, 8*len(ids)+1)
	if scope == "" {
		key = append(key, 'c')
	} else {
		key = append(key, 'n')
	}
	for _, id := range ids {
		key = strconv.AppendInt(key, id, 36)
		key = append(key, ',')
	}
	return string(key)
}

// perRoleSet returns compute's answer to the question what for a set of roles (roleSetKey), computing it once
// per evaluation.
func (ec *evalContext) perRoleSet(what, key string, compute func() any) any {
	k := what + "/" + key
	if v, ok := ec.byRoleSet.Load(k); ok {
		return v
	}
	v := compute()
	ec.byRoleSet.Store(k, v)
	return v
}

// roleID numbers the roles of an evaluation, for keys made of sets of roles.
func (ec *evalContext) roleID(r *graph.Role) int64 {
	if id, ok := ec.roleIDs.Load(r); ok {
		return id.(int64)
	}
	id, _ := ec.roleIDs.LoadOrStore(r, ec.nextRoleID.Add(1))
	return id.(int64)
}
