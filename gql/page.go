package gql

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/kiem-io/kiem/graph"
)

// maxPage bounds every page, whatever first asks for: a page's cost is what the server must bound.
const maxPage = 1000

// pageRange is the slice [start, end) of a list that one page covers.
type pageRange struct {
	start, end int
	info       *PageInfo
}

// cursor encodes a position. Positions are offsets into a list in its stable order at one revision; pages of one
// list are consistent when they are read at the same revision.
func cursor(i int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(i)))
}

func parseCursor(c string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(raw), "o:"); ok {
			if i, err := strconv.Atoi(s); err == nil && i >= 0 {
				return i, nil
			}
		}
	}
	return 0, userErrorf("after: %q is not a cursor of this list", c)
}

// paginate returns the page of a list of n items that first and after select.
func paginate(n int, first *int, after *string) (pageRange, error) {
	size := 100
	if first != nil {
		size = *first
	}
	if size < 0 || size > maxPage {
		return pageRange{}, userErrorf("first: %d is out of range (0 to %d)", size, maxPage)
	}
	start := 0
	if after != nil {
		i, err := parseCursor(*after)
		if err != nil {
			return pageRange{}, err
		}
		start = i + 1
	}
	start = min(start, n)
	end := min(start+size, n)
	info := &PageInfo{HasNextPage: end < n, HasPreviousPage: start > 0}
	if end > start {
		s, e := cursor(start), cursor(end-1)
		info.StartCursor, info.EndCursor = &s, &e
	}
	return pageRange{start: start, end: end, info: info}, nil
}

// pageNodes returns the nodes of one page's refs, the first at position start of its list, with their cursors;
// refs whose node is not a T at the view are skipped.
func pageNodes[T any](v *view, refs []graph.ObjectRef, start int) (nodes []T, cursors []string) {
	nodes = []T{}
	for i, ref := range refs {
		if n, ok := v.nodeOf(ref).(T); ok {
			nodes = append(nodes, n)
			cursors = append(cursors, cursor(start+i))
		}
	}
	return nodes, cursors
}

func nodeConnection(v *view, refs []graph.ObjectRef, first *int, after *string) (*NodeConnection, error) {
	pg, err := paginate(len(refs), first, after)
	if err != nil {
		return nil, err
	}
	return nodePage(v, refs[pg.start:pg.end], pg, len(refs)), nil
}

// nodePage is the connection of the page pg of a list of total nodes, given the page's refs.
func nodePage(v *view, refs []graph.ObjectRef, pg pageRange, total int) *NodeConnection {
	nodes, cursors := pageNodes[Node](v, refs, pg.start)
	c := &NodeConnection{PageInfo: pg.info, TotalCount: total, Revision: v.rev, Nodes: nodes, Edges: make([]*NodeEdge, len(nodes))}
	for i, n := range nodes {
		c.Edges[i] = &NodeEdge{Cursor: cursors[i], Node: n}
	}
	return c
}

func bindingConnection(v *view, refs []graph.ObjectRef, first *int, after *string) (*BindingConnection, error) {
	pg, err := paginate(len(refs), first, after)
	if err != nil {
		return nil, err
	}
	nodes, cursors := pageNodes[BindingNode](v, refs[pg.start:pg.end], pg.start)
	c := &BindingConnection{PageInfo: pg.info, TotalCount: len(refs), Nodes: nodes, Edges: make([]*BindingEdge, len(nodes))}
	for i, n := range nodes {
		c.Edges[i] = &BindingEdge{Cursor: cursors[i], Node: n}
	}
	return c, nil
}

func podConnection(v *view, refs []graph.ObjectRef, first *int, after *string) (*PodConnection, error) {
	pg, err := paginate(len(refs), first, after)
	if err != nil {
		return nil, err
	}
	nodes, cursors := pageNodes[*Pod](v, refs[pg.start:pg.end], pg.start)
	c := &PodConnection{PageInfo: pg.info, TotalCount: len(refs), Nodes: nodes, Edges: make([]*PodEdge, len(nodes))}
	for i, n := range nodes {
		c.Edges[i] = &PodEdge{Cursor: cursors[i], Node: n}
	}
	return c, nil
}
