package graph

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
)

type roleEntry struct {
	src  *Role       // the role as given
	r    *Role       // the role as the snapshot uses it: src, or a copy with aggregated rules computed
	from []ObjectRef // per rule of an aggregated ClusterRole kiem recomputed; nil otherwise
}

type bindingEntry struct {
	b       *Binding
	ref     ObjectRef
	roleRef ObjectRef  // Kind is empty when the roleRef kind is neither Role nor ClusterRole
	role    *roleEntry // for Role refs, resolved in the binding's shard; ClusterRoles resolve at query time
	// subjects and subjectIDs are per subject index: what it matches, and its principal ID (-1: nobody).
	subjects   []principal
	subjectIDs []int32
}

// crShard holds ClusterRoles.
type crShard struct {
	roles    []*roleEntry // by name
	byName   map[string]*roleEntry
	warnings []Warning // from aggregation
	// aggregating holds the selectors of every aggregated ClusterRole kiem recomputes: a change to a role that
	// none of them matches, and that aggregates nothing itself, leaves every aggregation as it was.
	aggregating []labels.Selector
	search      lazyIndex
}

// crbShard holds ClusterRoleBindings. Their ClusterRoles resolve at query time, so the two shards change apart.
type crbShard struct {
	bindings      []Binding // by name
	entries       []bindingEntry
	bindingByName map[string]int32
	bySubject     map[principal][]int32 // ClusterRoleBindings naming a user or group
	byClusterRole map[string][]int32
	search        lazyIndex
}

// nsShard holds the namespaced objects of one namespace.
type nsShard struct {
	ns              string
	srcRoles        []Role // by name
	roles           []*roleEntry
	roleByName      map[string]*roleEntry
	bindings        []Binding // by name
	entries         []bindingEntry
	bindingByName   map[string]int32
	bySubject       map[principal][]int32 // RoleBindings naming a user or group
	byRole          map[string][]int32    // RoleBindings by Role name
	byClusterRole   map[string][]int32    // RoleBindings by ClusterRole name
	serviceAccounts []ServiceAccount      // by name
	saByName        map[string]int32
	pods            []Pod // by name
	podByName       map[string]int32
	secrets         []Secret // by name; empty unless secret metadata is indexed
	secretByName    map[string]int32
	search          lazyIndex
}

// inventoryShard holds Namespaces, Nodes and declared Users.
type inventoryShard struct {
	users      []User // by name
	userByName map[string]int32
	namespaces []Namespace // by name
	nsByName   map[string]int32
	nodes      []Node // by name
	nodeByName map[string]int32
	search     lazyIndex
}

// buildCRShard indexes ClusterRoles, sorted by name without repeats, computing aggregation unless the API's
// rules are taken as given.
func buildCRShard(roles []Role, opts SnapshotOptions) *crShard {
	sh := &crShard{roles: make([]*roleEntry, len(roles)), byName: make(map[string]*roleEntry, len(roles))}
	var agg map[string]aggregated
	if !opts.APIAggregation {
		agg, sh.warnings = aggregate(roles)
	}
	for i := range roles {
		r := &roles[i]
		setKind(&r.Kind, KindClusterRole)
		e := &roleEntry{src: r, r: r}
		if a, ok := agg[r.Name]; ok {
			computed := *r
			computed.Rules = a.rules
			e.r, e.from = &computed, a.from
			sh.aggregating = append(sh.aggregating, a.selectors...)
		}
		sh.roles[i] = e
		sh.byName[r.Name] = e
	}
	return sh
}

// srcRoles returns the ClusterRoles as given.
func (sh *crShard) srcRoles() []Role {
	out := make([]Role, len(sh.roles))
	for i, e := range sh.roles {
		out[i] = *e.src
	}
	return out
}

// affectsAggregation reports whether replacing the roles named in edits can change any aggregated rules: a role
// that aggregates, or whose labels (before or after) some aggregated role selects, takes part.
func (sh *crShard) affectsAggregation(edits map[string]Object) bool {
	involved := func(r *Role) bool {
		if r == nil {
			return false
		}
		if r.AggregationRule != nil {
			return true
		}
		for _, sel := range sh.aggregating {
			if sel.Matches(labels.Set(r.Labels)) {
				return true
			}
		}
		return false
	}
	for name, o := range edits {
		after, _ := o.(*Role)
		var before *Role
		if e := sh.byName[name]; e != nil {
			before = e.src
		}
		if involved(before) || involved(after) {
			return true
		}
	}
	return false
}

