package graph

import (
	"context"
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
)

// ObjectDiff is what happened to one object between two revisions: OpAdd (Before nil), OpDelete (After nil) or
// OpUpdate.
type ObjectDiff struct {
	Op     Op        `json:"op"`
	Ref    ObjectRef `json:"ref"`
	Before Object    `json:"before,omitempty"`
	After  Object    `json:"after,omitempty"`
}

// GrantDelta is the change of the grants a subject holds directly, through the bindings that name it (a group's
// members are not expanded; a user's groups are not followed).
type GrantDelta struct {
	Subject ObjectRef    `json:"subject"`
	Gained  []Permission `json:"gained,omitempty"`
	Lost    []Permission `json:"lost,omitempty"`
}

// Diff is the difference between two snapshots: the objects that changed and, for every subject those objects
// touch, the grants gained and lost, each with the binding, role and rule that make it.
type Diff struct {
	Objects  []ObjectDiff `json:"objects"`
	Subjects []GrantDelta `json:"subjects"`
}

// CondenseChanges folds a sequence of changes into one ObjectDiff per object: the first Before and the last After,
// dropped when the object ends as it began (added then deleted, or updated back). Order: by ref.
func CondenseChanges(changes []Change) []ObjectDiff {
	type span struct{ before, after Object }
	spans := map[ObjectRef]*span{}
	var refs []ObjectRef
	for _, c := range changes {
		sp := spans[c.Ref]
		if sp == nil {
			sp = &span{before: c.Before}
			spans[c.Ref] = sp
			refs = append(refs, c.Ref)
		}
		sp.after = c.After
		if c.Op == OpDelete {
			sp.after = nil
		}
	}
	slices.SortFunc(refs, compareRefs)
	var out []ObjectDiff
	for _, ref := range refs {
		sp := spans[ref]
		switch {
		case sp.before == nil && sp.after == nil:
			continue
		case sp.before == nil:
			out = append(out, ObjectDiff{Op: OpAdd, Ref: ref, After: sp.after})
		case sp.after == nil:
			out = append(out, ObjectDiff{Op: OpDelete, Ref: ref, Before: sp.before})
		default:
			if sameObject(sp.before, sp.after) {
				continue
			}
			out = append(out, ObjectDiff{Op: OpUpdate, Ref: ref, Before: sp.before, After: sp.after})
		}
	}
	return out
}

func sameObject(a, b Object) bool {
	x, errA := MarshalObject(a)
	y, errB := MarshalObject(b)
	return errA == nil && errB == nil && string(x) == string(y)
}

// DiffSnapshots computes the permission delta between from and to for the subjects that objects (the condensed
// changes between them) touch. Only the affected bindings are evaluated, on both sides: the changed bindings, and
// the bindings whose role's rules differ between the two snapshots (aggregated ClusterRoles whose sources changed
// included). A grant that no affected binding gives cannot have changed, so the cost follows the size of the
// change, not of the cluster.
func DiffSnapshots(ctx context.Context, from, to *Snapshot, objects []ObjectDiff) (Diff, error) {
	d := Diff{Objects: objects, Subjects: []GrantDelta{}}
	if d.Objects == nil {
		d.Objects = []ObjectDiff{}
	}
	affected := map[ObjectRef]struct{}{}
	bindingsOf := func(s *Snapshot, ref ObjectRef) {
		switch ref.Kind {
		case KindClusterRole:
			for _, i := range s.crb.byClusterRole[ref.Name] {
				affected[s.crb.entries[i].ref] = struct{}{}
			}
			for _, ns := range s.nsNames {
				sh := s.nss[ns]
				for _, i := range sh.byClusterRole[ref.Name] {
					affected[sh.entries[i].ref] = struct{}{}
				}
			}
		case KindRole:
			if sh := s.nss[ref.Namespace]; sh != nil {
				for _, i := range sh.byRole[ref.Name] {
					affected[sh.entries[i].ref] = struct{}{}
				}
			}
		}
	}
	for _, o := range objects {
		switch o.Ref.Kind {
		case KindRoleBinding, KindClusterRoleBinding:
			affected[o.Ref] = struct{}{}
		case KindRole:
			bindingsOf(from, o.Ref)
			bindingsOf(to, o.Ref)
		}
	}
	// ClusterRoles whose effective rules differ: changed ones, and aggregated ones whose sources changed.
	for _, ref := range changedClusterRoles(from, to) {
		bindingsOf(from, ref)
		bindingsOf(to, ref)
	}

	deltas := map[principal]*GrantDelta{}
	n := 0
	for ref := range affected {
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return d, err
			}
		}
		before, after := from.grantsOf(ref), to.grantsOf(ref)
		for p, perms := range after {
			for k, perm := range perms {
				if _, kept := before[p][k]; !kept {
					deltaOf(deltas, p).Gained = append(deltaOf(deltas, p).Gained, perm)
				}
			}
		}
		for p, perms := range before {
			for k, perm := range perms {
				if _, kept := after[p][k]; !kept {
					deltaOf(deltas, p).Lost = append(deltaOf(deltas, p).Lost, perm)
				}
			}
		}
	}
	ps := make([]principal, 0, len(deltas))
	for p := range deltas {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b principal) int { return compareRefs(deltas[a].Subject, deltas[b].Subject) })
	for _, p := range ps {
		delta := deltas[p]
		sortPermissions(delta.Gained)
		sortPermissions(delta.Lost)
		d.Subjects = append(d.Subjects, *delta)
	}
	return d, ctx.Err()
}

