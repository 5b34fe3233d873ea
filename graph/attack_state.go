package graph

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/simple"
)

// ErrAttackStale is returned by every method of an AttackGraph whose Update was interrupted: rebuild it.
var ErrAttackStale = errors.New("attack graph stale: an update was interrupted")

// attackNode is a node of the attack graph; its ID is its index in attackState.nodes.
type attackNode struct {
	ref ObjectRef
	gn  graph.Node // the node as gonum holds it, boxed once
	// refs counts the units, other than the node's own, that mention the node (as an edge end or a pin). A node
	// nobody mentions is removed, with its own unit.
	refs int32
	// vrefs counts, of refs, the units owned by holder nodes: holder nodes can keep each other alive in cycles,
	// which collectHolders breaks.
	vrefs     int32
	own       *attackUnit // principal or holder unit; nil for other kinds
	live      bool
	condemned bool // an unreachable holder node whose unit was removed; deleted once its refs drop to zero
}

// lineKey identifies an edge: parallel edges of the same kind and scope between two nodes are one line, whose
// evidence merges the units that contribute it.
type lineKey struct {
	from, to int64
	kind     AttackEdgeKind
	scope    string
}

// attackLine is one edge. The lines between two nodes form a list, by kind, then scope; gonum holds one edge for
// the pair. Almost every line has one contribution, which is kept inline.
type attackLine struct {
	key  lineKey
	next *attackLine
	c0   lineContrib   // the first contribution by unit key
	more []lineContrib // the others, by unit key
}

type lineContrib struct {
	u         *attackUnit
	ev        []evRef
	note      string
	potential bool
}

// evRef is evidence kept small: rule `rule` of holding h, or with rule -1 the binding of h itself. It becomes a
// GrantPath when a hop is handed out.
type evRef struct {
	h    *holding
	rule int32
}

func (e evRef) grantPath() (GrantPath, bool) {
	if e.rule < 0 {
		return e.h.bindingPath()
	}
	return e.h.path(e.rule)
}

// unitKind orders units; units of one kind order by ref, which orders merged evidence.
type unitKind uint8

const (
	uInventory unitKind = iota // Nodes, declared users, system:masters
	uNamespace                 // one namespace's pods, ServiceAccounts, token Secrets
	uBinding                   // one binding's direct edges
	uPrincipal                 // one User, Group or ServiceAccount: its groups and combination edges
	uHolder                    // one BoundRole, BoundClusterRole or NamespaceAdmin node
)

type unitKey struct {
	kind unitKind
	ref  ObjectRef
}

func compareUnitKeys(a, b unitKey) int {
	return cmp.Or(cmp.Compare(a.kind, b.kind), compareRefs(a.ref, b.ref))
}

// attackUnit is one derivation of edges, with what it read (deps) so that Update knows when to redo it.
type attackUnit struct {
	key      unitKey
	owner    int64 // the node the unit belongs to (principal and holder units); -1 for none
	lines    []*attackLine
	mentions []int64
	deps     []fact
	holds    map[ObjectRef]*holding // binding units: the holding of each subject
}

// factKind says what a unit read.
type factKind uint8

const (
	factObject         factKind = iota // one object, by ref
	factName                           // objects of ref.Kind called ref.Name, in any namespace
	factKindIn                         // objects of ref.Kind in ref.Namespace ("" for cluster-scoped kinds)
	factKindAny                        // objects of ref.Kind anywhere
	factCaps                           // the combination capabilities of principal ref (its bindings' holdings)
	factBound                          // the bindings that name principal ref
	factSecretsIndexed                 // whether any Secret metadata is indexed
)

type fact struct {
	kind factKind
	ref  ObjectRef
}

// evalResult is what evaluating a unit yields.
type evalResult struct {
	edges []edgeSpec
	pins  []ObjectRef
	deps  []fact
	holds map[ObjectRef]*holding
}

type edgeSpec struct {
	from, to  ObjectRef
	kind      AttackEdgeKind
	scope     string
	ev        []evRef
	note      string
	potential bool
}

