package graph

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/iterator"
	"gonum.org/v1/gonum/graph/path"
	"gonum.org/v1/gonum/graph/simple"
	"gonum.org/v1/gonum/graph/traverse"
)

// maxPathHops caps the alternatives Paths looks for: longer chains exist on paper but explain little to a
// reader. The shortest path is returned whatever its length.
const maxPathHops = 12

// sinkID is the ID of the extra node a backward search starts from: its successors are the targets.
const sinkID = -1

// distanceCache keeps, per target set, every node's hop count to it, for the graph version it was computed
// on. Readers fill it under the graph's read lock, so it has its own.
type distanceCache struct {
	mu      sync.Mutex
	version uint64
	dist    map[string][]int32
}

func (c *distanceCache) get(version uint64, key string) []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != version {
		return nil
	}
	return c.dist[key]
}

func (c *distanceCache) put(version uint64, key string, dist []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dist == nil || c.version != version || len(c.dist) >= 8 {
		c.version, c.dist = version, make(map[string][]int32)
	}
	c.dist[key] = dist
}

// ToClusterAdmin returns, for every principal (User, Group, ServiceAccount) and Pod that can reach the
// cluster-admin terminal, its shortest path there. All are found by one breadth-first search backward from
// cluster-admin. Among shortest paths the one taken is the one whose next node sorts first (by kind, namespace
// and name) at every hop; between two nodes the edge taken is the first by kind, then scope. It returns ctx's
// error if ctx ends first.
func (g *AttackGraph) ToClusterAdmin(ctx context.Context) (map[ObjectRef]AttackPath, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	st := g.st
	if st.broken {
		return nil, ErrAttackStale
	}
	out := make(map[ObjectRef]AttackPath)
	target, ok := st.ids[ClusterAdminRef()]
	if !ok {
		return out, nil
	}
	dist, err := st.distancesTo(ctx, []int64{target})
	if err != nil {
		return nil, err
	}
	// next[v] is the successor v's path goes through: of those one hop nearer, the first by ref. It is chosen
	// once per node, on first use; -1 means not chosen yet.
	next := make([]int64, len(st.nodes))
	for i := range next {
		next[i] = -1
	}
	nextOf := func(v int64) int64 {
		if next[v] < 0 {
			succ := st.g.From(v)
			for succ.Next() {
				u := succ.Node().ID()
				if dist[u] == dist[v]-1 && (next[v] < 0 || compareRefs(st.nodes[u].ref, st.nodes[next[v]].ref) < 0) {
					next[v] = u
				}
			}
		}
		return next[v]
	}
	for id := range st.nodes {
		if id%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		n := &st.nodes[id]
		if !n.live || dist[id] <= 0 || !(isPrincipalKind(n.ref.Kind) || n.ref.Kind == KindPod) {
			continue
		}
		hops := make([]AttackHop, 0, dist[id])
		for cur := int64(id); cur != target; cur = next[cur] {
			hops = append(hops, st.hop(st.pairs[[2]int64{cur, nextOf(cur)}]))
		}
		out[n.ref] = AttackPath{Hops: hops}
	}
	return out, nil
}

// distancesTo returns every node's hop count to the nearest of targets (-1 for nodes that reach none), from the
// cache or by one breadth-first search backward from them.
func (st *attackState) distancesTo(ctx context.Context, targets []int64) ([]int32, error) {
	key := fmt.Sprint(targets)
	if d := st.dists.get(st.version, key); d != nil {
		return d, nil
	}
	tnodes := make([]graph.Node, len(targets))
	for i, t := range targets {
		tnodes[i] = st.nodes[t].gn
	}
	// The search starts at the sink, one hop behind every target; its slot is the last.
	dist := make([]int32, len(st.nodes)+1)
	for i := range dist {
		dist[i] = -1
	}
	slot := func(id int64) int {
		if id == sinkID {
			return len(st.nodes)
		}
		return int(id)
	}
	dist[slot(sinkID)] = 0
	if err := bfs(ctx, reversedView{g: st.g, targets: tnodes}, simple.Node(sinkID), dist, slot, -1); err != nil {
		return nil, err
	}
	dist = dist[:len(st.nodes)]
	for i, d := range dist {
		if d > 0 {
			dist[i] = d - 1
		}
	}
	st.dists.put(st.version, key, dist)
	return dist, nil
}

