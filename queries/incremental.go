package queries

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/kiem-io/kiem/graph"
	rbacv1 "k8s.io/api/rbac/v1"
)

// Update re-evaluates prev's findings for next, the snapshot after the changes objects (condensed: one entry per
// changed object). Only the items the changes touch are evaluated again (see touched); the rest of prev is
// shared. The delta says which findings appeared and which were resolved.
func (e *Engine) Update(ctx context.Context, prev *Result, next *graph.Snapshot, objects []graph.ObjectDiff) (*Result, Delta, error) {
	ec := e.newContext(next)
	res := &Result{snap: next, items: maps.Clone(prev.items)}
	if len(ec.rulesOf(groupPath)) > 0 && prev.attack != nil && len(objects) > 0 {
		// The escalation graph follows the change: its derivation is incremental; the shortest paths are
		// searched again, for every subject at once.
		changed := make([]graph.ObjectRef, len(objects))
		for i, o := range objects {
			changed[i] = o.Ref
		}
		if err := prev.attack.Update(ctx, next, changed); err == nil {
			ec.attackGraph = prev.attack
		}
	} else if len(objects) == 0 {
		ec.attackGraph = prev.attack
	}
	copied := map[string]bool{}
	t := touched(prev.snap, next, objects, ec)
	// Attack-path findings are searched for all subjects at once; Update keeps them as they were and marks them
	// pending (RefreshPaths searches again), so that a burst of changes pays for one search, not one each.
	res.pathsPending = prev.pathsPending || (len(objects) > 0 && len(ec.rulesOf(groupPath)) > 0)
	delta := Delta{New: []Finding{}, Resolved: []Finding{}}
	for _, g := range groupOrder {
		if g == groupPath {
			continue
		}
		keys := t.items(g, prev, ec)
		if len(keys) == 0 {
			continue
		}
		var before []Finding
		for _, k := range keys {
			before = append(before, prev.items[k.shard()][k]...)
			if !copied[k.shard()] {
				copied[k.shard()] = true
				res.items[k.shard()] = maps.Clone(res.items[k.shard()])
			}
		}
		if err := e.evaluateItems(ctx, ec, res, keys); err != nil {
			return nil, Delta{}, err
		}
		var after []Finding
		for _, k := range keys {
			after = append(after, res.items[k.shard()][k]...)
		}
		d := Compare(before, after)
		delta.New = append(delta.New, d.New...)
		delta.Resolved = append(delta.Resolved, d.Resolved...)
	}
	for ns, m := range res.items {
		if len(m) == 0 {
			delete(res.items, ns)
		}
	}
	SortFindings(delta.New)
	SortFindings(delta.Resolved)
	res.Skipped, res.Expired = ec.skipped(), e.opts.Suppressions.expired(e.opts.Now())
	res.attack = ec.attackGraph
	return res, delta, nil
}

