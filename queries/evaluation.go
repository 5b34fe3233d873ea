package queries

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// evaluation is what a subject's permission functions read: the identity's bindings in the scope they are asked
// in, and the grants that answered yes so far (the evidence). One evaluation serves one worker at a time.
//
// Questions an engine knows in advance (its probes) are answered from bitsets: every role's answers to all of
// them are computed once (bitsCache), and the identity's answers in a scope are the union over the bindings
// that apply there. Which grants answered is worked out only when a finding needs the evidence. Other questions
// are matched against the rules of those bindings.
type evaluation struct {
	ec   *evalContext
	id   graph.Identity
	self graph.ObjectRef // grants of bindings naming it are the subject's own
	// hasSelf is false for a binding subject that matches nobody: it holds nothing.
	hasSelf bool
	scope   string

	clusterLoaded bool
	cluster       []bound // its ClusterRoleBindings
	clusterAll    bitset  // their answers
	clusterOwn    bitset  // the answers of those naming self
	clusterNamed  bool    // one of their roles answers per scope (roleBits.named)

	scopeLoaded bool
	local       []bound                    // the RoleBindings of scope
	mask        bitset                     // the probes a RoleBinding of scope can answer
	answers     bitset                     // the identity's answers in scope
	own         bitset                     // the answers in scope of the bindings naming self
	byProbe     map[int][]graph.Permission // see candidates

	// asked are the probes asked in scope that answered yes since the last reset: their grants are evidence.
	asked bitset
	// found is the evidence worked out so far (from other scopes, and questions that are not probes); seen keys it.
	found []graph.Permission
	seen  map[grantKey]struct{}
	// spare holds a slice given back by recycle, for the next rule's evidence; it is the worker's, shared by
	// the evaluations it runs one after the other. scratch holds the answer of a question that is not a probe
	// while it is recorded.
	spare   *[]graph.Permission
	scratch []graph.Permission
}

// bound is one binding of the identity with its role's answers.
type bound struct {
	graph.Bound
	bits *roleBits
	own  bool
}

type grantKey struct {
	binding *graph.ObjectRef
	rule    int
}

func (ec *evalContext) newEvaluation(p graph.ObjectRef, id graph.Identity, scope string) *evaluation {
	n := len(ec.e.table.probes)
	return &evaluation{ec: ec, id: id, self: p, hasSelf: true, scope: scope, asked: newBitset(n)}
}

// setScope moves the evaluation to another scope; the evidence gathered so far is kept.
func (ev *evaluation) setScope(scope string) {
	if scope != ev.scope {
		ev.flush()
		ev.scope = scope
		ev.scopeLoaded = false
	}
}

// reset starts the evidence of another rule.
func (ev *evaluation) reset() {
	clear(ev.asked)
	switch {
	case ev.found != nil: // not handed out: still ours
		ev.found = ev.found[:0]
	case ev.spare != nil:
		ev.found, *ev.spare = *ev.spare, nil
	}
	ev.seen = nil
}

// recycle gives back a slice evidence returned, once nothing refers to it any more: the next rule's evidence is
// gathered in it.
func (ev *evaluation) recycle(grants []graph.Permission) {
	if ev.spare != nil && cap(grants) > 0 {
		*ev.spare = grants[:0]
	}
}

func (ev *evaluation) loadCluster() {
	if ev.clusterLoaded {
		return
	}
	ev.clusterLoaded = true
	n := len(ev.ec.e.table.probes)
	ev.clusterAll, ev.clusterOwn = newBitset(n), newBitset(n)
	if !ev.hasSelf {
		return
	}
	ev.cluster = ev.bounds(ev.cluster[:0], "")
	for i := range ev.cluster {
		b := &ev.cluster[i]
		ev.clusterAll.or(b.bits.all)
		if b.own {
			ev.clusterOwn.or(b.bits.all)
		}
		ev.clusterNamed = ev.clusterNamed || b.bits.named
	}
}

