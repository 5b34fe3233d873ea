package gql

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kiem-io/kiem/graph"
)

// AttackGraphSource gives the attack graph of a revision. A component that maintains one as revisions commit
// can stand in for the default, which derives graphs on demand and keeps the last few.
type AttackGraphSource interface {
	// AttackGraph returns the attack graph of snap, the snapshot of rev.
	AttackGraph(ctx context.Context, rev graph.Revision, snap *graph.Snapshot) (*graph.AttackGraph, error)
}

// maxAttackPaths bounds k of attackPaths: every path is a Yen iteration over the graph.
const maxAttackPaths = 10

// attackGraphsKept is how many revisions' attack graphs the default source keeps: the head, and the one past
// revision a client is looking at.
const attackGraphsKept = 2

// attackCache is the default AttackGraphSource: it derives the graph of a revision once, however many requests
// ask for it at the same time, and keeps the most recently used few. Its zero value is ready to use.
type attackCache struct {
	mu      sync.Mutex
	entries []*attackEntry // least recently used first
}

type attackEntry struct {
	rev  graph.Revision
	done chan struct{} // closed when g and err are set
	g    *graph.AttackGraph
	err  error
}

var _ AttackGraphSource = (*attackCache)(nil)

// AttackGraph implements AttackGraphSource. The request that starts a derivation runs it under its own context;
// if that ends first, the requests waiting for the graph start again rather than fail with another's deadline.
func (c *attackCache) AttackGraph(ctx context.Context, rev graph.Revision, snap *graph.Snapshot) (*graph.AttackGraph, error) {
	for {
		e, mine := c.entry(rev)
		if mine {
			e.g, e.err = graph.NewAttackGraph(ctx, snap)
			if e.err != nil {
				c.drop(e)
			}
			close(e.done)
			return e.g, e.err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-e.done:
		}
		if e.err == nil || !isCanceled(e.err) {
			return e.g, e.err
		}
	}
}

// entry returns the entry of rev, marked most recently used; mine says the caller created it and must fill it.
func (c *attackCache) entry(rev graph.Revision) (e *attackEntry, mine bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.entries {
		if e.rev == rev {
			c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
			return e, false
		}
	}
	e = &attackEntry{rev: rev, done: make(chan struct{})}
	c.entries = append(c.entries, e)
	if over := len(c.entries) - attackGraphsKept; over > 0 {
		c.entries = append(c.entries[:0:0], c.entries[over:]...)
	}
	return e, true
}

// isCanceled reports whether err is a context's end: the end of one request, which others need not share.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (c *attackCache) drop(e *attackEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.entries {
		if x == e {
			c.entries = append(c.entries[:i:i], c.entries[i+1:]...)
			return
		}
	}
}

// attackGraphs returns the configured source of attack graphs, or the resolver's own cache.
func (r *Resolver) attackGraphs() AttackGraphSource {
	if r.opts.AttackGraphs != nil {
		return r.opts.AttackGraphs
	}
	return &r.attacks
}

// attackPaths answers the attackPaths field.
func (r *Resolver) attackPaths(ctx context.Context, subject SubjectInput, target *AttackTargetInput, k *int, at *graph.Revision) ([]*AttackPath, error) {
	v, err := r.view(ctx, at)
	if err != nil {
		return nil, err
	}
	from, err := v.subjectRef(subject)
	if err != nil {
		return nil, err
	}
	to := graph.ClusterAdminTarget()
	if target != nil {
		if to, err = attackTarget(*target); err != nil {
			return nil, err
		}
	}
	n := 3
	if k != nil {
		n = *k
	}
	if n < 1 || n > maxAttackPaths {
		return nil, userErrorf("k: %d is out of range (1 to %d)", n, maxAttackPaths)
	}
	g, err := r.attackGraphs().AttackGraph(ctx, v.rev, v.snap)
	if err != nil {
		return nil, err
	}
	paths, err := g.Paths(ctx, from, to, n)
	if err != nil {
		return nil, err
	}
	out := make([]*AttackPath, len(paths))
	for i, p := range paths {
		out[i] = &AttackPath{v: v, p: p}
	}
	return out, nil
}

