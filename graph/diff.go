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
// changes between them) touch: subjects of changed bindings, and subjects of every binding whose role's rules
// differ between the two snapshots (aggregated ClusterRoles included). Nothing else is evaluated, so the cost
// follows the size of the change, not of the cluster.
func DiffSnapshots(ctx context.Context, from, to *Snapshot, objects []ObjectDiff) (Diff, error) {
	d := Diff{Objects: objects}
	if d.Objects == nil {
		d.Objects = []ObjectDiff{}
	}
	affected := map[principal]struct{}{}
	addSubjects := func(b *Binding) {
		if b == nil {
			return
		}
		scope := ""
		if b.Kind == KindRoleBinding {
			scope = b.Namespace
		}
		for _, subj := range b.Subjects {
			if p := subjectPrincipal(subj, scope); p.kind != matchesNobody {
				affected[p] = struct{}{}
			}
		}
	}
	bindingsOf := func(s *Snapshot, ref ObjectRef) {
		switch ref.Kind {
		case KindClusterRole:
			for _, i := range s.crb.byClusterRole[ref.Name] {
				addSubjects(s.crb.entries[i].b)
			}
			for _, ns := range s.nsNames {
				sh := s.nss[ns]
				for _, i := range sh.byClusterRole[ref.Name] {
					addSubjects(sh.entries[i].b)
				}
			}
		case KindRole:
			if sh := s.nss[ref.Namespace]; sh != nil {
				for _, i := range sh.byRole[ref.Name] {
					addSubjects(sh.entries[i].b)
				}
			}
		}
	}
	for _, o := range objects {
		switch o.Ref.Kind {
		case KindRoleBinding, KindClusterRoleBinding:
			before, _ := o.Before.(*Binding)
			after, _ := o.After.(*Binding)
			addSubjects(before)
			addSubjects(after)
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
	if err := ctx.Err(); err != nil {
		return d, err
	}

	ps := make([]principal, 0, len(affected))
	for p := range affected {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b principal) int { return compareRefs(a.ref(), b.ref()) })
	for _, p := range ps {
		before, after := from.directGrants(p), to.directGrants(p)
		delta := GrantDelta{Subject: p.ref()}
		for k, perm := range after {
			if _, ok := before[k]; !ok {
				delta.Gained = append(delta.Gained, perm)
			}
		}
		for k, perm := range before {
			if _, ok := after[k]; !ok {
				delta.Lost = append(delta.Lost, perm)
			}
		}
		if len(delta.Gained)+len(delta.Lost) == 0 {
			continue
		}
		sortPermissions(delta.Gained)
		sortPermissions(delta.Lost)
		d.Subjects = append(d.Subjects, delta)
	}
	if d.Subjects == nil {
		d.Subjects = []GrantDelta{}
	}
	return d, ctx.Err()
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

// directGrants returns the permissions granted through the bindings that name p.
func (s *Snapshot) directGrants(p principal) map[permKey]Permission {
	out := map[permKey]Permission{}
	visit := func(entries []bindingEntry, idx []int32) {
		for _, i := range idx {
			be := &entries[i]
			role := s.roleOf(be)
			if role == nil {
				continue
			}
			si := slices.Index(be.subjects, p)
			for r := range role.r.Rules {
				perm := Permission{Namespace: be.b.Namespace, GrantPath: be.path(role, si, r)}
				out[permKey{perm.Namespace, be.ref, be.roleRef, ruleKey(&role.r.Rules[r])}] = perm
			}
		}
	}
	visit(s.crb.entries, s.crb.bySubject[p])
	for _, ns := range s.nsNames {
		sh := s.nss[ns]
		visit(sh.entries, sh.bySubject[p])
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
