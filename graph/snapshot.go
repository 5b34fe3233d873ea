package graph

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Warning reports something in the objects that grants nothing, or not what it seems to, and that a user should
// know of: a dangling roleRef, a subject that can never match, an aggregation the controller would refuse.
type Warning struct {
	Object  ObjectRef `json:"object,omitzero"`
	Message string    `json:"message"`
}

func (w Warning) String() string {
	if w.Object.Kind == "" {
		return w.Message
	}
	return w.Object.String() + ": " + w.Message
}

// Snapshot is an immutable, indexed view of one set of objects that answers Can, WhoCan and
// EffectivePermissions without scanning every binding. It is safe for concurrent use.
//
// The indexes, in the direction the authorizer walks them:
//
//	identity ──user name / group──▶ ClusterRoleBindings ──roleRef──▶ ClusterRole ──▶ rules
//	identity ──(namespace, user name / group)──▶ RoleBindings ──roleRef──▶ Role | ClusterRole ──▶ rules
//
// and the reverse one for WhoCan: role ──▶ bindings that reference it (per namespace for RoleBindings).
// ServiceAccount subjects are indexed by the user name they stand for, so a User subject named
// system:serviceaccount:ns:name and a ServiceAccount subject ns/name meet in the same entry, as they do in the
// authorizer.
type Snapshot struct {
	objs     Objects
	warnings []Warning
	byRef    map[ObjectRef]Object // every object, pointing into objs

	clusterRoles map[string]*roleEntry
	roles        map[nsName]*roleEntry
	rolesByNs    map[string][]*roleEntry // Roles of a namespace, by name

	crbs []bindingEntry // ClusterRoleBindings by name
	rbs  []bindingEntry // RoleBindings by namespace, then name

	crbBySubject map[principal][]int32 // ClusterRoleBindings naming a user or group
	rbBySubject  map[principal][]int32 // RoleBindings naming a user or group, in any namespace
	rbByScoped   map[scoped][]int32    // RoleBindings of one namespace naming a user or group

	// Every user or group some binding names gets a dense ID, so that WhoCan can collect and order subjects
	// without hashing or comparing their names per query.
	principalIDs   map[principal]int32
	principalRefs  []ObjectRef // by ID: the subject as WhoCan reports it
	principalRanks []int32     // by ID: position in WhoCan's order (kind, namespace, name)

	crbByClusterRole map[string][]int32 // ClusterRoleBindings by ClusterRole name
	rbByRole         map[nsName][]int32 // RoleBindings by (namespace, Role name)
	rbByClusterRole  map[nsName][]int32 // RoleBindings by (namespace, ClusterRole name)
}

type nsName struct{ ns, name string }

// principalKind tells how a binding subject matches an identity.
type principalKind uint8

const (
	matchesNobody principalKind = iota // unknown kind, or a ServiceAccount without a namespace in a ClusterRoleBinding
	matchesUser                        // User subjects and ServiceAccounts, by user name
	matchesGroup
)

type principal struct {
	kind principalKind
	name string
}

type scoped struct {
	ns string
	p  principal
}

type roleEntry struct {
	r    *Role
	from []ObjectRef // per rule of an aggregated ClusterRole kiem recomputed; nil otherwise
}

type bindingEntry struct {
	b          *Binding
	ref        ObjectRef
	role       *roleEntry // nil when the roleRef does not resolve: the binding grants nothing
	roleRef    ObjectRef
	subjects   []principal // per subject index
	subjectIDs []int32     // per subject index: the principal ID, -1 for subjects that match nobody
}

// NewSnapshot indexes objs. Aggregated ClusterRoles are recomputed as kube-controller-manager would (see
// aggregate); objs itself is not modified. When objs holds the same object twice, the later one wins, as a later
// apply would.
func NewSnapshot(objs *Objects) *Snapshot {
	s := &Snapshot{
		clusterRoles:     make(map[string]*roleEntry),
		roles:            make(map[nsName]*roleEntry),
		rolesByNs:        make(map[string][]*roleEntry),
		principalIDs:     make(map[principal]int32),
		crbBySubject:     make(map[principal][]int32),
		rbBySubject:      make(map[principal][]int32),
		rbByScoped:       make(map[scoped][]int32),
		crbByClusterRole: make(map[string][]int32),
		rbByRole:         make(map[nsName][]int32),
		rbByClusterRole:  make(map[nsName][]int32),
	}
	s.objs = Objects{
		Namespaces:          lastWins(objs.Namespaces, func(n *Namespace) nsName { return nsName{"", n.Name} }),
		ServiceAccounts:     lastWins(objs.ServiceAccounts, func(a *ServiceAccount) nsName { return nsName{a.Namespace, a.Name} }),
		Roles:               lastWins(objs.Roles, roleKey),
		ClusterRoles:        lastWins(objs.ClusterRoles, func(r *Role) nsName { return nsName{"", r.Name} }),
		RoleBindings:        lastWins(objs.RoleBindings, bindingKey),
		ClusterRoleBindings: lastWins(objs.ClusterRoleBindings, func(b *Binding) nsName { return nsName{"", b.Name} }),
		Pods:                lastWins(objs.Pods, func(p *Pod) nsName { return nsName{p.Namespace, p.Name} }),
		Nodes:               lastWins(objs.Nodes, func(n *Node) nsName { return nsName{"", n.Name} }),
	}
	s.indexRoles()
	s.principalID(principal{matchesGroup, GroupMasters}, rbacv1.Subject{}) // WhoCan always lists it
	s.indexBindings()
	s.rankPrincipals()
	// After indexing, which sets the Kind of every role and binding.
	s.byRef = make(map[ObjectRef]Object, s.objs.Count())
	s.objs.Each(func(o Object) bool {
		s.byRef[o.Ref()] = o
		return true
	})
	return s
}

