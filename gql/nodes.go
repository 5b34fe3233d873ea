package gql

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// view is what a node was read at: one immutable snapshot and its revision. Every relationship field of a node
// answers from the same view, so one answer never mixes revisions.
type view struct {
	snap    *graph.Snapshot
	rev     graph.Revision
	cluster string
}

// Node is any node of the graph (the GraphQL interface Node).
type Node interface {
	nodeRef() graph.ObjectRef
}

// SubjectNode is a User, Group or ServiceAccount.
type SubjectNode interface {
	Node
	identity() graph.Identity
}

// RoleNode is a Role or ClusterRole.
type RoleNode interface {
	Node
	role() *graph.Role
}

// BindingNode is a RoleBinding or ClusterRoleBinding.
type BindingNode interface {
	Node
	binding() *graph.Binding
}

// base holds what every node has: its view and reference.
type base struct {
	v   *view
	ref graph.ObjectRef
}

func (b base) nodeRef() graph.ObjectRef  { return b.ref }
func (b base) ID() string                { return graph.NodeID(b.v.cluster, b.ref) }
func (b base) Kind() Kind                { return kindOf(b.ref.Kind) }
func (b base) Name() string              { return b.ref.Name }
func (b base) Namespace() string         { return b.ref.Namespace }
func (b base) Revision() graph.Revision  { return b.v.rev }
func (b base) NamespaceNode() *Namespace { return b.v.namespace(b.ref.Namespace) }

// nodeOf returns the node ref names at v, or nil when it does not exist there. Users and groups are not API
// objects: any name is a user or group (one that no binding names simply holds no grants).
func (v *view) nodeOf(ref graph.ObjectRef) Node {
	b := base{v, ref}
	switch ref.Kind {
	case graph.KindUser:
		return v.user(ref.Name)
	case graph.KindGroup:
		return &Group{subjectBase{b}}
	case graph.KindServiceAccount:
		if sa := v.serviceAccount(ref.Namespace, ref.Name); sa != nil {
			return sa
		}
		return nil
	case graph.KindNamespace:
		if ns := v.namespace(ref.Name); ns != nil {
			return ns
		}
		return nil
	}
	o, ok := v.snap.Object(ref)
	if !ok {
		return nil
	}
	switch o := o.(type) {
	case *graph.Role:
		if o.Kind == graph.KindClusterRole {
			return &ClusterRole{roleBase{b, o}}
		}
		return &Role{roleBase{b, o}}
	case *graph.Binding:
		if o.Kind == graph.KindClusterRoleBinding {
			return &ClusterRoleBinding{bindingBase{b, o}}
		}
		return &RoleBinding{bindingBase{b, o}}
	case *graph.Pod:
		return &Pod{b, o}
	case *graph.Node:
		return &ClusterNode{b, o}
	case *graph.Secret:
		return &Secret{b, o}
	}
	return nil
}

func (v *view) user(name string) *User {
	u := &User{subjectBase: subjectBase{base{v, graph.ObjectRef{Kind: graph.KindUser, Name: name}}}}
	if o, ok := v.snap.Object(u.ref); ok {
		u.declared, _ = o.(*graph.User)
	}
	return u
}

// serviceAccount returns the ServiceAccount ns/name when it exists, or when bindings or pods name it (a grant to
// a ServiceAccount not created yet is still a grant).
func (v *view) serviceAccount(ns, name string) *ServiceAccount {
	ref := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: name}
	sa := &ServiceAccount{subjectBase: subjectBase{base{v, ref}}}
	if o, ok := v.snap.Object(ref); ok {
		sa.obj, _ = o.(*graph.ServiceAccount)
		return sa
	}
	if len(v.snap.BindingsOf(ref)) > 0 || len(v.snap.PodsOf(ns, name)) > 0 {
		return sa
	}
	return nil
}

func (v *view) namespace(name string) *Namespace {
	if name == "" {
		return nil
	}
	ref := graph.ObjectRef{Kind: graph.KindNamespace, Name: name}
	n := &Namespace{base: base{v, ref}}
	if o, ok := v.snap.Object(ref); ok {
		n.obj, _ = o.(*graph.Namespace)
		return n
	}
	if _, found := slices.BinarySearch(v.snap.NamespaceNames(), name); found {
		return n
	}
	return nil
}

