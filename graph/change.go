package graph

import (
	"encoding/json"
	"fmt"
	"time"
)

// Object is one object of the graph: *Namespace, *ServiceAccount, *Role (Roles and ClusterRoles), *Binding
// (RoleBindings and ClusterRoleBindings), *Pod, *Node, *Secret (metadata only), or *User (declared group
// membership).
type Object interface {
	Ref() ObjectRef
}

// Op says what a change did to an object.
type Op string

// Change operations.
const (
	OpAdd    Op = "add"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Actor is who made a change, when an audit event tells.
type Actor struct {
	// User is who the apiserver authorized: the impersonated user when the request impersonated one.
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
	// ImpersonatedBy is the authenticated user who impersonated User, when the request impersonated.
	ImpersonatedBy string `json:"impersonatedBy,omitempty"`
	UserAgent      string `json:"userAgent,omitempty"`
	SourceIP       string `json:"sourceIP,omitempty"`
	AuditID        string `json:"auditID,omitempty"`
}

// Change is one object change. Before is nil for OpAdd, After is nil for OpDelete.
type Change struct {
	Op     Op
	Ref    ObjectRef
	Before Object
	After  Object
}

// NewChange returns the change from before to after (either may be nil, not both), with Op and Ref derived.
func NewChange(before, after Object) Change {
	c := Change{Before: before, After: after}
	switch {
	case before == nil:
		c.Op, c.Ref = OpAdd, after.Ref()
	case after == nil:
		c.Op, c.Ref = OpDelete, before.Ref()
	default:
		c.Op, c.Ref = OpUpdate, after.Ref()
	}
	return c
}

// ChangeRecord is a change as history keeps it.
type ChangeRecord struct {
	Revision Revision  `json:"revision"`
	Seq      int       `json:"seq"` // position within the revision
	Op       Op        `json:"op"`
	Ref      ObjectRef `json:"ref"`
	Before   Object    `json:"-"`
	After    Object    `json:"-"`
	Source   string    `json:"source"`
	Time     time.Time `json:"time"`
	Actor    *Actor    `json:"actor,omitempty"`
}

// Revision numbers the states of the graph; it only grows. 0 means "none yet".
type Revision uint64

// MarshalObject encodes an object for storage; UnmarshalObject decodes it given its kind.
func MarshalObject(o Object) ([]byte, error) { return json.Marshal(o) }

// UnmarshalObject decodes an object of kind k encoded by MarshalObject.
func UnmarshalObject(k Kind, data []byte) (Object, error) {
	var o Object
	switch k {
	case KindNamespace:
		o = new(Namespace)
	case KindServiceAccount:
		o = new(ServiceAccount)
	case KindRole, KindClusterRole:
		o = new(Role)
	case KindRoleBinding, KindClusterRoleBinding:
		o = new(Binding)
	case KindPod:
		o = new(Pod)
	case KindNode:
		o = new(Node)
	case KindUser:
		o = new(User)
	case KindSecret:
		o = new(Secret)
	default:
		return nil, fmt.Errorf("unmarshal object: unknown kind %q", k)
	}
	if err := json.Unmarshal(data, o); err != nil {
		return nil, fmt.Errorf("unmarshal %s: %w", k, err)
	}
	return o, nil
}

// Add puts o into the set, by kind.
func (os *Objects) Add(o Object) {
	switch v := o.(type) {
	case *Namespace:
		os.Namespaces = append(os.Namespaces, *v)
	case *ServiceAccount:
		os.ServiceAccounts = append(os.ServiceAccounts, *v)
	case *Role:
		if v.Kind == KindClusterRole {
			os.ClusterRoles = append(os.ClusterRoles, *v)
		} else {
			os.Roles = append(os.Roles, *v)
		}
	case *Binding:
		if v.Kind == KindClusterRoleBinding {
			os.ClusterRoleBindings = append(os.ClusterRoleBindings, *v)
		} else {
			os.RoleBindings = append(os.RoleBindings, *v)
		}
	case *Pod:
		os.Pods = append(os.Pods, *v)
	case *Node:
		os.Nodes = append(os.Nodes, *v)
	case *User:
		os.Users = append(os.Users, *v)
	case *Secret:
		os.Secrets = append(os.Secrets, *v)
	}
}

// Each calls fn for every object of the set, in kind order, until fn returns false.
func (os *Objects) Each(fn func(Object) bool) {
	for i := range os.Namespaces {
		if !fn(&os.Namespaces[i]) {
			return
		}
	}
	for i := range os.ClusterRoles {
		if !fn(&os.ClusterRoles[i]) {
			return
		}
	}
	for i := range os.ClusterRoleBindings {
		if !fn(&os.ClusterRoleBindings[i]) {
			return
		}
	}
	for i := range os.ServiceAccounts {
		if !fn(&os.ServiceAccounts[i]) {
			return
		}
	}
	for i := range os.Roles {
		if !fn(&os.Roles[i]) {
			return
		}
	}
	for i := range os.RoleBindings {
		if !fn(&os.RoleBindings[i]) {
			return
		}
	}
	for i := range os.Pods {
		if !fn(&os.Pods[i]) {
			return
		}
	}
	for i := range os.Nodes {
		if !fn(&os.Nodes[i]) {
			return
		}
	}
	for i := range os.Users {
		if !fn(&os.Users[i]) {
			return
		}
	}
	for i := range os.Secrets {
		if !fn(&os.Secrets[i]) {
			return
		}
	}
}
