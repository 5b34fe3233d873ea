package gql

//go:generate go tool gqlgen generate --config ../gqlgen.yml

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
)

// Options say what the API serves and how.
type Options struct {
	// Graph is the versioned graph.
	Graph *graph.Live
	// Cluster names the cluster in node IDs and answers.
	Cluster string
	// Source says where the graph comes from: "cluster", "snapshot" or "demo".
	Source string
	// Version is kiem's version.
	Version string
	// Ready reports whether the initial sync is committed; nil means always.
	Ready func() bool
	// Reload re-reads the sources kiem loads from files and commits what changed; nil when there is nothing to
	// reload.
	Reload func(ctx context.Context) (rev graph.Revision, changes int, err error)
	// Findings are the risk findings (a *queries.Tracker running on Graph); nil: the findings fields answer that
	// risk findings are not enabled.
	Findings FindingsSource
	// Suppressions keeps the suppressions (a *queries.SuppressionFile whose OnChange rebuilds the Findings'
	// engine); nil: suppressions are neither listed nor changed.
	Suppressions SuppressionStore
	// AttackGraphs gives the attack graph of a revision; nil: each is derived on demand and the last few kept.
	AttackGraphs AttackGraphSource
	// Alerts is the alerts engine; nil: saved filters, alerts and sinks answer that they are not enabled.
	Alerts AlertSource
	// Audit is what audit events taught (a *graph.AuditStore); nil: the audit fields answer that audit events
	// are not enabled, and the seen times are null.
	Audit  AuditReader
	Logger *slog.Logger
}

// Resolver is the root of the resolvers. It holds no per-request state: that lives in the request's context.
type Resolver struct {
	opts Options
	// attacks is the AttackGraphSource when Options has none: a cache, not state any answer depends on.
	attacks attackCache
}

// requestViews memoises, per request, the views of the revisions its fields ask for: every field of one request
// that reads the head reads the same head, and a past revision is opened once.
type requestViews struct {
	mu    sync.Mutex
	head  *view
	views map[graph.Revision]*view
}

type requestViewsKey struct{}

func withRequestViews(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestViewsKey{}, &requestViews{views: map[graph.Revision]*view{}})
}

// view returns the view of revision at (nil: the head).
func (r *Resolver) view(ctx context.Context, at *graph.Revision) (*view, error) {
	rv, _ := ctx.Value(requestViewsKey{}).(*requestViews)
	if rv == nil {
		rv = &requestViews{views: map[graph.Revision]*view{}}
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if at == nil {
		if rv.head == nil {
			rev, snap := r.opts.Graph.HeadSnapshot()
			rv.head = &view{snap: snap, rev: rev, cluster: r.opts.Cluster}
			rv.views[rev] = rv.head
		}
		return rv.head, nil
	}
	if v, ok := rv.views[*at]; ok {
		return v, nil
	}
	snap, err := r.opts.Graph.At(ctx, *at)
	switch {
	case errors.Is(err, graph.ErrRevisionGone):
		return nil, userErrorf("revision %d is older than the oldest retained revision %d", *at, r.opts.Graph.Store().Horizon())
	case errors.Is(err, graph.ErrFutureRevision):
		return nil, userErrorf("revision %d is after the head revision %d", *at, r.opts.Graph.Head())
	case err != nil:
		return nil, err
	}
	v := &view{snap: snap, rev: *at, cluster: r.opts.Cluster}
	rv.views[*at] = v
	return v, nil
}

// Viewer is who is asking.
func (s *Server) Viewer(ctx context.Context) *Viewer {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return &Viewer{User: "anonymous", Role: AccessRoleViewer}
	}
	role := AccessRoleViewer
	if p.Role == auth.RoleAdmin {
		role = AccessRoleAdmin
	}
	return &Viewer{User: p.User, Role: role}
}

// goneError turns the store's "below the horizon" into an answer the caller can act on; nil for other errors.
func (r *Resolver) goneError(err error, rev graph.Revision) error {
	if errors.Is(err, graph.ErrRevisionGone) {
		return userErrorf("revision %d is older than the oldest retained revision %d", rev, r.opts.Graph.Store().Horizon())
	}
	return nil
}
