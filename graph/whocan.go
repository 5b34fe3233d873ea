package graph

import (
	"cmp"
	"context"
	"slices"
	"strings"
)

// WhoCan returns every subject, as bindings name it, that is allowed action a, each with the grant paths that
// allow it, plus the group system:masters, which the apiserver allows before RBAC. A group is one entry: its
// members are not expanded. Entries are ordered by kind (Group, ServiceAccount, User), namespace and name; the
// system:masters entry comes first.
//
// Only the roles that bindings reference are matched against a, and only the bindings that can apply to a's
// namespace are visited: ClusterRoleBindings, and for resource requests in a namespace the RoleBindings there.
func (s *Snapshot) WhoCan(ctx context.Context, a Action) ([]WhoCanEntry, error) {
	ns := a.namespace()
	combined := combinedResource(a)
	entries := make(map[principal]*WhoCanEntry)
	grant := func(be *bindingEntry, rules []int) {
		for si, p := range be.subjects {
			if p.kind == matchesNobody || slices.Index(be.subjects, p) != si {
				continue // the authorizer reports a subject's first occurrence in a binding
			}
			e := entries[p]
			if e == nil {
				e = &WhoCanEntry{Subject: p.ref()}
				entries[p] = e
			}
			for _, r := range rules {
				e.Paths = append(e.Paths, be.path(si, r))
			}
		}
	}
	allowed := func(e *roleEntry) []int {
		var rules []int
		for i := range e.r.Rules {
			if ruleAllowsCombined(&e.r.Rules[i], a, combined) {
				rules = append(rules, i)
			}
		}
		return rules
	}

	// Bindings are granted in the order Can reports reasons: ClusterRoleBindings, then RoleBindings, by index.
	var crbHits, rbHits []bindingHit
	for n := range s.objs.ClusterRoles {
		name := s.objs.ClusterRoles[n].Name
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		crbs, rbs := s.crbByClusterRole[name], s.rbByClusterRole[nsName{ns, name}]
		if len(crbs) == 0 && (ns == "" || len(rbs) == 0) {
			continue
		}
		rules := allowed(s.clusterRoles[name])
		if len(rules) == 0 {
			continue
		}
		for _, i := range crbs {
			crbHits = append(crbHits, bindingHit{i, rules})
		}
		if ns != "" {
			for _, i := range rbs {
				rbHits = append(rbHits, bindingHit{i, rules})
			}
		}
	}
	if ns != "" {
		for _, e := range s.rolesByNs[ns] {
			rbs := s.rbByRole[nsName{ns, e.r.Name}]
			if len(rbs) == 0 {
				continue
			}
			if rules := allowed(e); len(rules) > 0 {
				for _, i := range rbs {
					rbHits = append(rbHits, bindingHit{i, rules})
				}
			}
		}
	}
	for _, hits := range []struct {
		entries []bindingEntry
		hits    []bindingHit
	}{{s.crbs, crbHits}, {s.rbs, rbHits}} {
		slices.SortFunc(hits.hits, func(x, y bindingHit) int { return cmp.Compare(x.binding, y.binding) })
		for _, h := range hits.hits {
			grant(&hits.entries[h.binding], h.rules)
		}
	}

	out := make([]WhoCanEntry, 0, len(entries)+1)
	masters := principal{matchesGroup, GroupMasters}
	me := WhoCanEntry{Subject: masters.ref(), Superuser: true}
	if e := entries[masters]; e != nil {
		me.Paths = e.Paths
		delete(entries, masters)
	}
	out = append(out, me)
	rest := make([]WhoCanEntry, 0, len(entries))
	for _, e := range entries {
		rest = append(rest, *e)
	}
	slices.SortFunc(rest, func(x, y WhoCanEntry) int { return compareRefs(x.Subject, y.Subject) })
	return append(out, rest...), nil
}

type bindingHit struct {
	binding int32
	rules   []int
}

// ref names the subject a principal stands for: a user name that is a ServiceAccount's is that ServiceAccount.
func (p principal) ref() ObjectRef {
	if p.kind == matchesGroup {
		return ObjectRef{Kind: KindGroup, Name: p.name}
	}
	if ns, name, ok := SplitServiceAccountUsername(p.name); ok {
		return ObjectRef{Kind: KindServiceAccount, Namespace: ns, Name: name}
	}
	return ObjectRef{Kind: KindUser, Name: p.name}
}

func compareRefs(a, b ObjectRef) int {
	return cmp.Or(strings.Compare(string(a.Kind), string(b.Kind)),
		strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}