func (ev *evaluation) bounds(dst []bound, ns string) []bound {
	cache := ev.ec.e.bits
	ev.ec.snap.VisitBound(ev.id, ns, func(b graph.Bound) bool {
		p, ok := principalOf(b.Subject(), b.Namespace())
		dst = append(dst, bound{Bound: b, bits: cache.of(b.Role()), own: ok && p == ev.self})
		return true
	})
	return dst
}

// ensure loads the bindings that apply in the scope and the identity's answers there.
func (ev *evaluation) ensure() {
	if ev.scopeLoaded {
		return
	}
	ev.scopeLoaded = true
	ev.loadCluster()
	t, cache := ev.ec.e.table, ev.ec.e.bits
	ev.mask = t.nsMask(ev.scope)
	clear(ev.byProbe)
	if ev.answers == nil {
		ev.answers, ev.own = newBitset(len(t.probes)), newBitset(len(t.probes))
	}
	copy(ev.answers, ev.clusterAll)
	clear(ev.own)
	if ev.clusterNamed && ev.scope != "" {
		for i := range ev.cluster {
			ev.answers.or(cache.roleBitsIn(ev.cluster[i].Role(), ev.cluster[i].bits, ev.scope))
		}
	}
	if ev.scope == "" {
		copy(ev.own, ev.clusterOwn)
		ev.local = ev.local[:0]
		return
	}
	ev.local = ev.local[:0]
	if ev.hasSelf {
		ev.local = ev.bounds(ev.local, ev.scope)
	}
	for i := range ev.local {
		b := &ev.local[i]
		bits := cache.roleBitsIn(b.Role(), b.bits, ev.scope)
		ev.answers.orMasked(bits, ev.mask)
		if b.own {
			ev.own.orMasked(bits, ev.mask)
		}
	}
}

// ownBounds returns the bindings naming the subject itself whose grants count in the scope: its
// ClusterRoleBindings cluster-wide, its RoleBindings of the scope in a namespace.
func (ev *evaluation) ownBounds() []bound {
	ev.ensure()
	bs := ev.cluster
	if ev.scope != "" {
		bs = ev.local
	}
	var out []bound
	for _, b := range bs {
		if b.own {
			out = append(out, b)
		}
	}
	return out
}

// ownsAnything reports whether a binding naming the subject itself grants anything in the scope.
func (ev *evaluation) ownsAnything() bool {
	for _, b := range ev.ownBounds() {
		if len(b.Role().Rules) > 0 {
			return true
		}
	}
	return false
}

// ownsSomeOf reports whether a grant of the subject's own in the scope answers one of the probes: only those can
// make a subject finding in this scope.
func (ev *evaluation) ownsSomeOf(probes bitset) bool {
	ev.ensure()
	return ev.own.intersects(probes)
}

// ownsAsked reports whether a grant of the subject's own in the scope is part of the evidence gathered since the
// last reset.
func (ev *evaluation) ownsAsked() bool {
	ev.ensure()
	if ev.own.intersects(ev.asked) {
		return true
	}
	for i := range ev.found {
		if p := &ev.found[i]; p.Namespace == ev.scope && names(&p.GrantPath, ev.self) {
			return true
		}
	}
	return false
}

// ask answers whether the identity may do a in the evaluation's scope, with the authorizer's semantics: a
// RoleBinding's grants count in its namespace only, non-resource URLs only through ClusterRoleBindings. With some,
// a rule restricted to resourceNames counts as allowing the request for one of its names. Every grant that
// allows it is evidence.
func (ev *evaluation) ask(a graph.Action, some bool) bool {
	if id, ok := ev.ec.e.table.lookup(a, some); ok {
		return ev.askProbe(id)
	}
	ev.scratch = ev.match(ev.scratch[:0], a, some)
	for _, g := range ev.scratch {
		ev.add(g)
	}
	return len(ev.scratch) > 0
}

// allows is ask without evidence.
func (ev *evaluation) allows(a graph.Action, some bool) bool {
	if id, ok := ev.ec.e.table.lookup(a, some); ok {
		ev.ensure()
		return ev.answers.has(id)
	}
	ev.scratch = ev.match(ev.scratch[:0], a, some)
	return len(ev.scratch) > 0
}

