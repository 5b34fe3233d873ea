package indexer

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/util/workqueue"

	"github.com/kiem-io/kiem/graph"
)

// item is what a worker hands to the batcher: the state the cluster has of the object k names, nil once it is
// gone.
type item struct {
	key   key
	after graph.Object
}

// pendingChange is the net change of one object within a batch.
type pendingChange struct {
	key    key
	before graph.Object // as the head revision holds it: the true before, however many items follow
	after  graph.Object
}

// pending is the batch being gathered. It is the batcher's alone.
//
// Current() moves only when a Commit returns, so an object that changes twice within one batch must be compared
// with its pending state, not with Current(): otherwise a change followed by its revert would compare the revert
// with the unchanged head, drop it, and commit the first change.
type pending struct {
	order   []graph.ObjectRef // first arrival of each object, so that a revision lists changes in event order
	byRef   map[graph.ObjectRef]*pendingChange
	changes int // entries whose after differs from their before
}

func newPending() *pending {
	return &pending{byRef: make(map[graph.ObjectRef]*pendingChange)}
}

// add merges it into the batch against the head snapshot head (nil: an empty graph) and reports whether the
// batch changed. The last state of an object wins; its before stays the head's.
func (p *pending) add(it item, head *graph.Snapshot) bool {
	ref := it.key.ref()
	if c, ok := p.byRef[ref]; ok {
		if sameObject(c.after, it.after) {
			return false
		}
		wasChange := !sameObject(c.before, c.after)
		c.after = it.after
		switch isChange := !sameObject(c.before, c.after); {
		case wasChange && !isChange:
			p.changes-- // reverted within the batch: the entry stays, so later items compare with it
		case !wasChange && isChange:
			p.changes++
		}
		return true
	}
	before := headObject(head, ref)
	if sameObject(before, it.after) {
		return false
	}
	p.byRef[ref] = &pendingChange{key: it.key, before: before, after: it.after}
	p.order = append(p.order, ref)
	p.changes++
	return true
}

// build returns the net changes of the batch, in order of first arrival.
func (p *pending) build() []graph.Change {
	out := make([]graph.Change, 0, p.changes)
	for _, ref := range p.order {
		c := p.byRef[ref]
		if !sameObject(c.before, c.after) {
			out = append(out, graph.NewChange(c.before, c.after))
		}
	}
	return out
}

// headObject returns the object ref names in head, nil if head does not hold it.
func headObject(head *graph.Snapshot, ref graph.ObjectRef) graph.Object {
	if head == nil {
		return nil
	}
	o, ok := head.Object(ref)
	if !ok {
		return nil
	}
	return o
}

// batcher is the single writer: it gathers the workers' items into batches and commits each as one revision
// (group commit), so that under churn one durable write serves many events.
type batcher struct {
	graph  LiveGraph
	source string
	window time.Duration
	max    int
	queue  workqueue.TypedRateLimitingInterface[key]
	log    *slog.Logger
	stats  *liveCounters
	in     chan item
}

// run gathers and commits batches until ctx ends. A batch is committed BatchWindow after its first change, or
// as soon as it holds BatchMax changes. While a Commit runs nothing is read from in, so workers wait and new
// events coalesce in the work queue: the slower the store, the bigger the next batch.
//
// The batch pending when ctx ends is dropped, not committed: Commit with a cancelled ctx cannot be durable, and
// nothing is lost, since the cluster still holds those changes and the next Run's reconciling revision records
// them.
func (b *batcher) run(ctx context.Context) {
	p := newPending()
	head := b.graph.Current()
	timer := time.NewTimer(b.window)
	timer.Stop()
	var timeout <-chan time.Time // nil while no change is pending
	for {
		commit := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case it := <-b.in:
			if !p.add(it, head) {
				// Nothing kiem keeps changed (a pod's status, a relist's unchanged object): no retry to track.
				b.queue.Forget(it.key)
				b.stats.skipped.Add(1)
				continue
			}
			if p.changes >= b.max {
				commit = true
			} else if timeout == nil && p.changes > 0 {
				timer.Reset(b.window)
				timeout = timer.C
			}
		case <-timeout:
			commit = true
		}
		if !commit {
			continue
		}
		timer.Stop()
		timeout = nil
		b.commit(ctx, p)
		p = newPending()
		head = b.graph.Current()
	}
}

// commit writes the batch as one revision. On failure every key of the batch goes back to the queue, rate
// limited: the worker that takes it reads the cluster's state at that time, so a retry never commits a stale
// change.
func (b *batcher) commit(ctx context.Context, p *pending) {
	changes := p.build()
	if len(changes) == 0 {
		b.forget(p)
		return
	}
	start := time.Now()
	rev, err := b.graph.Commit(ctx, b.source, changes)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: the reconciling revision of the next Run records these changes
		}
		b.stats.commitErrors.Add(1)
		// Logged here, where the error stops; the retries are the queue's.
		b.log.Error("commit failed; changes requeued", "changes", len(changes), "err", err)
		for _, c := range p.byRef {
			b.queue.AddRateLimited(c.key)
		}
		return
	}
	b.stats.committed(rev, len(changes), time.Since(start))
	b.forget(p)
	if b.log.Enabled(ctx, slog.LevelDebug) {
		b.log.Debug("committed", "revision", rev, "changes", len(changes), "latency", time.Since(start))
	}
}

// forget resets the retry backoff of every key of a batch that is settled.
func (b *batcher) forget(p *pending) {
	for _, c := range p.byRef {
		b.queue.Forget(c.key)
	}
}