// subjectBase is what Users, Groups and ServiceAccounts share.
type subjectBase struct{ base }

func (s *subjectBase) Bindings(first *int, after *string) (*BindingConnection, error) {
	return bindingConnection(s.v, s.v.snap.BindingsOf(s.ref), first, after)
}

// permissions pages the effective permissions of id, restricted to namespace ns when given.
func permissions(ctx context.Context, v *view, id graph.Identity, ns *string, first *int, after *string) (*PermissionConnection, error) {
	var all []graph.Permission
	err := v.snap.VisitPermissions(ctx, id, func(p graph.Permission) bool {
		if ns == nil || p.Namespace == "" || p.Namespace == *ns {
			all = append(all, p)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	pg, err := paginate(len(all), first, after)
	if err != nil {
		return nil, err
	}
	c := &PermissionConnection{PageInfo: pg.info, TotalCount: len(all), Revision: v.rev}
	for i := pg.start; i < pg.end; i++ {
		p := &Permission{v: v, p: all[i]}
		c.Edges = append(c.Edges, &PermissionEdge{Cursor: cursor(i), Node: p})
		c.Nodes = append(c.Nodes, p)
	}
	return c, nil
}

func decide(v *view, id graph.Identity, in ActionInput) (*Decision, error) {
	a, err := actionOf(in)
	if err != nil {
		return nil, err
	}
	return &Decision{v: v, d: v.snap.Can(id, a), id: id}, nil
}

// User is a user name: bindings name it, --groups-file declares its groups, or audit events showed it.
type User struct {
	subjectBase
	declared *graph.User
}

func (u *User) identity() graph.Identity {
	var groups []string
	if u.declared != nil {
		groups = u.declared.Membership()
	}
	return graph.ImpersonatedIdentity(u.ref.Name, groups)
}
func (u *User) Declared() bool { return u.declared != nil && u.declared.Declared() }
func (u *User) Groups() []*GroupMembership {
	var out []*GroupMembership
	if u.declared != nil {
		for _, g := range u.declared.Membership() {
			m := u.v.membership(g, false)
			m.Declared = slices.Contains(u.declared.Groups, g)
			m.Observed = slices.Contains(u.declared.Observed, g)
			m.user = u.ref.Name
			out = append(out, m)
		}
	}
	return append(out, u.v.membership(graph.GroupAuthenticated, true))
}
func (u *User) Permissions(ctx context.Context, namespace *string, first *int, after *string) (*PermissionConnection, error) {
	return permissions(ctx, u.v, u.identity(), namespace, first, after)
}
func (u *User) Can(action ActionInput) (*Decision, error) { return decide(u.v, u.identity(), action) }

func (v *view) membership(group string, implicit bool) *GroupMembership {
	return &GroupMembership{Group: &Group{subjectBase{base{v, graph.ObjectRef{Kind: graph.KindGroup, Name: group}}}}, Implicit: implicit}
}

// GroupMembership is a group a user or ServiceAccount is in.
type GroupMembership struct {
	Group    *Group
	Implicit bool
	// Declared and Observed say where a user's membership is known from: its groups file, audit events.
	Declared bool
	Observed bool
	user     string // the member, for the seen times of an observed membership
}

// Group is a group name that bindings name or a declared user lists.
type Group struct{ subjectBase }

// identity is the group alone: what its own bindings grant.
func (g *Group) identity() graph.Identity { return graph.Identity{Groups: []string{g.ref.Name}} }
func (g *Group) Permissions(ctx context.Context, namespace *string, first *int, after *string) (*PermissionConnection, error) {
	return permissions(ctx, g.v, g.identity(), namespace, first, after)
}
func (g *Group) Can(action ActionInput) (*Decision, error) { return decide(g.v, g.identity(), action) }

// Members lists the declared users of the group and, for the groups every ServiceAccount token carries, the
// ServiceAccounts they hold.
func (g *Group) Members(first *int, after *string) (*NodeConnection, error) {
	refs := g.v.members(g.ref.Name)
	return nodeConnection(g.v, refs, first, after)
}

// members lists the refs of group's members: declared users, then ServiceAccounts for the ServiceAccount groups.
func (v *view) members(group string) []graph.ObjectRef { return v.membersUpTo(group, -1) }

// membersUpTo is members, stopping after n (n < 0: all).
func (v *view) membersUpTo(group string, n int) []graph.ObjectRef {
	var refs []graph.ObjectRef
	for _, u := range v.snap.MembersOf(group) {
		if len(refs) == n {
			return refs
		}
		refs = append(refs, graph.ObjectRef{Kind: graph.KindUser, Name: u})
	}
	saNamespace, isSAGroup := "", group == graph.GroupServiceAccounts || group == graph.GroupAuthenticated
	if ns, ok := strings.CutPrefix(group, graph.GroupServiceAccounts+":"); ok {
		saNamespace, isSAGroup = ns, true
	}
	if isSAGroup {
		v.snap.Each(graph.KindServiceAccount, saNamespace, func(o graph.Object) bool {
			if len(refs) == n {
				return false
			}
			refs = append(refs, o.Ref())
			return true
		})
	}
	return refs
}

// ServiceAccount is a ServiceAccount that exists or that a binding or pod names.
type ServiceAccount struct {
	subjectBase
	obj *graph.ServiceAccount // nil when it does not exist
}

func (s *ServiceAccount) identity() graph.Identity {
	return graph.ServiceAccountIdentity(s.ref.Namespace, s.ref.Name)
}
func (s *ServiceAccount) Exists() bool { return s.obj != nil }
func (s *ServiceAccount) Meta() *ObjectMeta {
	if s.obj == nil {
		return nil
	}
	return metaOf(&s.obj.Meta)
}
func (s *ServiceAccount) AutomountToken() *bool {
	if s.obj == nil {
		return nil
	}
	return s.obj.AutomountToken
}
func (s *ServiceAccount) Username() string {
	return graph.ServiceAccountUsername(s.ref.Namespace, s.ref.Name)
}
func (s *ServiceAccount) Groups() []*GroupMembership {
	var out []*GroupMembership
	for _, g := range graph.ServiceAccountGroups(s.ref.Namespace) {
		out = append(out, s.v.membership(g, true))
	}
	return out
}
func (s *ServiceAccount) Pods(first *int, after *string) (*PodConnection, error) {
	return podConnection(s.v, s.v.snap.PodsOf(s.ref.Namespace, s.ref.Name), first, after)
}
func (s *ServiceAccount) Permissions(ctx context.Context, namespace *string, first *int, after *string) (*PermissionConnection, error) {
	return permissions(ctx, s.v, s.identity(), namespace, first, after)
}
func (s *ServiceAccount) Can(action ActionInput) (*Decision, error) {
	return decide(s.v, s.identity(), action)
}

// roleBase is what Roles and ClusterRoles share.
type roleBase struct {
	base
	obj *graph.Role
}

func (r *roleBase) role() *graph.Role { return r.obj }
func (r *roleBase) Meta() *ObjectMeta { return metaOf(&r.obj.Meta) }
func (r *roleBase) Labels() []*Label  { return labelsOf(r.obj.Labels) }
func (r *roleBase) Rules() []*Rule    { return rulesOf(r.v, r.effective()) }
func (r *roleBase) effective() *graph.Role {
	// The snapshot's ClusterRole carries the aggregated rules the authorizer uses; Object returns it as given.
	if r.obj.Kind == graph.KindClusterRole {
		if cr, ok := r.v.snap.ClusterRole(r.obj.Name); ok {
			return cr
		}
	}
	return r.obj
}
func (r *roleBase) Bindings(first *int, after *string) (*BindingConnection, error) {
	return bindingConnection(r.v, r.v.snap.BindingsOfRole(r.ref), first, after)
}

// Role is a namespaced Role.
type Role struct{ roleBase }

// ClusterRole is a ClusterRole.
type ClusterRole struct{ roleBase }

func (c *ClusterRole) AggregationSelectors() []string {
	out := []string{}
	if c.obj.AggregationRule == nil {
		return out
	}
	for _, sel := range c.obj.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			out = append(out, fmt.Sprintf("invalid selector: %v", err))
			continue
		}
		out = append(out, s.String())
	}
	return out
}
func (c *ClusterRole) AggregatedFrom() []*ClusterRole {
	return c.v.clusterRoles(c.v.snap.AggregatedFrom(c.ref.Name))
}
func (c *ClusterRole) AggregatedInto() []*ClusterRole {
	return c.v.clusterRoles(c.v.snap.AggregatedInto(c.ref.Name))
}

func (v *view) clusterRole(name string) *ClusterRole {
	n, _ := v.nodeOf(graph.ObjectRef{Kind: graph.KindClusterRole, Name: name}).(*ClusterRole)
	return n
}

func (v *view) clusterRoles(refs []graph.ObjectRef) []*ClusterRole {
	out := []*ClusterRole{}
	for _, ref := range refs {
		if n := v.clusterRole(ref.Name); n != nil {
			out = append(out, n)
		}
	}
	return out
}

// bindingBase is what RoleBindings and ClusterRoleBindings share.
type bindingBase struct {
	base
	obj *graph.Binding
}

func (b *bindingBase) binding() *graph.Binding { return b.obj }
func (b *bindingBase) Meta() *ObjectMeta       { return metaOf(&b.obj.Meta) }
func (b *bindingBase) Labels() []*Label        { return labelsOf(b.obj.Labels) }
func (b *bindingBase) RoleRef() *RoleRef {
	return &RoleRef{Kind: b.obj.RoleRef.Kind, Name: b.obj.RoleRef.Name, APIGroup: b.obj.RoleRef.APIGroup}
}
func (b *bindingBase) Role() RoleNode {
	ref, ok := b.obj.RoleRefObject()
	if !ok {
		return nil
	}
	n, _ := b.v.nodeOf(ref).(RoleNode)
	return n
}
func (b *bindingBase) Subjects() []*BindingSubject {
	out := make([]*BindingSubject, len(b.obj.Subjects))
	for i, s := range b.obj.Subjects {
		out[i] = &BindingSubject{v: b.v, s: s, binding: b.obj}
	}
	return out
}

// RoleBinding is a RoleBinding.
type RoleBinding struct{ bindingBase }

// ClusterRoleBinding is a ClusterRoleBinding.
type ClusterRoleBinding struct{ bindingBase }

// BindingSubject is one subject of a binding, as written.
type BindingSubject struct {
	v       *view
	s       rbacv1.Subject
	binding *graph.Binding
}

func (b *BindingSubject) Kind() string      { return b.s.Kind }
func (b *BindingSubject) Name() string      { return b.s.Name }
func (b *BindingSubject) Namespace() string { return b.s.Namespace }
func (b *BindingSubject) APIGroup() string  { return b.s.APIGroup }

// Node resolves the subject as the authorizer matches it.
func (b *BindingSubject) Node() SubjectNode {
	switch b.s.Kind {
	case rbacv1.UserKind:
		if ns, name, ok := graph.SplitServiceAccountUsername(b.s.Name); ok {
			return b.v.saNode(ns, name)
		}
		return b.v.user(b.s.Name)
	case rbacv1.GroupKind:
		return &Group{subjectBase{base{b.v, graph.ObjectRef{Kind: graph.KindGroup, Name: b.s.Name}}}}
	case rbacv1.ServiceAccountKind:
		ns := b.s.Namespace
		if ns == "" && b.binding.Kind == graph.KindRoleBinding {
			ns = b.binding.Namespace
		}
		if ns == "" {
			return nil
		}
		return b.v.saNode(ns, b.s.Name)
	}
	return nil
}

// saNode returns the ServiceAccount node even when nothing else names it (a binding subject is reason enough).
func (v *view) saNode(ns, name string) *ServiceAccount {
	if sa := v.serviceAccount(ns, name); sa != nil {
		return sa
	}
	return &ServiceAccount{subjectBase: subjectBase{base{v, graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: name}}}}
}

