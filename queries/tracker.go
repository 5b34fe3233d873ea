package queries

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// LiveGraph is the versioned graph a Tracker follows; *graph.Live implements it.
type LiveGraph interface {
	// HeadSnapshot returns the newest revision and its snapshot.
	HeadSnapshot() (graph.Revision, *graph.Snapshot)
	// Updated returns a channel that is closed when a revision newer than the current head commits.
	Updated() <-chan struct{}
	// At returns the snapshot of a past revision.
	At(ctx context.Context, rev graph.Revision) (*graph.Snapshot, error)
	// ObjectChanges returns the changes of (from, to], one per object.
	ObjectChanges(ctx context.Context, from, to graph.Revision) ([]graph.ObjectDiff, error)
}

// RevisionDelta is how the findings changed at one revision (or over a run of revisions the tracker took in
// one step: From is then the revision before the run).
type RevisionDelta struct {
	From     graph.Revision `json:"from"`
	Revision graph.Revision `json:"revision"`
	Delta
	// Took is how long the re-evaluation took.
	Took time.Duration `json:"took"`
}

// TrackerOptions configure a Tracker.
type TrackerOptions struct {
	// History is how many revision deltas the tracker keeps in memory; 0 means 1000.
	History int
	Logger  *slog.Logger
}

// Tracker keeps the findings of the head revision current: it evaluates everything once, then after every
// commit re-evaluates only what the commit touched. It also answers for past revisions (evaluated on demand and
// cached). Run owns its goroutine; every other method is safe for concurrent use.
type Tracker struct {
	live LiveGraph
	opts TrackerOptions

	engine atomic.Pointer[Engine]

	mu      sync.RWMutex
	rev     graph.Revision
	cur     *Result
	deltas  []RevisionDelta
	updated chan struct{}
	ready   chan struct{}
	readyOK bool

	pastMu     sync.Mutex
	past       []pastResult
	evaluating map[pastKey]*pastEvaluation // past revisions being evaluated, so that concurrent requests share one

	costMu    sync.Mutex
	fullCost  time.Duration // the last full evaluation's
	perObject time.Duration // an incremental update's, per changed object
}

type pastKey struct {
	rev graph.Revision
	eng *Engine
}

// pastEvaluation is a past revision's evaluation under way; done closes when res or err is set.
type pastEvaluation struct {
	done chan struct{}
	res  *Result
	err  error
}

type pastResult struct {
	rev graph.Revision
	eng *Engine
	res *Result
}

// minFullEvaluation is the number of changed objects below which the tracker always updates incrementally.
// Above it, the tracker evaluates everything again when that is expected to be cheaper: when the changed objects
// times the measured cost of updating one exceed the measured cost of a full evaluation (see cheaperInFull). A
// fixed threshold was wrong both ways: on a small cluster a full evaluation is cheap, and on workload L it takes
// about 16 s while updating 8,000 objects takes the same, so that a tracker behind by 2,000 objects evaluated
// everything and fell further behind.
const minFullEvaluation = 2000

// pastResults is how many evaluations of past revisions the tracker caches.
const pastResults = 2

// NewTracker returns a tracker of live's findings; call Run to start it.
func NewTracker(e *Engine, live LiveGraph, opts TrackerOptions) *Tracker {
	if opts.History <= 0 {
		opts.History = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{live: live, opts: opts, updated: make(chan struct{}), ready: make(chan struct{})}
	t.engine.Store(e)
	return t
}

// Engine returns the engine the tracker evaluates with.
func (t *Tracker) Engine() *Engine { return t.engine.Load() }

// Ready is closed once the head has been evaluated.
func (t *Tracker) Ready() <-chan struct{} { return t.ready }

// Updated returns a channel closed when the tracker moves to a newer revision (take it before Current).
func (t *Tracker) Updated() <-chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.updated
}

// Current returns the revision the tracker has evaluated and its findings; nil before Ready.
func (t *Tracker) Current() (graph.Revision, *Result) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.rev, t.cur
}

