package gql

import (
	"context"

	"github.com/kiem-io/kiem/graph"
)

// list pages every node of kind k (in namespace ns, when given), by namespace then name, without collecting more
// than the page.
func (v *view) list(k graph.Kind, ns string, first *int, after *string) (*NodeConnection, error) {
	if ns != "" && !k.Namespaced() && k != graph.KindNamespace {
		return nil, userErrorf("nodes: kind %s has no namespace", kindOf(k))
	}
	var refs []graph.ObjectRef
	switch k {
	case graph.KindUser, graph.KindGroup:
		for _, name := range v.snap.Subjects(k) {
			refs = append(refs, graph.ObjectRef{Kind: k, Name: name})
		}
	case graph.KindNamespace:
		for _, name := range v.snap.NamespaceNames() {
			if ns == "" || ns == name {
				refs = append(refs, graph.ObjectRef{Kind: k, Name: name})
			}
		}
	default:
		total := v.snap.Count(k, ns)
		pg, err := paginate(total, first, after)
		if err != nil {
			return nil, err
		}
		i := 0
		v.snap.Each(k, ns, func(o graph.Object) bool {
			if i >= pg.end {
				return false
			}
			if i >= pg.start {
				refs = append(refs, o.Ref())
			}
			i++
			return true
		})
		return nodePage(v, refs, pg, total), nil
	}
	return nodeConnection(v, refs, first, after)
}

// search runs a multi-entity search.
func (v *view) search(ctx context.Context, query string, kinds []Kind, namespace *string, first *int, after *string) (*SearchConnection, error) {
	size, err := pageSize(first, 20)
	if err != nil {
		return nil, err
	}
	start := 0
	if after != nil {
		i, err := parseCursor(*after)
		if err != nil {
			return nil, err
		}
		start = i + 1
	}
	q := graph.SearchQuery{Text: query, Limit: start + size + 1}
	if namespace != nil {
		q.Namespace = *namespace
	}
	for _, k := range kinds {
		q.Kinds = append(q.Kinds, graphKind(k))
	}
	hits, err := v.snap.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	c := &SearchConnection{Revision: v.rev, Edges: []*SearchEdge{}, Nodes: []Node{},
		PageInfo: &PageInfo{HasNextPage: len(hits) > start+size, HasPreviousPage: start > 0}}
	for i := start; i < min(len(hits), start+size); i++ {
		h := hits[i]
		n := v.nodeOf(h.Ref)
		if n == nil {
			continue
		}
		c.Edges = append(c.Edges, &SearchEdge{Cursor: cursor(i), Node: n, Field: h.Field, Value: h.Value, Rank: matchRank(h.Rank)})
		c.Nodes = append(c.Nodes, n)
	}
	if len(c.Edges) > 0 {
		c.PageInfo.StartCursor, c.PageInfo.EndCursor = &c.Edges[0].Cursor, &c.Edges[len(c.Edges)-1].Cursor
	}
	return c, nil
}

func matchRank(r graph.MatchRank) MatchRank {
	switch r {
	case graph.RankExact:
		return MatchRankExact
	case graph.RankPrefix:
		return MatchRankPrefix
	case graph.RankSubstring:
		return MatchRankSubstring
	}
	return MatchRankFuzzy
}
