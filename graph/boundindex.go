package graph

import (
	"cmp"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// boundIndex says where bindings name each principal: BindingsOf and the questions "is it bound", "in which
// namespaces" would otherwise ask every namespace of the cluster (thousands of lookups per question).
//
// It is built on first use, and a snapshot made by Apply from one whose index is built derives its own from it:
// the index is split in parts by principal, the new snapshot shares every part the changed shards do not touch,
// and copies the few they do. One change costs a comparison of the changed shards' subjects, not a rebuild.
type boundIndex struct {
	mu    sync.Mutex
	parts atomic.Pointer[boundParts]
}

const boundPartCount = 256

// boundParts lists, per principal, "" when a ClusterRoleBinding names it, then the namespaces of its
// RoleBindings, sorted. Lists are never modified once stored: a change stores a new one.
type boundParts [boundPartCount]map[principal][]string

var boundSeed = maphash.MakeSeed()

func boundPart(p principal) int {
	return int(maphash.String(boundSeed, p.name) % boundPartCount)
}

func (s *Snapshot) bound() *boundParts {
	if parts := s.boundIdx.parts.Load(); parts != nil {
		return parts
	}
	s.boundIdx.mu.Lock()
	defer s.boundIdx.mu.Unlock()
	if parts := s.boundIdx.parts.Load(); parts != nil {
		return parts
	}
	parts := &boundParts{}
	for i := range parts {
		parts[i] = map[principal][]string{}
	}
	add := func(p principal, ns string) {
		m := parts[boundPart(p)]
		m[p] = append(m[p], ns)
	}
	for p := range s.crb.bySubject {
		add(p, "")
	}
	for _, ns := range s.nsNames { // sorted: each list stays sorted
		for p := range s.nss[ns].bySubject {
			add(p, ns)
		}
	}
	s.boundIdx.parts.Store(parts)
	return parts
}

// deriveBound gives n, made by Apply from s, an index derived from s's when s has one: changed names the scopes
// whose bindings may have changed ("" for the ClusterRoleBindings).
func (n *Snapshot) deriveBound(s *Snapshot, changed []string) {
	old := s.boundIdx.parts.Load()
	if old == nil {
		return // built on first use
	}
	parts := *old
	copied := [boundPartCount]bool{}
	set := func(p principal, ns string, present bool) {
		i := boundPart(p)
		list := parts[i][p]
		at, found := slices.BinarySearchFunc(list, ns, cmp.Compare[string])
		if found == present {
			return
		}
		if !copied[i] {
			parts[i], copied[i] = maps.Clone(parts[i]), true
		}
		if present {
			parts[i][p] = slices.Insert(slices.Clone(list), at, ns)
		} else if len(list) == 1 {
			delete(parts[i], p)
		} else {
			parts[i][p] = slices.Delete(slices.Clone(list), at, at+1)
		}
	}
	subjects := func(s *Snapshot, ns string) map[principal][]int32 {
		if ns == "" {
			return s.crb.bySubject
		}
		if sh := s.nss[ns]; sh != nil {
			return sh.bySubject
		}
		return nil
	}
	for _, ns := range changed {
		before, after := subjects(s, ns), subjects(n, ns)
		for p := range before {
			if _, ok := after[p]; !ok {
				set(p, ns, false)
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok {
				set(p, ns, true)
			}
		}
	}
	n.boundIdx.parts.Store(&parts)
}

// principalOfRef is the principal a User, Group or ServiceAccount reference stands for.
func principalOfRef(ref ObjectRef) (principal, bool) {
	switch ref.Kind {
	case KindUser:
		return principal{matchesUser, ref.Name}, true
	case KindGroup:
		return principal{matchesGroup, ref.Name}, true
	case KindServiceAccount:
		if ref.Namespace == "" {
			return principal{}, false
		}
		return principal{matchesUser, ServiceAccountUsername(ref.Namespace, ref.Name)}, true
	}
	return principal{}, false
}

func (s *Snapshot) boundIn(p principal) []string { return s.bound()[boundPart(p)][p] }

// BoundIn returns where bindings name ref (a User, Group or ServiceAccount) directly: "" first when a
// ClusterRoleBinding does, then the namespaces of its RoleBindings, sorted. Callers must not modify it.
func (s *Snapshot) BoundIn(ref ObjectRef) []string {
	p, ok := principalOfRef(ref)
	if !ok {
		return nil
	}
	return s.boundIn(p)
}

// BoundNamespaces returns, sorted and without repeats, the namespaces where a RoleBinding names the identity:
// its user name or one of its groups.
func (s *Snapshot) BoundNamespaces(id Identity) []string {
	var out []string
	add := func(p principal) {
		for _, ns := range s.boundIn(p) {
			if ns != "" {
				out = append(out, ns)
			}
		}
	}
	add(principal{matchesUser, id.User})
	for _, g := range id.Groups {
		add(principal{matchesGroup, g})
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// BoundServiceAccounts returns the ServiceAccounts of namespace ns that a binding names (as a ServiceAccount
// subject or by user name), by name; those whose object does not exist included.
func (s *Snapshot) BoundServiceAccounts(ns string) []ObjectRef {
	s.table.mu.Lock()
	ids := slices.Clone(s.table.accounts[ns])
	s.table.mu.Unlock()
	var out []ObjectRef
	for _, id := range ids {
		if int(id) >= len(s.refs) {
			continue // named only in a later snapshot
		}
		ref := s.refs[id]
		if len(s.BoundIn(ref)) > 0 {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b ObjectRef) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// RoleBoundBy reports whether a ClusterRoleBinding references the role (clusterWide) and whether a RoleBinding
// does (inNamespace), without listing the bindings: a widely used ClusterRole has thousands.
func (s *Snapshot) RoleBoundBy(ref ObjectRef) (clusterWide, inNamespace bool) {
	switch ref.Kind {
	case KindClusterRole:
		clusterWide = len(s.crb.byClusterRole[ref.Name]) > 0
		for _, ns := range s.nsNames {
			if len(s.nss[ns].byClusterRole[ref.Name]) > 0 {
				return clusterWide, true
			}
		}
		return clusterWide, false
	case KindRole:
		return false, len(s.BindingsOfRoleIn(ref, ref.Namespace)) > 0
	}
	return false, false
}

// BindingsOfRoleIn is BindingsOfRole limited to one scope: the RoleBindings of namespace ns, or with ns empty the
// ClusterRoleBindings.
func (s *Snapshot) BindingsOfRoleIn(ref ObjectRef, ns string) []ObjectRef {
	var out []ObjectRef
	switch {
	case ref.Kind == KindClusterRole && ns == "":
		for _, i := range s.crb.byClusterRole[ref.Name] {
			out = append(out, s.crb.entries[i].ref)
		}
	case ref.Kind == KindClusterRole:
		if sh := s.nss[ns]; sh != nil {
			for _, i := range sh.byClusterRole[ref.Name] {
				out = append(out, sh.entries[i].ref)
			}
		}
	case ref.Kind == KindRole && ns == ref.Namespace:
		return s.BindingsOfRole(ref)
	}
	return out
}