// owns reports whether a grant of the subject's own in the scope answers one of the questions.
func (ev *evaluation) owns(ps []probe) bool {
	ev.ensure()
	for _, p := range ps {
		if id, ok := ev.ec.e.table.lookup(p.action, p.some); ok {
			if ev.own.has(id) {
				return true
			}
		} else if ev.scratch = ev.match(ev.scratch[:0], p.action, p.some); ownsAny(ev.scratch, ev.self, ev.scope) {
			return true
		}
	}
	return false
}

// askProbe is ask for a probe.
func (ev *evaluation) askProbe(id int) bool {
	ev.ensure()
	if ev.answers.has(id) {
		ev.asked.set(id)
		return true
	}
	return false
}

// answer returns the grants that allow a in the scope, without recording them.
func (ev *evaluation) answer(a graph.Action, some bool) []graph.Permission {
	id, ok := ev.ec.e.table.lookup(a, some)
	if !ok {
		return ev.match(nil, a, some)
	}
	ev.ensure()
	if !ev.answers.has(id) {
		return nil
	}
	return slices.Clip(ev.candidates(id))
}

// match is answer for a question that is not a probe, appended to dst: every rule of the bindings is asked.
func (ev *evaluation) match(dst []graph.Permission, a graph.Action, some bool) []graph.Permission {
	ev.ensure()
	a.Namespace = requestNamespace(a, ev.scope)
	if a.Namespace != "" && a.APIGroup == "" && a.Resource == "namespaces" && a.Name == "" {
		a.Name = a.Namespace // the Namespace object itself
	}
	out := dst
	// A question about one named object is allowed only by rules that allow it for some object: when that is
	// a probe, only the rules answering it are asked. (Not for the Namespace object, whose request namespace
	// follows from its name.)
	if a.IsResource() && a.Name != "" && !isNamespaceObject(a) {
		unnamed := a
		unnamed.Name, unnamed.Namespace = "", ""
		if id, ok := ev.ec.e.table.lookup(unnamed, true); ok {
			if !ev.answers.has(id) {
				return out
			}
			for _, g := range ev.candidates(id) {
				if ruleAllows(g.Rule, a, some) {
					out = append(out, g)
				}
			}
			return out
		}
	}
	visit := func(bs []bound) {
		for i := range bs {
			rules := bs[i].Role().Rules
			for r := range rules {
				if ruleAllows(&rules[r], a, some) {
					out = append(out, bs[i].Permission(r))
				}
			}
		}
	}
	visit(ev.cluster)
	if a.IsResource() && a.Namespace != "" {
		visit(ev.local)
	}
	return out
}

// candidates returns the grants that answer probe id in the scope, kept for the scope: checks ask about many
// named objects of one kind, and only these grants can allow any of them.
func (ev *evaluation) candidates(id int) []graph.Permission {
	if gs, ok := ev.byProbe[id]; ok {
		return gs
	}
	probes := newBitset(len(ev.ec.e.table.probes))
	probes.set(id)
	gs := ev.grantsOf(nil, probes)
	if ev.byProbe == nil {
		ev.byProbe = map[int][]graph.Permission{}
	}
	ev.byProbe[id] = gs
	return gs
}

// grantsOf appends the grants that answer one of the probes in the scope. Most bindings answer none of a
// finding's questions: they are passed over on their role's union before any rule is looked at.
func (ev *evaluation) grantsOf(dst []graph.Permission, probes bitset) []graph.Permission {
	ev.ensure()
	for pass, bs := range [2][]bound{ev.cluster, ev.local} {
		for i := range bs {
			b := &bs[i]
			if pass == 0 && !b.bits.loose.intersects(probes) || pass == 1 && !intersects3(b.bits.loose, probes, ev.mask) {
				continue
			}
			role := b.Role()
			for r := range role.Rules {
				rb := b.bits.rules[r]
				if b.bits.named && b.bits.namedRule[r] {
					rb = ev.ec.e.bits.ruleBitsIn(role, b.bits, r, ev.scope)
				}
				if pass == 0 && rb.intersects(probes) || pass == 1 && intersects3(rb, probes, ev.mask) {
					dst = append(dst, b.Permission(r))
				}
			}
		}
	}
	return dst
}