// Namespace is a namespace that exists or that objects live in.
type Namespace struct {
	base
	obj *graph.Namespace // nil when only objects in it are known
}

func (n *Namespace) Exists() bool { return n.obj != nil }
func (n *Namespace) Meta() *ObjectMeta {
	if n.obj == nil {
		return nil
	}
	return metaOf(&n.obj.Meta)
}
func (n *Namespace) Labels() []*Label {
	if n.obj == nil {
		return []*Label{}
	}
	return labelsOf(n.obj.Labels)
}

// namespacedKinds are the kinds Namespace.objects lists by default, in the order it lists them.
var namespacedKinds = []Kind{KindServiceAccount, KindRole, KindRoleBinding, KindPod, KindSecret}

func (n *Namespace) Objects(kinds []Kind, first *int, after *string) (*NodeConnection, error) {
	if len(kinds) == 0 {
		kinds = namespacedKinds
	}
	var refs []graph.ObjectRef
	for _, k := range kinds {
		gk := graphKind(k)
		if !gk.Namespaced() {
			return nil, userErrorf("kind %s is not namespaced", k)
		}
		n.v.snap.Each(gk, n.ref.Name, func(o graph.Object) bool {
			refs = append(refs, o.Ref())
			return true
		})
	}
	return nodeConnection(n.v, refs, first, after)
}

