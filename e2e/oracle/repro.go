package oracle

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
)

// Repro renders a self-contained reproduction of a disagreement about query q: the request, both answers, and the
// objects of p (the policy as written, before aggregation) that decide it, as a `kind: List` that kiem's
// --snapshot flag reads. The objects are the bindings in the request's scope that name the identity (plus any
// binding in extra, e.g. those kiem's answer cites), their roles, and for an aggregated ClusterRole every
// ClusterRole its selectors reach; eff is the oracle's policy, whose aggregated rules are printed too.
func Repro(p, eff *Policy, q Query, kiem, oracle any, extra []graph.ObjectRef) string {
	var b strings.Builder
	fmt.Fprintf(&b, "identity: %s\naction:   %s\n", mustJSON(q.ID), mustJSON(q.Action))
	fmt.Fprintf(&b, "kiem:     %s\noracle:   %s\n", mustJSON(kiem), mustJSON(oracle))

	sub := &Policy{}
	ns := ""
	if q.Action.IsResource() {
		ns = q.Action.Namespace
	}
	roleRefs := map[[3]string]bool{} // kind, namespace, name
	for _, rb := range p.RoleBindings {
		ref := graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: rb.Namespace, Name: rb.Name}
		if (rb.Namespace == ns && ns != "" && appliesTo(rb.Subjects, q.ID, ns)) || slices.Contains(extra, ref) {
			sub.RoleBindings = append(sub.RoleBindings, rb)
			roleRefs[[3]string{rb.RoleRef.Kind, rb.Namespace, rb.RoleRef.Name}] = true
		}
	}
	for _, crb := range p.ClusterRoleBindings {
		ref := graph.ObjectRef{Kind: graph.KindClusterRoleBinding, Name: crb.Name}
		if appliesTo(crb.Subjects, q.ID, "") || slices.Contains(extra, ref) {
			sub.ClusterRoleBindings = append(sub.ClusterRoleBindings, crb)
			roleRefs[[3]string{crb.RoleRef.Kind, "", crb.RoleRef.Name}] = true
		}
	}
	clusterRoles := map[string]bool{}
	for ref := range roleRefs {
		switch ref[0] {
		case "Role":
			if r := p.Role(ref[1], ref[2]); r != nil {
				sub.Roles = append(sub.Roles, r)
			}
		case "ClusterRole":
			clusterRoles[ref[2]] = true
		}
	}
	// Close over aggregation: the roles every selected aggregated ClusterRole selects, recursively.
	for changed := true; changed; {
		changed = false
		for _, cr := range p.ClusterRoles {
			if !clusterRoles[cr.Name] || cr.AggregationRule == nil {
				continue
			}
			for _, other := range p.ClusterRoles {
				if !clusterRoles[other.Name] && selects(cr.AggregationRule, other) {
					clusterRoles[other.Name] = true
					changed = true
				}
			}
		}
	}
	for _, cr := range p.ClusterRoles {
		if clusterRoles[cr.Name] {
			sub.ClusterRoles = append(sub.ClusterRoles, cr)
		}
	}
	slices.SortFunc(sub.Roles, func(a, b *rbacv1.Role) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	list, err := sub.WriteList()
	if err != nil {
		list = []byte(err.Error())
	}
	fmt.Fprintf(&b, "objects (kind: List, aggregated ClusterRoles as written):\n%s", list)
	for _, cr := range sub.ClusterRoles {
		if cr.AggregationRule == nil {
			continue
		}
		if e := eff.ClusterRole(cr.Name); e != nil {
			rules, _ := yaml.Marshal(e.Rules)
			fmt.Fprintf(&b, "oracle's aggregated rules of ClusterRole %q:\n%s", cr.Name, rules)
		}
	}
	return b.String()
}

// appliesTo mirrors the rule resolver's subject matching, for choosing what a repro shows.
func appliesTo(subjects []rbacv1.Subject, id graph.Identity, bindingNS string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if s.Name == id.User {
				return true
			}
		case rbacv1.GroupKind:
			if id.InGroup(s.Name) {
				return true
			}
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = bindingNS
			}
			if ns != "" && graph.ServiceAccountUsername(ns, s.Name) == id.User {
				return true
			}
		}
	}
	return false
}

// selects reports whether any valid selector of ar matches cr.
func selects(ar *rbacv1.AggregationRule, cr *rbacv1.ClusterRole) bool {
	for i := range ar.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&ar.ClusterRoleSelectors[i])
		if err == nil && sel.Matches(labels.Set(cr.Labels)) {
			return true
		}
	}
	return false
}

func mustJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(data)
}