// attackState is the attack graph proper; AttackGraph guards it.
type attackState struct {
	snap   *Snapshot
	probes [numCaps][]probe
	g      *simple.DirectedGraph

	nodes []attackNode
	free  []int64
	ids   map[ObjectRef]int64
	pairs map[[2]int64]*attackLine // the first line between two nodes

	units map[unitKey]*attackUnit
	deps  map[fact]map[*attackUnit]struct{}
	// held indexes the holdings of binding units by subject: what combination edges read.
	held map[ObjectRef]map[*attackUnit]*holding
	// roleCaps caches what each role grants, by role, for the rules it was computed from; adminCaps what
	// every permission grants, for NamespaceAdmin nodes.
	roleCaps  map[ObjectRef]cachedCaps
	adminCaps *roleCaps
	// adminCRs caches the admin-equivalent ClusterRoles of one ClusterRole shard.
	adminCRsOf *crShard
	adminCRs   []string

	// groupCombos caches the combination edges of groups, which every member's unit asks for; holdGen counts
	// changes of holdings, which invalidate it.
	groupCombos map[string]cachedCombos
	holdGen     uint64

	// version counts updates; dists caches search distances for the current one.
	version uint64
	dists   distanceCache

	secretsIndexed bool
	pending        []int64            // nodes whose refs changed, for settle
	holders        map[int64]struct{} // live holder nodes
	// holderDropped is set when a holder node is left mentioned by holder units alone: only then can holder
	// nodes become garbage that reference counts do not free.
	holderDropped bool
	dirty         map[fact]struct{}
	broken        bool
}

type cachedCombos struct {
	gen  uint64
	keys []comboKey
	deps []fact
}

type cachedCaps struct {
	rules *Role
	caps  *roleCaps
}

func newAttackState(s *Snapshot) *attackState {
	return &attackState{
		snap:        s,
		probes:      capProbes(),
		g:           simple.NewDirectedGraph(),
		ids:         make(map[ObjectRef]int64),
		pairs:       make(map[[2]int64]*attackLine),
		units:       make(map[unitKey]*attackUnit),
		deps:        make(map[fact]map[*attackUnit]struct{}),
		held:        make(map[ObjectRef]map[*attackUnit]*holding),
		roleCaps:    make(map[ObjectRef]cachedCaps),
		groupCombos: make(map[string]cachedCombos),
		holders:     make(map[int64]struct{}),
		dirty:       make(map[fact]struct{}),
	}
}

