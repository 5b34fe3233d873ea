package graph

import (
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// String describes the binding and subject of the path in the words of the apiserver's RBAC authorizer, which
// puts them after "RBAC: allowed by" in a SubjectAccessReview's reason:
//
//	ClusterRoleBinding "name" of ClusterRole "role" to Group "devs"
//	RoleBinding "name/ns" of Role "role" to ServiceAccount "sa/ns"
func (p GrantPath) String() string {
	if p.Binding.Kind == KindClusterRoleBinding {
		return fmt.Sprintf("ClusterRoleBinding %q of %s %q to %s", p.Binding.Name, p.Role.Kind, p.Role.Name,
			describeSubject(*p.Subject, ""))
	}
	return fmt.Sprintf("RoleBinding %q of %s %q to %s", p.Binding.Name+"/"+p.Binding.Namespace, p.Role.Kind,
		p.Role.Name, describeSubject(*p.Subject, p.Binding.Namespace))
}

// describeSubject names a subject; a ServiceAccount without a namespace takes the binding's.
func describeSubject(s rbacv1.Subject, bindingNamespace string) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return fmt.Sprintf("%s %q", s.Kind, s.Name+"/"+ns)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

// Explain describes the whole path, rule included, for people:
//
//	ClusterRoleBinding "name" of ClusterRole "role" to Group "devs": rule 3 {verbs: get,list; resources: pods}
func (p GrantPath) Explain() string {
	s := p.String() + fmt.Sprintf(": rule %d %s", p.RuleIndex, FormatRule(p.Rule))
	if p.AggregatedFrom != nil {
		s += " (aggregated from " + p.AggregatedFrom.String() + ")"
	}
	return s
}

// FormatRule renders a rule compactly: {verbs: get,list; apiGroups: ""; resources: pods; resourceNames: a}.
func FormatRule(r *rbacv1.PolicyRule) string {
	var parts []string
	add := func(field string, vals []string) {
		if len(vals) == 0 {
			return
		}
		shown := make([]string, len(vals))
		for i, v := range vals {
			if v == "" {
				v = `""`
			}
			shown[i] = v
		}
		parts = append(parts, field+": "+strings.Join(shown, ","))
	}
	add("verbs", r.Verbs)
	add("apiGroups", r.APIGroups)
	add("resources", r.Resources)
	add("resourceNames", r.ResourceNames)
	add("nonResourceURLs", r.NonResourceURLs)
	return "{" + strings.Join(parts, "; ") + "}"
}
