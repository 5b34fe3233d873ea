package graph

import (
	"cmp"
	"slices"
)

// principal derives the edges of a User, Group or ServiceAccount: its groups, its membership of the Users and
// forged-certificate sets, and its combination edges, which need the union of its grants and its groups'.
func (ec *evalCtx) principal(ref ObjectRef) {
	groups := ec.identityGroups(ref)
	for _, g := range groups {
		ec.edge(ref, groupRef(g), EdgeMemberOf, "", nil, "")
	}
	if ref != groupRef(GroupMasters) {
		// The kube-apiserver-client signer refuses O=system:masters since 1.31; every other name is forgeable.
		ec.edge(forgedCert(), ref, EdgeIncludes, "", nil, "")
	}
	if ref.Kind == KindUser {
		ec.edge(allUsers(), ref, EdgeIncludes, "", nil, "")
	}

	own := ec.holdingsOf(ref)
	byGroup := make([][]*holding, len(groups))
	var mask uint64
	for _, h := range own {
		mask |= h.caps.mask
	}
	for i, g := range groups {
		byGroup[i] = ec.holdingsOf(groupRef(g))
		for _, h := range byGroup[i] {
			mask |= h.caps.mask
		}
	}
	escalates := mask&escalateCaps != 0
	if escalates {
		ec.dep(factBound, ref)
		for _, g := range groups {
			ec.dep(factBound, groupRef(g))
		}
	}
	if mask&comboTriggers == 0 {
		return
	}
	// A source is a principal whose holdings can take part: grants of combination capabilities, or, when the
	// union escalates, any bound role. With one source the union is that source's own: a group's combination
	// edges are the group's, which the principal reaches through MEMBER_OF.
	takesPart := func(hs []*holding) bool {
		return slices.ContainsFunc(hs, func(h *holding) bool { return escalates || h.caps.mask&comboCaps != 0 })
	}
	var sources []int // -1 for the principal itself, else the index of a group
	if takesPart(own) {
		sources = append(sources, -1)
	}
	for i, hs := range byGroup {
		if takesPart(hs) {
			sources = append(sources, i)
		}
	}
	if len(sources) == 0 || len(sources) == 1 && sources[0] >= 0 {
		return
	}
	all := slices.Clone(own)
	for _, hs := range byGroup {
		all = append(all, hs...)
	}
	edges := ec.combos(newHoldingSet(all), ref)
	if len(sources) == 1 {
		ec.res.edges = append(ec.res.edges, edges...)
		return
	}
	// What a group derives alone the principal reaches through MEMBER_OF; only what needs the union is its own.
	ofGroups := map[comboKey]bool{}
	for _, i := range sources {
		if i >= 0 {
			for _, k := range ec.groupCombos(groups[i], byGroup[i]) {
				ofGroups[k] = true
			}
		}
	}
	for _, e := range edges {
		if !ofGroups[comboKey{e.kind, e.to, e.scope}] {
			ec.res.edges = append(ec.res.edges, e)
		}
	}
}

// comboKey identifies a combination edge regardless of its source.
type comboKey struct {
	kind  AttackEdgeKind
	to    ObjectRef
	scope string
}

// groupCombos returns the combination edges group derives from its own holdings hs. Every member of a group
// asks, so the answer is cached until a holding changes, with the facts it read, which the asking unit depends
// on too.
func (ec *evalCtx) groupCombos(group string, hs []*holding) []comboKey {
	st := ec.st
	if c, ok := st.groupCombos[group]; ok && c.gen == st.holdGen {
		ec.res.deps = append(ec.res.deps, c.deps...)
		return c.keys
	}
	sub := &evalCtx{st: st, s: ec.s}
	var keys []comboKey
	for _, e := range sub.combos(newHoldingSet(hs), groupRef(group)) {
		keys = append(keys, comboKey{e.kind, e.to, e.scope})
	}
	st.groupCombos[group] = cachedCombos{gen: st.holdGen, keys: keys, deps: sub.res.deps}
	ec.res.deps = append(ec.res.deps, sub.res.deps...)
	return keys
}

// identityGroups returns the groups the apiserver puts principal ref in: system:authenticated (system:
// unauthenticated for system:anonymous) and the declared groups of a user; the ServiceAccount groups and
// system:authenticated for a ServiceAccount; none for a group.
func (ec *evalCtx) identityGroups(ref ObjectRef) []string {
	switch ref.Kind {
	case KindServiceAccount:
		return append(ServiceAccountGroups(ref.Namespace), GroupAuthenticated)
	case KindUser:
		ec.dep(factObject, ObjectRef{Kind: KindUser, Name: ref.Name})
		gs := []string{GroupAuthenticated}
		if ref.Name == UserAnonymous {
			gs[0] = GroupUnauthenticated
		}
		for _, g := range ec.s.GroupsOf(ref.Name) {
			if !slices.Contains(gs, g) {
				gs = append(gs, g)
			}
		}
		return gs
	}
	return nil
}

// holdingsOf returns the holdings of the bindings that name principal ref, ClusterRoleBindings first, then by
// namespace, name and subject.
func (ec *evalCtx) holdingsOf(ref ObjectRef) []*holding {
	ec.dep(factCaps, ref)
	m := ec.st.held[ref]
	out := make([]*holding, 0, len(m))
	for _, h := range m {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b *holding) int {
		return cmp.Or(compareRefs(a.be.ref, b.be.ref), cmp.Compare(a.si, b.si))
	})
	return out
}

// adminClusterRoles returns the names of the admin-equivalent ClusterRoles, sorted.
func (ec *evalCtx) adminClusterRoles() []string {
	if ec.adminsRead {
		return ec.admins
	}
	st := ec.st
	if st.adminCRsOf != ec.s.cr {
		st.adminCRs = nil
		for _, e := range ec.s.cr.roles {
			if isAdminRole(e.r.Rules) {
				st.adminCRs = append(st.adminCRs, e.r.Name)
			}
		}
		st.adminCRsOf = ec.s.cr
	}
	ec.dep(factKindIn, ObjectRef{Kind: KindClusterRole})
	ec.admins, ec.adminsRead = st.adminCRs, true
	return ec.admins
}
