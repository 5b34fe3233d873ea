package graph

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"

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

// SnapshotOptions tunes how a snapshot reads its objects.
type SnapshotOptions struct {
	// APIAggregation takes the rules of aggregated ClusterRoles as given, as the authorizer of a live cluster does
	// once kube-controller-manager has written them. Without it (files, manifests, what-if overlays) kiem
	// recomputes them as the controller would.
	APIAggregation bool
}

// Snapshot is an immutable, indexed view of one set of objects that answers Can, WhoCan and
// EffectivePermissions without scanning every binding. It is safe for concurrent use.
//
// The indexes, in the direction the authorizer walks them:
//
//	identity ──user name / group──▶ ClusterRoleBindings ──roleRef──▶ ClusterRole ──▶ rules
//	identity ──(namespace, user name / group)──▶ RoleBindings ──roleRef──▶ Role | ClusterRole ──▶ rules
//
// and the reverse ones for WhoCan: role ──▶ bindings that reference it. ServiceAccount subjects are indexed by
// the user name they stand for, so a User subject named system:serviceaccount:ns:name and a ServiceAccount
// subject ns/name meet in the same entry, as they do in the authorizer.
//
// The indexes are sharded: one shard holds ClusterRoles and ClusterRoleBindings, one shard per namespace holds
// its Roles, RoleBindings, ServiceAccounts and Pods, and one holds Namespaces and Nodes. Apply rebuilds only the
// shards a change touches and shares the others with the snapshot it came from, so the live graph follows a
// change in a namespace in microseconds. A RoleBinding's ClusterRole is therefore looked up at query time: the
// cluster shard can change under an unchanged namespace shard.
type Snapshot struct {
	opts SnapshotOptions
	cr   *crShard
	crb  *crbShard
	inv  *inventoryShard
	nss  map[string]*nsShard
	// nsNames lists the keys of nss in order, for answers that walk every namespace.
	nsNames []string

	table *principalTable
	refs  []ObjectRef // principal refs by ID, as long as this snapshot needs: table.refs when it was built

	objsOnce sync.Once
	objs     *Objects
	warnOnce sync.Once
	warnings []Warning
	// subjects and search are built on first use (see relations.go, search.go); shards keep their own search
	// indexes across snapshots.
	subjects subjectSet
	search   snapshotSearch
	boundIdx boundIndex
}

// principalTable gives every user or group a binding names a dense ID, so that WhoCan can collect subjects
// without hashing their names per query. It is shared by a snapshot and every snapshot applied from it and only
// grows: a snapshot reads the IDs below the length it was built with, which never change.
type principalTable struct {
	mu   sync.Mutex
	ids  map[principal]int32
	refs []ObjectRef
	// accounts lists, per namespace, the IDs of the ServiceAccounts of that namespace (see BoundServiceAccounts).
	accounts map[string][]int32
}

func newPrincipalTable() *principalTable {
	t := &principalTable{ids: make(map[principal]int32), accounts: map[string][]int32{}}
	t.id(principal{matchesGroup, GroupMasters}) // ID 0: WhoCan always lists it
	return t
}

// id returns p's ID, assigning the next one to a principal not seen before; -1 for subjects that match nobody.
// Callers hold mu.
func (t *principalTable) id(p principal) int32 {
	if p.kind == matchesNobody {
		return -1
	}
	id, ok := t.ids[p]
	if !ok {
		id = int32(len(t.refs))
		t.ids[p] = id
		ref := p.ref()
		t.refs = append(t.refs, ref)
		if ref.Kind == KindServiceAccount {
			t.accounts[ref.Namespace] = append(t.accounts[ref.Namespace], id)
		}
	}
	return id
}

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

// NewSnapshot indexes objs, recomputing aggregated ClusterRoles as kube-controller-manager would (see aggregate).
// objs itself is not modified. When objs holds the same object twice, the later one wins, as a later apply would.
func NewSnapshot(objs *Objects) *Snapshot { return NewSnapshotWith(objs, SnapshotOptions{}) }

