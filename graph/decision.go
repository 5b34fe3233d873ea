package graph

import (
	rbacv1 "k8s.io/api/rbac/v1"
)

// Action is one request to authorize, with the attributes of a SubjectAccessReview. A request is a non-resource
// request when NonResourceURL is set; the resource attributes are then ignored, and so is Namespace, because the
// apiserver authorizes non-resource requests outside any namespace.
type Action struct {
	Verb           string `json:"verb"`
	APIGroup       string `json:"apiGroup,omitempty"`
	Resource       string `json:"resource,omitempty"`
	Subresource    string `json:"subresource,omitempty"`
	Namespace      string `json:"namespace,omitempty"`
	Name           string `json:"name,omitempty"`
	NonResourceURL string `json:"nonResourceURL,omitempty"`
}

// IsResource reports whether the action is a resource request.
func (a Action) IsResource() bool { return a.NonResourceURL == "" }

// namespace returns the namespace the authorizer visits RoleBindings of: none for non-resource requests.
func (a Action) namespace() string {
	if !a.IsResource() {
		return ""
	}
	return a.Namespace
}

// GrantPath explains one grant: the binding, which of its subjects matched, the role it references, and the rule of
// that role that allows (or, in EffectivePermissions, is granted).
//
// The pointers point into the snapshot that produced the path, which is immutable: they are never nil in a path a
// Snapshot returns, and must not be modified. They keep a path to a few words, because answers such as WhoCan on
// a large cluster hold thousands of them.
type GrantPath struct {
	// Binding is the RoleBinding or ClusterRoleBinding.
	Binding *ObjectRef `json:"binding"`
	// Subject is the first subject of the binding that names the identity, the one the authorizer reports.
	Subject *rbacv1.Subject `json:"subject"`
	// SubjectIndex is Subject's index in the binding's subjects.
	SubjectIndex int `json:"subjectIndex"`
	// Role is the Role or ClusterRole the binding references.
	Role *ObjectRef `json:"role"`
	// RuleIndex is the rule's index in Role's rules (after aggregation, for aggregated ClusterRoles).
	RuleIndex int `json:"ruleIndex"`
	// Rule is the rule itself.
	Rule *rbacv1.PolicyRule `json:"rule"`
	// AggregatedFrom names the ClusterRole the rule was aggregated from when Role is an aggregated ClusterRole
	// whose rules kiem recomputed.
	AggregatedFrom *ObjectRef `json:"aggregatedFrom,omitempty"`
}

// Decision is the answer to Can.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Superuser is true when the identity is in system:masters: the apiserver allows it before RBAC is consulted,
	// and no rule is involved. Reasons may still list RBAC grants.
	Superuser bool `json:"superuser,omitempty"`
	// Reasons lists every grant path that allows the action, ClusterRoleBindings first, each group ordered by
	// binding name, then rule index.
	Reasons []GrantPath `json:"reasons,omitempty"`
}

// Permission is one rule granted to an identity, with where it applies and why.
type Permission struct {
	// Namespace is the namespace the rule applies in; empty means cluster-wide (granted by a ClusterRoleBinding).
	Namespace string `json:"namespace,omitempty"`
	GrantPath
}

// WhoCanEntry is one subject, as bindings name it, that is allowed an action.
type WhoCanEntry struct {
	// Subject is a User, Group or ServiceAccount (Kind KindUser, KindGroup or KindServiceAccount). A User subject
	// whose name is a ServiceAccount user name is reported as that ServiceAccount: the authorizer cannot tell
	// them apart.
	Subject ObjectRef `json:"subject"`
	// Superuser marks the system:masters group, allowed before RBAC.
	Superuser bool `json:"superuser,omitempty"`
	// Paths are the grants that allow the action, ordered like Decision.Reasons.
	Paths []GrantPath `json:"paths,omitempty"`
}