// RefreshPaths searches the attack paths of res's snapshot again and replaces its path findings: after Update,
// whose result has PathsPending set. The delta covers the path findings only.
func (e *Engine) RefreshPaths(ctx context.Context, res *Result) (*Result, Delta, error) {
	ec := e.newContext(res.snap)
	ec.attackGraph = res.attack
	out := &Result{snap: res.snap, items: maps.Clone(res.items), attack: res.attack, Skipped: res.Skipped, Expired: res.Expired}
	seen := map[itemKey]bool{}
	var keys []itemKey
	var before []Finding
	for _, m := range res.items {
		for k, fs := range m {
			if k.group == groupPath {
				seen[k] = true
				keys = append(keys, k)
				before = append(before, fs...)
			}
		}
	}
	for _, k := range ec.allItems(groupPath) {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	copied := map[string]bool{}
	for _, k := range keys {
		if sh := k.shard(); !copied[sh] {
			copied[sh] = true
			if m := out.items[sh]; m != nil {
				out.items[sh] = maps.Clone(m) // res shares the old maps
			}
		}
	}
	if err := e.evaluateItems(ctx, ec, out, keys); err != nil {
		return nil, Delta{}, err
	}
	out.attack = ec.attackGraph
	var after []Finding
	for _, k := range keys {
		after = append(after, out.items[k.shard()][k]...)
	}
	d := Compare(before, after)
	SortFindings(d.New)
	SortFindings(d.Resolved)
	return out, d, nil
}

// touchSet collects what a change touches, per group; all[g] means every item of g.
type touchSet struct {
	refs map[group]map[itemKey]struct{}
	all  map[group]bool
	// snaps are the snapshots before and after, where the scopes of a touched subject are looked up.
	snaps []*graph.Snapshot
}

func (t *touchSet) add(g group, ref graph.ObjectRef) { t.addKey(itemKey{group: g, ref: ref}) }

func (t *touchSet) addKey(k itemKey) {
	if t.refs[k.group] == nil {
		t.refs[k.group] = map[itemKey]struct{}{}
	}
	t.refs[k.group][k] = struct{}{}
}

// anyScope marks a subject touched in every scope where it is bound: a change cluster-wide (a ClusterRoleBinding,
// a ClusterRole, the account itself) can change what it may do anywhere.
const anyScope = "\x00any"

// addSubject touches principal p in scope (anyScope: every scope where it is bound, before or after).
func (t *touchSet) addSubject(p graph.ObjectRef, scope string) {
	if scope != anyScope {
		t.addKey(itemKey{group: groupSubject, ref: p, scope: scope})
		return
	}
	for _, s := range t.snaps {
		for _, sc := range scopesOf(s, p) {
			t.addKey(itemKey{group: groupSubject, ref: p, scope: sc})
		}
	}
}

// items lists the keys to evaluate for g: every item of g in either snapshot when all of g is touched.
func (t *touchSet) items(g group, prev *Result, ec *evalContext) []itemKey {
	seen := map[itemKey]struct{}{}
	var out []itemKey
	add := func(k itemKey) {
		if _, dup := seen[k]; !dup {
			seen[k] = struct{}{}
			out = append(out, k)
		}
	}
	if t.all[g] {
		for _, k := range ec.allItems(g) {
			add(k)
		}
		for _, m := range prev.items {
			for k := range m {
				if k.group == g {
					add(k)
				}
			}
		}
		return out
	}
	for k := range t.refs[g] {
		add(k)
	}
	// Keep subject items of one principal together: a worker loads a principal's permissions once for them.
	slices.SortFunc(out, func(a, b itemKey) int {
		return cmp.Or(compareRefs(a.ref, b.ref), strings.Compare(a.scope, b.scope))
	})
	return out
}

// touched works out which items a change can affect. Subjects: those a changed binding names, those of the
// bindings of a changed role (or of an aggregated ClusterRole whose rules changed), the members of a touched
// group (every principal for system:authenticated and system:serviceaccounts), those bound in a namespace whose
// labels changed, and users whose declared groups changed. Objects: the changed ones, the roles and
// ServiceAccounts a changed binding names (bound or missing), the bindings of a changed role or ServiceAccount
// (missing role, missing account, duplicates), the pods of a touched ServiceAccount (automount, takeover), and
// the nodes of touched pods.
func touched(prev, next *graph.Snapshot, objects []graph.ObjectDiff, ec *evalContext) *touchSet {
	snaps := []*graph.Snapshot{prev, next}
	t := &touchSet{refs: map[group]map[itemKey]struct{}{}, all: map[group]bool{}, snaps: snaps}
	// principal touches a principal in a scope (anyScope: wherever it is bound), what reads its permissions
	// there (its bindings' rules, its pods), and, for a group, every member in the same scope.
	var principal func(p graph.ObjectRef, scope string)
	principal = func(p graph.ObjectRef, scope string) {
		t.addSubject(p, scope)
		for _, s := range snaps {
			for _, bref := range s.BindingsOf(p) {
				if scope == anyScope || bref.Namespace == scope || bref.Namespace == "" {
					t.add(groupBinding, bref)
				}
			}
		}
		switch p.Kind {
		case graph.KindServiceAccount:
			t.add(groupServiceAccount, p)
			for _, s := range snaps {
				for _, pod := range s.PodsOf(p.Namespace, p.Name) {
					t.add(groupPod, pod)
				}
			}
		case graph.KindGroup:
			switch {
			case p.Name == graph.GroupAuthenticated || p.Name == graph.GroupServiceAccounts:
				for _, g := range []group{groupSubject, groupBinding, groupPod, groupServiceAccount, groupNode} {
					t.all[g] = true
				}
			case strings.HasPrefix(p.Name, "system:serviceaccounts:"):
				ns := strings.TrimPrefix(p.Name, "system:serviceaccounts:")
				for _, s := range snaps {
					s.Each(graph.KindServiceAccount, ns, func(o graph.Object) bool {
						principal(o.(*graph.ServiceAccount).Ref(), scope)
						return true
					})
				}
				for _, s := range snaps {
					for _, q := range s.BoundServiceAccounts(ns) {
						principal(q, scope)
					}
				}
			case p.Name == graph.GroupUnauthenticated:
				principal(graph.ObjectRef{Kind: graph.KindUser, Name: graph.UserAnonymous}, scope)
			default:
				for _, s := range snaps {
					for _, u := range s.MembersOf(p.Name) {
						principal(graph.ObjectRef{Kind: graph.KindUser, Name: u}, scope)
					}
				}
			}
		}
	}
	binding := func(b *graph.Binding) {
		t.add(groupBinding, b.Ref())
		scope := b.Namespace
		if scope == "" {
			scope = anyScope // a ClusterRoleBinding's grants apply in every scope
		}
		for i := range b.Subjects {
			if p, ok := principalOf(&b.Subjects[i], b.Namespace); ok {
				principal(p, scope)
			}
		}
		roleRef, ok := b.RoleRefObject()
		if !ok {
			return
		}
		t.add(groupRole, roleRef)
		// Duplicates and redundant RoleBindings compare bindings of the same role.
		for _, s := range snaps {
			// A RoleBinding compares with the bindings of its namespace only: asking every namespace first (for
			// view, edit or admin: thousands of bindings) only to discard the answer was a tenth of an update.
			var others []graph.ObjectRef
			if b.Kind == graph.KindRoleBinding {
				others = s.BindingsOfRoleIn(roleRef, b.Namespace)
			} else {
				others = s.BindingsOfRole(roleRef)
			}
			for _, other := range others {
				t.add(groupBinding, other)
			}
		}
	}
	bindingsOfRole := func(ref graph.ObjectRef) {
		for _, s := range snaps {
			for _, bref := range s.BindingsOfRole(ref) {
				if o, ok := s.Object(bref); ok {
					binding(o.(*graph.Binding))
				}
			}
		}
	}
	var changedClusterRoles bool
	for _, o := range objects {
		for _, obj := range []graph.Object{o.Before, o.After} {
			if obj == nil {
				continue
			}
			switch v := obj.(type) {
			case *graph.Binding:
				binding(v)
			case *graph.Role:
				t.add(groupRole, v.Ref())
				bindingsOfRole(v.Ref())
				changedClusterRoles = changedClusterRoles || v.Kind == graph.KindClusterRole
			case *graph.ServiceAccount:
				principal(v.Ref(), anyScope)
				for _, s := range snaps {
					for _, bref := range s.BindingsOf(v.Ref()) {
						t.add(groupBinding, bref)
					}
				}
			case *graph.Pod:
				t.add(groupPod, v.Ref())
				t.add(groupServiceAccount, graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: v.Namespace, Name: v.ServiceAccount})
				if v.NodeName != "" {
					t.add(groupNode, graph.ObjectRef{Kind: graph.KindNode, Name: v.NodeName})
				}
			case *graph.Namespace:
				t.add(groupNamespace, v.Ref())
				for _, s := range snaps {
					s.Each(graph.KindRoleBinding, v.Name, func(o graph.Object) bool {
						b := o.(*graph.Binding)
						for i := range b.Subjects {
							if p, ok := principalOf(&b.Subjects[i], b.Namespace); ok {
								principal(p, v.Name)
							}
						}
						t.add(groupBinding, b.Ref())
						return true
					})
				}
			case *graph.Node:
				t.add(groupNode, v.Ref())
			case *graph.Secret:
				t.add(groupSecret, v.Ref())
			case *graph.User:
				principal(v.Ref(), anyScope)
			}
		}
	}
	if changedClusterRoles {
		// Aggregated ClusterRoles whose computed rules changed act like changed roles.
		next.Each(graph.KindClusterRole, "", func(o graph.Object) bool {
			r := o.(*graph.Role)
			if r.AggregationRule == nil {
				return true
			}
			old, ok := prev.ClusterRole(r.Name)
			if !ok || !sameRules(old.Rules, r.Rules) {
				t.add(groupRole, r.Ref())
				bindingsOfRole(r.Ref())
			}
			return true
		})
	}
	// Node rules read the pods on the node: the nodes of every touched pod.
	for k := range t.refs[groupPod] {
		ref := k.ref
		for _, s := range snaps {
			if o, ok := s.Object(ref); ok && o.(*graph.Pod).NodeName != "" {
				t.add(groupNode, graph.ObjectRef{Kind: graph.KindNode, Name: o.(*graph.Pod).NodeName})
			}
		}
	}
	return t
}

func sameRules(a, b []rbacv1.PolicyRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if graph.FormatRule(&a[i]) != graph.FormatRule(&b[i]) {
			return false
		}
	}
	return true
}
