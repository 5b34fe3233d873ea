package graph

import rbacv1 "k8s.io/api/rbac/v1"

// Bound is one binding that names an identity, with the role it references: the unit of grant that VisitBound
// gives. It is a few words and points into the snapshot, which is immutable.
type Bound struct {
	be      *bindingEntry
	role    *roleEntry
	subject int
}

// Namespace is the namespace of the binding: empty for a ClusterRoleBinding.
func (b Bound) Namespace() string { return b.be.b.Namespace }

// Binding names the binding.
func (b Bound) Binding() *ObjectRef { return &b.be.ref }

// Subject is the first subject of the binding that names the identity, the one the authorizer reports.
func (b Bound) Subject() *rbacv1.Subject { return &b.be.b.Subjects[b.subject] }

// Role is the role as the snapshot uses it (with aggregated rules computed). Within a snapshot, and across
// snapshots for as long as the role does not change, it is the same pointer: callers may key caches by it.
func (b Bound) Role() *Role { return b.role.r }

// RoleRef names the role the binding references.
func (b Bound) RoleRef() *ObjectRef { return &b.be.roleRef }

// Permission is the permission that rule i of the role grants through this binding.
func (b Bound) Permission(i int) Permission {
	return Permission{Namespace: b.be.b.Namespace, GrantPath: b.be.path(b.role, b.subject, i)}
}

// VisitBound calls fn, until it returns false, for every binding that names id (its user name or one of its
// groups) and references an existing role: with ns empty the ClusterRoleBindings, else the RoleBindings of ns
// only, in the order Can reports them. Together they are what Can consults for a request in ns, one binding at a
// time instead of one rule at a time, so callers can answer many questions from the same few bindings.
func (s *Snapshot) VisitBound(id Identity, ns string, fn func(Bound) bool) {
	var buf [32]int32
	entries, index := s.crb.entries, s.crb.bySubject
	if ns != "" {
		sh := s.nss[ns]
		if sh == nil {
			return
		}
		entries, index = sh.entries, sh.bySubject
	}
	for _, i := range collect(buf[:0], id, index) {
		be := &entries[i]
		if role := s.roleOf(be); role != nil {
			if !fn(Bound{be: be, role: role, subject: be.firstSubject(id)}) {
				return
			}
		}
	}
}