// withEdits returns the shard with the roles of edits put in place. Unless aggregation may change (see
// affectsAggregation), the entries of other roles, aggregated ones included, are shared.
func (sh *crShard) withEdits(edits map[string]Object, opts SnapshotOptions) *crShard {
	if !opts.APIAggregation && sh.affectsAggregation(edits) {
		return buildCRShard(edit(sh.srcRoles(), edits), opts)
	}
	n := &crShard{warnings: sh.warnings, aggregating: sh.aggregating, byName: make(map[string]*roleEntry, len(sh.byName)+len(edits))}
	for _, e := range sh.roles {
		if _, edited := edits[e.src.Name]; !edited {
			n.roles = append(n.roles, e)
		}
	}
	for _, o := range edits {
		if r, ok := o.(*Role); ok && r != nil {
			c := *r
			setKind(&c.Kind, KindClusterRole)
			n.roles = append(n.roles, &roleEntry{src: &c, r: &c})
		}
	}
	slices.SortFunc(n.roles, func(a, b *roleEntry) int { return strings.Compare(a.src.Name, b.src.Name) })
	for _, e := range n.roles {
		n.byName[e.src.Name] = e
	}
	return n
}

// buildCRBShard indexes ClusterRoleBindings, sorted by name without repeats. Callers hold table.mu.
func buildCRBShard(bindings []Binding, table *principalTable) *crbShard {
	sh := &crbShard{
		bindings:      bindings,
		entries:       make([]bindingEntry, len(bindings)),
		bindingByName: make(map[string]int32, len(bindings)),
		bySubject:     make(map[principal][]int32),
		byClusterRole: make(map[string][]int32),
	}
	for i := range bindings {
		b := &bindings[i]
		setKind(&b.Kind, KindClusterRoleBinding)
		sh.entries[i] = newBindingEntry(b, "", nil, table)
		sh.bindingByName[b.Name] = int32(i)
		for _, p := range uniquePrincipals(sh.entries[i].subjects) {
			sh.bySubject[p] = append(sh.bySubject[p], int32(i))
		}
		if ref := sh.entries[i].roleRef; ref.Kind == KindClusterRole {
			sh.byClusterRole[ref.Name] = append(sh.byClusterRole[ref.Name], int32(i))
		}
	}
	return sh
}

// buildNsShard indexes the objects of namespace ns, each kind sorted by name without repeats. Callers hold
// table.mu.
func buildNsShard(ns string, roles []Role, bindings []Binding, sas []ServiceAccount, pods []Pod, secrets []Secret, table *principalTable) *nsShard {
	sh := &nsShard{
		ns:              ns,
		srcRoles:        roles,
		roles:           make([]*roleEntry, len(roles)),
		roleByName:      make(map[string]*roleEntry, len(roles)),
		bindings:        bindings,
		entries:         make([]bindingEntry, len(bindings)),
		bindingByName:   make(map[string]int32, len(bindings)),
		bySubject:       make(map[principal][]int32),
		byRole:          make(map[string][]int32),
		byClusterRole:   make(map[string][]int32),
		serviceAccounts: sas,
		saByName:        indexByName(sas, func(a *ServiceAccount) string { return a.Name }),
		pods:            pods,
		podByName:       indexByName(pods, func(p *Pod) string { return p.Name }),
		secrets:         secrets,
		secretByName:    indexByName(secrets, func(s *Secret) string { return s.Name }),
	}
	for i := range roles {
		r := &roles[i]
		setKind(&r.Kind, KindRole)
		sh.roles[i] = &roleEntry{src: r, r: r}
		sh.roleByName[r.Name] = sh.roles[i]
	}
	for i := range bindings {
		b := &bindings[i]
		setKind(&b.Kind, KindRoleBinding)
		e := newBindingEntry(b, ns, sh.roleByName, table)
		sh.entries[i] = e
		sh.bindingByName[b.Name] = int32(i)
		for _, p := range uniquePrincipals(e.subjects) {
			sh.bySubject[p] = append(sh.bySubject[p], int32(i))
		}
		switch e.roleRef.Kind {
		case KindClusterRole:
			sh.byClusterRole[e.roleRef.Name] = append(sh.byClusterRole[e.roleRef.Name], int32(i))
		case KindRole:
			if e.role != nil {
				sh.byRole[e.roleRef.Name] = append(sh.byRole[e.roleRef.Name], int32(i))
			}
		}
	}
	return sh
}