// principalID returns p's dense ID, assigning the next one to a principal not seen before; -1 for a subject that
// matches nobody. subj is how a binding names p: a principal any binding names as a ServiceAccount is reported
// as that ServiceAccount, even when its name is not one the API would accept.
func (s *Snapshot) principalID(p principal, subj rbacv1.Subject) int32 {
	if p.kind == matchesNobody {
		return -1
	}
	id, ok := s.principalIDs[p]
	if !ok {
		id = int32(len(s.principalRefs))
		s.principalIDs[p] = id
		s.principalRefs = append(s.principalRefs, p.ref())
	}
	if subj.Kind == rbacv1.ServiceAccountKind && s.principalRefs[id].Kind != KindServiceAccount {
		ns, _, _ := strings.Cut(strings.TrimPrefix(p.name, serviceAccountPrefix), ":")
		s.principalRefs[id] = ObjectRef{Kind: KindServiceAccount, Namespace: ns, Name: subj.Name}
	}
	return id
}

func (s *Snapshot) rankPrincipals() {
	byRef := make([]int32, len(s.principalRefs))
	for i := range byRef {
		byRef[i] = int32(i)
	}
	slices.SortFunc(byRef, func(a, b int32) int { return compareRefs(s.principalRefs[a], s.principalRefs[b]) })
	s.principalRanks = make([]int32, len(byRef))
	for rank, id := range byRef {
		s.principalRanks[id] = int32(rank)
	}
}

// lastWins returns items sorted by key with only the last of equal keys kept. The slice is a copy.
func lastWins[T any](items []T, key func(*T) nsName) []T {
	out := slices.Clone(items)
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	// Sort positions by key, later positions first among equals, then keep the first of each key.
	slices.SortFunc(idx, func(a, b int) int {
		ka, kb := key(&out[a]), key(&out[b])
		if c := cmp.Or(strings.Compare(ka.ns, kb.ns), strings.Compare(ka.name, kb.name)); c != 0 {
			return c
		}
		return cmp.Compare(b, a)
	})
	res := make([]T, 0, len(out))
	for i, p := range idx {
		if i > 0 && key(&out[idx[i-1]]) == key(&out[p]) {
			continue
		}
		res = append(res, out[p])
	}
	return res
}

func roleKey(r *Role) nsName       { return nsName{r.Namespace, r.Name} }
func bindingKey(b *Binding) nsName { return nsName{b.Namespace, b.Name} }

func (s *Snapshot) indexRoles() {
	agg, warnings := aggregate(s.objs.ClusterRoles)
	s.warnings = append(s.warnings, warnings...)
	for i := range s.objs.ClusterRoles {
		r := &s.objs.ClusterRoles[i]
		r.Kind = KindClusterRole
		e := &roleEntry{r: r}
		if a, ok := agg[r.Name]; ok {
			r.Rules, e.from = a.rules, a.from
		}
		s.clusterRoles[r.Name] = e
	}
	for i := range s.objs.Roles {
		r := &s.objs.Roles[i]
		r.Kind = KindRole
		e := &roleEntry{r: r}
		s.roles[roleKey(r)] = e
		s.rolesByNs[r.Namespace] = append(s.rolesByNs[r.Namespace], e)
	}
}