// attackTarget turns an AttackTargetInput into the graph's target.
func attackTarget(in AttackTargetInput) (graph.AttackTarget, error) {
	ns, name := deref(in.Namespace), deref(in.Name)
	if in.SubjectKind != nil && in.Kind != AttackTargetKindSubject {
		return graph.AttackTarget{}, userErrorf("target: subjectKind is for kind SUBJECT only")
	}
	switch in.Kind {
	case AttackTargetKindClusterAdmin:
		if ns != "" || name != "" {
			return graph.AttackTarget{}, userErrorf("target: CLUSTER_ADMIN takes neither namespace nor name")
		}
		return graph.ClusterAdminTarget(), nil
	case AttackTargetKindSecrets:
		if ns == "" || name != "" {
			return graph.AttackTarget{}, userErrorf("target: SECRETS takes a namespace (%s for every namespace) and no name", graph.AllNamespaces)
		}
		return graph.SecretsTarget(ns), nil
	case AttackTargetKindNode:
		if ns != "" {
			return graph.AttackTarget{}, userErrorf("target: a node has no namespace")
		}
		return graph.NodeTarget(name), nil
	case AttackTargetKindSubject:
		if in.SubjectKind == nil || name == "" {
			return graph.AttackTarget{}, userErrorf("target: SUBJECT needs subjectKind and name")
		}
		ref, err := subjectRefOf(SubjectRefInput{Kind: *in.SubjectKind, Name: name, Namespace: in.Namespace})
		if err != nil {
			return graph.AttackTarget{}, userErrorf("target: %v", err)
		}
		return graph.SubjectTarget(ref), nil
	}
	return graph.AttackTarget{}, userErrorf("target: unknown kind %q", in.Kind)
}

// AttackPath is an escalation path, read at a view.
type AttackPath struct {
	v *view
	p graph.AttackPath
}

func (p *AttackPath) Hops() []*AttackHop { return attackHops(p.v, p.p.Hops) }
func (p *AttackPath) Text() string       { return p.p.String() }

func attackHops(v *view, hs []graph.AttackHop) []*AttackHop {
	out := make([]*AttackHop, len(hs))
	for i := range hs {
		out[i] = &AttackHop{v: v, h: &hs[i]}
	}
	return out
}

// AttackHop is one edge of an escalation path.
type AttackHop struct {
	v *view
	h *graph.AttackHop
}

func (h *AttackHop) From() Node          { return h.v.knownNode(h.h.From) }
func (h *AttackHop) To() Node            { return h.v.knownNode(h.h.To) }
func (h *AttackHop) FromRef() *ObjectRef { return objectRefOf(&h.h.From) }
func (h *AttackHop) ToRef() *ObjectRef   { return objectRefOf(&h.h.To) }
func (h *AttackHop) Edge() string        { return string(h.h.Edge) }
func (h *AttackHop) Namespace() *string  { return optional(h.h.Namespace) }
func (h *AttackHop) Technique() *string  { return optional(h.h.Technique) }
func (h *AttackHop) Note() *string       { return optional(h.h.Note) }
func (h *AttackHop) Potential() bool     { return h.h.Potential }

// Evidence returns the hop's grants that are held today.
func (h *AttackHop) Evidence() []*GrantPath {
	out := []*GrantPath{}
	for i := range h.h.Evidence {
		if g := completeGrant(h.v, &h.h.Evidence[i]); g != nil {
			out = append(out, g)
		}
	}
	return out
}

// PartialEvidence returns the hop's evidence that is not a grant held today.
func (h *AttackHop) PartialEvidence() []*AttackGrant {
	out := []*AttackGrant{}
	for i := range h.h.Evidence {
		if p := &h.h.Evidence[i]; completeGrant(h.v, p) == nil {
			out = append(out, &AttackGrant{v: h.v, p: p})
		}
	}
	return out
}

// AttackGrant is evidence of a hop that is not a complete grant: a binding the attacker would create (no
// binding), or the binding of a role the attacker can escalate (no rule).
type AttackGrant struct {
	v *view
	p *graph.GrantPath
}

func (a *AttackGrant) Binding() BindingNode {
	if a.p.Binding == nil {
		return nil
	}
	n, _ := a.v.nodeOf(*a.p.Binding).(BindingNode)
	return n
}

func (a *AttackGrant) Role() RoleNode {
	if a.p.Role == nil {
		return nil
	}
	n, _ := a.v.nodeOf(*a.p.Role).(RoleNode)
	return n
}

func (a *AttackGrant) Rule() *Rule {
	if a.p.Rule == nil {
		return nil
	}
	return &Rule{v: a.v, index: a.p.RuleIndex, r: a.p.Rule, from: a.p.AggregatedFrom}
}

func (a *AttackGrant) Text() string {
	p := a.p
	var s string
	switch {
	case p.Binding != nil && p.Role != nil && p.Subject != nil:
		s = p.String()
	case p.Binding != nil:
		s = p.Binding.String()
	case p.Role != nil:
		s = fmt.Sprintf("a binding it would create of %s %q", p.Role.Kind, p.Role.Name)
	default:
		s = "a binding it would create"
	}
	if p.Rule != nil {
		s += fmt.Sprintf(": rule %d %s", p.RuleIndex, graph.FormatRule(p.Rule))
	}
	return s
}
