package queries

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// evaluation is what a subject's permission functions read: the identity's permissions, the scope they are asked
// in, and the grants that answered yes so far (the evidence). One evaluation serves one worker at a time.
type evaluation struct {
	scope string
	// perms are loaded by load on first use, so that rules that ask nothing cost nothing.
	load   func() []graph.Permission
	loaded bool
	err    error
	perms  []graph.Permission
	// cluster and byNS index perms: the cluster-wide ones, and those of each namespace.
	cluster []int32
	byNS    map[string][]int32
	// hits are indexes into perms of the grants that allowed something, in order, without repeats.
	hits []int32
	hit  map[int32]struct{}
	// memo keeps the answers of this scope: rules ask the same few questions again and again; clusterMemo
	// keeps the part the cluster-wide grants give, which is the same in every scope.
	memo        map[probe][]int32
	clusterMemo map[probe][]int32
	// probes are the engine's constant questions (see Engine.probes), answered at most once per scope:
	// answered[i] is 0 (not yet), 1 (not by a grant of the subject's own in the scope) or 2 (yes, by one).
	probes   []probe
	answered []uint8
	// own marks the permissions granted by bindings naming the evaluated subject itself (subject rules only);
	// ownIn lists them by scope.
	own   []bool
	ownIn map[string][]int32
}

func newEvaluation() *evaluation {
	return &evaluation{hit: map[int32]struct{}{}, memo: map[probe][]int32{}}
}

// setScope moves the evaluation to another scope.
func (ev *evaluation) setScope(scope string) {
	if scope != ev.scope {
		ev.scope = scope
		clear(ev.memo)
		clear(ev.answered)
	}
}

// reset prepares the evaluation for another rule on the same identity and scope.
func (ev *evaluation) reset() {
	ev.hits = ev.hits[:0]
	clear(ev.hit)
}

// ask answers whether the identity may do a in the evaluation's scope, with the authorizer's semantics: a
// RoleBinding's grants count in its namespace only, non-resource URLs only through ClusterRoleBindings. With some,
// a rule restricted to resourceNames counts as allowing the request for one of its names. Every grant that
// allows it is recorded.
func (ev *evaluation) ask(a graph.Action, some bool) bool {
	grants := ev.answer(a, some)
	for _, i := range grants {
		if _, dup := ev.hit[i]; !dup {
			ev.hit[i] = struct{}{}
			ev.hits = append(ev.hits, i)
		}
	}
	return len(grants) > 0
}

// answer returns the indexes of the permissions that allow a in the scope, without recording them.
func (ev *evaluation) answer(a graph.Action, some bool) []int32 {
	ev.ensure()
	key := probe{a, some}
	if grants, ok := ev.memo[key]; ok {
		return grants
	}
	a.Namespace = requestNamespace(a, ev.scope)
	if a.Namespace != "" && a.APIGroup == "" && a.Resource == "namespaces" && a.Name == "" {
		a.Name = a.Namespace // the Namespace object itself
	}
	// The cluster-wide grants answer alike in every scope: asked once per identity, not once per scope.
	ck := probe{a, some}
	ck.action.Namespace = ""
	cg, ok := ev.clusterMemo[ck]
	if !ok {
		for _, i := range ev.cluster {
			if ruleAllows(ev.perms[i].Rule, a, some) {
				cg = append(cg, i)
			}
		}
		if ev.clusterMemo == nil {
			ev.clusterMemo = map[probe][]int32{}
		}
		ev.clusterMemo[ck] = cg
	}
	grants := slices.Clip(cg)
	if a.IsResource() && a.Namespace != "" {
		for _, i := range ev.byNS[a.Namespace] {
			if ruleAllows(ev.perms[i].Rule, a, some) {
				grants = append(grants, i)
			}
		}
	}
	ev.memo[key] = grants
	return grants
}

// ownAnswers reports whether a grant of the subject's own in the scope allows the probe: only those can make a
// finding in this scope, and a subject has few of them where its groups may hold thousands.
func (ev *evaluation) ownAnswers(p probe) bool {
	a := p.action
	a.Namespace = requestNamespace(a, ev.scope)
	if a.Namespace != ev.scope && (a.IsResource() || ev.scope != "") {
		return false // a cluster-scoped question in a namespace: its own RoleBindings there cannot answer it
	}
	if a.Namespace != "" && a.APIGroup == "" && a.Resource == "namespaces" && a.Name == "" {
		a.Name = a.Namespace
	}
	for _, i := range ev.ownIn[ev.scope] {
		if ruleAllows(ev.perms[i].Rule, a, p.some) {
			return true
		}
	}
	return false
}

// mayMatch reports whether a grant of the subject's own in the scope answers any of a rule's probes: when none
// does and the probes are all the rule asks, the rule cannot produce a subject finding here.
func (ev *evaluation) mayMatch(ids []int, complete bool) bool {
	if !complete {
		return true
	}
	for _, id := range ids {
		if ev.answered[id] == 0 {
			ev.answered[id] = 1
			if ev.ownAnswers(ev.probes[id]) {
				ev.answered[id] = 2
			}
		}
		if ev.answered[id] == 2 {
			return true
		}
	}
	return false
}

func ruleAllows(r *rbacv1.PolicyRule, a graph.Action, some bool) bool {
	if some && a.IsResource() && a.Name == "" && len(r.ResourceNames) > 0 {
		a.Name = r.ResourceNames[0]
	}
	return graph.RuleAllows(r, a)
}

// evidence returns the recorded grants.
func (ev *evaluation) evidence() []graph.Permission {
	out := make([]graph.Permission, len(ev.hits))
	for i, h := range ev.hits {
		out[i] = ev.perms[h]
	}
	return out
}

// ensure loads the permissions once, and indexes them by where they apply: an identity bound through a group
// in every namespace holds thousands of grants, of which a question in one scope needs a handful.
func (ev *evaluation) ensure() {
	if ev.loaded {
		return
	}
	ev.loaded = true
	if ev.load != nil {
		ev.perms = ev.load()
	}
	ev.cluster, ev.byNS = nil, map[string][]int32{}
	for i := range ev.perms {
		if ns := ev.perms[i].Namespace; ns == "" {
			ev.cluster = append(ev.cluster, int32(i))
		} else {
			ev.byNS[ns] = append(ev.byNS[ns], int32(i))
		}
	}
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
