package queries

import (
	"strings"

	"github.com/kiem-io/kiem/graph"
	rbacv1 "k8s.io/api/rbac/v1"
)

// The types below are what pack expressions see. Their CEL names are the `cel` tags; docs/packs.md documents
// them and must change with them.

// Subject is a User, Group or ServiceAccount as bindings name it, with the identity the apiserver gives it: a
// ServiceAccount is user system:serviceaccount:NS:NAME in its groups and system:authenticated; a User is in the
// groups the operator declared and system:authenticated (system:anonymous in system:unauthenticated); a Group is
// only itself. Its permission functions (can, canNamed, canSome, canURL) ask the exact engine.
type Subject struct {
	Kind      string   `cel:"kind"`
	Name      string   `cel:"name"`
	Namespace string   `cel:"namespace"`
	Groups    []string `cel:"groups"`
	// Exists is false for a ServiceAccount subject whose ServiceAccount object is not in the graph.
	Exists bool `cel:"exists"`

	// ev answers the permission functions; it is made on first use (most rules on a binding's subject read only
	// its name) from ec, ref, id and scope, and is nil for a subject without an evaluation context.
	ev    *evaluation
	ec    *evalContext
	ref   graph.ObjectRef
	id    graph.Identity
	scope string
	// nobody marks a binding subject that matches no principal: it holds nothing.
	nobody bool
	// spare is the worker's evidence buffer (see evaluation.spare).
	spare *[]graph.Permission
}

// evaluation returns the subject's evaluation, making it on first use; nil when it has none.
func (s *Subject) evaluation() *evaluation {
	if s.ev == nil && s.ec != nil {
		s.ev = s.ec.newEvaluation(s.ref, s.id, s.scope)
		s.ev.hasSelf, s.ev.spare = !s.nobody, s.spare
	}
	return s.ev
}

// PolicyRule is one rule of a role.
type PolicyRule struct {
	Verbs           []string `cel:"verbs"`
	APIGroups       []string `cel:"apiGroups"`
	Resources       []string `cel:"resources"`
	ResourceNames   []string `cel:"resourceNames"`
	NonResourceURLs []string `cel:"nonResourceURLs"`
}

// RoleRef is a binding's roleRef.
type RoleRef struct {
	Kind string `cel:"kind"`
	Name string `cel:"name"`
}

// SubjectRef is one subject of a binding, as written.
type SubjectRef struct {
	Kind      string `cel:"kind"`
	Name      string `cel:"name"`
	Namespace string `cel:"namespace"`
}

// Binding is a RoleBinding or ClusterRoleBinding.
type Binding struct {
	Kind        string            `cel:"kind"`
	Namespace   string            `cel:"namespace"`
	Name        string            `cel:"name"`
	Labels      map[string]string `cel:"labels"`
	Annotations map[string]string `cel:"annotations"`
	RoleRef     RoleRef           `cel:"roleRef"`
	Subjects    []SubjectRef      `cel:"subjects"`
}

// Role is a Role or ClusterRole. For an aggregated ClusterRole, Rules are the aggregated rules.
type Role struct {
	Kind        string            `cel:"kind"`
	Namespace   string            `cel:"namespace"`
	Name        string            `cel:"name"`
	Labels      map[string]string `cel:"labels"`
	Annotations map[string]string `cel:"annotations"`
	Rules       []PolicyRule      `cel:"rules"`
	Aggregated  bool              `cel:"aggregated"`
	// Exists is false when a binding's roleRef names a role that is not in the graph.
	Exists bool `cel:"exists"`
}

// ServiceAccount is a ServiceAccount object.
type ServiceAccount struct {
	Namespace string            `cel:"namespace"`
	Name      string            `cel:"name"`
	Labels    map[string]string `cel:"labels"`
	// AutomountToken is automountServiceAccountToken, true when unset (the API default); AutomountTokenSet says
	// whether it is set.
	AutomountToken    bool `cel:"automountToken"`
	AutomountTokenSet bool `cel:"automountTokenSet"`
	Exists            bool `cel:"exists"`
}

// Pod is a pod (or, from manifests, a workload's pod template).
type Pod struct {
	Namespace      string            `cel:"namespace"`
	Name           string            `cel:"name"`
	Labels         map[string]string `cel:"labels"`
	ServiceAccount string            `cel:"serviceAccountName"`
	Node           string            `cel:"nodeName"`
	// TokenMounted is the effective automount: the pod's automountServiceAccountToken if set, else the
	// ServiceAccount's, else true.
	TokenMounted bool   `cel:"tokenMounted"`
	OwnerKind    string `cel:"ownerKind"`
	OwnerName    string `cel:"ownerName"`
}

// Namespace is a namespace; its labels carry the Pod Security levels.
type Namespace struct {
	Name        string            `cel:"name"`
	Labels      map[string]string `cel:"labels"`
	Annotations map[string]string `cel:"annotations"`
	Exists      bool              `cel:"exists"`
}

// Node is a Kubernetes node.
type Node struct {
	Name   string            `cel:"name"`
	Labels map[string]string `cel:"labels"`
}

// Secret is a Secret's metadata (only when secret metadata is indexed).
type Secret struct {
	Namespace      string            `cel:"namespace"`
	Name           string            `cel:"name"`
	Type           string            `cel:"type"`
	ServiceAccount string            `cel:"serviceAccountName"`
	Labels         map[string]string `cel:"labels"`
}

func modelRules(rs []rbacv1.PolicyRule) []PolicyRule {
	out := make([]PolicyRule, len(rs))
	for i := range rs {
		out[i] = modelRule(&rs[i])
	}
	return out
}

func modelRule(r *rbacv1.PolicyRule) PolicyRule {
	return PolicyRule{Verbs: nonNil(r.Verbs), APIGroups: nonNil(r.APIGroups), Resources: nonNil(r.Resources),
		ResourceNames: nonNil(r.ResourceNames), NonResourceURLs: nonNil(r.NonResourceURLs)}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func modelBinding(b *graph.Binding) *Binding {
	m := &Binding{Kind: string(b.Kind), Namespace: b.Namespace, Name: b.Name, Labels: nonNilMap(b.Labels),
		Annotations: nonNilMap(b.Annotations), RoleRef: RoleRef{Kind: b.RoleRef.Kind, Name: b.RoleRef.Name},
		Subjects: make([]SubjectRef, len(b.Subjects))}
	for i, s := range b.Subjects {
		m.Subjects[i] = SubjectRef{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}
	}
	return m
}

func modelRole(r *graph.Role) *Role {
	return &Role{Kind: string(r.Kind), Namespace: r.Namespace, Name: r.Name, Labels: nonNilMap(r.Labels),
		Annotations: nonNilMap(r.Annotations), Rules: modelRules(r.Rules), Aggregated: r.AggregationRule != nil,
		Exists: true}
}

// parseResource reads the resource notation of pack expressions, kubectl's: "pods", "pods/exec",
// "deployments.apps", "certificatesigningrequests.certificates.k8s.io/approval". The group is what follows the
// first dot of the resource part; no dot means the core group.
func parseResource(s string) (group, resource, subresource string) {
	resource, subresource, _ = strings.Cut(s, "/")
	resource, group, _ = strings.Cut(resource, ".")
	return group, resource, subresource
}