// bfs walks g breadth-first from start with gonum's traverse, writing each node's hop count from start into
// dist (at slot(id); dist at start's slot is 0 on entry). It does not expand nodes limit hops away (no limit when
// negative).
func bfs(ctx context.Context, g traverse.Graph, start graph.Node, dist []int32, slot func(int64) int, limit int) error {
	var cur int64
	var err error
	n := 0
	bf := traverse.BreadthFirst{Visit: func(v graph.Node) {
		if id := v.ID(); id != start.ID() {
			dist[slot(id)] = dist[slot(cur)] + 1
		}
	}}
	// until is called as a node is taken from the queue, before its successors are visited.
	bf.Walk(g, start, func(v graph.Node, _ int) bool {
		if n++; n%4096 == 0 {
			err = ctx.Err()
		}
		cur = v.ID()
		return err != nil || limit >= 0 && int(dist[slot(cur)]) >= limit
	})
	return err
}

// reversedView is the graph with every edge turned around, for searches backward from targets: the sink
// (sinkID) leads to each of them.
type reversedView struct {
	g       *simple.DirectedGraph
	targets []graph.Node
}

func (r reversedView) From(id int64) graph.Nodes {
	if id == sinkID {
		return iterator.NewOrderedNodes(r.targets)
	}
	return r.g.To(id)
}

// Edge is only asked for pairs From returned, which are edges.
func (r reversedView) Edge(uid, vid int64) graph.Edge {
	return simple.Edge{F: simple.Node(uid), T: simple.Node(vid)}
}

// towardView is the part of the graph a forward search from a subject may use: edges into nodes that still
// reach a target within the hop cap, and none out of a target.
type towardView struct {
	g      *simple.DirectedGraph
	keep   func(u, v int64) bool
	target func(int64) bool
}

func (t towardView) From(id int64) graph.Nodes {
	if t.target(id) {
		return graph.Empty
	}
	var out []graph.Node
	succ := t.g.From(id)
	for succ.Next() {
		if v := succ.Node(); t.keep(id, v.ID()) {
			out = append(out, v)
		}
	}
	return iterator.NewOrderedNodes(out)
}

func (t towardView) Edge(uid, vid int64) graph.Edge { return t.g.Edge(uid, vid) }

// Paths returns up to k loopless paths from the subject from to target, shortest first (ties in node order),
// found by gonum's Yen k-shortest-paths. Yen runs on the part of the graph that lies on a path within a hop cap,
// which starts at the shortest path's length and grows until k paths are found or the cap reaches 12 hops (or
// the shortest path's length, if longer): each round returns the k shortest paths within its cap, so the result
// is the k shortest of at most that many hops.
// A subject the graph does not know, or that is itself the target, has no paths. Paths to a set of targets (a
// node target with no name: any node) end at the first target they reach. It returns an error for an unknown
// target kind, and ctx's error if ctx ends first.
func (g *AttackGraph) Paths(ctx context.Context, from ObjectRef, to AttackTarget, k int) ([]AttackPath, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	st := g.st
	if st.broken {
		return nil, ErrAttackStale
	}
	targets, err := st.targetNodes(to)
	if err != nil {
		return nil, err
	}
	src, ok := st.ids[from]
	if !ok || k <= 0 || len(targets) == 0 || slices.Contains(targets, src) {
		return nil, nil
	}
	toTarget, err := st.distancesTo(ctx, targets)
	if err != nil {
		return nil, err
	}
	if toTarget[src] < 0 {
		return nil, nil
	}
	var out []AttackPath
	for limit := int(toTarget[src]); limit <= max(maxPathHops, int(toTarget[src])); limit++ {
		if out, err = st.pathsWithin(ctx, src, targets, toTarget, k, limit); err != nil || len(out) >= k {
			break
		}
	}
	return out, err
}

