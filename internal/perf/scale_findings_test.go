package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// tracked measures the findings of row 5 with the tracker running: paced at 1,000 changes/s, then back to back.
func (s *scaleRun) tracked(ctx context.Context, g *graph.Live, tr *queries.Tracker, gen *changeGen) error {
	s.progress("tracker following %d revisions of 10 changes, one every %v", nTracked, trackedEvery)
	paced, err := trackFindings(ctx, g, tr, gen, nTracked, 10, trackedEvery)
	if err != nil {
		return err
	}
	achieved := float64(paced.changes) / paced.commitElapsed.Seconds()
	s.set("trackedPaced", judged(fmt.Sprintf("%s (p50 %s; %s changes/s committed)",
		fmtVs(paced.perRevision.pct(0.99), targetChange), fmtDur(paced.perRevision.pct(0.50)), thousands(int(achieved))),
		paced.perRevision.pct(0.99) <= targetChange))
	s.note("%s tracker at 1,000 changes/s: %s", sizeLabel(s.res.k), paced.describe())
	s.metric(float64(paced.perRevision.pct(0.99).Nanoseconds()), "tracked-paced-p99-ns")
	if err := settle(ctx, tr, g.Head()); err != nil {
		return err
	}

	s.progress("tracker following %d revisions of 10 changes, as fast as they commit", nTracked)
	fast, err := trackFindings(ctx, g, tr, gen, nTracked, 10, 0)
	if err != nil {
		return err
	}
	rate := float64(fast.changes) / fast.elapsed.Seconds()
	s.set("trackedMax", judged(fmt.Sprintf("%s changes/s (p99 commit start → published %s)",
		thousands(int(rate)), fmtDur(fast.perRevision.pct(0.99))), rate >= targetRate))
	s.note("%s tracker with commits back to back (%s changes committed in %v): %s", sizeLabel(s.res.k), thousands(fast.changes),
		fast.commitElapsed.Round(time.Millisecond), fast.describe())
	s.metric(rate, "tracked-changes/s")
	return settle(ctx, tr, g.Head())
}

// trackedShortfall returns why the tracked runs should not run on this size, or "" when they fit: a tracker
// that falls behind evaluates everything again while it holds the findings it had, so they need more memory than
// the rest, estimated from their peak on the size before.
func (s *scaleRun) trackedShortfall() string {
	if s.prev == nil || s.prev.liveTracked == 0 {
		return ""
	}
	need := scaledNeed(s.prev.liveTracked, s.prev.k, s.res.k)
	budget, err := memoryBudget()
	if err != nil || need <= budget {
		return ""
	}
	return fmt.Sprintf("%s: the tracked runs were not run: on %s they peaked at %s of live Go heap, so here they would need about %s; this process may use %s (%s).",
		sizeLabel(s.res.k), sizeLabel(s.prev.k), fmtBytes(int64(s.prev.liveTracked)), fmtBytes(need), fmtBytes(budget), budgetWhy())
}

// changeGen makes the changes the findings measurements commit: the kinds of changeKinds in turn (a RoleBinding
// added, one deleted, a pod started, a Role edited), drawn from o like BenchmarkPacksL's, each new object under a
// name of its own.
type changeGen struct {
	r *rand.Rand
	o *graph.Objects
	n int
}

// next returns size changes to objects that differ from each other (a store revision holds one change per
// object), valid on cur, and their kinds.
func (c *changeGen) next(cur *graph.Snapshot, size int) ([]graph.Change, []string) {
	cs := make([]graph.Change, 0, size)
	kinds := make([]string, 0, size)
	for len(cs) < size {
		kind := changeKinds[c.n%len(changeKinds)]
		ch, ok := commonChange(c.r, c.o, kind, fmt.Sprintf("scale-%d", c.n), cur)
		c.n++
		if !ok || slices.ContainsFunc(cs, func(o graph.Change) bool { return o.Ref == ch.Ref }) {
			continue
		}
		cs = append(cs, ch)
		kinds = append(kinds, kind)
	}
	return cs, kinds
}

// tracked is what trackFindings measured.
type tracked struct {
	perRevision   latencies     // from the start of each commit until the tracker published it (or a later revision)
	changes       int           // committed
	commitElapsed time.Duration // from the first commit's start to the last commit's end
	elapsed       time.Duration // from the first commit's start until the tracker published the last
	steps         int           // revisions the tracker published findings of
	refreshes     int           // attack-path refreshes it published meanwhile that changed findings (the tracker records no others)
	longest       time.Duration // the tracker's longest step
	longestObjs   int           // the objects that step re-evaluated after
}

