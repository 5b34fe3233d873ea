package graph

import (
	"slices"
)

// holding is one role held in one scope: a binding's role for one of its subjects, or the role a holder node
// stands for.
type holding struct {
	be      *bindingEntry // nil for the holding of a holder node
	si      int           // the subject index in be
	role    *roleEntry    // nil for NamespaceAdmin, which holds every permission
	roleRef ObjectRef
	caps    *roleCaps
	scope   string // "" cluster-wide (ClusterRoleBinding), a namespace, or AllNamespaces
}

// clusterWide reports whether namespaced grants of h apply in every namespace.
func (h *holding) clusterWide() bool { return h.scope == "" || h.scope == AllNamespaces }

// targetNS is the Namespace of the set nodes h's namespaced grants reach.
func (h *holding) targetNS() string {
	if h.clusterWide() {
		return AllNamespaces
	}
	return h.scope
}

// path is the evidence of one rule of h; false for NamespaceAdmin, whose rules are no object.
func (h *holding) path(rule int32) (GrantPath, bool) {
	if h.be != nil {
		return h.be.path(h.role, h.si, int(rule)), true
	}
	if h.role == nil {
		return GrantPath{}, false
	}
	p := GrantPath{Role: &h.roleRef, RuleIndex: int(rule), Rule: &h.role.r.Rules[rule]}
	if h.role.from != nil {
		p.AggregatedFrom = &h.role.from[rule]
	}
	return p, true
}

// bindingPath is the evidence that h's role is bound to the subject (E-ESCALATE): the binding, with no rule.
func (h *holding) bindingPath() (GrantPath, bool) {
	if h.be == nil {
		return GrantPath{}, false
	}
	return GrantPath{Binding: &h.be.ref, Subject: &h.be.b.Subjects[h.si], SubjectIndex: h.si, Role: &h.be.roleRef, RuleIndex: -1}, true
}

// grantRef is one grant of a capability by a holding.
type grantRef struct {
	h *holding
	c capID
	g capGrant
}

// unnamed keeps grants that allow their request without a name: create, and list or watch of every object.
func (ec *evalCtx) unnamed(gr grantRef) bool {
	return gr.h.caps.allowsName(&ec.st.probes, gr.c, gr.g, "")
}

// everyName keeps grants whose rule lists no resourceNames.
func everyName(gr grantRef) bool { return gr.h.caps.everyName(gr.g) }

func anyGrant(grantRef) bool { return true }

// forName keeps grants that allow their request for name.
func (ec *evalCtx) forName(name string) func(grantRef) bool {
	return func(gr grantRef) bool { return gr.h.caps.allowsName(&ec.st.probes, gr.c, gr.g, name) }
}

// verbIs keeps grants whose request's verb is one of verbs.
func (ec *evalCtx) verbIs(verbs ...string) func(grantRef) bool {
	return func(gr grantRef) bool { return slices.Contains(verbs, ec.st.probes[gr.c][gr.g.probe].verb) }
}

// collectGrants gathers the grants of capabilities cs by the holdings that where accepts (all when nil) that
// keep accepts, in holding order.
func collectGrants(hs []*holding, where func(*holding) bool, keep func(grantRef) bool, cs ...capID) []grantRef {
	var out []grantRef
	for _, h := range hs {
		if h.caps == nil || (where != nil && !where(h)) {
			continue
		}
		for _, c := range cs {
			for _, g := range h.caps.grants[c] {
				if gr := (grantRef{h, c, g}); keep(gr) {
					if out == nil {
						out = make([]grantRef, 0, len(h.caps.grants[c]))
					}
					out = append(out, gr)
				}
			}
		}
	}
	return out
}

// filter returns the grants of gs that keep accepts: gs itself (clipped, so that appending copies) when it
// accepts them all.
func filter(gs []grantRef, keep func(grantRef) bool) []grantRef {
	for i, g := range gs {
		if keep(g) {
			continue
		}
		out := make([]grantRef, i, len(gs)-1)
		copy(out, gs[:i])
		for _, g := range gs[i+1:] {
			if keep(g) {
				out = append(out, g)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return slices.Clip(gs)
}

// evidence turns grants into evidence, each rule of each holding once, in order. A NamespaceAdmin holding has
// no rules to show.
func evidence(parts ...[]grantRef) []evRef {
	n := 0
	for _, gs := range parts {
		n += len(gs)
	}
	out := make([]evRef, 0, n)
	var seen map[evRef]bool // for long lists only: short ones are searched
	if n > 16 {
		seen = make(map[evRef]bool, n)
	}
	for _, gs := range parts {
		for _, gr := range gs {
			if gr.h.be == nil && gr.h.role == nil {
				continue
			}
			e := evRef{gr.h, gr.g.rule}
			if seen != nil {
				if seen[e] {
					continue
				}
				seen[e] = true
			} else if slices.Contains(out, e) {
				continue
			}
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return slices.Clip(out)
}

// namesOf returns, sorted, the resource names the narrowed grants of gs name.
func namesOf(gs []grantRef) []string {
	var out []string
	for _, gr := range gs {
		for _, n := range gr.h.caps.names(gr.g) {
			if n != "" {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// holdingSet is a principal's holdings indexed by where they apply.
type holdingSet struct {
	all     []*holding
	mask    uint64     // the union of the holdings' capabilities
	cluster []*holding // ClusterRoleBindings': cluster-scoped resources
	wide    []*holding // applying in every namespace: ClusterRoleBindings' and AllNamespaces holder nodes'
	byNS    map[string][]*holding
}

func newHoldingSet(hs []*holding) *holdingSet {
	set := &holdingSet{all: hs, byNS: make(map[string][]*holding)}
	for _, h := range hs {
		set.mask |= h.caps.mask
		switch {
		case h.scope == "":
			set.cluster = append(set.cluster, h)
			set.wide = append(set.wide, h)
		case h.scope == AllNamespaces:
			set.wide = append(set.wide, h)
		default:
			set.byNS[h.scope] = append(set.byNS[h.scope], h)
		}
	}
	return set
}

// hasAll reports whether some holding grants each of cs.
func (set *holdingSet) hasAll(cs ...capID) bool {
	for _, c := range cs {
		if set.mask&(1<<c) == 0 {
			return false
		}
	}
	return true
}

// hasAny reports whether some holding grants one of cs.
func (set *holdingSet) hasAny(cs ...capID) bool {
	for _, c := range cs {
		if set.mask&(1<<c) != 0 {
			return true
		}
	}
	return false
}

// in returns the holdings that apply in namespace ns (AllNamespaces: in every namespace).
func (set *holdingSet) in(ns string) []*holding {
	if ns == AllNamespaces || len(set.byNS[ns]) == 0 {
		return set.wide
	}
	return append(slices.Clip(set.wide), set.byNS[ns]...)
}