// Pod is a pod.
type Pod struct {
	base
	obj *graph.Pod
}

func (p *Pod) Meta() *ObjectMeta          { return metaOf(&p.obj.Meta) }
func (p *Pod) ServiceAccountName() string { return p.obj.ServiceAccount }
func (p *Pod) ServiceAccount() *ServiceAccount {
	return p.v.saNode(p.ref.Namespace, p.obj.ServiceAccount)
}
func (p *Pod) AutomountToken() *bool { return p.obj.AutomountToken }
func (p *Pod) NodeName() string      { return p.obj.NodeName }
func (p *Pod) Node() *ClusterNode {
	if p.obj.NodeName == "" {
		return nil
	}
	n, _ := p.v.nodeOf(graph.ObjectRef{Kind: graph.KindNode, Name: p.obj.NodeName}).(*ClusterNode)
	return n
}
func (p *Pod) Owner() *OwnerRef {
	if p.obj.Owner == nil {
		return nil
	}
	return &OwnerRef{Kind: p.obj.Owner.Kind, Name: p.obj.Owner.Name}
}

// ClusterNode is a Kubernetes Node.
type ClusterNode struct {
	base
	obj *graph.Node
}

func (n *ClusterNode) Meta() *ObjectMeta { return metaOf(&n.obj.Meta) }
func (n *ClusterNode) Labels() []*Label  { return labelsOf(n.obj.Labels) }
func (n *ClusterNode) Pods(first *int, after *string) (*PodConnection, error) {
	return podConnection(n.v, n.v.podsOnUpTo(n.ref.Name, -1), first, after)
}

