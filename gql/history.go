package gql

import (
	"context"
	"encoding/json"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// RevisionInfo is one revision of the history.
type RevisionInfo struct{ i graph.RevisionInfo }

func (r *RevisionInfo) Revision() graph.Revision { return r.i.Revision }
func (r *RevisionInfo) Time() time.Time          { return r.i.Time }
func (r *RevisionInfo) Source() string           { return r.i.Source }
func (r *RevisionInfo) Changes() int             { return r.i.Changes }
func (r *RevisionInfo) Summary() []*KindSummary {
	out := []*KindSummary{}
	for _, k := range graph.AllKinds() {
		if n, ok := r.i.Summary[k]; ok {
			out = append(out, &KindSummary{Kind: kindOf(k), Added: n[0], Updated: n[1], Deleted: n[2]})
		}
	}
	return out
}

// Change is one recorded change. Its revision is loaded with those of the rest of its page, in one read.
type Change struct {
	c       graph.ChangeRecord
	rev     *RevisionInfo
	cluster string
}

func (c *Change) Revision() *RevisionInfo { return c.rev }
func (c *Change) Seq() int                { return c.c.Seq }
func (c *Change) Op() ChangeOp            { return changeOp(c.c.Op) }
func (c *Change) Kind() Kind              { return kindOf(c.c.Ref.Kind) }
func (c *Change) Namespace() string       { return c.c.Ref.Namespace }
func (c *Change) Name() string            { return c.c.Ref.Name }
func (c *Change) ID() string              { return graph.NodeID(c.cluster, c.c.Ref) }
func (c *Change) Actor() *Actor {
	if c.c.Actor == nil {
		return nil
	}
	return actorOf(c.c.Actor)
}
func (c *Change) Before() (json.RawMessage, error) { return objectJSON(c.c.Before) }
func (c *Change) After() (json.RawMessage, error)  { return objectJSON(c.c.After) }

func objectJSON(o graph.Object) (json.RawMessage, error) {
	if o == nil {
		return nil, nil
	}
	return graph.MarshalObject(o)
}

func changeOp(op graph.Op) ChangeOp {
	switch op {
	case graph.OpAdd:
		return ChangeOpAdd
	case graph.OpDelete:
		return ChangeOpDelete
	}
	return ChangeOpUpdate
}

// Diff is the difference between two revisions.
type Diff struct {
	d        graph.Diff
	from, to *view
	r        *Resolver
}

func (d *Diff) From() graph.Revision { return d.from.rev }
func (d *Diff) To() graph.Revision   { return d.to.rev }

// Findings compares the findings of from and to: new ones are read at to, resolved ones at from.
func (d *Diff) Findings(ctx context.Context, status []FindingStatus) (*FindingsDelta, error) {
	return d.r.findingsDelta(ctx, d.from, d.to, status)
}

func (d *Diff) Objects(first *int, after *string) (*ObjectChangeConnection, error) {
	pg, err := paginate(len(d.d.Objects), first, after)
	if err != nil {
		return nil, err
	}
	c := &ObjectChangeConnection{PageInfo: pg.info, TotalCount: len(d.d.Objects), Edges: []*ObjectChangeEdge{}, Nodes: []*ObjectChange{}}
	for i := pg.start; i < pg.end; i++ {
		o := &ObjectChange{o: d.d.Objects[i], from: d.from.rev, to: d.to}
		c.Edges = append(c.Edges, &ObjectChangeEdge{Cursor: cursor(i), Node: o})
		c.Nodes = append(c.Nodes, o)
	}
	return c, nil
}

func (d *Diff) Subjects(first *int, after *string) (*GrantDeltaConnection, error) {
	pg, err := paginate(len(d.d.Subjects), first, after)
	if err != nil {
		return nil, err
	}
	c := &GrantDeltaConnection{PageInfo: pg.info, TotalCount: len(d.d.Subjects), Edges: []*GrantDeltaEdge{}, Nodes: []*GrantDelta{}}
	for i := pg.start; i < pg.end; i++ {
		g := &GrantDelta{g: d.d.Subjects[i], from: d.from, to: d.to}
		c.Edges = append(c.Edges, &GrantDeltaEdge{Cursor: cursor(i), Node: g})
		c.Nodes = append(c.Nodes, g)
	}
	return c, nil
}

// ObjectChange is one object's change between two revisions.
type ObjectChange struct {
	o    graph.ObjectDiff
	from graph.Revision
	to   *view
}

func (o *ObjectChange) Op() ChangeOp                     { return changeOp(o.o.Op) }
func (o *ObjectChange) Kind() Kind                       { return kindOf(o.o.Ref.Kind) }
func (o *ObjectChange) Namespace() string                { return o.o.Ref.Namespace }
func (o *ObjectChange) Name() string                     { return o.o.Ref.Name }
func (o *ObjectChange) ID() string                       { return graph.NodeID(o.to.cluster, o.o.Ref) }
func (o *ObjectChange) Before() (json.RawMessage, error) { return objectJSON(o.o.Before) }
func (o *ObjectChange) After() (json.RawMessage, error)  { return objectJSON(o.o.After) }
func (o *ObjectChange) Node() Node {
	if o.o.After == nil {
		return nil
	}
	return o.to.nodeOf(o.o.Ref)
}

// GrantDelta is one subject's grants gained and lost between two revisions. Lost grants are read at from, where
// their bindings and roles still exist; the subject and gained grants at to.
type GrantDelta struct {
	g        graph.GrantDelta
	from, to *view
}

func (g *GrantDelta) Subject() (SubjectNode, error) {
	n, ok := g.to.subjectNode(g.g.Subject)
	if !ok {
		return nil, userErrorf("diff names %s, not a subject", g.g.Subject)
	}
	return n, nil
}
func (g *GrantDelta) Gained() []*Permission { return permissionsOf(g.to, g.g.Gained) }
func (g *GrantDelta) Lost() []*Permission   { return permissionsOf(g.from, g.g.Lost) }

func permissionsOf(v *view, ps []graph.Permission) []*Permission {
	out := make([]*Permission, len(ps))
	for i := range ps {
		out[i] = &Permission{v: v, p: ps[i]}
	}
	return out
}

// Server describes the server and who is asking.
type Server struct {
	r *Resolver
}

func (s *Server) Cluster() string          { return s.r.opts.Cluster }
func (s *Server) Version() string          { return s.r.opts.Version }
func (s *Server) Revision() graph.Revision { return s.r.opts.Graph.Head() }
func (s *Server) Horizon() graph.Revision  { return s.r.opts.Graph.Store().Horizon() }
func (s *Server) Source() string           { return s.r.opts.Source }
func (s *Server) Ready() bool              { return s.r.opts.Ready == nil || s.r.opts.Ready() }
