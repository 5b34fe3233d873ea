package graph

import (
	"cmp"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

const (
	labelPSAEnforce      = "pod-security.kubernetes.io/enforce"
	labelControlPlane    = "node-role.kubernetes.io/control-plane"
	labelMaster          = "node-role.kubernetes.io/master"
	secretTypeTokenOfSA  = "kubernetes.io/service-account-token"
	noteGetExec          = "granted with get only: exec over websocket, allowed on clusters before Kubernetes 1.35"
	noteGetAttach        = "granted with get only: attach over websocket, allowed on clusters before Kubernetes 1.35"
	noteAnyGroup         = "may impersonate any group, system:masters included"
	notePotentialTokens  = "secret metadata is not indexed: reading secrets yields tokens only if token Secrets exist"
	noteMastersBypass    = "system:masters is allowed before authorization is consulted"
	noteControlPlaneNode = "control-plane node: its static pods hold the cluster's credentials"
	noteWebhook          = "a mutating admission webhook can rewrite every object admitted, pods and bindings included"
	noteWebhookUpdate    = noteWebhook + "; granted with update/patch only: needs an existing MutatingWebhookConfiguration to redirect"
)

// Set and terminal nodes.
func saSet(ns string) ObjectRef {
	return ObjectRef{Kind: KindServiceAccounts, Namespace: ns, Name: "*"}
}
func podSet(ns string) ObjectRef    { return ObjectRef{Kind: KindPods, Namespace: ns, Name: "*"} }
func secretSet(ns string) ObjectRef { return ObjectRef{Kind: KindSecrets, Namespace: ns, Name: "*"} }
func nsAdmin(ns string) ObjectRef {
	return ObjectRef{Kind: KindNamespaceAdmin, Namespace: ns, Name: "*"}
}
func allNodes() ObjectRef { return ObjectRef{Kind: KindNodes, Name: "*"} }
func allUsers() ObjectRef { return ObjectRef{Kind: KindUsers, Name: "*"} }
func forgedCert() ObjectRef {
	return ObjectRef{Kind: KindForgedCertificate, Name: signerAPIServerClient}
}
func groupRef(name string) ObjectRef {
	return ObjectRef{Kind: KindGroup, Name: name}
}

// evalCtx evaluates one unit against the current snapshot, recording what it reads.
type evalCtx struct {
	st  *attackState
	s   *Snapshot
	res evalResult
	// admins caches adminClusterRoles for the evaluation.
	admins     []string
	adminsRead bool
}

func (st *attackState) eval(key unitKey) evalResult {
	ec := &evalCtx{st: st, s: st.snap}
	switch key.kind {
	case uInventory:
		ec.inventory()
	case uNamespace:
		ec.namespace(key.ref.Name)
	case uBinding:
		ec.binding(key.ref)
	case uPrincipal:
		ec.principal(key.ref)
	case uHolder:
		ec.holder(key.ref)
	}
	// Units read the same fact many times (every candidate role asks whether it exists): keep each once.
	slices.SortFunc(ec.res.deps, compareFacts)
	ec.res.deps = slices.Clip(slices.Compact(ec.res.deps))
	return ec.res
}

func compareFacts(a, b fact) int {
	return cmp.Or(cmp.Compare(a.kind, b.kind), compareRefs(a.ref, b.ref))
}

func (ec *evalCtx) dep(k factKind, ref ObjectRef) {
	ec.res.deps = append(ec.res.deps, fact{kind: k, ref: ref})
}

func (ec *evalCtx) edge(from, to ObjectRef, kind AttackEdgeKind, scope string, ev []evRef, note string) {
	ec.res.edges = append(ec.res.edges, edgeSpec{from: from, to: to, kind: kind, scope: scope, ev: ev, note: note})
}

// inventory derives what hangs on cluster-scoped inventory: system:masters and control-plane nodes reach
// cluster-admin, Nodes reaches every Node object, declared users are nodes even without bindings.
func (ec *evalCtx) inventory() {
	ec.dep(factKindIn, ObjectRef{Kind: KindNode})
	ec.dep(factKindIn, ObjectRef{Kind: KindUser})
	ec.edge(groupRef(GroupMasters), ClusterAdminRef(), EdgeMasters, "", nil, noteMastersBypass)
	for i := range ec.s.inv.nodes {
		n := &ec.s.inv.nodes[i]
		ec.edge(allNodes(), n.Ref(), EdgeIncludes, "", nil, "")
		_, cp := n.Labels[labelControlPlane]
		_, master := n.Labels[labelMaster]
		if cp || master {
			ec.edge(n.Ref(), ClusterAdminRef(), EdgeControlPlane, "", nil, noteControlPlaneNode)
		}
	}
	for i := range ec.s.inv.users {
		ec.res.pins = append(ec.res.pins, ec.s.inv.users[i].Ref())
	}
}

// namespace derives the structural edges of namespace ns: its set nodes, the ServiceAccounts pods run as (when
// the token is mounted), the nodes pods run on, and the ServiceAccounts its token Secrets belong to.
func (ec *evalCtx) namespace(ns string) {
	for _, k := range []Kind{KindServiceAccount, KindPod, KindSecret} {
		ec.dep(factKindIn, ObjectRef{Kind: k, Namespace: ns})
	}
	ec.dep(factSecretsIndexed, ObjectRef{})
	ec.edge(secretSet(AllNamespaces), secretSet(ns), EdgeIncludes, "", nil, "")
	sh := ec.s.nss[ns]
	if sh == nil {
		return
	}
	if len(sh.serviceAccounts) > 0 {
		ec.edge(saSet(AllNamespaces), saSet(ns), EdgeIncludes, "", nil, "")
	}
	for i := range sh.serviceAccounts {
		ec.edge(saSet(ns), sh.serviceAccounts[i].Ref(), EdgeIncludes, "", nil, "")
	}
	if len(sh.pods) > 0 {
		ec.edge(podSet(AllNamespaces), podSet(ns), EdgeIncludes, "", nil, "")
	}
	for i := range sh.pods {
		p := &sh.pods[i]
		ec.edge(podSet(ns), p.Ref(), EdgeIncludes, "", nil, "")
		if tokenMounted(sh, p) {
			ec.edge(p.Ref(), ObjectRef{Kind: KindServiceAccount, Namespace: ns, Name: p.ServiceAccount}, EdgeRunsAs, "", nil, "")
		}
		if p.NodeName != "" {
			node := ObjectRef{Kind: KindNode, Name: p.NodeName}
			ec.edge(node, p.Ref(), EdgeHosts, "", nil, "")
			ec.edge(allNodes(), node, EdgeIncludes, "", nil, "")
		}
	}
	if !ec.st.secretsIndexed {
		if len(sh.serviceAccounts) > 0 {
			ec.res.edges = append(ec.res.edges, edgeSpec{from: secretSet(ns), to: saSet(ns), kind: EdgeTokenFor,
				note: notePotentialTokens, potential: true})
		}
		return
	}
	for i := range sh.secrets {
		if sa, ok := tokenSecretOwner(sh, &sh.secrets[i]); ok {
			ec.edge(secretSet(ns), sa, EdgeTokenFor, "", nil, "Secret "+ns+"/"+sh.secrets[i].Name)
		}
	}
}

// tokenMounted applies the API's defaulting: the pod's automountServiceAccountToken, else its
// ServiceAccount's, else true.
func tokenMounted(sh *nsShard, p *Pod) bool {
	if p.AutomountToken != nil {
		return *p.AutomountToken
	}
	if i, ok := sh.saByName[p.ServiceAccount]; ok && sh.serviceAccounts[i].AutomountToken != nil {
		return *sh.serviceAccounts[i].AutomountToken
	}
	return true
}

// tokenSecretOwner returns the ServiceAccount a token Secret authenticates as, if it exists: the token controller
// invalidates the tokens of ServiceAccounts that are gone.
func tokenSecretOwner(sh *nsShard, sec *Secret) (ObjectRef, bool) {
	if sec.Type != secretTypeTokenOfSA || sec.ServiceAccount == "" {
		return ObjectRef{}, false
	}
	if _, ok := sh.saByName[sec.ServiceAccount]; !ok {
		return ObjectRef{}, false
	}
	return ObjectRef{Kind: KindServiceAccount, Namespace: sh.ns, Name: sec.ServiceAccount}, true
}

// binding derives the direct edges of a binding for each of its subjects, and records their holdings for the
// combination edges of principal units. Every subject is a node, even of a binding that grants nothing: it is a
// principal that may reach cluster-admin through its groups.
func (ec *evalCtx) binding(ref ObjectRef) {
	be := ec.s.bindingEntry(ref)
	if be == nil {
		return
	}
	role := ec.s.roleOf(be)
	if be.roleRef.Kind != "" {
		ec.dep(factObject, be.roleRef)
	}
	// RoleBindings without a namespace are never visited by the authorizer.
	grants := role != nil && (ref.Kind == KindClusterRoleBinding || ref.Namespace != "")
	var caps *roleCaps
	if grants {
		caps = ec.st.capsOf(be.roleRef, role)
	}
	for si, id := range be.subjectIDs {
		if id < 0 || slices.Index(be.subjectIDs, id) != si {
			continue
		}
		subj := be.subjectRef(ec.s.refs, si)
		ec.res.pins = append(ec.res.pins, subj)
		if !grants {
			continue
		}
		h := &holding{be: be, si: si, role: role, roleRef: be.roleRef, caps: caps, scope: be.b.Namespace}
		ec.direct(h, subj)
		if ec.res.holds == nil {
			ec.res.holds = make(map[ObjectRef]*holding)
		}
		ec.res.holds[subj] = h
	}
}

// bindingEntry finds the entry of binding ref.
func (s *Snapshot) bindingEntry(ref ObjectRef) *bindingEntry {
	switch ref.Kind {
	case KindClusterRoleBinding:
		if i, ok := s.crb.bindingByName[ref.Name]; ok {
			return &s.crb.entries[i]
		}
	case KindRoleBinding:
		if sh := s.nss[ref.Namespace]; sh != nil {
			if i, ok := sh.bindingByName[ref.Name]; ok {
				return &sh.entries[i]
			}
		}
	}
	return nil
}

// capsOf returns what role grants, computed once per version of its rules.
func (st *attackState) capsOf(ref ObjectRef, role *roleEntry) *roleCaps {
	if c, ok := st.roleCaps[ref]; ok && c.rules == role.r {
		return c.caps
	}
	c := computeRoleCaps(role.r.Rules, &st.probes)
	st.roleCaps[ref] = cachedCaps{rules: role.r, caps: c}
	return c
}

// holder derives the edges of a BoundRole, BoundClusterRole or NamespaceAdmin node: those of a subject holding
// only that role in that scope. The name "*" stands for every Role of the namespace (every ClusterRole), held
// at once; BoundRole/*/* includes the BoundRole "*" node of every namespace that has Roles.
func (ec *evalCtx) holder(ref ObjectRef) {
	var hs []*holding
	hold := func(role *roleEntry, roleRef ObjectRef, scope string) {
		hs = append(hs, &holding{role: role, roleRef: roleRef, caps: ec.st.capsOf(roleRef, role), scope: scope})
	}
	switch {
	case ref.Kind == KindBoundRole && ref.Namespace == AllNamespaces:
		ec.dep(factKindAny, ObjectRef{Kind: KindRole})
		for _, ns := range ec.s.nsNames {
			if sh := ec.s.nss[ns]; ns != "" && len(sh.roles) > 0 {
				ec.edge(ref, ObjectRef{Kind: KindBoundRole, Namespace: ns, Name: "*"}, EdgeIncludes, "", nil, "")
			}
		}
		return
	case ref.Kind == KindBoundRole && ref.Name == "*":
		ec.dep(factKindIn, ObjectRef{Kind: KindRole, Namespace: ref.Namespace})
		if sh := ec.s.nss[ref.Namespace]; sh != nil {
			for _, e := range sh.roles {
				hold(e, e.r.Ref(), ref.Namespace)
			}
		}
	case ref.Kind == KindBoundRole:
		roleRef := ObjectRef{Kind: KindRole, Namespace: ref.Namespace, Name: ref.Name}
		ec.dep(factObject, roleRef)
		if sh := ec.s.nss[ref.Namespace]; sh != nil && sh.roleByName[ref.Name] != nil {
			hold(sh.roleByName[ref.Name], roleRef, ref.Namespace)
		}
	case ref.Kind == KindBoundClusterRole && ref.Name == "*":
		ec.dep(factKindIn, ObjectRef{Kind: KindClusterRole})
		for _, e := range ec.s.cr.roles {
			hold(e, ObjectRef{Kind: KindClusterRole, Name: e.r.Name}, ref.Namespace)
		}
	case ref.Kind == KindBoundClusterRole:
		roleRef := ObjectRef{Kind: KindClusterRole, Name: ref.Name}
		ec.dep(factObject, roleRef)
		if e := ec.s.cr.byName[ref.Name]; e != nil {
			hold(e, roleRef, ref.Namespace)
		}
	case ref.Kind == KindNamespaceAdmin:
		if ec.st.adminCaps == nil {
			ec.st.adminCaps = computeRoleCaps([]rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}, &ec.st.probes)
		}
		hs = append(hs, &holding{scope: ref.Namespace, caps: ec.st.adminCaps})
	}
	for _, h := range hs {
		ec.direct(h, ref)
	}
	if len(hs) > 0 {
		ec.res.edges = append(ec.res.edges, ec.combos(newHoldingSet(hs), ref)...)
	}
}

