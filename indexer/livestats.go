package indexer

import (
	"sync/atomic"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// LiveStats is a point-in-time view of a Live indexer, in plain numbers for /metrics and logs. Counters only
// grow over the life of the Live.
type LiveStats struct {
	// Events counts the informer events delivered per kind, the initial list included.
	Events map[graph.Kind]EventCounts
	// Revisions and Changes count what this indexer committed, the initial revision included.
	Revisions uint64
	Changes   uint64
	// Skipped counts updates and queued objects that changed nothing the graph keeps (a pod's status, an object
	// a relist delivered unchanged).
	Skipped uint64
	// CommitErrors counts failed commits; their changes were requeued.
	CommitErrors uint64
	// LastRevision is the revision of the latest commit, 0 before the first.
	LastRevision graph.Revision
	// LastCommitLatency is how long the latest Commit call took.
	LastCommitLatency time.Duration
	// QueueDepth is the number of object keys waiting for a worker (0 before Run).
	QueueDepth int
}

// EventCounts counts the informer events of one kind.
type EventCounts struct {
	Added, Updated, Deleted uint64
	// WatchErrors counts failed lists and watches (not the routine expiry of a watch); each was retried.
	WatchErrors uint64
}

// liveCounters are the counters behind LiveStats that the batcher and Run update.
type liveCounters struct {
	revisions     atomic.Uint64
	changes       atomic.Uint64
	skipped       atomic.Uint64
	commitErrors  atomic.Uint64
	lastRevision  atomic.Uint64
	lastLatencyNs atomic.Int64
}

// committed records a successful commit.
func (c *liveCounters) committed(rev graph.Revision, changes int, latency time.Duration) {
	c.revisions.Add(1)
	c.changes.Add(uint64(changes))
	c.lastRevision.Store(uint64(rev))
	c.lastLatencyNs.Store(int64(latency))
}

// Stats returns the indexer's counters. It is safe to call at any time, from any goroutine.
func (l *Live) Stats() LiveStats {
	s := LiveStats{
		Events:            make(map[graph.Kind]EventCounts, len(l.informers)),
		Revisions:         l.stats.revisions.Load(),
		Changes:           l.stats.changes.Load(),
		Skipped:           l.stats.skipped.Load(),
		CommitErrors:      l.stats.commitErrors.Load(),
		LastRevision:      graph.Revision(l.stats.lastRevision.Load()),
		LastCommitLatency: time.Duration(l.stats.lastLatencyNs.Load()),
	}
	for k, inf := range l.informers {
		s.Events[k] = EventCounts{Added: inf.added.Load(), Updated: inf.updated.Load(), Deleted: inf.deleted.Load(),
			WatchErrors: inf.watchErrors.Load()}
	}
	l.mu.Lock()
	if l.queue != nil {
		s.QueueDepth = l.queue.Len()
	}
	l.mu.Unlock()
	return s
}
