package gql

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kiem-io/kiem/graph"
)

// History is append-only, so its cursors are positions in it (a revision, a revision and a sequence number)
// rather than offsets: they stay valid as new revisions arrive.

func revisionCursor(rev graph.Revision) string {
	return base64.RawURLEncoding.EncodeToString([]byte("r:" + strconv.FormatUint(uint64(rev), 10)))
}

func changeCursor(rev graph.Revision, seq int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("c:%d:%d", rev, seq)))
}

func parseHistoryCursor(c, prefix string) ([]uint64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(raw), prefix+":"); ok {
			var out []uint64
			for _, part := range strings.Split(s, ":") {
				n, err := strconv.ParseUint(part, 10, 64)
				if err != nil {
					return nil, userErrorf("after: %q is not a cursor of this list", c)
				}
				out = append(out, n)
			}
			return out, nil
		}
	}
	return nil, userErrorf("after: %q is not a cursor of this list", c)
}

func pageSize(first *int, def int) (int, error) {
	n := def
	if first != nil {
		n = *first
	}
	if n < 0 || n > maxPage {
		return 0, userErrorf("first: %d is out of range (0 to %d)", n, maxPage)
	}
	return n, nil
}

// revisions pages the history newest first.
func (r *Resolver) revisions(ctx context.Context, first *int, after *string) (*RevisionConnection, error) {
	n, err := pageSize(first, 50)
	if err != nil {
		return nil, err
	}
	head := r.opts.Graph.Head()
	to := head
	if after != nil {
		pos, err := parseHistoryCursor(*after, "r")
		if err != nil || len(pos) != 1 {
			return nil, userErrorf("after: %q is not a cursor of revisions", *after)
		}
		if pos[0] == 0 {
			to = 0
		} else {
			to = graph.Revision(pos[0]) - 1
		}
	}
	c := &RevisionConnection{Revision: head, Edges: []*RevisionEdge{}, Nodes: []*RevisionInfo{}, PageInfo: &PageInfo{HasPreviousPage: to < head}}
	var infos []graph.RevisionInfo
	err = r.opts.Graph.Store().RevisionsBackward(ctx, 0, min(to, head), func(ri graph.RevisionInfo) bool {
		if len(infos) == n {
			c.PageInfo.HasNextPage = true
			return false
		}
		infos = append(infos, ri)
		return true
	})
	if err != nil {
		return nil, err
	}
	for _, ri := range infos {
		info := &RevisionInfo{ri}
		c.Edges = append(c.Edges, &RevisionEdge{Cursor: revisionCursor(ri.Revision), Node: info})
		c.Nodes = append(c.Nodes, info)
	}
	if len(c.Edges) > 0 {
		c.PageInfo.StartCursor, c.PageInfo.EndCursor = &c.Edges[0].Cursor, &c.Edges[len(c.Edges)-1].Cursor
	}
	return c, nil
}

// revisionInfos loads the revisions revs in one walk over the history between the smallest and the largest: the
// batch behind every field that shows a change's revision (a per-request loader: one read per page, not per row).
// Revisions that are not retained are absent from the map.
func (r *Resolver) revisionInfos(ctx context.Context, revs []graph.Revision) (map[graph.Revision]*RevisionInfo, error) {
	out := map[graph.Revision]*RevisionInfo{}
	if len(revs) == 0 {
		return out, nil
	}
	lo, hi := slices.Min(revs), min(slices.Max(revs), r.opts.Graph.Head())
	if lo == 0 || lo > hi {
		return out, nil
	}
	want := map[graph.Revision]bool{}
	for _, rev := range revs {
		want[rev] = true
	}
	err := r.opts.Graph.Store().Revisions(ctx, lo-1, hi, func(ri graph.RevisionInfo) bool {
		if want[ri.Revision] {
			out[ri.Revision] = &RevisionInfo{ri}
		}
		return true
	})
	return out, err
}

