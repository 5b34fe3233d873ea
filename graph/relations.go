package graph

import (
	"slices"
	"sync"
	"sync/atomic"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The accessors below give the explorer the neighbours of a node. They read the shards' own indexes, so each
// costs at most one map lookup per namespace; none materialises Objects.

// BindingsOf returns the bindings whose subjects name ref directly: a User, a Group, or a ServiceAccount, which a
// binding names either as a ServiceAccount subject or as the User system:serviceaccount:ns:name, the two meeting
// in one entry as they do in the authorizer. Groups are not expanded: a Group's bindings are those naming the
// group, and a ServiceAccount's are not those of system:serviceaccounts. ClusterRoleBindings come first by name,
// then RoleBindings by namespace and name. Other kinds have no bindings.
func (s *Snapshot) BindingsOf(ref ObjectRef) []ObjectRef {
	p, ok := principalOfRef(ref)
	if !ok {
		return nil
	}
	var out []ObjectRef
	for _, ns := range s.boundIn(p) {
		if ns == "" {
			for _, i := range s.crb.bySubject[p] {
				out = append(out, s.crb.entries[i].ref)
			}
			continue
		}
		sh := s.nss[ns]
		for _, i := range sh.bySubject[p] {
			out = append(out, sh.entries[i].ref)
		}
	}
	return out
}

// BindingsOfRole returns the bindings whose roleRef is ref, in BindingsOf's order: for a ClusterRole, the
// ClusterRoleBindings and the RoleBindings of every namespace; for a Role, the RoleBindings of its namespace. A
// role that does not exist still has the bindings that name it, so dangling references can be shown.
func (s *Snapshot) BindingsOfRole(ref ObjectRef) []ObjectRef {
	var out []ObjectRef
	switch ref.Kind {
	case KindClusterRole:
		for _, i := range s.crb.byClusterRole[ref.Name] {
			out = append(out, s.crb.entries[i].ref)
		}
		for _, ns := range s.nsNames {
			sh := s.nss[ns]
			for _, i := range sh.byClusterRole[ref.Name] {
				out = append(out, sh.entries[i].ref)
			}
		}
	case KindRole:
		sh := s.nss[ref.Namespace]
		if sh == nil {
			return nil
		}
		if _, exists := sh.roleByName[ref.Name]; exists {
			for _, i := range sh.byRole[ref.Name] {
				out = append(out, sh.entries[i].ref)
			}
			return out
		}
		// byRole holds resolved references only; a dangling one is found by its name among the namespace's few
		// bindings.
		for i := range sh.entries {
			if e := &sh.entries[i]; e.roleRef.Kind == KindRole && e.roleRef.Name == ref.Name {
				out = append(out, e.ref)
			}
		}
	}
	return out
}

// AggregatedFrom returns the ClusterRoles whose rules the aggregated ClusterRole name takes: for each selector
// of its aggregationRule in order, the roles it matches by name, itself skipped, each listed once where it is
// first selected (the order in which aggregation collects rules). nil when name does not aggregate, or when one
// of its selectors is invalid: the aggregation controller then never updates the role.
//
// The answer is the same whether the snapshot recomputes aggregation or takes the API's rules: it compares the
// selectors with the roles' labels, as the controller does.
func (s *Snapshot) AggregatedFrom(name string) []ObjectRef {
	e := s.cr.byName[name]
	if e == nil || e.src.AggregationRule == nil {
		return nil
	}
	sels, ok := parseSelectors(e.src.AggregationRule.ClusterRoleSelectors)
	if !ok {
		return nil
	}
	var out []ObjectRef
	seen := map[string]bool{}
	for _, sel := range sels {
		for _, c := range s.cr.roles {
			if c.src.Name != name && !seen[c.src.Name] && sel.Matches(labels.Set(c.src.Labels)) {
				seen[c.src.Name] = true
				out = append(out, ObjectRef{Kind: KindClusterRole, Name: c.src.Name})
			}
		}
	}
	return out
}

// AggregatedInto returns the aggregated ClusterRoles, by name, that take the rules of ClusterRole name: those
// with a valid aggregationRule of which a selector matches name's labels, name itself excepted.
func (s *Snapshot) AggregatedInto(name string) []ObjectRef {
	e := s.cr.byName[name]
	if e == nil {
		return nil
	}
	set := labels.Set(e.src.Labels)
	var out []ObjectRef
	for _, a := range s.cr.roles {
		if a.src.AggregationRule == nil || a.src.Name == name {
			continue
		}
		sels, ok := parseSelectors(a.src.AggregationRule.ClusterRoleSelectors)
		if ok && slices.ContainsFunc(sels, func(sel labels.Selector) bool { return sel.Matches(set) }) {
			out = append(out, ObjectRef{Kind: KindClusterRole, Name: a.src.Name})
		}
	}
	return out
}

// parseSelectors parses an aggregationRule's selectors; ok is false if any is invalid, as aggregate treats it.
func parseSelectors(ls []metav1.LabelSelector) ([]labels.Selector, bool) {
	out := make([]labels.Selector, 0, len(ls))
	for i := range ls {
		sel, err := metav1.LabelSelectorAsSelector(&ls[i])
		if err != nil {
			return nil, false
		}
		out = append(out, sel)
	}
	return out, true
}

// PodsOf returns the pods of namespace ns that run as ServiceAccount sa, by name.
func (s *Snapshot) PodsOf(ns, sa string) []ObjectRef {
	sh := s.nss[ns]
	if sh == nil {
		return nil
	}
	var out []ObjectRef
	for i := range sh.pods {
		if sh.pods[i].ServiceAccount == sa {
			out = append(out, sh.pods[i].Ref())
		}
	}
	return out
}

// Each calls fn for every object of kind k in namespace ns ("" for every namespace; cluster-scoped kinds ignore
// ns), by namespace and then name, until fn returns false. Users are the declared ones (see Subjects for every
// user the snapshot knows); Groups are no objects, so none are visited. ClusterRoles carry the rules the snapshot
// uses, aggregated ones computed, as in Objects. The objects are shared: fn must not modify them.
func (s *Snapshot) Each(k Kind, ns string, fn func(Object) bool) {
	switch k {
	case KindClusterRole:
		for _, e := range s.cr.roles {
			if !fn(e.r) {
				return
			}
		}
	case KindClusterRoleBinding:
		eachOf(s.crb.bindings, fn)
	case KindNamespace:
		eachOf(s.inv.namespaces, fn)
	case KindNode:
		eachOf(s.inv.nodes, fn)
	case KindUser:
		eachOf(s.inv.users, fn)
	case KindRole, KindRoleBinding, KindServiceAccount, KindPod, KindSecret:
		for _, sh := range s.nsShards(ns) {
			var more bool
			switch k {
			case KindRole:
				more = true
				for _, e := range sh.roles {
					if more = fn(e.src); !more {
						break
					}
				}
			case KindRoleBinding:
				more = eachOf(sh.bindings, fn)
			case KindServiceAccount:
				more = eachOf(sh.serviceAccounts, fn)
			case KindPod:
				more = eachOf(sh.pods, fn)
			case KindSecret:
				more = eachOf(sh.secrets, fn)
			}
			if !more {
				return
			}
		}
	}
}

// eachOf calls fn for each item, through a pointer so that the item satisfies Object; false if fn stopped.
func eachOf[T any, P interface {
	*T
	Object
}](items []T, fn func(Object) bool) bool {
	for i := range items {
		if !fn(P(&items[i])) {
			return false
		}
	}
	return true
}

// Count returns how many objects Each would visit.
func (s *Snapshot) Count(k Kind, ns string) int {
	switch k {
	case KindClusterRole:
		return len(s.cr.roles)
	case KindClusterRoleBinding:
		return len(s.crb.bindings)
	case KindNamespace:
		return len(s.inv.namespaces)
	case KindNode:
		return len(s.inv.nodes)
	case KindUser:
		return len(s.inv.users)
	}
	n := 0
	for _, sh := range s.nsShards(ns) {
		switch k {
		case KindRole:
			n += len(sh.roles)
		case KindRoleBinding:
			n += len(sh.bindings)
		case KindServiceAccount:
			n += len(sh.serviceAccounts)
		case KindPod:
			n += len(sh.pods)
		case KindSecret:
			n += len(sh.secrets)
		}
	}
	return n
}

// nsShards returns the shard of ns, or every namespace shard in order when ns is "".
func (s *Snapshot) nsShards(ns string) []*nsShard {
	if ns != "" {
		if sh := s.nss[ns]; sh != nil {
			return []*nsShard{sh}
		}
		return nil
	}
	out := make([]*nsShard, len(s.nsNames))
	for i, name := range s.nsNames {
		out[i] = s.nss[name]
	}
	return out
}

// subjectSet is what Subjects answers, built once per snapshot.
type subjectSet struct {
	once   sync.Once
	built  atomic.Bool // set once users and groups are, so that HasSubject can use them without waiting
	users  []string
	groups []string
}

// Subjects returns the names of the Users or Groups (k is KindUser or KindGroup) the snapshot knows, sorted and
// without repeats: those a User or Group subject names, and the declared Users with every group they list. A user
// name that is a ServiceAccount's (system:serviceaccount:ns:name) is that ServiceAccount, not a User; so is a
// ServiceAccount subject, even one whose name the API would refuse. The list is built on first use and shared:
// callers must not modify it.
func (s *Snapshot) Subjects(k Kind) []string {
	set := s.subjectSet()
	switch k {
	case KindUser:
		return set.users
	case KindGroup:
		return set.groups
	}
	return nil
}

func (s *Snapshot) subjectSet() *subjectSet {
	set := &s.subjects
	set.once.Do(func() {
		// Principal IDs are dense and this snapshot's are below len(s.refs); marking them costs a pass over the
		// bindings' subject IDs and no hashing of names.
		named := make([]bool, len(s.refs))
		mark := func(entries []bindingEntry) {
			for i := range entries {
				for si, id := range entries[i].subjectIDs {
					if id >= 0 && entries[i].b.Subjects[si].Kind != rbacv1.ServiceAccountKind {
						named[id] = true
					}
				}
			}
		}
		mark(s.crb.entries)
		for _, ns := range s.nsNames {
			mark(s.nss[ns].entries)
		}
		for id, ok := range named {
			if !ok {
				continue
			}
			switch ref := s.refs[id]; ref.Kind {
			case KindUser:
				set.users = append(set.users, ref.Name)
			case KindGroup:
				set.groups = append(set.groups, ref.Name)
			}
		}
		for i := range s.inv.users {
			u := &s.inv.users[i]
			set.users = append(set.users, u.Name)
			set.groups = append(set.groups, u.Membership()...)
		}
		slices.Sort(set.users)
		set.users = slices.Compact(set.users)
		slices.Sort(set.groups)
		set.groups = slices.Compact(set.groups)
		set.built.Store(true)
	})
	return set
}

// HasSubject reports whether Subjects(k) holds name. Until the list is built it asks the shards' subject indexes
// instead, a map lookup per namespace, so that resolving one node does not cost a walk of every binding.
func (s *Snapshot) HasSubject(k Kind, name string) bool {
	if k != KindUser && k != KindGroup {
		return false
	}
	if s.subjects.built.Load() {
		_, found := slices.BinarySearch(s.Subjects(k), name)
		return found
	}
	p := principal{matchesGroup, name}
	if k == KindUser {
		if _, ok := s.inv.userByName[name]; ok {
			return true
		}
		if _, _, isSA := SplitServiceAccountUsername(name); isSA {
			return false
		}
		p.kind = matchesUser
	}
	// A user is named by a User subject; a ServiceAccount subject names the same principal but is no User.
	names := func(entries []bindingEntry, idx []int32) bool {
		for _, i := range idx {
			for si, q := range entries[i].subjects {
				if q == p && entries[i].b.Subjects[si].Kind != rbacv1.ServiceAccountKind {
					return true
				}
			}
		}
		return false
	}
	if names(s.crb.entries, s.crb.bySubject[p]) {
		return true
	}
	for _, ns := range s.nsNames {
		if sh := s.nss[ns]; names(sh.entries, sh.bySubject[p]) {
			return true
		}
	}
	return k == KindGroup && len(s.MembersOf(name)) > 0
}

// MembersOf returns the known Users whose groups (declared or observed) include group, by name. Memberships the apiserver adds
// (system:authenticated, the ServiceAccount groups) are not listed.
func (s *Snapshot) MembersOf(group string) []string {
	var out []string
	for i := range s.inv.users {
		if slices.Contains(s.inv.users[i].Membership(), group) {
			out = append(out, s.inv.users[i].Name)
		}
	}
	return out
}

// NamespaceNames returns, sorted, the names of the namespaces that have a Namespace object or hold any
// namespaced object (a namespace can be referenced before, or without, its object being indexed).
func (s *Snapshot) NamespaceNames() []string {
	out := make([]string, 0, max(len(s.inv.namespaces), len(s.nsNames)))
	objs, shards := s.inv.namespaces, s.nsNames
	if len(shards) > 0 && shards[0] == "" {
		shards = shards[1:] // objects given without a namespace are in no namespace
	}
	for len(objs) > 0 || len(shards) > 0 {
		switch {
		case len(shards) == 0 || len(objs) > 0 && objs[0].Name < shards[0]:
			out = append(out, objs[0].Name)
			objs = objs[1:]
		case len(objs) == 0 || shards[0] < objs[0].Name:
			out = append(out, shards[0])
			shards = shards[1:]
		default:
			out = append(out, shards[0])
			objs, shards = objs[1:], shards[1:]
		}
	}
	return out
}