// NewSnapshotWith is NewSnapshot with options.
func NewSnapshotWith(objs *Objects, opts SnapshotOptions) *Snapshot {
	s := &Snapshot{opts: opts, table: newPrincipalTable(), nss: make(map[string]*nsShard)}
	s.table.mu.Lock()
	defer s.table.mu.Unlock()
	s.cr = buildCRShard(lastWins(objs.ClusterRoles, nameKey[Role]), opts)
	s.crb = buildCRBShard(lastWins(objs.ClusterRoleBindings, nameKey[Binding]), s.table)
	s.inv = buildInventoryShard(lastWins(objs.Namespaces, nameKey[Namespace]), lastWins(objs.Nodes, nameKey[Node]),
		lastWins(objs.Users, nameKey[User]))
	byNs := make(map[string]*Objects)
	of := func(ns string) *Objects {
		o := byNs[ns]
		if o == nil {
			o = &Objects{}
			byNs[ns] = o
		}
		return o
	}
	for _, r := range objs.Roles {
		of(r.Namespace).Roles = append(of(r.Namespace).Roles, r)
	}
	for _, b := range objs.RoleBindings {
		of(b.Namespace).RoleBindings = append(of(b.Namespace).RoleBindings, b)
	}
	for _, a := range objs.ServiceAccounts {
		of(a.Namespace).ServiceAccounts = append(of(a.Namespace).ServiceAccounts, a)
	}
	for _, p := range objs.Pods {
		of(p.Namespace).Pods = append(of(p.Namespace).Pods, p)
	}
	for _, sec := range objs.Secrets {
		of(sec.Namespace).Secrets = append(of(sec.Namespace).Secrets, sec)
	}
	for ns, o := range byNs {
		s.nss[ns] = buildNsShard(ns, lastWins(o.Roles, nameKey[Role]), lastWins(o.RoleBindings, nameKey[Binding]),
			lastWins(o.ServiceAccounts, nameKey[ServiceAccount]), lastWins(o.Pods, nameKey[Pod]), lastWins(o.Secrets, nameKey[Secret]), s.table)
	}
	s.finish(nil)
	return s
}

// finish sets what derives from the shards; prev is the snapshot s was applied from, nil for a new one. Callers
// hold table.mu.
func (s *Snapshot) finish(prev *Snapshot) {
	if prev != nil && len(prev.nsNames) == len(s.nss) && !slices.ContainsFunc(prev.nsNames, func(ns string) bool { return s.nss[ns] == nil }) {
		s.nsNames = prev.nsNames // the same namespaces: the slice is never modified, so it is shared
	} else {
		s.nsNames = make([]string, 0, len(s.nss))
		for ns := range s.nss {
			s.nsNames = append(s.nsNames, ns)
		}
		slices.Sort(s.nsNames)
	}
	s.refs = s.table.refs
}

type named interface {
	Namespace | ServiceAccount | Role | Binding | Pod | Node | User | Secret
}

// nameKey is the key of lastWins inside one shard, where every object shares the namespace.
func nameKey[T named](o *T) string {
	switch v := any(o).(type) {
	case *Namespace:
		return v.Name
	case *ServiceAccount:
		return v.Name
	case *Role:
		return v.Name
	case *Binding:
		return v.Name
	case *Pod:
		return v.Name
	case *Node:
		return v.Name
	case *User:
		return v.Name
	case *Secret:
		return v.Name
	}
	return ""
}

// lastWins returns items sorted by key with only the last of equal keys kept. The slice is a copy.
func lastWins[T any](items []T, key func(*T) string) []T {
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	// Sort positions by key, later positions first among equals, then keep the first of each key.
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(strings.Compare(key(&items[a]), key(&items[b])), cmp.Compare(b, a))
	})
	res := make([]T, 0, len(items))
	for i, p := range idx {
		if i > 0 && key(&items[idx[i-1]]) == key(&items[p]) {
			continue
		}
		res = append(res, items[p])
	}
	return res
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

// Objects returns every object of the snapshot, sorted by kind, namespace and name, with the rules of aggregated
// ClusterRoles as the snapshot uses them. It is assembled on first use; the result is shared: callers must not
// modify it.
func (s *Snapshot) Objects() *Objects {
	s.objsOnce.Do(func() {
		o := &Objects{
			Namespaces:          s.inv.namespaces,
			Nodes:               s.inv.nodes,
			Users:               s.inv.users,
			ClusterRoles:        make([]Role, len(s.cr.roles)),
			ClusterRoleBindings: s.crb.bindings,
		}
		for i, e := range s.cr.roles {
			o.ClusterRoles[i] = *e.r
		}
		for _, ns := range s.nsNames {
			sh := s.nss[ns]
			o.ServiceAccounts = append(o.ServiceAccounts, sh.serviceAccounts...)
			o.RoleBindings = append(o.RoleBindings, sh.bindings...)
			o.Pods = append(o.Pods, sh.pods...)
			o.Secrets = append(o.Secrets, sh.secrets...)
			for _, e := range sh.roles {
				o.Roles = append(o.Roles, *e.r)
			}
		}
		s.objs = o
	})
	return s.objs
}