// buildAttackState derives every unit of s: the inventory, each namespace and each binding, then (in settle)
// the principal and holder units of the nodes they mention.
func buildAttackState(ctx context.Context, s *Snapshot) (*attackState, error) {
	st := newAttackState(s)
	st.secretsIndexed = hasSecrets(s)
	st.setUnit(unitKey{kind: uInventory}, -1)
	for _, ns := range attackNamespaces(s) {
		st.setUnit(unitKey{kind: uNamespace, ref: ObjectRef{Kind: KindNamespace, Name: ns}}, -1)
	}
	for i := range s.crb.entries {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		st.setUnit(unitKey{kind: uBinding, ref: s.crb.entries[i].ref}, -1)
	}
	for n, ns := range s.nsNames {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		sh := s.nss[ns]
		for i := range sh.entries {
			st.setUnit(unitKey{kind: uBinding, ref: sh.entries[i].ref}, -1)
		}
	}
	clear(st.dirty) // a new graph has nothing to redo
	if err := st.settle(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// attackNamespaces returns the namespaces that get a namespace unit: those with a Namespace object or any
// namespaced object, sorted.
func attackNamespaces(s *Snapshot) []string {
	out := slices.Clone(s.nsNames)
	for i := range s.inv.namespaces {
		out = append(out, s.inv.namespaces[i].Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func hasNamespace(s *Snapshot, ns string) bool {
	if s.nss[ns] != nil {
		return true
	}
	_, ok := s.inv.nsByName[ns]
	return ok
}

func hasSecrets(s *Snapshot) bool {
	for _, sh := range s.nss {
		if len(sh.secrets) > 0 {
			return true
		}
	}
	return false
}

// setUnit (re)derives unit key, owned by owner (-1 for none), replacing the unit it had. The new unit is applied
// before the old one is removed, so nodes both mention stay.
func (st *attackState) setUnit(key unitKey, owner int64) *attackUnit {
	old := st.units[key]
	res := st.eval(key)
	u := &attackUnit{key: key, owner: owner, deps: res.deps, holds: res.holds}
	st.apply(u, res)
	if old != nil {
		st.retract(old)
	}
	st.units[key] = u
	if owner >= 0 {
		st.nodes[owner].own = u
	}
	return u
}

// dropUnit removes a unit.
func (st *attackState) dropUnit(u *attackUnit) {
	st.retract(u)
	delete(st.units, u.key)
	if u.owner >= 0 && st.nodes[u.owner].own == u {
		st.nodes[u.owner].own = nil
	}
}

// apply adds u's edges, mentions, deps and holdings.
func (st *attackState) apply(u *attackUnit, res evalResult) {
	// One contribution per line: a unit may derive the same edge twice (a pod named and every pod).
	type pendingLine struct {
		key lineKey
		c   lineContrib
	}
	lines := make([]pendingLine, 0, len(res.edges))
	mentions := make([]int64, 0, 2*len(res.edges)+len(res.pins))
	// Consecutive edges mostly share their source (a subject's edges, a set node's members): look it up once.
	var lastRef ObjectRef
	lastID := int64(-1)
	node := func(ref ObjectRef) int64 {
		if lastID < 0 || ref != lastRef {
			lastRef, lastID = ref, st.ensureNode(ref)
		}
		return lastID
	}
	for i := range res.edges {
		e := &res.edges[i]
		from, to := node(e.from), st.ensureNode(e.to)
		mentions = append(mentions, from, to)
		if from == to {
			continue // a self-loop gains nothing (a namespace admin binding itself namespace admin)
		}
		lines = append(lines, pendingLine{lineKey{from: from, to: to, kind: e.kind, scope: e.scope},
			lineContrib{u: u, ev: e.ev, note: e.note, potential: e.potential}})
	}
	for _, p := range res.pins {
		mentions = append(mentions, st.ensureNode(p))
	}
	slices.SortStableFunc(lines, func(a, b pendingLine) int { return compareLineKeys(a.key, b.key) })
	u.lines = make([]*attackLine, 0, len(lines))
	for i := 0; i < len(lines); {
		c := lines[i].c
		j := i + 1
		for ; j < len(lines) && lines[j].key == lines[i].key; j++ {
			c.ev = mergeEvidence(c.ev, lines[j].c.ev)
			c.note = mergeNotes(c.note, lines[j].c.note)
			c.potential = c.potential && lines[j].c.potential
		}
		u.lines = append(u.lines, st.addContrib(lines[i].key, c))
		i = j
	}
	slices.Sort(mentions)
	mentions = slices.DeleteFunc(slices.Compact(mentions), func(id int64) bool { return id == u.owner })
	u.mentions = slices.Clip(mentions)
	ownerHolder := u.owner >= 0 && isHolderKind(st.nodes[u.owner].ref.Kind)
	for _, id := range u.mentions {
		n := &st.nodes[id]
		n.refs++
		if ownerHolder && isHolderKind(n.ref.Kind) {
			n.vrefs++
		}
		st.pending = append(st.pending, id)
	}
	for _, f := range u.deps {
		set := st.deps[f]
		if set == nil {
			set = make(map[*attackUnit]struct{})
			st.deps[f] = set
		}
		set[u] = struct{}{}
	}
	for ref, h := range u.holds {
		m := st.held[ref]
		if m == nil {
			m = make(map[*attackUnit]*holding)
			st.held[ref] = m
		}
		m[u] = h
		st.markHolding(ref, h)
	}
}

func compareLineKeys(a, b lineKey) int {
	return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to), strings.Compare(string(a.kind), string(b.kind)),
		strings.Compare(a.scope, b.scope))
}

// retract undoes apply.
func (st *attackState) retract(u *attackUnit) {
	for _, l := range u.lines {
		st.removeContrib(l, u)
	}
	ownerHolder := u.owner >= 0 && isHolderKind(st.nodes[u.owner].ref.Kind)
	for _, id := range u.mentions {
		n := &st.nodes[id]
		n.refs--
		if isHolderKind(n.ref.Kind) {
			if ownerHolder {
				n.vrefs--
			}
			// Mentioned by holder units alone, it may be part of a cycle nothing else reaches.
			if n.refs > 0 && n.refs == n.vrefs {
				st.holderDropped = true
			}
		}
		st.pending = append(st.pending, id)
	}
	for _, f := range u.deps {
		if set := st.deps[f]; set != nil {
			delete(set, u)
			if len(set) == 0 {
				delete(st.deps, f)
			}
		}
	}
	for ref, h := range u.holds {
		if m := st.held[ref]; m != nil {
			delete(m, u)
			if len(m) == 0 {
				delete(st.held, ref)
			}
		}
		st.markHolding(ref, h)
	}
	u.lines, u.mentions = nil, nil
}

// markHolding records that a holding of principal ref appeared or went: the principal's combination edges read
// its holdings, and E-ESCALATE its bindings.
func (st *attackState) markHolding(ref ObjectRef, h *holding) {
	st.holdGen++
	st.dirty[fact{kind: factBound, ref: ref}] = struct{}{}
	if h.caps.mask&comboCaps != 0 {
		st.dirty[fact{kind: factCaps, ref: ref}] = struct{}{}
	}
}

func (st *attackState) ensureNode(ref ObjectRef) int64 {
	if id, ok := st.ids[ref]; ok {
		return id
	}
	var id int64
	if n := len(st.free); n > 0 {
		id = st.free[n-1]
		st.free = st.free[:n-1]
	} else {
		id = int64(len(st.nodes))
		st.nodes = append(st.nodes, attackNode{})
	}
	st.nodes[id] = attackNode{ref: ref, gn: simple.Node(id), live: true}
	st.ids[ref] = id
	st.g.AddNode(st.nodes[id].gn)
	st.pending = append(st.pending, id)
	if isHolderKind(ref.Kind) {
		st.holders[id] = struct{}{}
	}
	return id
}

func (st *attackState) deleteNode(id int64) {
	n := &st.nodes[id]
	delete(st.holders, id)
	delete(st.ids, n.ref)
	st.g.RemoveNode(id)
	*n = attackNode{}
	st.free = append(st.free, id)
}

// compareLine orders the lines between two nodes: by kind, then scope.
func compareLine(l *attackLine, k lineKey) int {
	return cmp.Or(strings.Compare(string(l.key.kind), string(k.kind)), strings.Compare(l.key.scope, k.scope))
}

// addContrib adds contribution c to line k, creating the line (and gonum's edge) if needed.
func (st *attackState) addContrib(k lineKey, c lineContrib) *attackLine {
	pk := [2]int64{k.from, k.to}
	head := st.pairs[pk]
	var prev *attackLine
	l := head
	for l != nil && compareLine(l, k) < 0 {
		prev, l = l, l.next
	}
	if l == nil || compareLine(l, k) != 0 {
		if head == nil {
			st.g.SetEdge(simple.Edge{F: st.nodes[k.from].gn, T: st.nodes[k.to].gn})
		}
		nl := &attackLine{key: k, next: l, c0: c}
		if prev == nil {
			st.pairs[pk] = nl
		} else {
			prev.next = nl
		}
		return nl
	}
	// The replacement of a unit is applied before the unit it replaces is retracted: both contribute for a
	// moment, the new one after the old.
	all := l.contribs()
	i := 0
	for i < len(all) && compareUnitKeys(all[i].u.key, c.u.key) <= 0 {
		i++
	}
	all = slices.Insert(all, i, c)
	l.c0, l.more = all[0], all[1:]
	return l
}

// contribs returns the line's contributions in a new slice.
func (l *attackLine) contribs() []lineContrib {
	return append([]lineContrib{l.c0}, l.more...)
}

func (st *attackState) removeContrib(l *attackLine, u *attackUnit) {
	all := l.contribs()
	i := slices.IndexFunc(all, func(c lineContrib) bool { return c.u == u })
	if i < 0 {
		return
	}
	all = slices.Delete(all, i, i+1)
	if len(all) > 0 {
		l.c0, l.more = all[0], nil
		if len(all) > 1 {
			l.more = all[1:]
		}
		return
	}
	pk := [2]int64{l.key.from, l.key.to}
	if head := st.pairs[pk]; head == l {
		if l.next == nil {
			delete(st.pairs, pk)
			st.g.RemoveEdge(l.key.from, l.key.to)
		} else {
			st.pairs[pk] = l.next
		}
	} else {
		for p := head; p != nil; p = p.next {
			if p.next == l {
				p.next = l.next
				break
			}
		}
	}
	l.next = nil
}

// merged returns the line's evidence, note and potential, merged from its contributions.
func (l *attackLine) merged() (ev []evRef, note string, potential bool) {
	ev, note, potential = l.c0.ev, l.c0.note, l.c0.potential
	for _, c := range l.more {
		ev = mergeEvidence(ev, c.ev)
		note = mergeNotes(note, c.note)
		potential = potential && c.potential
	}
	return ev, note, potential
}

// mergeEvidence returns a followed by the evidence of b it lacks, in a new slice when it adds any.
func mergeEvidence(a, b []evRef) []evRef {
	var out []evRef
	for _, e := range b {
		if slices.Contains(a, e) || slices.Contains(out, e) {
			continue
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return a
	}
	return append(slices.Clip(a), out...)
}

// mergeNotes merges the notes of two grants of one edge: an edge granted once without a qualification has
// none (exec granted with create needs no "get only" note); otherwise the distinct notes, sorted.
func mergeNotes(a, b string) string {
	if a == "" || b == "" {
		return ""
	}
	parts := append(strings.Split(a, "; "), strings.Split(b, "; ")...)
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), "; ")
}

func isHolderKind(k Kind) bool {
	return k == KindBoundRole || k == KindBoundClusterRole || k == KindNamespaceAdmin
}

func isPrincipalKind(k Kind) bool {
	return k == KindUser || k == KindGroup || k == KindServiceAccount
}

// settle brings node lifetimes in line with the units: a node nobody mentions goes, with its own unit; a
// principal or holder node that is mentioned gets its unit. Holder nodes that only other unreachable holder
// nodes mention are collected.
func (st *attackState) settle(ctx context.Context) error {
	for {
		n := 0
		for len(st.pending) > 0 {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			id := st.pending[len(st.pending)-1]
			st.pending = st.pending[:len(st.pending)-1]
			node := &st.nodes[id]
			switch {
			case !node.live:
			case node.refs == 0:
				if node.own != nil {
					st.dropUnit(node.own)
				}
				st.deleteNode(id)
			case node.own == nil && !node.condemned && (isPrincipalKind(node.ref.Kind) || isHolderKind(node.ref.Kind)):
				kind := uPrincipal
				if isHolderKind(node.ref.Kind) {
					kind = uHolder
				}
				st.setUnit(unitKey{kind: kind, ref: node.ref}, id)
			}
		}
		if !st.holderDropped {
			return nil
		}
		st.holderDropped = false
		if !st.collectHolders() {
			return nil
		}
	}
}

// collectHolders removes the units of holder nodes that no unit outside holder units reaches, so that they
// can go; it reports whether it removed any.
func (st *attackState) collectHolders() bool {
	marked := make(map[int64]bool, len(st.holders))
	var stack []int64
	for id := range st.holders {
		if n := &st.nodes[id]; n.refs > n.vrefs {
			marked[id] = true
			stack = append(stack, id)
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		u := st.nodes[id].own
		if u == nil {
			continue
		}
		for _, m := range u.mentions {
			if isHolderKind(st.nodes[m].ref.Kind) && !marked[m] {
				marked[m] = true
				stack = append(stack, m)
			}
		}
	}
	removed := false
	for id := range st.holders {
		n := &st.nodes[id]
		switch {
		case marked[id] && n.condemned:
			// Condemned by an earlier round, but reached again (a unit redone since mentions it).
			n.condemned = false
			st.pending = append(st.pending, id)
			removed = true
		case !marked[id] && n.own != nil:
			n.condemned = true
			st.dropUnit(n.own)
			st.pending = append(st.pending, id)
			removed = true
		}
	}
	return removed
}

// hop renders a line as a hop.
func (st *attackState) hop(l *attackLine) AttackHop {
	ev, note, potential := l.merged()
	var paths []GrantPath
	if len(ev) > 0 {
		paths = make([]GrantPath, 0, len(ev))
		for _, e := range ev {
			if p, ok := e.grantPath(); ok {
				paths = append(paths, p)
			}
		}
	}
	return AttackHop{
		From:      st.nodes[l.key.from].ref,
		To:        st.nodes[l.key.to].ref,
		Edge:      l.key.kind,
		Namespace: l.key.scope,
		Technique: l.key.kind.Technique(),
		Evidence:  paths,
		Note:      note,
		Potential: potential,
	}
}