// flush turns the probes asked into evidence.
func (ev *evaluation) flush() {
	if ev.asked == nil || ev.asked.empty() || !ev.scopeLoaded {
		return
	}
	fresh := len(ev.found) == 0
	start := len(ev.found)
	ev.found = ev.grantsOf(ev.found, ev.asked)
	if !fresh {
		added := ev.found[start:]
		ev.found = ev.found[:start]
		for _, g := range added {
			ev.add(g)
		}
	}
	clear(ev.asked)
}

// add records one grant as evidence, once.
func (ev *evaluation) add(g graph.Permission) {
	if ev.seen == nil {
		ev.seen = make(map[grantKey]struct{}, len(ev.found)+1)
		for _, f := range ev.found {
			ev.seen[grantKey{f.Binding, f.RuleIndex}] = struct{}{}
		}
	}
	k := grantKey{g.Binding, g.RuleIndex}
	if _, dup := ev.seen[k]; dup {
		return
	}
	ev.seen[k] = struct{}{}
	ev.found = append(ev.found, g)
}

// evidence returns the grants that answered yes since the last reset. The slice belongs to the caller.
func (ev *evaluation) evidence() []graph.Permission {
	ev.flush()
	out := ev.found
	ev.found, ev.seen = nil, nil
	return out
}

// scopeBounds returns the bindings that apply in the scope: the ClusterRoleBindings, then the scope's
// RoleBindings.
func (ev *evaluation) scopeBounds() []bound {
	ev.ensure()
	return append(slices.Clip(ev.cluster), ev.local...)
}

// scopeRules returns the rules granted in the scope.
func (ev *evaluation) scopeRules() []*rbacv1.PolicyRule {
	var out []*rbacv1.PolicyRule
	for _, b := range ev.scopeBounds() {
		rules := b.Role().Rules
		for i := range rules {
			out = append(out, &rules[i])
		}
	}
	return out
}

func ruleAllows(r *rbacv1.PolicyRule, a graph.Action, some bool) bool {
	if some && a.IsResource() && a.Name == "" && len(r.ResourceNames) > 0 {
		a.Name = r.ResourceNames[0]
	}
	return graph.RuleAllows(r, a)
}

// requestNamespace is the namespace a real request for a in scope carries: none for cluster-scoped built-in
// resources (so RoleBindings cannot grant them), except the Namespace object itself, which the apiserver
// authorizes in its own namespace for get, update, patch and delete (a RoleBinding there can grant those).
func requestNamespace(a graph.Action, scope string) string {
	if !a.IsResource() || scope == "" {
		return ""
	}
	if a.APIGroup == "" && a.Resource == "namespaces" {
		switch a.Verb {
		case "get", "update", "patch", "delete":
			if a.Name == "" || a.Name == scope {
				return scope
			}
		}
		return ""
	}
	// bind is checked in the namespace of the binding being written (the apiserver's BindingAuthorized): bind on
	// ClusterRoles granted by a RoleBinding lets its subject bind them in that namespace.
	if a.Verb == "bind" && a.APIGroup == rbacGroup && a.Resource == "clusterroles" {
		return scope
	}
	if clusterScoped(a.APIGroup, a.Resource) {
		return ""
	}
	return scope
}

// clusterScoped reports whether a built-in resource is cluster-scoped, the impersonation resources included
// (users, groups and uids are authorized cluster-wide; serviceaccounts in their namespace).
func clusterScoped(group, resource string) bool {
	switch {
	case group == "" && (resource == "users" || resource == "groups"):
		return true
	case group == "authentication.k8s.io" && (resource == "uids" || resource == "userextras"):
		return true
	}
	cluster, _ := graph.ClusterScoped(group, resource)
	return cluster
}
