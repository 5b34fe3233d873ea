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
	var sh *nsShard
	if ns != "" {
		sh = s.nss[ns]
	}
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
	for n, e := range s.cr.roles {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		name := e.r.Name
		crbs := s.crb.byClusterRole[name]
		var rbs []int32
		if sh != nil {
			rbs = sh.byClusterRole[name]
		}
		if len(crbs) == 0 && len(rbs) == 0 {
			continue
		}
		lo, hi := allowed(e)
		if lo == hi {
			continue
		}
		for _, i := range crbs {
			crbHits = append(crbHits, bindingHit{i, lo, hi, e})
		}
		for _, i := range rbs {
			rbHits = append(rbHits, bindingHit{i, lo, hi, e})
		}
	}
	if sh != nil {
		for _, e := range sh.roles {
			rbs := sh.byRole[e.r.Name]
			if len(rbs) == 0 {
				continue
			}
			if lo, hi := allowed(e); lo < hi {
				for _, i := range rbs {
					rbHits = append(rbHits, bindingHit{i, lo, hi, e})
				}
			}
		}
	}
	if s.nss[""] != nil {
		// ClusterRoleBindings to Roles look in namespace "" (see roleOf); only objects given without a namespace
		// live there, so this costs nothing on real data.
		for i := range s.crb.entries {
			be := &s.crb.entries[i]
			if e := s.roleOf(be); e != nil && be.roleRef.Kind == KindRole {
				if lo, hi := allowed(e); lo < hi {
					crbHits = append(crbHits, bindingHit{int32(i), lo, hi, e})
				}
			}
		}
	}

	// Paths are reported in the order Can reports reasons: ClusterRoleBindings, then RoleBindings, by name.
	byBinding := func(x, y bindingHit) int { return cmp.Compare(x.binding, y.binding) }
	slices.SortFunc(crbHits, byBinding)
	slices.SortFunc(rbHits, byBinding)
	var rbEntries []bindingEntry
	if sh != nil {
		rbEntries = sh.entries
	}
	groups := [2]struct {
		entries []bindingEntry
		hits    []bindingHit
	}{{s.crb.entries, crbHits}, {rbEntries, rbHits}}

	// Two passes over the hits: the first finds the subjects and counts their paths, so that every path lands in
	// one shared array; the second fills it. WhoCan answers on large clusters hold thousands of paths.
	index := map[int32]int32{0: 0} // principal ID 0 is system:masters
	out := []WhoCanEntry{{Subject: s.refs[0], Superuser: true}}
	counts := []int{0}
	forEachGrant := func(fn func(entry int32, be *bindingEntry, h bindingHit, subject int)) {
		for _, g := range groups {
			for _, h := range g.hits {
				be := &g.entries[h.binding]
				for si, id := range be.subjectIDs {
					if id < 0 || slices.Index(be.subjectIDs, id) != si {
						continue // the authorizer reports a subject's first occurrence in a binding
					}
					e, ok := index[id]
					if !ok {
						e = int32(len(out))
						index[id] = e
						out = append(out, WhoCanEntry{Subject: s.refs[id]})
						counts = append(counts, 0)
					}
					fn(e, be, h, si)
				}
			}
		}
	}
	forEachGrant(func(e int32, be *bindingEntry, h bindingHit, si int) {
		counts[e] += int(h.hi - h.lo)
		if ref := be.subjectRef(s.refs, si); ref != out[e].Subject && out[e].Subject.Kind != KindServiceAccount {
			out[e].Subject = ref
		}
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	paths := make([]GrantPath, total)
	for e, off := 0, 0; e < len(counts); e++ {
		out[e].Paths = paths[off : off : off+counts[e]]
		off += counts[e]
	}
	forEachGrant(func(e int32, be *bindingEntry, h bindingHit, si int) {
		for _, r := range ruleBuf[h.lo:h.hi] {
			out[e].Paths = append(out[e].Paths, be.path(h.role, si, int(r)))
		}
	})
	if len(out[0].Paths) == 0 {
		out[0].Paths = nil
	}
	slices.SortFunc(out[1:], func(x, y WhoCanEntry) int { return compareRefs(x.Subject, y.Subject) })
	return out, nil
}

// bindingHit is a binding whose role allows the action, with the allowing rules as a range of WhoCan's ruleBuf.
type bindingHit struct {
	binding int32
	lo, hi  int32
	role    *roleEntry
}

func compareRefs(a, b ObjectRef) int {
	return cmp.Or(strings.Compare(string(a.Kind), string(b.Kind)),
		strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}
