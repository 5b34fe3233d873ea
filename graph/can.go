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
	s.visitBindings(id, a.namespace(), func(be *bindingEntry, subject int) {
		for i := range be.role.r.Rules {
			r := &be.role.r.Rules[i]
			if !ruleAllowsCombined(r, a, combined) {
				continue
			}
			d.Reasons = append(d.Reasons, be.path(subject, i))
		}
	})
	d.Allowed = d.Superuser || len(d.Reasons) > 0
	return d
}

// visitBindings calls fn for every binding that applies to id for requests in namespace ns (ClusterRoleBindings
// always, RoleBindings of ns when ns is set) and references an existing role, with the index of the binding's
// first subject that names id. ClusterRoleBindings come first, each kind in name order.
func (s *Snapshot) visitBindings(id Identity, ns string, fn func(be *bindingEntry, subject int)) {
	var buf [32]int32
	idx := s.collect(buf[:0], id, func(p principal) []int32 { return s.crbBySubject[p] })
	for _, i := range idx {
		be := &s.crbs[i]
		if be.role != nil {
			fn(be, be.firstSubject(id))
		}
	}
	if ns == "" {
		return
	}
	idx = s.collect(buf[:0], id, func(p principal) []int32 { return s.rbByScoped[scoped{ns, p}] })
	for _, i := range idx {
		be := &s.rbs[i]
		if be.role != nil {
			fn(be, be.firstSubject(id))
		}
	}
}

// collect gathers the binding indexes lookup returns for the identity's user name and each of its groups, sorted
// and without repeats, appended to dst.
func (s *Snapshot) collect(dst []int32, id Identity, lookup func(principal) []int32) []int32 {
	dst = append(dst, lookup(principal{matchesUser, id.User})...)
	for _, g := range id.Groups {
		dst = append(dst, lookup(principal{matchesGroup, g})...)
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
func (be *bindingEntry) path(subject, rule int) GrantPath {
	p := GrantPath{
		Binding:      &be.ref,
		Subject:      &be.b.Subjects[subject],
		SubjectIndex: subject,
		Role:         &be.roleRef,
		RuleIndex:    rule,
		Rule:         &be.role.r.Rules[rule],
	}
	if be.role.from != nil {
		p.AggregatedFrom = &be.role.from[rule]
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
	var buf [32]int32
	visit := func(entries []bindingEntry, idx []int32) (bool, error) {
		for n, i := range idx {
			if n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return false, err
				}
			}
			be := &entries[i]
			if be.role == nil {
				continue
			}
			subject := be.firstSubject(id)
			for r := range be.role.r.Rules {
				if !fn(Permission{Namespace: be.b.Namespace, GrantPath: be.path(subject, r)}) {
					return false, nil
				}
			}
		}
		return true, nil
	}
	idx := s.collect(buf[:0], id, func(p principal) []int32 { return s.crbBySubject[p] })
	if more, err := visit(s.crbs, idx); !more || err != nil {
		return err
	}
	idx = s.collect(buf[:0], id, func(p principal) []int32 { return s.rbBySubject[p] })
	_, err := visit(s.rbs, idx)
	return err
}