// Deltas returns the deltas the tracker recorded for revisions in (from, to], oldest first. ok is false when
// from is older than the history the tracker keeps (compare full evaluations instead).
func (t *Tracker) Deltas(from, to graph.Revision) (out []RevisionDelta, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.deltas) == 0 || t.deltas[0].From > from {
		return nil, from >= t.rev
	}
	for _, d := range t.deltas {
		if d.Revision > from && d.Revision <= to {
			out = append(out, d)
		}
	}
	return out, true
}

// Last returns the latest revision delta the tracker recorded; ok is false before the first.
func (t *Tracker) Last() (d RevisionDelta, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.deltas) == 0 {
		return RevisionDelta{}, false
	}
	return t.deltas[len(t.deltas)-1], true
}

// At returns the findings of revision rev: the tracked head's, or a full evaluation of a past revision. A past
// revision is evaluated once however many requests ask for it at a time.
func (t *Tracker) At(ctx context.Context, rev graph.Revision) (*Result, error) {
	e := t.Engine()
	if r, cur := t.Current(); cur != nil && r == rev {
		return cur, nil
	}
	key := pastKey{rev, e}
	t.pastMu.Lock()
	for _, p := range t.past {
		if p.rev == rev && p.eng == e {
			t.pastMu.Unlock()
			return p.res, nil
		}
	}
	ev, running := t.evaluating[key]
	if !running {
		ev = &pastEvaluation{done: make(chan struct{})}
		if t.evaluating == nil {
			t.evaluating = map[pastKey]*pastEvaluation{}
		}
		t.evaluating[key] = ev
	}
	t.pastMu.Unlock()
	if running {
		select {
		case <-ev.done:
			return ev.res, ev.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// Evaluated for every request waiting on it: one requester giving up must not fail the others.
	ev.res, ev.err = t.evaluatePast(context.WithoutCancel(ctx), e, rev)
	t.pastMu.Lock()
	delete(t.evaluating, key)
	if ev.err == nil {
		t.past = append(t.past, pastResult{rev, e, ev.res})
		if len(t.past) > pastResults {
			t.past = t.past[1:]
		}
	}
	t.pastMu.Unlock()
	close(ev.done)
	return ev.res, ev.err
}

func (t *Tracker) evaluatePast(ctx context.Context, e *Engine, rev graph.Revision) (*Result, error) {
	snap, err := t.live.At(ctx, rev)
	if err != nil {
		return nil, err
	}
	res, err := e.Evaluate(ctx, snap)
	if err != nil {
		return nil, fmt.Errorf("findings at %d: %w", rev, err)
	}
	return res, nil
}

// SetEngine replaces the engine (new packs or suppressions) and re-evaluates the head with it.
func (t *Tracker) SetEngine(ctx context.Context, e *Engine) error {
	t.engine.Store(e)
	rev, snap := t.live.HeadSnapshot()
	res, err := e.Evaluate(ctx, snap)
	if err != nil {
		return err
	}
	t.mu.Lock()
	var before []Finding
	if t.cur != nil {
		before = t.cur.Findings()
	}
	from := t.rev
	if rev >= t.rev {
		t.publishLocked(RevisionDelta{From: from, Revision: rev, Delta: Compare(before, res.Findings())}, rev, res)
	}
	t.mu.Unlock()
	return nil
}

// publishLocked makes res the current result and wakes waiters. Callers hold mu.
func (t *Tracker) publishLocked(d RevisionDelta, rev graph.Revision, res *Result) {
	t.rev, t.cur = rev, res
	if len(d.New)+len(d.Resolved) > 0 || d.Revision != d.From {
		t.deltas = append(t.deltas, d)
		if over := len(t.deltas) - t.opts.History; over > 0 {
			t.deltas = append(t.deltas[:0:0], t.deltas[over:]...)
		}
	}
	close(t.updated)
	t.updated = make(chan struct{})
	if !t.readyOK {
		t.readyOK = true
		close(t.ready)
	}
}

// pathsEvery bounds how long attack-path findings may trail the head under continuous change.
const pathsEvery = 10 * time.Second

// Run evaluates the head, then follows every new revision until ctx ends. Attack-path findings, searched for
// every subject at once, are refreshed when the changes pause (no newer revision waiting), and at least every
// pathsEvery under continuous change.
func (t *Tracker) Run(ctx context.Context) error {
	lastPaths := time.Now()
	for {
		updated := t.live.Updated()
		if err := t.step(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-updated:
			if time.Since(lastPaths) < pathsEvery {
				continue // more changes waiting: catch up first
			}
		default:
		}
		if err := t.refreshPaths(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		lastPaths = time.Now()
		select {
		case <-ctx.Done():
			return nil
		case <-updated:
		}
	}
}

// refreshPaths brings the attack-path findings of the current result up to its revision.
func (t *Tracker) refreshPaths(ctx context.Context) error {
	rev, cur := t.Current()
	if cur == nil || !cur.PathsPending() {
		return nil
	}
	start := time.Now()
	res, delta, err := t.Engine().RefreshPaths(ctx, cur)
	if err != nil {
		return fmt.Errorf("attack paths at revision %d: %w", rev, err)
	}
	t.mu.Lock()
	if t.cur == cur { // SetEngine may have replaced it meanwhile
		t.publishLocked(RevisionDelta{From: rev, Revision: rev, Delta: delta, Took: time.Since(start)}, rev, res)
	}
	t.mu.Unlock()
	return nil
}

// cheaperInFull reports whether evaluating everything is expected to cost less than updating n changed objects,
// from what the tracker measured of both (a full evaluation is assumed to cost what minFullEvaluation updates do
// until both were measured).
func (t *Tracker) cheaperInFull(n int) bool {
	if n <= minFullEvaluation {
		return false
	}
	t.costMu.Lock()
	defer t.costMu.Unlock()
	if t.fullCost == 0 || t.perObject == 0 {
		return true
	}
	return time.Duration(n)*t.perObject > t.fullCost
}

// measured records what a step cost: a full evaluation's duration, or an incremental update's per changed object
// (a moving average, so one slow step does not swing the choice).
func (t *Tracker) measured(full bool, n int, took time.Duration) {
	t.costMu.Lock()
	defer t.costMu.Unlock()
	switch {
	case full:
		t.fullCost = took
	case n >= 50: // small steps are dominated by fixed costs and would understate a large one's
		per := took / time.Duration(n)
		if t.perObject == 0 {
			t.perObject = per
		} else {
			t.perObject = (3*t.perObject + per) / 4
		}
	}
}

// step brings the findings to the live head.
func (t *Tracker) step(ctx context.Context) error {
	rev, snap := t.live.HeadSnapshot()
	prevRev, prev := t.Current()
	e := t.Engine()
	start := time.Now()
	if prev != nil && rev == prevRev {
		return nil
	}
	var res *Result
	var delta Delta
	var err error
	var objects []graph.ObjectDiff
	full := false
	if prev == nil {
		res, err = e.Evaluate(ctx, snap)
	} else {
		objects, err = t.live.ObjectChanges(ctx, prevRev, rev)
		if errors.Is(err, graph.ErrRevisionGone) {
			// The tracker fell behind the retention horizon: evaluate from scratch.
			full = true
			res, err = e.Evaluate(ctx, snap)
			if err == nil {
				delta = Compare(prev.Findings(), res.Findings())
			}
		} else if err == nil && t.cheaperInFull(len(objects)) {
			// A change this large (an initial sync, a restored store, a tracker far behind) touches most
			// items: evaluating them all at once is cheaper than working out which.
			full = true
			res, err = e.Evaluate(ctx, snap)
			if err == nil {
				delta = Compare(prev.Findings(), res.Findings())
			}
		} else if err == nil {
			res, delta, err = e.Update(ctx, prev, snap, objects)
		}
	}
	if err != nil {
		return fmt.Errorf("findings at revision %d: %w", rev, err)
	}
	took := time.Since(start)
	t.measured(prev == nil || full, len(objects), took)
	t.mu.Lock()
	t.publishLocked(RevisionDelta{From: prevRev, Revision: rev, Delta: delta, Took: took}, rev, res)
	t.mu.Unlock()
	if prev != nil {
		t.opts.Logger.Debug("findings updated", "revision", rev, "new", len(delta.New), "resolved", len(delta.Resolved), "took", took)
	} else {
		t.opts.Logger.Info("findings evaluated", "revision", rev, "findings", len(res.Findings()), "took", took)
	}
	return nil
}
