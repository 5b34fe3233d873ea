package graph

import (
	"slices"
)

// combos derives the combination edges of a principal (or holder node) from its holdings: edges that need
// several grants at once, which may come from different bindings (the principal's own and its groups').
func (ec *evalCtx) combos(hs *holdingSet, from ObjectRef) []edgeSpec {
	var out []edgeSpec
	emit := func(to ObjectRef, kind AttackEdgeKind, scope string, ev []evRef, note string) {
		out = append(out, edgeSpec{from: from, to: to, kind: kind, scope: scope, ev: ev, note: note})
	}
	// Each kind needs every part somewhere in the union: the capability mask rules most out at once.
	if hs.hasAll(capCreateSecrets) && hs.hasAny(capReadSecrets, capCreatePods, capCreateWorkload) {
		ec.mintCombos(hs, emit)
	}
	if hs.hasAll(capImpersonateGroup) && hs.hasAny(capImpersonateUser, capImpersonateSA) {
		ec.impersonateGroupCombos(hs, emit)
	}
	if hs.hasAll(capCreateCSR, capApproveCSR, capApproveSigner) {
		ec.csrCombos(hs, emit)
	}
	if hs.hasAny(capBindRole, capBindClusterRole) && hs.hasAny(capCreateRB, capUpdateRB, capCreateCRB, capUpdateCRB) {
		ec.bindCombos(hs, emit)
	}
	if hs.hasAll(capEscalateClusterRole, capUpdateClusterRole) || hs.hasAll(capEscalateRole, capUpdateRole) {
		ec.escalateCombos(hs, emit)
	}
	return out
}

type emitFunc func(to ObjectRef, kind AttackEdgeKind, scope string, ev []evRef, note string)

// witness keeps the grants of the first holding among gs: a combination edge names one binding per part, with
// every rule of it that grants the part, not every binding that could serve (a principal in hundreds of
// bindings would list them all on each of its edges).
func witness(gs []grantRef) []grantRef {
	if len(gs) == 0 {
		return nil
	}
	end := 1
	for end < len(gs) && gs[end].h == gs[0].h {
		end++
	}
	return gs[:end:end]
}

// wideScope is the scope of an edge made of cluster-wide grants: "" when one of them is a ClusterRoleBinding's,
// AllNamespaces when all stand for RoleBindings in every namespace.
func wideScope(parts ...[]grantRef) string {
	for _, gs := range parts {
		for _, gr := range gs {
			if gr.h.scope == "" {
				return ""
			}
		}
	}
	return AllNamespaces
}

// splitScopes splits grants into the cluster-wide ones and those of each namespace.
func splitScopes(gs []grantRef) (wide []grantRef, per map[string][]grantRef) {
	for _, gr := range gs {
		if gr.h.clusterWide() {
			wide = append(wide, gr)
			continue
		}
		if per == nil {
			per = make(map[string][]grantRef)
		}
		per[gr.h.scope] = append(per[gr.h.scope], gr)
	}
	return wide, per
}