// trackFindings commits revisions revisions of perRevision changes to g, one every `every` (back to back when 0),
// while tr follows g, and times each from the start of its commit until tr has published findings of it or of a
// later revision: what a user waiting for a change's findings sees. The tracker steps over every revision that
// committed while it was busy (one update for all of them), and it refreshes the attack-path findings whenever
// no revision is waiting, at least every 10 s: both are part of what is measured.
func trackFindings(ctx context.Context, g *graph.Live, tr *queries.Tracker, gen *changeGen, revisions, perRevision int, every time.Duration) (tracked, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type pending struct {
		rev   graph.Revision
		start time.Time
	}
	var (
		mu       sync.Mutex
		queue    []pending
		produced bool // every commit is in queue
		out      tracked
		last     time.Time // when the watcher saw the last revision published
	)
	before, _ := tr.Last()
	poke := make(chan struct{}, 1) // a commit joined the queue: the tracker may have published it already
	watched := make(chan error, 1)
	go func() {
		next := 0
		for {
			updated := tr.Updated()
			cur, _ := tr.Current()
			now := time.Now()
			mu.Lock()
			for next < len(queue) && queue[next].rev <= cur {
				out.perRevision = append(out.perRevision, now.Sub(queue[next].start))
				last = now
				next++
			}
			done := produced && next == len(queue)
			mu.Unlock()
			if done {
				watched <- nil
				return
			}
			select {
			case <-updated:
			case <-poke:
			case <-ctx.Done():
				watched <- ctx.Err()
				return
			case <-time.After(10 * time.Minute):
				watched <- fmt.Errorf("the tracker stayed at revision %d for 10 minutes", cur)
				return
			}
		}
	}()

	// On a ticker's schedule, so that the rate holds when a commit takes long (missed ticks are dropped, and the
	// revision then goes at once).
	start := time.Now()
	var tick <-chan time.Time
	if every > 0 {
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		tick = ticker.C
	}
	for i := range revisions {
		if tick != nil {
			<-tick
		}
		cs, _ := gen.next(g.Current(), perRevision)
		t := time.Now()
		rev, err := g.Commit(ctx, "scale:tracked", cs)
		if err != nil {
			return tracked{}, fmt.Errorf("commit %d of %d: %w", i, revisions, err)
		}
		mu.Lock()
		queue = append(queue, pending{rev, t})
		out.changes += len(cs)
		mu.Unlock()
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	commitElapsed := time.Since(start)
	mu.Lock()
	produced = true
	mu.Unlock()
	select {
	case poke <- struct{}{}:
	default:
	}
	if err := <-watched; err != nil {
		return tracked{}, err
	}
	out.commitElapsed, out.elapsed = commitElapsed, last.Sub(start)
	if deltas, ok := tr.Deltas(before.Revision, g.Head()); ok {
		var longest queries.RevisionDelta
		for _, d := range deltas {
			if d.From == d.Revision {
				out.refreshes++
				continue
			}
			out.steps++
			if d.Took > longest.Took {
				longest = d
			}
		}
		// How many objects the longest step covered says whether the tracker updated or evaluated everything
		// again (it does above a threshold of changed objects).
		objs, err := g.ObjectChanges(ctx, longest.From, longest.Revision)
		if err != nil {
			return tracked{}, fmt.Errorf("object changes of the tracker's longest step: %w", err)
		}
		out.longest, out.longestObjs = longest.Took, len(objs)
	}
	return out, nil
}

// describe says how the tracker followed: its steps and refreshes.
func (t tracked) describe() string {
	return fmt.Sprintf("%s revisions published in %d steps (and %d attack-path refreshes that changed findings); the longest step took %s, after %s changed objects; the last revision published %v after the first commit began.",
		thousands(len(t.perRevision)), t.steps, t.refreshes, fmtDur(t.longest), thousands(t.longestObjs), t.elapsed.Round(time.Millisecond))
}

// settle waits until tr has published rev and refreshed its attack paths, so that the next measurement starts
// with an idle tracker.
func settle(ctx context.Context, tr *queries.Tracker, rev graph.Revision) error {
	deadline := time.After(10 * time.Minute)
	for {
		updated := tr.Updated()
		if got, res := tr.Current(); got >= rev && res != nil && !res.PathsPending() {
			return nil
		}
		select {
		case <-updated:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			got, _ := tr.Current()
			return fmt.Errorf("tracker at revision %d after 10 minutes, want %d with attack paths refreshed", got, rev)
		}
	}
}

// oneByOne is what commitThenUpdate measured, per change.
type oneByOne struct {
	commit   latencies // Live.Commit: durable revision, head snapshot applied
	findings latencies // ObjectChanges + Engine.Update: the tracker's step
	total    latencies
	byKind   map[string]latencies // total, by kind of change
	elapsed  time.Duration
}

// commitThenUpdate commits n single-change revisions to g, each followed in the same goroutine by what the
// tracker's step does for it (the revision's object changes from the store, then Engine.Update from the
// previous result), starting from res, the findings of revision rev. It returns the last result.
func commitThenUpdate(ctx context.Context, g *graph.Live, e *queries.Engine, rev graph.Revision, res *queries.Result, gen *changeGen, n int) (oneByOne, *queries.Result, error) {
	out := oneByOne{byKind: map[string]latencies{}}
	start := time.Now()
	for i := range n {
		cs, kinds := gen.next(g.Current(), 1)
		t0 := time.Now()
		next, err := g.Commit(ctx, "scale:one", cs)
		if err != nil {
			return oneByOne{}, nil, fmt.Errorf("commit %d of %d: %w", i, n, err)
		}
		t1 := time.Now()
		objects, err := g.ObjectChanges(ctx, rev, next)
		if err != nil {
			return oneByOne{}, nil, fmt.Errorf("object changes of revision %d: %w", next, err)
		}
		head, snap := g.HeadSnapshot()
		if head != next {
			return oneByOne{}, nil, fmt.Errorf("head moved to %d under revision %d", head, next)
		}
		upd, _, err := e.Update(ctx, res, snap, objects)
		if err != nil {
			return oneByOne{}, nil, fmt.Errorf("findings of revision %d: %w", next, err)
		}
		t2 := time.Now()
		out.commit = append(out.commit, t1.Sub(t0))
		out.findings = append(out.findings, t2.Sub(t1))
		out.total = append(out.total, t2.Sub(t0))
		out.byKind[kinds[0]] = append(out.byKind[kinds[0]], t2.Sub(t0))
		rev, res = next, upd
	}
	out.elapsed = time.Since(start)
	return out, res, nil
}