func (s *Snapshot) indexBindings() {
	s.crbs = make([]bindingEntry, len(s.objs.ClusterRoleBindings))
	for i := range s.objs.ClusterRoleBindings {
		b := &s.objs.ClusterRoleBindings[i]
		b.Kind = KindClusterRoleBinding
		e := s.newBindingEntry(b, "")
		s.crbs[i] = e
		for _, p := range uniquePrincipals(e.subjects) {
			s.crbBySubject[p] = append(s.crbBySubject[p], int32(i))
		}
		if e.role != nil && e.roleRef.Kind == KindClusterRole {
			s.crbByClusterRole[e.roleRef.Name] = append(s.crbByClusterRole[e.roleRef.Name], int32(i))
		}
	}
	s.rbs = make([]bindingEntry, len(s.objs.RoleBindings))
	for i := range s.objs.RoleBindings {
		b := &s.objs.RoleBindings[i]
		b.Kind = KindRoleBinding
		e := s.newBindingEntry(b, b.Namespace)
		s.rbs[i] = e
		for _, p := range uniquePrincipals(e.subjects) {
			s.rbBySubject[p] = append(s.rbBySubject[p], int32(i))
			k := scoped{b.Namespace, p}
			s.rbByScoped[k] = append(s.rbByScoped[k], int32(i))
		}
		if e.role == nil {
			continue
		}
		k := nsName{b.Namespace, e.roleRef.Name}
		if e.roleRef.Kind == KindClusterRole {
			s.rbByClusterRole[k] = append(s.rbByClusterRole[k], int32(i))
		} else {
			s.rbByRole[k] = append(s.rbByRole[k], int32(i))
		}
	}
}

// newBindingEntry resolves a binding's roleRef and subjects as the authorizer would for requests in namespace
// scope ("" for ClusterRoleBindings).
func (s *Snapshot) newBindingEntry(b *Binding, scope string) bindingEntry {
	e := bindingEntry{b: b, ref: b.Ref(), subjects: make([]principal, len(b.Subjects)),
		subjectIDs: make([]int32, len(b.Subjects))}
	ref, ok := b.RoleRefObject()
	switch {
	case !ok:
		s.warn(b.Ref(), fmt.Sprintf("roleRef kind %q is neither Role nor ClusterRole: the binding grants nothing", b.RoleRef.Kind))
	case ref.Kind == KindClusterRole:
		e.role = s.clusterRoles[ref.Name]
	default:
		e.role = s.roles[nsName{ref.Namespace, ref.Name}]
	}
	e.roleRef = ref
	if ok && e.role == nil {
		s.warn(b.Ref(), fmt.Sprintf("roleRef %s does not exist: the binding grants nothing", ref))
	}
	for i, subj := range b.Subjects {
		e.subjects[i] = subjectPrincipal(subj, scope)
		e.subjectIDs[i] = s.principalID(e.subjects[i], subj)
		if e.subjects[i].kind == matchesNobody {
			s.warn(b.Ref(), fmt.Sprintf("subject %d (%s %q) can never match a caller", i, subj.Kind, subj.Name))
		}
	}
	return e
}

// subjectPrincipal returns what a binding subject matches. A ServiceAccount subject without a namespace means the
// RoleBinding's own namespace; in a ClusterRoleBinding it matches nobody.
func subjectPrincipal(subj rbacv1.Subject, scope string) principal {
	switch subj.Kind {
	case rbacv1.UserKind:
		return principal{matchesUser, subj.Name}
	case rbacv1.GroupKind:
		return principal{matchesGroup, subj.Name}
	case rbacv1.ServiceAccountKind:
		ns := cmp.Or(subj.Namespace, scope)
		if ns == "" {
			return principal{}
		}
		return principal{matchesUser, ServiceAccountUsername(ns, subj.Name)}
	}
	return principal{}
}

func uniquePrincipals(ps []principal) []principal {
	out := make([]principal, 0, len(ps))
	for _, p := range ps {
		if p.kind != matchesNobody && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Snapshot) warn(ref ObjectRef, msg string) {
	s.warnings = append(s.warnings, Warning{Object: ref, Message: msg})
}

// Objects returns the indexed objects, sorted by namespace and name, with the rules of aggregated ClusterRoles
// as kiem computed them. The result is shared: callers must not modify it.
func (s *Snapshot) Objects() *Objects { return &s.objs }

// Object returns the object ref names, as the snapshot holds it (aggregated rules computed). The result is shared:
// callers must not modify it.
func (s *Snapshot) Object(ref ObjectRef) (Object, bool) {
	o, ok := s.byRef[ref]
	return o, ok
}

// Warnings returns what NewSnapshot noticed: dangling roleRefs, subjects that can never match, aggregation
// rules the controller would refuse.
func (s *Snapshot) Warnings() []Warning { return s.warnings }

// ClusterRole returns the ClusterRole called name, with aggregated rules computed.
func (s *Snapshot) ClusterRole(name string) (*Role, bool) {
	e, ok := s.clusterRoles[name]
	if !ok {
		return nil, false
	}
	return e.r, true
}

// Role returns the Role ns/name.
func (s *Snapshot) Role(ns, name string) (*Role, bool) {
	e, ok := s.roles[nsName{ns, name}]
	if !ok {
		return nil, false
	}
	return e.r, true
}