func sortedKeys[V any](ms ...map[string]V) []string {
	var out []string
	for _, m := range ms {
		for k := range m {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mintCombos derives E-MINT_TOKEN_SECRET: creating a Secret of type kubernetes.io/service-account-token
// annotated with a ServiceAccount's name makes the control plane fill in a token for it, which the creator
// reads back by reading the secret (any name will do: the creator names it) or by mounting it in a pod.
func (ec *evalCtx) mintCombos(hs *holdingSet, emit emitFunc) {
	creates := collectGrants(hs.all, nil, ec.unnamed, capCreateSecrets)
	if len(creates) == 0 {
		return
	}
	reads := append(collectGrants(hs.all, nil, anyGrant, capReadSecrets), collectGrants(hs.all, nil, ec.unnamed, capCreatePods, capCreateWorkload)...)
	cw, cn := splitScopes(creates)
	rw, rn := splitScopes(reads)
	if len(cw) > 0 && len(rw) > 0 {
		emit(saSet(AllNamespaces), EdgeMintTokenSecret, wideScope(cw, rw), evidence(witness(cw), witness(rw)), "")
	}
	for _, ns := range sortedKeys(cn, rn) {
		c, r := cn[ns], rn[ns]
		if len(c) == 0 {
			c = cw
		}
		if len(r) == 0 {
			r = rw
		}
		if len(c) > 0 && len(r) > 0 {
			emit(saSet(ns), EdgeMintTokenSecret, ns, evidence(witness(c), witness(r)), "")
		}
	}
}

// impersonateGroupCombos derives E-IMPERSONATE of groups: a request may add groups only while impersonating a
// user or ServiceAccount, so group impersonation needs one of those too. Impersonating any group reaches
// system:masters, which dominates every other group.
func (ec *evalCtx) impersonateGroupCombos(hs *holdingSet, emit emitFunc) {
	groups := collectGrants(hs.cluster, nil, anyGrant, capImpersonateGroup)
	if len(groups) == 0 {
		return
	}
	as := append(collectGrants(hs.cluster, nil, anyGrant, capImpersonateUser), collectGrants(hs.all, nil, anyGrant, capImpersonateSA)...)
	if len(as) == 0 {
		return
	}
	if every := filter(groups, everyName); len(every) > 0 {
		emit(groupRef(GroupMasters), EdgeImpersonate, "", evidence(witness(every), witness(as)), noteAnyGroup)
		return
	}
	for _, name := range namesOf(groups) {
		emit(groupRef(name), EdgeImpersonate, "", evidence(witness(filter(groups, ec.forName(name))), witness(as)), "")
	}
}

// csrCombos derives E-CSR_FORGE: create a CertificateSigningRequest for the kube-apiserver-client signer,
// approve it (update of the approval subresource plus approve on the signer, asked for the signer's name and for
// "kubernetes.io/*"), and kube-controller-manager signs a client certificate for any name and groups.
func (ec *evalCtx) csrCombos(hs *holdingSet, emit emitFunc) {
	create := collectGrants(hs.cluster, nil, ec.unnamed, capCreateCSR)
	if len(create) == 0 {
		return
	}
	approve := collectGrants(hs.cluster, nil, anyGrant, capApproveCSR)
	signer := collectGrants(hs.cluster, nil, func(gr grantRef) bool {
		return ec.forName(signerAPIServerClient)(gr) || ec.forName(signerDomainWildcard)(gr)
	}, capApproveSigner)
	if len(approve) > 0 && len(signer) > 0 {
		emit(forgedCert(), EdgeCSRForge, "", evidence(witness(create), witness(approve), witness(signer)), "")
	}
}

// bindCandidate is a role an attacker can bind itself to in scope.
type bindCandidate struct {
	scope string // "" by a ClusterRoleBinding, a namespace, or AllNamespaces
	role  ObjectRef
	ev    []evRef
	admin bool
}

// bindCombos derives E-BIND: creating a binding (or updating an existing one, whose roleRef is fixed) passes
// the escalation check when the creator may bind its role. Each role so bindable is reached as a BoundRole or
// BoundClusterRole node; an admin-equivalent one as cluster-admin (by a ClusterRoleBinding) or as the
// NamespaceAdmin node of its scope. Those dominate: cluster-admin every other candidate, every permission in
// every namespace each namespace's, a namespace's admin every other role there; dominated candidates are not
// looked for.
func (ec *evalCtx) bindCombos(hs *holdingSet, emit emitFunc) {
	if emitBindCandidates(ec.clusterBindCandidates(hs), "", emit) {
		return
	}
	scopes := bindScopes(hs)
	if len(scopes) > 0 && scopes[0] == AllNamespaces {
		if emitBindCandidates(ec.namespaceBindCandidates(hs, AllNamespaces), AllNamespaces, emit) {
			return
		}
		scopes = scopes[1:]
	}
	for _, scope := range scopes {
		emitBindCandidates(ec.namespaceBindCandidates(hs, scope), scope, emit)
	}
}

// emitBindCandidates emits bind candidates found for scope, grouped by the scope they bind in (Roles found for
// every namespace bind in their own): a group's admin-equivalent candidate alone if it has one. It reports
// whether scope itself has an admin-equivalent candidate.
func emitBindCandidates(cands []bindCandidate, scope string, emit emitFunc) bool {
	adminIn := map[string]int{}
	for i, c := range cands {
		if _, seen := adminIn[c.scope]; !seen && c.admin {
			adminIn[c.scope] = i
		}
	}
	for i, c := range cands {
		switch first, ok := adminIn[c.scope]; {
		case ok && i == first && c.scope == "":
			emit(ClusterAdminRef(), EdgeBind, "", c.ev, "")
		case ok && i == first:
			emit(nsAdmin(c.scope), EdgeBind, c.scope, c.ev, "")
		case ok:
		case c.role.Kind == KindRole:
			emit(ObjectRef{Kind: KindBoundRole, Namespace: c.role.Namespace, Name: c.role.Name}, EdgeBind, c.scope, c.ev, "")
		default:
			emit(ObjectRef{Kind: KindBoundClusterRole, Namespace: c.scope, Name: c.role.Name}, EdgeBind, c.scope, c.ev, "")
		}
	}
	_, ok := adminIn[scope]
	return ok
}

// bindScopes returns the scopes of RoleBinding candidates: AllNamespaces first when cluster-wide grants hold
// both parts, then each namespace where some holding grants a part, sorted.
func bindScopes(hs *holdingSet) []string {
	var scopes []string
	for ns, list := range hs.byNS {
		for _, h := range list {
			if h.caps.mask&(1<<capCreateRB|1<<capUpdateRB|1<<capBindRole|1<<capBindClusterRole) != 0 {
				scopes = append(scopes, ns)
				break
			}
		}
	}
	slices.Sort(scopes)
	wideWrite, wideBind := false, false
	for _, h := range hs.wide {
		wideWrite = wideWrite || h.caps.mask&(1<<capCreateRB|1<<capUpdateRB) != 0
		wideBind = wideBind || h.caps.mask&(1<<capBindRole|1<<capBindClusterRole) != 0
	}
	if wideWrite && wideBind {
		scopes = append([]string{AllNamespaces}, scopes...)
	}
	return scopes
}

// clusterBindCandidates returns the ClusterRoles bindable through ClusterRoleBindings. Updating an existing
// binding reaches only roles that creating one would, so it is looked at only without create.
func (ec *evalCtx) clusterBindCandidates(hs *holdingSet) []bindCandidate {
	bind := collectGrants(hs.cluster, nil, anyGrant, capBindClusterRole)
	if len(bind) == 0 {
		return nil
	}
	var cands []bindCandidate
	add := func(name string, write []grantRef, bindFor []grantRef) {
		admin := slices.Contains(ec.adminClusterRoles(), name)
		cands = append(cands, bindCandidate{role: ObjectRef{Kind: KindClusterRole, Name: name}, ev: evidence(witness(write), witness(bindFor)), admin: admin})
	}
	if create := collectGrants(hs.cluster, nil, ec.unnamed, capCreateCRB); len(create) > 0 {
		ec.clusterRolesBindable(bind, func(name string, bindFor []grantRef) { add(name, create, bindFor) })
		return cands
	}
	if update := collectGrants(hs.cluster, nil, anyGrant, capUpdateCRB); len(update) > 0 {
		ec.existingBindings(update, KindClusterRoleBinding, "", func(be *bindingEntry, write []grantRef) {
			if be.roleRef.Kind != KindClusterRole {
				return
			}
			if bindFor := filter(bind, ec.forName(be.roleRef.Name)); len(bindFor) > 0 && ec.clusterRoleExists(be.roleRef.Name) {
				add(be.roleRef.Name, write, bindFor)
			}
		})
	}
	return cands
}

// clusterRolesBindable calls fn for every existing ClusterRole that bind allows, with the grants that allow it.
// Bind for every name reaches an admin-equivalent role if one exists, which is then the only one reported;
// otherwise it is reported as the name "*": every ClusterRole, one BoundClusterRole node for all.
func (ec *evalCtx) clusterRolesBindable(bind []grantRef, fn func(name string, bindFor []grantRef)) {
	if every := filter(bind, everyName); len(every) > 0 {
		if admins := ec.adminClusterRoles(); len(admins) > 0 {
			fn(admins[0], every)
		} else {
			fn("*", every)
		}
		return
	}
	for _, name := range namesOf(bind) {
		if ec.clusterRoleExists(name) {
			fn(name, filter(bind, ec.forName(name)))
		}
	}
}

func (ec *evalCtx) clusterRoleExists(name string) bool {
	ec.dep(factObject, ObjectRef{Kind: KindClusterRole, Name: name})
	_, ok := ec.s.cr.byName[name]
	return ok
}

// existingBindings calls fn for every existing binding of kind k in ns (every namespace for AllNamespaces)
// that the update grants allow, with the grants that allow it.
func (ec *evalCtx) existingBindings(update []grantRef, k Kind, ns string, fn func(be *bindingEntry, write []grantRef)) {
	entriesOf := func(ns string) []bindingEntry {
		if k == KindClusterRoleBinding {
			return ec.s.crb.entries
		}
		if sh := ec.s.nss[ns]; sh != nil && ns != "" {
			return sh.entries
		}
		return nil
	}
	namespaces := []string{ns}
	if ns == AllNamespaces {
		namespaces = ec.s.nsNames
	}
	if every := filter(update, everyName); len(every) > 0 {
		if ns == AllNamespaces {
			ec.dep(factKindAny, ObjectRef{Kind: k})
		} else {
			ec.dep(factKindIn, ObjectRef{Kind: k, Namespace: ns})
		}
		for _, n := range namespaces {
			entries := entriesOf(n)
			for i := range entries {
				fn(&entries[i], every)
			}
		}
		return
	}
	for _, name := range namesOf(update) {
		write := filter(update, ec.forName(name))
		if ns == AllNamespaces {
			ec.dep(factName, ObjectRef{Kind: k, Name: name})
		} else {
			ec.dep(factObject, ObjectRef{Kind: k, Namespace: ns, Name: name})
		}
		for _, n := range namespaces {
			if k == KindRoleBinding && n == "" {
				continue
			}
			if be := ec.s.bindingEntry(ObjectRef{Kind: k, Namespace: n, Name: name}); be != nil {
				fn(be, write)
			}
		}
	}
}

// namespaceBindCandidates returns the roles bindable through RoleBindings in scope: a namespace, or every
// namespace at once (AllNamespaces) with cluster-wide grants only. The ClusterRoles come first, so an
// admin-equivalent one spares the search of the rest.
func (ec *evalCtx) namespaceBindCandidates(hs *holdingSet, scope string) []bindCandidate {
	in := hs.in(scope)
	create := collectGrants(in, nil, ec.unnamed, capCreateRB)
	var update []grantRef
	if len(create) == 0 {
		update = collectGrants(in, nil, anyGrant, capUpdateRB)
	}
	bindCR := collectGrants(in, nil, anyGrant, capBindClusterRole)
	bindR := collectGrants(in, nil, anyGrant, capBindRole)
	if len(create)+len(update) == 0 || len(bindCR)+len(bindR) == 0 {
		return nil
	}
	var cands []bindCandidate
	admin := false
	add := func(ns string, role ObjectRef, write, bindFor []grantRef, isAdmin bool) {
		cands = append(cands, bindCandidate{scope: ns, role: role, ev: evidence(witness(write), witness(bindFor)), admin: isAdmin})
		admin = admin || isAdmin && ns == scope
	}
	if len(create) > 0 {
		if len(bindCR) > 0 {
			ec.clusterRolesBindable(bindCR, func(name string, bindFor []grantRef) {
				add(scope, ObjectRef{Kind: KindClusterRole, Name: name}, create, bindFor, slices.Contains(ec.adminClusterRoles(), name))
			})
			if admin {
				return cands
			}
		}
		if len(bindR) > 0 {
			ec.rolesBindable(bindR, scope, func(role ObjectRef, admin bool, bindFor []grantRef) {
				add(role.Namespace, role, create, bindFor, admin)
			})
		}
		return cands
	}
	ec.existingBindings(update, KindRoleBinding, scope, func(be *bindingEntry, write []grantRef) {
		ns := be.b.Namespace
		switch be.roleRef.Kind {
		case KindClusterRole:
			if bindFor := filter(bindCR, ec.forName(be.roleRef.Name)); len(bindFor) > 0 && ec.clusterRoleExists(be.roleRef.Name) {
				add(ns, be.roleRef, write, bindFor, slices.Contains(ec.adminClusterRoles(), be.roleRef.Name))
			}
		case KindRole:
			ec.dep(factObject, be.roleRef)
			if bindFor := filter(bindR, ec.forName(be.roleRef.Name)); len(bindFor) > 0 && be.role != nil {
				add(ns, be.roleRef, write, bindFor, isAdminRole(be.role.r.Rules))
			}
		}
	})
	return cands
}

// rolesBindable calls fn for every existing Role of ns (of every namespace for AllNamespaces) that bind
// allows, with whether it is admin-equivalent. Bind for every name is reported once, as the Role "*" of ns:
// the BoundRole node of every Role there.
func (ec *evalCtx) rolesBindable(bind []grantRef, ns string, fn func(role ObjectRef, admin bool, bindFor []grantRef)) {
	if every := filter(bind, everyName); len(every) > 0 {
		fn(ObjectRef{Kind: KindRole, Namespace: ns, Name: "*"}, false, every)
		return
	}
	namespaces := []string{ns}
	if ns == AllNamespaces {
		namespaces = ec.s.nsNames
	}
	for _, name := range namesOf(bind) {
		bindFor := filter(bind, ec.forName(name))
		if ns == AllNamespaces {
			ec.dep(factName, ObjectRef{Kind: KindRole, Name: name})
		} else {
			ec.dep(factObject, ObjectRef{Kind: KindRole, Namespace: ns, Name: name})
		}
		for _, n := range namespaces {
			if sh := ec.s.nss[n]; sh != nil && n != "" {
				if e := sh.roleByName[name]; e != nil {
					fn(e.r.Ref(), isAdminRole(e.r.Rules), bindFor)
				}
			}
		}
	}
}

// escalateCombos derives E-ESCALATE: escalate plus update (or patch) on a role bound to the principal lets it
// write any rule into that role, which the binding then grants it: cluster-admin through a ClusterRoleBinding,
// every permission of the namespace through a RoleBinding. Writing a ClusterRole is cluster-scoped, so its
// grants must come from ClusterRoleBindings; a Role's come from its namespace or cluster-wide.
func (ec *evalCtx) escalateCombos(hs *holdingSet, emit emitFunc) {
	// The grants of each part, for any name, once; each bound role then picks those that name it (once per role:
	// many bindings share one).
	escCR := collectGrants(hs.cluster, nil, anyGrant, capEscalateClusterRole)
	updCR := collectGrants(hs.cluster, nil, anyGrant, capUpdateClusterRole)
	escRWide, escRByNS := splitScopes(collectGrants(hs.all, nil, anyGrant, capEscalateRole))
	updRWide, updRByNS := splitScopes(collectGrants(hs.all, nil, anyGrant, capUpdateRole))
	type parts struct{ esc, upd []grantRef }
	memo := map[ObjectRef]parts{}
	partsFor := func(ref ObjectRef) parts {
		if p, ok := memo[ref]; ok {
			return p
		}
		name := ec.forName(ref.Name)
		var p parts
		if ref.Kind == KindClusterRole {
			if len(escCR) > 0 && len(updCR) > 0 {
				p = parts{witness(filter(escCR, name)), witness(filter(updCR, name))}
			}
		} else if esc, upd := escRByNS[ref.Namespace], updRByNS[ref.Namespace]; len(esc)+len(escRWide) > 0 && len(upd)+len(updRWide) > 0 {
			p = parts{witness(append(filter(escRWide, name), filter(esc, name)...)), witness(append(filter(updRWide, name), filter(upd, name)...))}
		}
		memo[ref] = p
		return p
	}
	// One edge per target, through the first bound role that can be widened: any of them makes it.
	done := map[string]bool{}
	for _, h := range hs.all {
		if h.role == nil || done[h.scope] {
			continue
		}
		p := partsFor(h.roleRef)
		if len(p.esc) == 0 || len(p.upd) == 0 {
			continue
		}
		ev := evidence(p.esc, p.upd)
		if h.be != nil {
			ev = append(ev, evRef{h, -1})
		}
		to := nsAdmin(h.scope)
		if h.scope == "" {
			to = ClusterAdminRef()
		}
		done[h.scope] = true
		emit(to, EdgeEscalate, h.scope, ev, "")
	}
}