// podsOnUpTo lists the pods scheduled on node, stopping after n (n < 0: all): a walk over every pod, as no index
// serves this rare question.
func (v *view) podsOnUpTo(node string, n int) []graph.ObjectRef {
	var refs []graph.ObjectRef
	v.snap.Each(graph.KindPod, "", func(o graph.Object) bool {
		if p := o.(*graph.Pod); p.NodeName == node {
			refs = append(refs, p.Ref())
		}
		return len(refs) != n
	})
	return refs
}

// Secret is the metadata of a Secret.
type Secret struct {
	base
	obj *graph.Secret
}

func (s *Secret) Meta() *ObjectMeta          { return metaOf(&s.obj.Meta) }
func (s *Secret) Type() string               { return s.obj.Type }
func (s *Secret) ServiceAccountName() string { return s.obj.ServiceAccount }
func (s *Secret) ServiceAccount() *ServiceAccount {
	if s.obj.ServiceAccount == "" {
		return nil
	}
	return s.v.saNode(s.ref.Namespace, s.obj.ServiceAccount)
}

// ObjectMeta is an API object's metadata as kiem keeps it.
type ObjectMeta struct{ m *graph.Meta }

func metaOf(m *graph.Meta) *ObjectMeta        { return &ObjectMeta{m} }
func (o *ObjectMeta) UID() string             { return o.m.UID }
func (o *ObjectMeta) ResourceVersion() string { return o.m.ResourceVersion }
func (o *ObjectMeta) Labels() []*Label        { return labelsOf(o.m.Labels) }
func (o *ObjectMeta) Annotations() []*Label   { return labelsOf(o.m.Annotations) }
func (o *ObjectMeta) Origin() string          { return o.m.Origin }
func (o *ObjectMeta) Created() *time.Time {
	if o.m.Created.IsZero() {
		return nil
	}
	return &o.m.Created
}

// labelsOf lists a label map by key.
func labelsOf(m map[string]string) []*Label {
	out := make([]*Label, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &Label{Key: k, Value: m[k]})
	}
	return out
}
