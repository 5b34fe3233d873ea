package gql

import (
	"context"

	"github.com/kiem-io/kiem/graph"
)

// Bounds of neighbourhood: the explorer asks for a few hops around one node, and a server must not let one
// request walk the whole graph (system:authenticated has every ServiceAccount as a member).
const (
	maxDepth          = 4
	maxNeighbourhood  = 1000
	defaultNeighbours = 200
)

// link is one typed edge of the graph, from → to, as ARCHITECTURE §2 names them.
type link struct {
	from, to graph.ObjectRef
	typ      EdgeType
}

// neighbourhood walks breadth first from ref over the edges of the graph in both directions, keeping nodes of
// kinds (default: every kind) and stopping at depth hops or first nodes. Nodes of other kinds are not walked
// through.
func (v *view) neighbourhood(ctx context.Context, ref graph.ObjectRef, depth *int, kinds []Kind, first *int) (*Neighbourhood, error) {
	d, limit := 1, defaultNeighbours
	if depth != nil {
		d = *depth
	}
	if first != nil {
		limit = *first
	}
	if d < 0 || d > maxDepth {
		return nil, userErrorf("neighbourhood: depth %d is out of range (0 to %d)", d, maxDepth)
	}
	if limit < 1 || limit > maxNeighbourhood {
		return nil, userErrorf("neighbourhood: first %d is out of range (1 to %d)", limit, maxNeighbourhood)
	}
	keep := func(graph.Kind) bool { return true }
	if len(kinds) > 0 {
		allowed := map[graph.Kind]bool{}
		for _, k := range kinds {
			allowed[graphKind(k)] = true
		}
		keep = func(k graph.Kind) bool { return allowed[k] }
	}
	start := v.anyNode(ref)
	if start == nil {
		return nil, userErrorf("neighbourhood: %s does not exist at revision %d", ref, v.rev)
	}
	out := &Neighbourhood{Revision: v.rev, Nodes: []Node{start}, Edges: []*Edge{}}
	seen := map[graph.ObjectRef]bool{ref: true}
	edges := map[link]bool{}
	frontier := []graph.ObjectRef{ref}
	for hop := 0; hop < d && len(frontier) > 0; hop++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var next []graph.ObjectRef
		for _, at := range frontier {
			// A node's links are enumerated up to the room left: a group such as system:serviceaccounts has every
			// ServiceAccount as a member, and listing 40,000 of them to keep 200 is the cost the bound prevents.
			for _, l := range v.links(at, limit-len(out.Nodes)+1) {
				other := l.to
				if other == at {
					other = l.from
				}
				if !keep(other.Kind) {
					continue
				}
				if !seen[other] {
					if len(out.Nodes) >= limit {
						out.Truncated = true
						continue
					}
					n := v.anyNode(other)
					if n == nil {
						continue
					}
					seen[other] = true
					out.Nodes = append(out.Nodes, n)
					next = append(next, other)
				}
				if !edges[l] {
					edges[l] = true
					out.Edges = append(out.Edges, &Edge{From: graph.NodeID(v.cluster, l.from), To: graph.NodeID(v.cluster, l.to), Type: l.typ})
				}
			}
		}
		frontier = next
	}
	return out, nil
}

// anyNode is nodeOf, except that a subject a binding names is a node even when nothing else backs it.
func (v *view) anyNode(ref graph.ObjectRef) Node {
	if n, ok := v.subjectNode(ref); ok {
		return n
	}
	return v.nodeOf(ref)
}

// links lists the edges that touch ref, in a stable order. The lists that can be huge (a group's members, a
// namespace's objects, a node's pods) stop after room edges; the others are short or already materialised.
func (v *view) links(ref graph.ObjectRef, room int) []link {
	var out []link
	add := func(from, to graph.ObjectRef, t EdgeType) { out = append(out, link{from, to, t}) }
	nsRef := graph.ObjectRef{Kind: graph.KindNamespace, Name: ref.Namespace}
	subjectOf := func() {
		for _, b := range v.snap.BindingsOf(ref) {
			add(b, ref, EdgeTypeSubjectOf)
		}
	}
	switch ref.Kind {
	case graph.KindUser:
		subjectOf()
		for _, g := range v.user(ref.Name).Groups() {
			add(ref, g.Group.ref, EdgeTypeMemberOf)
		}
	case graph.KindGroup:
		subjectOf()
		for _, m := range v.membersUpTo(ref.Name, room) {
			add(m, ref, EdgeTypeMemberOf)
		}
	case graph.KindServiceAccount:
		subjectOf()
		for _, g := range graph.ServiceAccountGroups(ref.Namespace) {
			add(ref, graph.ObjectRef{Kind: graph.KindGroup, Name: g}, EdgeTypeMemberOf)
		}
		for _, p := range v.snap.PodsOf(ref.Namespace, ref.Name) {
			add(p, ref, EdgeTypeRunsAs)
		}
		add(ref, nsRef, EdgeTypeScopedTo)
	case graph.KindRole, graph.KindClusterRole:
		for _, b := range v.snap.BindingsOfRole(ref) {
			add(b, ref, EdgeTypeGrants)
		}
		if ref.Kind == graph.KindRole {
			add(ref, nsRef, EdgeTypeScopedTo)
			break
		}
		for _, from := range v.snap.AggregatedFrom(ref.Name) {
			add(ref, from, EdgeTypeAggregates)
		}
		for _, into := range v.snap.AggregatedInto(ref.Name) {
			add(into, ref, EdgeTypeAggregates)
		}
	case graph.KindRoleBinding, graph.KindClusterRoleBinding:
		o, ok := v.snap.Object(ref)
		if !ok {
			break
		}
		b := o.(*graph.Binding)
		for _, s := range (&bindingBase{base: base{v, ref}, obj: b}).Subjects() {
			if n := s.Node(); n != nil {
				add(ref, n.nodeRef(), EdgeTypeSubjectOf)
			}
		}
		if role, ok := b.RoleRefObject(); ok {
			if _, exists := v.snap.Object(role); exists {
				add(ref, role, EdgeTypeGrants)
			}
		}
		if ref.Kind == graph.KindRoleBinding {
			add(ref, nsRef, EdgeTypeScopedTo)
		}
	case graph.KindNamespace:
		for _, k := range namespacedKinds {
			v.snap.Each(graphKind(k), ref.Name, func(o graph.Object) bool {
				add(o.Ref(), ref, EdgeTypeScopedTo)
				return len(out) < room
			})
		}
	case graph.KindPod:
		o, ok := v.snap.Object(ref)
		if !ok {
			break
		}
		p := o.(*graph.Pod)
		add(ref, graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ref.Namespace, Name: p.ServiceAccount}, EdgeTypeRunsAs)
		if p.NodeName != "" {
			if _, exists := v.snap.Object(graph.ObjectRef{Kind: graph.KindNode, Name: p.NodeName}); exists {
				add(ref, graph.ObjectRef{Kind: graph.KindNode, Name: p.NodeName}, EdgeTypeRunsOn)
			}
		}
		add(ref, nsRef, EdgeTypeScopedTo)
	case graph.KindNode:
		for _, p := range v.podsOnUpTo(ref.Name, room) {
			add(p, ref, EdgeTypeRunsOn)
		}
	case graph.KindSecret:
		add(ref, nsRef, EdgeTypeScopedTo)
	}
	return out
}