func deltaOf(m map[principal]*GrantDelta, p principal) *GrantDelta {
	d := m[p]
	if d == nil {
		d = &GrantDelta{Subject: p.ref()}
		m[p] = d
	}
	return d
}

// changedClusterRoles lists the ClusterRoles present in either snapshot whose effective rules differ.
func changedClusterRoles(from, to *Snapshot) []ObjectRef {
	if from.cr == to.cr {
		return nil
	}
	var out []ObjectRef
	seen := map[string]bool{}
	check := func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		a, b := from.cr.byName[name], to.cr.byName[name]
		if a == b {
			return
		}
		if a == nil || b == nil || !slices.EqualFunc(a.r.Rules, b.r.Rules, func(x, y rbacv1.PolicyRule) bool { return ruleKey(&x) == ruleKey(&y) }) {
			out = append(out, ObjectRef{Kind: KindClusterRole, Name: name})
		}
	}
	for _, e := range from.cr.roles {
		check(e.src.Name)
	}
	for _, e := range to.cr.roles {
		check(e.src.Name)
	}
	return out
}

// permKey identifies a grant for diffing: where it applies, which binding and role give it, and the rule's content
// (not its index, which aggregation may shift without changing what is granted).
type permKey struct {
	ns      string
	binding ObjectRef
	role    ObjectRef
	rule    string
}

// grantsOf returns the permissions binding ref gives in this snapshot, per subject it names; nil when the
// binding does not exist or grants nothing.
func (s *Snapshot) grantsOf(ref ObjectRef) map[principal]map[permKey]Permission {
	var be *bindingEntry
	switch ref.Kind {
	case KindClusterRoleBinding:
		if i, ok := s.crb.bindingByName[ref.Name]; ok {
			be = &s.crb.entries[i]
		}
	case KindRoleBinding:
		if sh := s.nss[ref.Namespace]; sh != nil {
			if i, ok := sh.bindingByName[ref.Name]; ok {
				be = &sh.entries[i]
			}
		}
	}
	if be == nil {
		return nil
	}
	role := s.roleOf(be)
	if role == nil {
		return nil
	}
	keys := make([]string, len(role.r.Rules))
	for r := range role.r.Rules {
		keys[r] = ruleKey(&role.r.Rules[r])
	}
	out := map[principal]map[permKey]Permission{}
	for si, p := range be.subjects {
		if p.kind == matchesNobody || out[p] != nil {
			continue // the first subject naming p is the one reported
		}
		perms := make(map[permKey]Permission, len(keys))
		for r, k := range keys {
			perms[permKey{be.b.Namespace, be.ref, be.roleRef, k}] = Permission{Namespace: be.b.Namespace, GrantPath: be.path(role, si, r)}
		}
		out[p] = perms
	}
	return out
}

func sortPermissions(ps []Permission) {
	slices.SortFunc(ps, func(a, b Permission) int {
		if c := compareRefs(*a.Binding, *b.Binding); c != 0 {
			return c
		}
		return a.RuleIndex - b.RuleIndex
	})
}
