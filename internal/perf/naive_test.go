package perf

import (
	"github.com/kiem-io/kiem/graph"
)

// naive answers Can the way a tool without indexes does: for every query it visits every ClusterRoleBinding and
// every RoleBinding, checks each subject, looks the role up and scans its rules. It is the baseline the indexed
// engine's speed-up is measured against, and a second opinion on its answers.
type naive struct {
	crbs, rbs    []graph.Binding
	roles        map[[2]string]*graph.Role
	clusterRoles map[string]*graph.Role
}

func newNaive(objs *graph.Objects) *naive {
	n := &naive{crbs: objs.ClusterRoleBindings, rbs: objs.RoleBindings,
		roles: map[[2]string]*graph.Role{}, clusterRoles: map[string]*graph.Role{}}
	for i := range objs.Roles {
		n.roles[[2]string{objs.Roles[i].Namespace, objs.Roles[i].Name}] = &objs.Roles[i]
	}
	for i := range objs.ClusterRoles {
		n.clusterRoles[objs.ClusterRoles[i].Name] = &objs.ClusterRoles[i]
	}
	return n
}

func (n *naive) can(id graph.Identity, a graph.Action) bool {
	if id.InGroup(graph.GroupMasters) {
		return true
	}
	ns := a.Namespace
	if !a.IsResource() {
		ns = ""
	}
	check := func(b *graph.Binding, scope string) bool {
		if !n.applies(id, b, scope) {
			return false
		}
		var rules []graph.Role
		switch b.RoleRef.Kind {
		case "ClusterRole":
			if r := n.clusterRoles[b.RoleRef.Name]; r != nil {
				rules = append(rules, *r)
			}
		case "Role":
			if r := n.roles[[2]string{scope, b.RoleRef.Name}]; r != nil {
				rules = append(rules, *r)
			}
		}
		for _, r := range rules {
			for i := range r.Rules {
				if graph.RuleAllows(&r.Rules[i], a) {
					return true
				}
			}
		}
		return false
	}
	allowed := false
	for i := range n.crbs {
		allowed = check(&n.crbs[i], "") || allowed
	}
	for i := range n.rbs {
		if ns != "" && n.rbs[i].Namespace == ns {
			allowed = check(&n.rbs[i], ns) || allowed
		}
	}
	return allowed
}

func (n *naive) applies(id graph.Identity, b *graph.Binding, scope string) bool {
	for _, s := range b.Subjects {
		switch s.Kind {
		case "User":
			if s.Name == id.User {
				return true
			}
		case "Group":
			if id.InGroup(s.Name) {
				return true
			}
		case "ServiceAccount":
			ns := s.Namespace
			if ns == "" {
				ns = scope
			}
			if ns != "" && graph.ServiceAccountUsername(ns, s.Name) == id.User {
				return true
			}
		}
	}
	return false
}