// unenforced reports whether privileged pods can run in scope: cluster-wide grants reach some namespace
// without Pod Security enforcement (kube-system has none), a namespace without an enforce label (or with
// "privileged") admits them. A namespace without a Namespace object counts as unenforced.
func (ec *evalCtx) unenforced(scope string) bool {
	if scope == "" || scope == AllNamespaces {
		return true
	}
	ec.dep(factObject, ObjectRef{Kind: KindNamespace, Name: scope})
	i, ok := ec.s.inv.nsByName[scope]
	if !ok {
		return true
	}
	level, set := ec.s.inv.namespaces[i].Labels[labelPSAEnforce]
	return !set || level == "privileged"
}

// direct derives the edges one holding makes on its own.
func (ec *evalCtx) direct(h *holding, from ObjectRef) {
	if h.caps.mask == 0 {
		return
	}
	hs := []*holding{h}
	ns := h.targetNS()

	spawn := collectGrants(hs, nil, ec.unnamed, capCreatePods, capCreateWorkload)
	rollout := collectGrants(hs, nil, anyGrant, capUpdateWorkload)
	if len(spawn) > 0 {
		ec.edge(from, saSet(ns), EdgeCreatePodAsSA, h.scope, evidence(spawn), "")
	}
	if len(rollout) > 0 {
		ec.edge(from, saSet(ns), EdgeUpdateWorkloadAsSA, h.scope, evidence(rollout), "")
	}
	if len(spawn)+len(rollout) > 0 && ec.unenforced(h.scope) {
		ec.edge(from, allNodes(), EdgePrivPodToNode, h.scope, evidence(spawn, rollout), "")
	}

	ec.podEdges(h, from, capExec, EdgeExec, noteGetExec)
	ec.podEdges(h, from, capAttach, EdgeAttach, noteGetAttach)
	ec.podEdges(h, from, capDebug, EdgeDebug, "")
	ec.podEdges(h, from, capPatchPods, EdgePatchPod, "")
	ec.secretEdges(h, from)

	// TokenRequest and ServiceAccount impersonation are asked in the ServiceAccount's namespace, by its name.
	if gs := collectGrants(hs, nil, anyGrant, capTokenRequest); len(gs) > 0 {
		if every := filter(gs, everyName); len(every) > 0 {
			ec.edge(from, saSet(ns), EdgeTokenRequest, h.scope, evidence(every), "")
		} else {
			for _, name := range namesOf(gs) {
				for _, sa := range ec.objectsNamed(KindServiceAccount, h.scope, name) {
					ec.edge(from, sa, EdgeTokenRequest, h.scope, evidence(filter(gs, ec.forName(name))), "")
				}
			}
		}
	}
	if gs := collectGrants(hs, nil, anyGrant, capImpersonateSA); len(gs) > 0 {
		if every := filter(gs, everyName); len(every) > 0 {
			ec.edge(from, saSet(ns), EdgeImpersonate, h.scope, evidence(every), "")
		} else {
			for _, name := range namesOf(gs) {
				ev := evidence(filter(gs, ec.forName(name)))
				if h.clusterWide() {
					for _, sa := range ec.objectsNamed(KindServiceAccount, h.scope, name) {
						ec.edge(from, sa, EdgeImpersonate, h.scope, ev, "")
					}
				} else {
					// Impersonation does not ask whether the ServiceAccount exists: its groups come with the name.
					ec.edge(from, ObjectRef{Kind: KindServiceAccount, Namespace: h.scope, Name: name}, EdgeImpersonate, h.scope, ev, "")
				}
			}
		}
	}

	if h.scope != "" {
		return // the rest are cluster-scoped resources, which only ClusterRoleBindings grant
	}
	if gs := collectGrants(hs, nil, anyGrant, capNodeProxy); len(gs) > 0 {
		if every := filter(gs, everyName); len(every) > 0 {
			ec.edge(from, allNodes(), EdgeNodeProxy, "", evidence(every), "")
		} else {
			for _, name := range namesOf(gs) {
				ec.edge(from, ObjectRef{Kind: KindNode, Name: name}, EdgeNodeProxy, "", evidence(filter(gs, ec.forName(name))), "")
			}
		}
	}
	if gs := collectGrants(hs, nil, anyGrant, capImpersonateUser); len(gs) > 0 {
		if every := filter(gs, everyName); len(every) > 0 {
			ec.edge(from, allUsers(), EdgeImpersonate, "", evidence(every), "")
		} else {
			for _, name := range namesOf(gs) {
				// A ServiceAccount's user name is checked as impersonation of the ServiceAccount, not of a user.
				if !strings.HasPrefix(name, serviceAccountPrefix) {
					ec.edge(from, ObjectRef{Kind: KindUser, Name: name}, EdgeImpersonate, "", evidence(filter(gs, ec.forName(name))), "")
				}
			}
		}
	}
	if gs := collectGrants(hs, nil, anyGrant, capWebhook); len(gs) > 0 {
		// Update and patch need a configuration to exist, which kiem does not index: the edge is potential.
		e := edgeSpec{from: from, to: ClusterAdminRef(), kind: EdgeWebhook, ev: evidence(gs), note: noteWebhook}
		if len(filter(gs, ec.verbIs("create"))) == 0 {
			e.note, e.potential = noteWebhookUpdate, true
		}
		ec.res.edges = append(ec.res.edges, e)
	}
	if len(h.caps.admin) > 0 {
		ev := make([]evRef, len(h.caps.admin))
		for i, r := range h.caps.admin {
			ev[i] = evRef{h, r}
		}
		ec.edge(from, ClusterAdminRef(), EdgeAdminEquivalent, "", ev, "")
	}
}

