package graph

import (
	"slices"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Kind names a node kind of the graph. The RBAC kinds use the API's own spelling.
type Kind string

// Node kinds. User and Group are not API objects: they exist because a binding names them.
const (
	KindUser               Kind = "User"
	KindGroup              Kind = "Group"
	KindServiceAccount     Kind = "ServiceAccount"
	KindRole               Kind = "Role"
	KindClusterRole        Kind = "ClusterRole"
	KindRoleBinding        Kind = "RoleBinding"
	KindClusterRoleBinding Kind = "ClusterRoleBinding"
	KindNamespace          Kind = "Namespace"
	KindPod                Kind = "Pod"
	KindNode               Kind = "Node"
	KindSecret             Kind = "Secret"
)

// ObjectRef names one node. Namespace is empty for cluster-scoped kinds, users and groups.
type ObjectRef struct {
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String renders the reference as Kind/name or Kind/namespace/name, for messages and tables.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return string(r.Kind) + "/" + r.Name
	}
	return string(r.Kind) + "/" + r.Namespace + "/" + r.Name
}

// Meta is the metadata kiem keeps for every API object.
type Meta struct {
	Namespace       string            `json:"namespace,omitempty"`
	Name            string            `json:"name"`
	UID             string            `json:"uid,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	Created         time.Time         `json:"created,omitzero"`
	// Origin says where the object was read from ("path/file.yaml:12" for snapshot files); empty for live objects.
	Origin string `json:"origin,omitempty"`
}

// Role is a Role (Kind == KindRole, namespaced) or a ClusterRole (Kind == KindClusterRole).
type Role struct {
	Kind Kind `json:"kind"`
	Meta
	Rules []rbacv1.PolicyRule `json:"rules,omitempty"`
	// AggregationRule is set on aggregated ClusterRoles. When objects come from files, Rules of such a role are
	// recomputed from the selected ClusterRoles, as kube-controller-manager would (see Aggregate).
	AggregationRule *rbacv1.AggregationRule `json:"aggregationRule,omitempty"`
}

// Ref returns the reference of the role.
func (r *Role) Ref() ObjectRef { return ObjectRef{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name} }

// Binding is a RoleBinding (Kind == KindRoleBinding) or a ClusterRoleBinding (Kind == KindClusterRoleBinding).
// Subjects are kept exactly as the API object names them; their meaning is resolved by the engine.
type Binding struct {
	Kind Kind `json:"kind"`
	Meta
	RoleRef  rbacv1.RoleRef   `json:"roleRef"`
	Subjects []rbacv1.Subject `json:"subjects,omitempty"`
}

// Ref returns the reference of the binding.
func (b *Binding) Ref() ObjectRef {
	return ObjectRef{Kind: b.Kind, Namespace: b.Namespace, Name: b.Name}
}

// RoleRefObject returns the role the binding points at, resolved as the authorizer resolves it: a RoleRef of
// kind Role names a Role in the binding's own namespace (so a ClusterRoleBinding's Role reference can never
// resolve); kind ClusterRole names a ClusterRole. ok is false for any other kind.
func (b *Binding) RoleRefObject() (ref ObjectRef, ok bool) {
	switch b.RoleRef.Kind {
	case "Role":
		return ObjectRef{Kind: KindRole, Namespace: b.Namespace, Name: b.RoleRef.Name}, true
	case "ClusterRole":
		return ObjectRef{Kind: KindClusterRole, Name: b.RoleRef.Name}, true
	}
	return ObjectRef{}, false
}

// ServiceAccount is a core/v1 ServiceAccount.
type ServiceAccount struct {
	Meta
	// AutomountToken mirrors automountServiceAccountToken; nil means unset (the API default is to mount).
	AutomountToken *bool `json:"automountServiceAccountToken,omitempty"`
}

// Ref returns the reference of the ServiceAccount.
func (s *ServiceAccount) Ref() ObjectRef {
	return ObjectRef{Kind: KindServiceAccount, Namespace: s.Namespace, Name: s.Name}
}

// Namespace is a core/v1 Namespace. Its labels carry the Pod Security levels.
type Namespace struct {
	Meta
}

// Ref returns the reference of the namespace.
func (n *Namespace) Ref() ObjectRef { return ObjectRef{Kind: KindNamespace, Name: n.Name} }

// OwnerRef names the controlling owner of a pod (a ReplicaSet, DaemonSet, Job, …).
type OwnerRef struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// Pod keeps only what the entitlement graph needs of a core/v1 Pod.
type Pod struct {
	Meta
	// ServiceAccount is spec.serviceAccountName (or the deprecated spec.serviceAccount), "default" when unset,
	// as the ServiceAccount admission plugin fills it in.
	ServiceAccount string `json:"serviceAccountName"`
	// AutomountToken mirrors spec.automountServiceAccountToken; nil means the ServiceAccount's setting decides.
	AutomountToken *bool     `json:"automountServiceAccountToken,omitempty"`
	NodeName       string    `json:"nodeName,omitempty"`
	Owner          *OwnerRef `json:"owner,omitempty"`
}

// Ref returns the reference of the pod.
func (p *Pod) Ref() ObjectRef { return ObjectRef{Kind: KindPod, Namespace: p.Namespace, Name: p.Name} }

// Node is a core/v1 Node: the name and labels kiem shows next to the pods that run there.
type Node struct {
	Meta
}

// Ref returns the reference of the node.
func (n *Node) Ref() ObjectRef { return ObjectRef{Kind: KindNode, Name: n.Name} }

// Secret is the metadata of a core/v1 Secret, indexed only when the operator enables it: its type and, for a
// ServiceAccount token secret, the ServiceAccount it belongs to. kiem never reads or keeps secret data.
type Secret struct {
	Meta
	Type string `json:"type,omitempty"`
	// ServiceAccount is the kubernetes.io/service-account.name annotation of a token secret.
	ServiceAccount string `json:"serviceAccountName,omitempty"`
}

// Ref returns the reference of the secret.
func (s *Secret) Ref() ObjectRef {
	return ObjectRef{Kind: KindSecret, Namespace: s.Namespace, Name: s.Name}
}

// User is a user whose group membership kiem knows: the operator declares it (a groups file exported from the
// identity provider), or audit events show the user authenticating with it. Users are not API objects, and the
// groups a token carries are invisible to RBAC objects.
type User struct {
	Meta
	// Groups are the groups a groups file declares; empty for a user only audit events show.
	Groups []string `json:"groups"`
	// Observed are the groups audit events showed the user authenticating with (system:authenticated left out:
	// every user has it), sorted. Membership, once seen, is kept: an answer that errs includes a group the user
	// left rather than misses one it holds.
	Observed []string `json:"observed,omitempty"`
}

// OriginAudit is the Origin of a User that only audit events show.
const OriginAudit = "audit"

// Declared reports whether a groups file declares the user.
func (u *User) Declared() bool { return u.Origin != OriginAudit }

// Membership returns every group the user is known to belong to: declared, then observed ones not declared.
// The slice may be shared with u: do not modify it.
func (u *User) Membership() []string {
	if len(u.Observed) == 0 {
		return u.Groups
	}
	if len(u.Groups) == 0 {
		return u.Observed
	}
	out := slices.Clone(u.Groups)
	for _, g := range u.Observed {
		if !slices.Contains(u.Groups, g) {
			out = append(out, g)
		}
	}
	return out
}

// Ref returns the reference of the user.
func (u *User) Ref() ObjectRef { return ObjectRef{Kind: KindUser, Name: u.Name} }

// Objects is a set of API objects, the input of a snapshot. Order carries no meaning.
type Objects struct {
	Namespaces          []Namespace      `json:"namespaces,omitempty"`
	ServiceAccounts     []ServiceAccount `json:"serviceAccounts,omitempty"`
	Roles               []Role           `json:"roles,omitempty"`
	ClusterRoles        []Role           `json:"clusterRoles,omitempty"`
	RoleBindings        []Binding        `json:"roleBindings,omitempty"`
	ClusterRoleBindings []Binding        `json:"clusterRoleBindings,omitempty"`
	Pods                []Pod            `json:"pods,omitempty"`
	Nodes               []Node           `json:"nodes,omitempty"`
	Users               []User           `json:"users,omitempty"`
	Secrets             []Secret         `json:"secrets,omitempty"`
}

// Count returns the number of objects of every kind together.
func (o *Objects) Count() int {
	return len(o.Namespaces) + len(o.ServiceAccounts) + len(o.Roles) + len(o.ClusterRoles) +
		len(o.RoleBindings) + len(o.ClusterRoleBindings) + len(o.Pods) + len(o.Nodes) + len(o.Users) + len(o.Secrets)
}

// Append adds every object of other to o. Objects named twice are resolved by NewSnapshot: the later wins.
func (o *Objects) Append(other *Objects) {
	o.Namespaces = append(o.Namespaces, other.Namespaces...)
	o.ServiceAccounts = append(o.ServiceAccounts, other.ServiceAccounts...)
	o.Roles = append(o.Roles, other.Roles...)
	o.ClusterRoles = append(o.ClusterRoles, other.ClusterRoles...)
	o.RoleBindings = append(o.RoleBindings, other.RoleBindings...)
	o.ClusterRoleBindings = append(o.ClusterRoleBindings, other.ClusterRoleBindings...)
	o.Pods = append(o.Pods, other.Pods...)
	o.Nodes = append(o.Nodes, other.Nodes...)
	o.Users = append(o.Users, other.Users...)
	o.Secrets = append(o.Secrets, other.Secrets...)
}

// MetaOf returns the metadata of o, nil for an object kiem does not know.
func MetaOf(o Object) *Meta {
	switch v := o.(type) {
	case *Namespace:
		return &v.Meta
	case *ServiceAccount:
		return &v.Meta
	case *Role:
		return &v.Meta
	case *Binding:
		return &v.Meta
	case *Pod:
		return &v.Meta
	case *Node:
		return &v.Meta
	case *Secret:
		return &v.Meta
	case *User:
		return &v.Meta
	}
	return nil
}
