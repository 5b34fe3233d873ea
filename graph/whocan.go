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
	// ruleBuf holds, for every role that allows a, the indexes of its allowing rules; hits point into it.
	var ruleBuf []int32
	allowed := func(e *roleEntry) (lo, hi int32) {
		lo = int32(len(ruleBuf))
		for i := range e.r.Rules {
			if ruleAllowsCombined(&e.r.Rules[i], a, combined) {
				ruleBuf = append(ruleBuf, int32(i))
			}
		}
		return lo, int32(len(ruleBuf))
	}

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
		lo, hi := allowed(s.clusterRoles[name])
		if lo == hi {
			continue
		}
		for _, i := range crbs {
			crbHits = append(crbHits, bindingHit{i, lo, hi})
		}
		if ns != "" {
			for _, i := range rbs {
				rbHits = append(rbHits, bindingHit{i, lo, hi})
			}
		}
	}
	if ns != "" {
		for _, e := range s.rolesByNs[ns] {
			rbs := s.rbByRole[nsName{ns, e.r.Name}]
			if len(rbs) == 0 {
				continue
			}
			if lo, hi := allowed(e); lo < hi {
				for _, i := range rbs {
					rbHits = append(rbHits, bindingHit{i, lo, hi})
				}
			}
		}
	}
	// Paths are reported in the order Can reports reasons: ClusterRoleBindings, then RoleBindings, by index.
	byBinding := func(x, y bindingHit) int { return cmp.Compare(x.binding, y.binding) }
	slices.SortFunc(crbHits, byBinding)
	slices.SortFunc(rbHits, byBinding)
	groups := [2]struct {
		entries []bindingEntry
		hits    []bindingHit
	}{{s.crbs, crbHits}, {s.rbs, rbHits}}

	// Two passes over the hits: the first finds the subjects and counts their paths, so that every path lands in
	// one shared array; the second fills it. WhoCan answers on large clusters hold thousands of paths.
	mastersID := s.principalIDs[principal{matchesGroup, GroupMasters}]
	index := map[int32]int32{mastersID: 0}
	ids := []int32{mastersID}
	counts := []int{0}
	forEachGrant := func(fn func(entry int32, be *bindingEntry, subject int, rules []int32)) {
		for _, g := range groups {
			for _, h := range g.hits {
				be := &g.entries[h.binding]
				for si, id := range be.subjectIDs {
					if id < 0 || slices.Index(be.subjectIDs, id) != si {
						continue // the authorizer reports a subject's first occurrence in a binding
					}
					e, ok := index[id]
					if !ok {
						e = int32(len(ids))
						index[id] = e
						ids = append(ids, id)
						counts = append(counts, 0)
					}
					fn(e, be, si, ruleBuf[h.lo:h.hi])
				}
			}
		}
	}
	forEachGrant(func(e int32, _ *bindingEntry, _ int, rules []int32) { counts[e] += len(rules) })
	total := 0
	for _, c := range counts {
		total += c
	}
	paths := make([]GrantPath, total)
	entryPaths := make([][]GrantPath, len(counts))
	for e, off := 0, 0; e < len(counts); e++ {
		entryPaths[e] = paths[off : off : off+counts[e]]
		off += counts[e]
	}
	forEachGrant(func(e int32, be *bindingEntry, si int, rules []int32) {
		for _, r := range rules {
			entryPaths[e] = append(entryPaths[e], be.path(si, int(r)))
		}
	})

	// system:masters first, then by kind, namespace and name, through the ranks computed once per snapshot.
	order := make([]int32, len(ids)-1)
	for i := range order {
		order[i] = int32(i + 1)
	}
	slices.SortFunc(order, func(x, y int32) int { return cmp.Compare(s.principalRanks[ids[x]], s.principalRanks[ids[y]]) })
	out := make([]WhoCanEntry, 0, len(ids))
	out = append(out, WhoCanEntry{Subject: s.principalRefs[mastersID], Superuser: true, Paths: nilIfEmpty(entryPaths[0])})
	for _, e := range order {
		out = append(out, WhoCanEntry{Subject: s.principalRefs[ids[e]], Paths: entryPaths[e]})
	}
	return out, nil
}

// bindingHit is a binding whose role allows the action, with the allowing rules as a range of WhoCan's ruleBuf.
type bindingHit struct {
	binding int32
	lo, hi  int32
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

func nilIfEmpty(p []GrantPath) []GrantPath {
	if len(p) == 0 {
		return nil
	}
	return p
}