func buildInventoryShard(namespaces []Namespace, nodes []Node, users []User) *inventoryShard {
	return &inventoryShard{
		users:      users,
		userByName: indexByName(users, func(u *User) string { return u.Name }),
		namespaces: namespaces,
		nsByName:   indexByName(namespaces, func(n *Namespace) string { return n.Name }),
		nodes:      nodes,
		nodeByName: indexByName(nodes, func(n *Node) string { return n.Name }),
	}
}

func indexByName[T any](items []T, name func(*T) string) map[string]int32 {
	m := make(map[string]int32, len(items))
	for i := range items {
		m[name(&items[i])] = int32(i)
	}
	return m
}

// newBindingEntry resolves a binding's roleRef and subjects as the authorizer would for requests in namespace
// scope ("" for ClusterRoleBindings). roles resolves Role refs; nil for ClusterRoleBindings, whose Role refs never
// resolve. Callers hold table.mu.
func newBindingEntry(b *Binding, scope string, roles map[string]*roleEntry, table *principalTable) bindingEntry {
	e := bindingEntry{b: b, ref: b.Ref(), subjects: make([]principal, len(b.Subjects)), subjectIDs: make([]int32, len(b.Subjects))}
	if ref, ok := b.RoleRefObject(); ok {
		e.roleRef = ref
		if ref.Kind == KindRole && roles != nil {
			e.role = roles[ref.Name]
		}
	}
	for i, subj := range b.Subjects {
		e.subjects[i] = subjectPrincipal(subj, scope)
		e.subjectIDs[i] = table.id(e.subjects[i])
	}
	return e
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

func (sh *nsShard) object(ref ObjectRef) (Object, bool) {
	switch ref.Kind {
	case KindRole:
		if e, ok := sh.roleByName[ref.Name]; ok {
			return e.src, true
		}
	case KindRoleBinding:
		if i, ok := sh.bindingByName[ref.Name]; ok {
			return &sh.bindings[i], true
		}
	case KindServiceAccount:
		if i, ok := sh.saByName[ref.Name]; ok {
			return &sh.serviceAccounts[i], true
		}
	case KindPod:
		if i, ok := sh.podByName[ref.Name]; ok {
			return &sh.pods[i], true
		}
	case KindSecret:
		if i, ok := sh.secretByName[ref.Name]; ok {
			return &sh.secrets[i], true
		}
	}
	return nil, false
}

// ref names the subject a principal stands for: a user name that is a ServiceAccount's is that ServiceAccount.
func (p principal) ref() ObjectRef {
	if p.kind == matchesGroup {
		return ObjectRef{Kind: KindGroup, Name: p.name}
	}
	if ns, name, ok := SplitServiceAccountUsername(p.name); ok {
		return ObjectRef{Kind: KindServiceAccount, Namespace: ns, Name: name}
	}
	return ObjectRef{Kind: KindUser, Name: p.name}
}

// subjectRef names subject si of a binding as WhoCan reports it: a subject the binding names as a ServiceAccount
// is that ServiceAccount even when its name is not one the API would accept.
func (be *bindingEntry) subjectRef(refs []ObjectRef, si int) ObjectRef {
	ref := refs[be.subjectIDs[si]]
	if subj := be.b.Subjects[si]; subj.Kind == rbacv1.ServiceAccountKind && ref.Kind != KindServiceAccount {
		ns := subj.Namespace
		if ns == "" {
			ns = be.b.Namespace
		}
		ref = ObjectRef{Kind: KindServiceAccount, Namespace: ns, Name: subj.Name}
	}
	return ref
}

// String is for debugging.
func (be *bindingEntry) String() string { return fmt.Sprintf("%s -> %s", be.ref, be.roleRef) }

// setKind fills in the kind of a role or binding. Shards share unchanged object slices with the snapshots they
// were applied from, which other goroutines may be reading: write only when the value differs, which happens
// only for objects no other snapshot holds yet.
func setKind(k *Kind, want Kind) {
	if *k != want {
		*k = want
	}
}