// Object returns the object ref names as it was given (an aggregated ClusterRole with the rules it came with;
// ClusterRole returns the rules the snapshot uses). The result is shared: callers must not modify it.
func (s *Snapshot) Object(ref ObjectRef) (Object, bool) {
	switch ref.Kind {
	case KindClusterRole:
		if e, ok := s.cr.byName[ref.Name]; ok {
			return e.src, true
		}
	case KindClusterRoleBinding:
		if i, ok := s.crb.bindingByName[ref.Name]; ok {
			return &s.crb.bindings[i], true
		}
	case KindNamespace:
		if i, ok := s.inv.nsByName[ref.Name]; ok {
			return &s.inv.namespaces[i], true
		}
	case KindNode:
		if i, ok := s.inv.nodeByName[ref.Name]; ok {
			return &s.inv.nodes[i], true
		}
	case KindUser:
		if i, ok := s.inv.userByName[ref.Name]; ok {
			return &s.inv.users[i], true
		}
	case KindRole, KindRoleBinding, KindServiceAccount, KindPod, KindSecret:
		if sh := s.nss[ref.Namespace]; sh != nil {
			return sh.object(ref)
		}
	}
	return nil, false
}

// Warnings returns what the snapshot noticed: dangling roleRefs, subjects that can never match, aggregation
// rules the controller would refuse or that never settle.
func (s *Snapshot) Warnings() []Warning {
	s.warnOnce.Do(func() {
		s.warnings = append(s.warnings, s.cr.warnings...)
		for i := range s.crb.entries {
			s.warnings = append(s.warnings, s.bindingWarnings(&s.crb.entries[i])...)
		}
		for _, ns := range s.nsNames {
			for i := range s.nss[ns].entries {
				s.warnings = append(s.warnings, s.bindingWarnings(&s.nss[ns].entries[i])...)
			}
		}
	})
	return s.warnings
}

func (s *Snapshot) bindingWarnings(be *bindingEntry) []Warning {
	var out []Warning
	warn := func(msg string) { out = append(out, Warning{Object: be.ref, Message: msg}) }
	if be.roleRef.Kind == "" {
		warn(fmt.Sprintf("roleRef kind %q is neither Role nor ClusterRole: the binding grants nothing", be.b.RoleRef.Kind))
	} else if s.roleOf(be) == nil {
		warn(fmt.Sprintf("roleRef %s does not exist: the binding grants nothing", be.roleRef))
	}
	for i, p := range be.subjects {
		if p.kind == matchesNobody {
			warn(fmt.Sprintf("subject %d (%s %q) can never match a caller", i, be.b.Subjects[i].Kind, be.b.Subjects[i].Name))
		}
	}
	return out
}

// GroupsOf returns the groups user is known to belong to, declared or observed (see User.Membership); nil when
// none are known.
func (s *Snapshot) GroupsOf(user string) []string {
	if i, ok := s.inv.userByName[user]; ok {
		return s.inv.users[i].Membership()
	}
	return nil
}

// ClusterRole returns the ClusterRole called name, with the rules the snapshot uses (aggregated ones computed).
func (s *Snapshot) ClusterRole(name string) (*Role, bool) {
	e, ok := s.cr.byName[name]
	if !ok {
		return nil, false
	}
	return e.r, true
}

// Role returns the Role ns/name.
func (s *Snapshot) Role(ns, name string) (*Role, bool) {
	sh := s.nss[ns]
	if sh == nil {
		return nil, false
	}
	e, ok := sh.roleByName[name]
	if !ok {
		return nil, false
	}
	return e.r, true
}

// roleOf resolves a binding's role: a Role in the binding's own shard, or a ClusterRole of the cluster shard,
// looked up now because that shard may be newer than the binding's.
func (s *Snapshot) roleOf(be *bindingEntry) *roleEntry {
	switch {
	case be.roleRef.Kind == KindClusterRole:
		return s.cr.byName[be.roleRef.Name]
	case be.ref.Kind == KindClusterRoleBinding && be.roleRef.Kind == KindRole:
		// The authorizer looks the Role up in namespace "": only objects given without one can be there.
		if sh := s.nss[""]; sh != nil {
			return sh.roleByName[be.roleRef.Name]
		}
		return nil
	}
	return be.role
}
