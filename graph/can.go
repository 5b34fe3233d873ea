package graph

import (
	"context"
	"slices"
)

// Can decides whether identity id may perform action a, as the kube-apiserver with RBAC authorization would:
// first the privileged group system:masters (Superuser), then every ClusterRoleBinding and, for resource
// requests in a namespace, every RoleBinding of that namespace that names the identity. Reasons lists every grant
// path that allows the action, not only the first the authorizer stops at.
func (s *Snapshot) Can(id Identity, a Action) Decision {
	d := Decision{Superuser: id.InGroup(GroupMasters)}
	combined := combinedResource(a)
	s.visitBindings(id, a.namespace(), func(be *bindingEntry, role *roleEntry, subject int) {
		for i := range role.r.Rules {
			if ruleAllowsCombined(&role.r.Rules[i], a, combined) {
				d.Reasons = append(d.Reasons, be.path(role, subject, i))
			}
		}
	})
	d.Allowed = d.Superuser || len(d.Reasons) > 0
	return d
}

// visitBindings calls fn for every binding that applies to id for requests in namespace ns (ClusterRoleBindings
// always, RoleBindings of ns when ns is set) and references an existing role, with that role and the index of the
// binding's first subject that names id. ClusterRoleBindings come first, each kind in name order.
func (s *Snapshot) visitBindings(id Identity, ns string, fn func(be *bindingEntry, role *roleEntry, subject int)) {
	var buf [32]int32
	idx := collect(buf[:0], id, s.crb.bySubject)
	for _, i := range idx {
		be := &s.crb.entries[i]
		if role := s.roleOf(be); role != nil {
			fn(be, role, be.firstSubject(id))
		}
	}
	if ns == "" {
		return
	}
	sh := s.nss[ns]
	if sh == nil {
		return
	}
	idx = collect(buf[:0], id, sh.bySubject)
	for _, i := range idx {
		be := &sh.entries[i]
		if role := s.roleOf(be); role != nil {
			fn(be, role, be.firstSubject(id))
		}
	}
}

// collect gathers the binding indexes index holds for the identity's user name and each of its groups, sorted
// and without repeats, appended to dst.
func collect(dst []int32, id Identity, index map[principal][]int32) []int32 {
	dst = append(dst, index[principal{matchesUser, id.User}]...)
	for _, g := range id.Groups {
		dst = append(dst, index[principal{matchesGroup, g}]...)
	}
	if len(dst) > 1 {
		slices.Sort(dst)
		dst = slices.Compact(dst)
	}
	return dst
}

// firstSubject returns the index of the first subject that names id, the one the authorizer reports.
func (be *bindingEntry) firstSubject(id Identity) int {
	for i, p := range be.subjects {
		if p.kind == matchesUser && p.name == id.User || p.kind == matchesGroup && id.InGroup(p.name) {
			return i
		}
	}
	return -1 // unreachable: the binding was found through one of its subjects
}

// path builds the grant path through subject index subject and rule index rule of the binding's role.
func (be *bindingEntry) path(role *roleEntry, subject, rule int) GrantPath {
	p := GrantPath{
		Binding:      &be.ref,
		Subject:      &be.b.Subjects[subject],
		SubjectIndex: subject,
		Role:         &be.roleRef,
		RuleIndex:    rule,
		Rule:         &role.r.Rules[rule],
	}
	if role.from != nil {
		p.AggregatedFrom = &role.from[rule]
	}
	return p
}

// EffectivePermissions returns every rule granted to id: those of ClusterRoleBindings cluster-wide, and those of
// RoleBindings in any namespace, each scoped to its binding's namespace. system:masters membership is not a rule
// and does not appear; Can reports it. Permissions come ClusterRoleBindings first, then by namespace, binding
// name and rule index.
func (s *Snapshot) EffectivePermissions(ctx context.Context, id Identity) ([]Permission, error) {
	var out []Permission
	err := s.VisitPermissions(ctx, id, func(p Permission) bool {
		out = append(out, p)
		return true
	})
	return out, err
}

// VisitPermissions calls fn for each permission EffectivePermissions would return, in the same order, until fn
// returns false. It returns ctx's error if ctx ends first.
func (s *Snapshot) VisitPermissions(ctx context.Context, id Identity, fn func(Permission) bool) error {
	return s.visitPermissions(ctx, id, s.nsNames, fn)
}

// VisitPermissionsIn is VisitPermissions limited to the ClusterRoleBindings and the RoleBindings of namespaces
// (sorted, without repeats): for callers that know where an identity is bound, it spares a lookup in every
// namespace of the cluster.
func (s *Snapshot) VisitPermissionsIn(ctx context.Context, id Identity, namespaces []string, fn func(Permission) bool) error {
	return s.visitPermissions(ctx, id, namespaces, fn)
}

func (s *Snapshot) visitPermissions(ctx context.Context, id Identity, namespaces []string, fn func(Permission) bool) error {
	var buf [32]int32
	visit := func(entries []bindingEntry, idx []int32) bool {
		for _, i := range idx {
			be := &entries[i]
			role := s.roleOf(be)
			if role == nil {
				continue
			}
			subject := be.firstSubject(id)
			for r := range role.r.Rules {
				if !fn(Permission{Namespace: be.b.Namespace, GrantPath: be.path(role, subject, r)}) {
					return false
				}
			}
		}
		return true
	}
	if !visit(s.crb.entries, collect(buf[:0], id, s.crb.bySubject)) {
		return nil
	}
	// Every namespace is asked: a few map lookups each, cheaper than keeping an index across shards current.
	for n, ns := range namespaces {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		sh := s.nss[ns]
		if sh == nil {
			continue
		}
		if !visit(sh.entries, collect(buf[:0], id, sh.bySubject)) {
			return nil
		}
	}
	return nil
}
