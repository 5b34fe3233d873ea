package graph

import (
	"context"
	"slices"
)

// update takes the state to next. Units are redone in two rounds: first those that read objects (bindings,
// namespaces, the inventory), whose holdings may change what principals hold; then the principal and holder
// units that read anything that changed, holdings included. settle then adds and removes nodes with their units.
func (st *attackState) update(ctx context.Context, next *Snapshot, changed []ObjectRef) error {
	prev := st.snap
	st.snap = next
	st.version++
	// Group combination edges read more than holdings (roles that exist, bindings to update): next may differ.
	clear(st.groupCombos)
	touch := func(ref ObjectRef) {
		st.dirty[fact{kind: factObject, ref: ref}] = struct{}{}
		st.dirty[fact{kind: factName, ref: ObjectRef{Kind: ref.Kind, Name: ref.Name}}] = struct{}{}
		st.dirty[fact{kind: factKindIn, ref: ObjectRef{Kind: ref.Kind, Namespace: ref.Namespace}}] = struct{}{}
		st.dirty[fact{kind: factKindAny, ref: ObjectRef{Kind: ref.Kind}}] = struct{}{}
	}
	var static []unitKey
	namespaces := map[string]bool{}
	secrets := false
	for _, ref := range changed {
		touch(ref)
		switch ref.Kind {
		case KindRoleBinding, KindClusterRoleBinding:
			static = append(static, unitKey{kind: uBinding, ref: ref})
		case KindNamespace:
			namespaces[ref.Name] = true
		case KindSecret:
			secrets = true
		}
		if ref.Kind == KindRole || ref.Kind == KindClusterRole {
			delete(st.roleCaps, ref) // recomputed on use; a deleted role's entry must not linger
		}
		switch ref.Kind {
		case KindRole, KindRoleBinding, KindServiceAccount, KindPod, KindSecret:
			namespaces[ref.Namespace] = true
		}
	}
	if prev.cr != next.cr {
		// Aggregated ClusterRoles change with the roles they select: every role whose rules differ counts as
		// changed. Unchanged entries are shared between the shards, so this compares few rules.
		for name, b := range next.cr.byName {
			if a := prev.cr.byName[name]; a != nil && !sameRules(a, b) {
				touch(ObjectRef{Kind: KindClusterRole, Name: name})
			}
		}
	}
	if secrets {
		if indexed := hasSecrets(next); indexed != st.secretsIndexed {
			st.secretsIndexed = indexed
			st.dirty[fact{kind: factSecretsIndexed}] = struct{}{}
		}
	}
	for ns := range namespaces {
		key := unitKey{kind: uNamespace, ref: ObjectRef{Kind: KindNamespace, Name: ns}}
		if _, have := st.units[key]; have != hasNamespace(next, ns) {
			static = append(static, key)
		}
	}
	for f := range st.dirty {
		for u := range st.deps[f] {
			if u.key.kind < uPrincipal {
				static = append(static, u.key)
			}
		}
	}
	slices.SortFunc(static, compareUnitKeys)
	static = slices.Compact(static)
	for i, key := range static {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if st.unitWanted(key) {
			st.setUnit(key, -1)
		} else if u := st.units[key]; u != nil {
			st.dropUnit(u)
		}
	}

	var dynamic []*attackUnit
	seen := map[*attackUnit]bool{}
	for f := range st.dirty {
		for u := range st.deps[f] {
			if u.key.kind >= uPrincipal && !seen[u] {
				seen[u] = true
				dynamic = append(dynamic, u)
			}
		}
	}
	clear(st.dirty) // principal and holder units hold nothing, so redoing them marks no fact
	slices.SortFunc(dynamic, func(a, b *attackUnit) int { return compareUnitKeys(a.key, b.key) })
	for i, u := range dynamic {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if st.units[u.key] == u {
			st.setUnit(u.key, u.owner)
		}
	}
	return st.settle(ctx)
}

// unitWanted reports whether a unit of an object-reading kind exists in the current snapshot.
func (st *attackState) unitWanted(key unitKey) bool {
	switch key.kind {
	case uInventory:
		return true
	case uNamespace:
		return hasNamespace(st.snap, key.ref.Name)
	case uBinding:
		return st.snap.bindingEntry(key.ref) != nil
	}
	return false
}

// sameRules reports whether two versions of a role grant the same rules, from the same aggregated roles.
func sameRules(a, b *roleEntry) bool {
	if a.r == b.r {
		return true
	}
	if len(a.r.Rules) != len(b.r.Rules) || !slices.Equal(a.from, b.from) {
		return false
	}
	for i := range a.r.Rules {
		if ruleKey(&a.r.Rules[i]) != ruleKey(&b.r.Rules[i]) {
			return false
		}
	}
	return true
}