// pathsWithin returns the k shortest paths from src to targets among those of at most limit hops.
func (st *attackState) pathsWithin(ctx context.Context, src int64, targets []int64, toTarget []int32, k, limit int) ([]AttackPath, error) {
	fwd := make(map[int64]int32)
	fwd[src] = 0
	isTarget := func(id int64) bool { return slices.Contains(targets, id) }
	// An edge u→v lies on a path within limit when v still reaches a target in the hops left.
	keep := func(u, v int64) bool { return toTarget[v] >= 0 && int(fwd[u]+1+toTarget[v]) <= limit }
	view := towardView{g: st.g, keep: keep, target: isTarget}
	var kept []int64
	var cur int64
	var err error
	n := 0
	bf := traverse.BreadthFirst{Visit: func(v graph.Node) {
		if id := v.ID(); id != src {
			fwd[id] = fwd[cur] + 1
		}
		kept = append(kept, v.ID())
	}}
	bf.Walk(view, st.nodes[src].gn, func(v graph.Node, _ int) bool {
		if n++; n%4096 == 0 {
			err = ctx.Err()
		}
		cur = v.ID()
		return err != nil
	})
	if err != nil {
		return nil, err
	}

	// Yen runs on a copy of that part whose node IDs follow the nodes' refs and whose successors come in ID
	// order, so that it breaks ties the same way on every run (gonum's own graphs iterate maps).
	slices.SortFunc(kept, func(a, b int64) int { return compareRefs(st.nodes[a].ref, st.nodes[b].ref) })
	local := make(map[int64]int64, len(kept))
	for i, id := range kept {
		local[id] = int64(i)
	}
	sink := int64(len(kept))
	sub := orderedGraph{DirectedGraph: simple.NewDirectedGraph(), adj: make([][]graph.Node, len(kept)+1)}
	for i := range len(kept) + 1 {
		sub.AddNode(simple.Node(i))
	}
	for i, id := range kept {
		if isTarget(id) {
			sub.link(int64(i), sink)
			continue
		}
		succ := view.From(id)
		for succ.Next() {
			if lv, ok := local[succ.Node().ID()]; ok {
				sub.link(int64(i), lv)
			}
		}
	}
	for _, adj := range sub.adj {
		slices.SortFunc(adj, func(a, b graph.Node) int { return int(a.ID() - b.ID()) })
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []AttackPath
	for _, nodes := range path.YenKShortestPaths(sub, k, math.Inf(1), simple.Node(local[src]), simple.Node(sink)) {
		nodes = nodes[:len(nodes)-1] // the sink
		if len(nodes)-1 > limit {
			continue
		}
		hops := make([]AttackHop, len(nodes)-1)
		for i := range hops {
			u, v := kept[nodes[i].ID()], kept[nodes[i+1].ID()]
			hops[i] = st.hop(st.pairs[[2]int64{u, v}])
		}
		out = append(out, AttackPath{Hops: hops})
	}
	slices.SortStableFunc(out, comparePaths)
	return out, nil
}

// comparePaths orders paths by length, then by their hops.
func comparePaths(a, b AttackPath) int {
	if len(a.Hops) != len(b.Hops) {
		return len(a.Hops) - len(b.Hops)
	}
	for i := range a.Hops {
		if c := compareHops(a.Hops[i], b.Hops[i]); c != 0 {
			return c
		}
	}
	return 0
}

// orderedGraph is a small directed graph whose From lists successors in ID order.
type orderedGraph struct {
	*simple.DirectedGraph
	adj [][]graph.Node
}

func (o orderedGraph) link(u, v int64) {
	o.SetEdge(simple.Edge{F: simple.Node(u), T: simple.Node(v)})
	o.adj[u] = append(o.adj[u], simple.Node(v))
}

// From returns a copy: Yen's algorithm edits the slice it gets.
func (o orderedGraph) From(id int64) graph.Nodes {
	if len(o.adj[id]) == 0 {
		return graph.Empty
	}
	return iterator.NewOrderedNodes(slices.Clone(o.adj[id]))
}

// targetNodes returns the IDs of the nodes that satisfy target, sorted.
func (st *attackState) targetNodes(t AttackTarget) ([]int64, error) {
	var refs []ObjectRef
	switch t.Kind {
	case TargetClusterAdmin:
		refs = []ObjectRef{ClusterAdminRef()}
	case TargetSecrets:
		refs = []ObjectRef{secretSet(t.Namespace)}
	case TargetNode:
		if t.Name != "" {
			refs = []ObjectRef{{Kind: KindNode, Name: t.Name}}
			break
		}
		refs = []ObjectRef{allNodes()}
		for id := range st.nodes {
			if n := &st.nodes[id]; n.live && n.ref.Kind == KindNode {
				refs = append(refs, n.ref)
			}
		}
	case TargetUser, TargetGroup, TargetServiceAccount:
		refs = []ObjectRef{{Kind: Kind(t.Kind), Namespace: t.Namespace, Name: t.Name}}
	default:
		return nil, fmt.Errorf("attack target kind %q unknown", t.Kind)
	}
	var out []int64
	for _, r := range refs {
		if id, ok := st.ids[r]; ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}