// podEdges derives an edge to the pods of h's scope, or to the named pods, for a capability on pods. With
// getNote set, grants whose verb is get carry that note unless create is granted too.
func (ec *evalCtx) podEdges(h *holding, from ObjectRef, c capID, kind AttackEdgeKind, getNote string) {
	gs := collectGrants([]*holding{h}, nil, anyGrant, c)
	if len(gs) == 0 {
		return
	}
	note := func(gs []grantRef) string {
		if getNote == "" || len(filter(gs, ec.verbIs("create"))) > 0 {
			return ""
		}
		return getNote
	}
	if every := filter(gs, everyName); len(every) > 0 {
		ec.edge(from, podSet(h.targetNS()), kind, h.scope, evidence(every), note(every))
		return
	}
	for _, name := range namesOf(gs) {
		named := filter(gs, ec.forName(name))
		for _, pod := range ec.objectsNamed(KindPod, h.scope, name) {
			ec.edge(from, pod, kind, h.scope, evidence(named), note(named))
		}
	}
}

// secretEdges derives E-READ_TOKEN_SECRET. With secret metadata indexed, reading every secret of a namespace
// (get by name, list or watch) reaches its Secrets node, and reading named secrets reaches the ServiceAccounts
// of the token Secrets named. Without it, only list and watch, which need no names, reach the Secrets node,
// whose edge to the namespace's ServiceAccounts is potential.
func (ec *evalCtx) secretEdges(h *holding, from ObjectRef) {
	gs := collectGrants([]*holding{h}, nil, anyGrant, capReadSecrets)
	if len(gs) == 0 {
		return
	}
	ec.dep(factSecretsIndexed, ObjectRef{})
	listing := filter(gs, func(gr grantRef) bool { return ec.verbIs("list", "watch")(gr) && ec.unnamed(gr) })
	if !ec.st.secretsIndexed {
		if len(listing) > 0 {
			ec.edge(from, secretSet(h.targetNS()), EdgeReadTokenSecret, h.scope, evidence(listing), "")
		}
		return
	}
	every := filter(gs, func(gr grantRef) bool { return everyName(gr) || slices.Contains(listing, gr) })
	if len(every) > 0 {
		ec.edge(from, secretSet(h.targetNS()), EdgeReadTokenSecret, h.scope, evidence(every), "")
		return
	}
	for _, name := range namesOf(gs) {
		named := filter(gs, ec.forName(name))
		for _, ref := range ec.objectsNamed(KindSecret, h.scope, name) {
			sh := ec.s.nss[ref.Namespace]
			sec := &sh.secrets[sh.secretByName[name]]
			ec.dep(factObject, ObjectRef{Kind: KindServiceAccount, Namespace: ref.Namespace, Name: sec.ServiceAccount})
			if sa, ok := tokenSecretOwner(sh, sec); ok {
				ec.edge(from, sa, EdgeReadTokenSecret, h.scope, evidence(named), "Secret "+ref.Namespace+"/"+name)
			}
		}
	}
}

// objectsNamed returns the existing pods, ServiceAccounts or Secrets called name in scope: its namespace, or
// every namespace for cluster-wide scopes.
func (ec *evalCtx) objectsNamed(k Kind, scope, name string) []ObjectRef {
	has := func(sh *nsShard) bool {
		var ok bool
		switch k {
		case KindPod:
			_, ok = sh.podByName[name]
		case KindServiceAccount:
			_, ok = sh.saByName[name]
		case KindSecret:
			_, ok = sh.secretByName[name]
		}
		return ok
	}
	if scope != "" && scope != AllNamespaces {
		ec.dep(factObject, ObjectRef{Kind: k, Namespace: scope, Name: name})
		if sh := ec.s.nss[scope]; sh != nil && has(sh) {
			return []ObjectRef{{Kind: k, Namespace: scope, Name: name}}
		}
		return nil
	}
	ec.dep(factName, ObjectRef{Kind: k, Name: name})
	var out []ObjectRef
	for _, ns := range ec.s.nsNames {
		if has(ec.s.nss[ns]) {
			out = append(out, ObjectRef{Kind: k, Namespace: ns, Name: name})
		}
	}
	return out
}