// changes pages the changes of revisions (from, to], oldest first.
func (r *Resolver) changes(ctx context.Context, from graph.Revision, to *graph.Revision, first *int, after *string) (*ChangeConnection, error) {
	n, err := pageSize(first, 100)
	if err != nil {
		return nil, err
	}
	head := r.opts.Graph.Head()
	end := head
	if to != nil {
		end = *to
	}
	switch {
	case from > end:
		return nil, userErrorf("changes: from %d is after to %d", from, end)
	case end > head:
		return nil, userErrorf("changes: revision %d is after the head revision %d", end, head)
	}
	start, skipSeq := from, -1
	if after != nil {
		pos, err := parseHistoryCursor(*after, "c")
		if err != nil || len(pos) != 2 || graph.Revision(pos[0]) <= from {
			return nil, userErrorf("after: %q is not a cursor of these changes", *after)
		}
		// Resume inside the cursor's revision, after its sequence number.
		start, skipSeq = graph.Revision(pos[0])-1, int(pos[1])
	}
	var recs []graph.ChangeRecord
	more := false
	err = r.opts.Graph.Store().Changes(ctx, start, end, func(c graph.ChangeRecord) bool {
		if skipSeq >= 0 && c.Revision == start+1 && c.Seq <= skipSeq {
			return true
		}
		if len(recs) == n {
			more = true
			return false
		}
		recs = append(recs, c)
		return true
	})
	if err != nil {
		if gone := r.goneError(err, from); gone != nil {
			return nil, gone
		}
		return nil, err
	}
	revs := make([]graph.Revision, len(recs))
	for i, c := range recs {
		revs[i] = c.Revision
	}
	infos, err := r.revisionInfos(ctx, revs)
	if err != nil {
		return nil, err
	}
	c := &ChangeConnection{Edges: []*ChangeEdge{}, Nodes: []*Change{}, PageInfo: &PageInfo{HasNextPage: more, HasPreviousPage: after != nil}}
	for _, rec := range recs {
		info := infos[rec.Revision]
		if info == nil {
			info = &RevisionInfo{graph.RevisionInfo{Revision: rec.Revision, Time: rec.Time, Source: rec.Source}}
		}
		ch := &Change{c: rec, rev: info, cluster: r.opts.Cluster}
		c.Edges = append(c.Edges, &ChangeEdge{Cursor: changeCursor(rec.Revision, rec.Seq), Node: ch})
		c.Nodes = append(c.Nodes, ch)
	}
	if len(c.Edges) > 0 {
		c.PageInfo.StartCursor, c.PageInfo.EndCursor = &c.Edges[0].Cursor, &c.Edges[len(c.Edges)-1].Cursor
	}
	return c, nil
}

// subscribe streams every revision committed after since (default: the head when the subscription starts).
// Each subscriber reads the history at its own pace: a slow client falls behind without holding back commits or
// other subscribers, and misses nothing.
func (r *Resolver) subscribe(ctx context.Context, since *graph.Revision) (<-chan *RevisionInfo, error) {
	g := r.opts.Graph
	updated := g.Updated()
	last := g.Head()
	if since != nil {
		if *since > last {
			return nil, userErrorf("since: revision %d is after the head revision %d", *since, last)
		}
		last = *since
	}
	out := make(chan *RevisionInfo, 16)
	go func() {
		defer close(out)
		for {
			head := g.Head()
			if head > last {
				err := g.Store().Revisions(ctx, last, head, func(ri graph.RevisionInfo) bool {
					select {
					case out <- &RevisionInfo{ri}:
						last = ri.Revision
						return true
					case <-ctx.Done():
						return false
					}
				})
				if err != nil {
					if ctx.Err() == nil {
						r.opts.Logger.Warn("changes subscription ended", "err", err)
					}
					return
				}
				last = head
			}
			select {
			case <-updated:
				updated = g.Updated()
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
