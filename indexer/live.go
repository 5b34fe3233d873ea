package indexer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"

	"github.com/kiem-io/kiem/graph"
)

// LiveGraph is the versioned graph the live indexer writes through; graph.Live implements it.
type LiveGraph interface {
	// Current returns the head revision's immutable snapshot; nil is taken as an empty graph. The indexer
	// relies on it reflecting a revision as soon as Commit returns it.
	Current() *graph.Snapshot
	// Commit records changes as one revision, durable when it returns. The indexer names each object at most
	// once per call, and each change's Before is what Current() holds.
	Commit(ctx context.Context, source string, changes []graph.Change) (graph.Revision, error)
}

// LiveOptions configures NewLive. Client and Graph are required.
type LiveOptions struct {
	Client kubernetes.Interface
	Graph  LiveGraph
	Logger *slog.Logger // nil: discard
	// Source is recorded on every revision, e.g. "cluster:prod"; the first revision adds ":initial-list" (to an
	// empty graph) or ":reconcile".
	Source string
	// BatchWindow is how long a revision stays open after its first change, so that events arriving within it
	// share one durable commit. Default 10ms.
	BatchWindow time.Duration
	// BatchMax caps the changes of one revision (the initial one excepted). Default 2000.
	BatchMax int
	// Workers is the number of goroutines that read and convert queued objects. Default 2.
	Workers int
	// Secrets indexes Secret metadata (type, and the ServiceAccount of a token secret; never data), which needs
	// list and watch on secrets. Off by default.
	Secrets bool
}

// Live mirrors a cluster into a LiveGraph: shared informers feed a rate-limited work queue of object keys,
// workers read each key's current state from the informer cache, and a single batcher commits the changes in
// small revisions (group commit). See Run.
//
// Choices a user may notice:
//   - What counts as a change is what the graph keeps (see sameObject): labels, annotations, rules, subjects,
//     a pod's ServiceAccount, automount, owner and node. A pod's status, containers and annotations, and a
//     node's spec and status are dropped before they are cached (see slim), so their updates commit nothing;
//     neither does a relist that delivers unchanged objects. The resourceVersion kept is that of the last write
//     that changed something kiem keeps.
//   - The first revision holds the whole difference between the cluster and the graph, however large:
//     BatchMax bounds the revisions that follow.
//   - Live assumes it is the only writer of these objects to Graph: a change's Before is what Current() holds.
//   - A failed Commit after Ready is logged and its objects are retried with per-object exponential backoff
//     (10ms to 30s); a failed initial Commit ends Run with the error.
//   - The changes pending when Run's context ends are not committed; the next Run's reconciling revision
//     records them.
type Live struct {
	opts      LiveOptions
	log       *slog.Logger
	factory   informers.SharedInformerFactory
	informers map[graph.Kind]*informer
	kinds     []graph.Kind // what this indexer watches: liveKinds, plus Secret when enabled
	ready     chan struct{}
	running   atomic.Bool
	stats     liveCounters

	mu    sync.Mutex // guards queue for Stats; Run sets it before any other goroutine reads it
	queue workqueue.TypedRateLimitingInterface[key]
}

// NewLive returns a Live indexer for opts. It starts nothing: Run does.
func NewLive(opts LiveOptions) (*Live, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("indexer: LiveOptions.Client is nil")
	case opts.Graph == nil:
		return nil, errors.New("indexer: LiveOptions.Graph is nil")
	case opts.BatchWindow < 0 || opts.BatchMax < 0 || opts.Workers < 0:
		return nil, errors.New("indexer: negative LiveOptions value")
	}
	if opts.BatchWindow == 0 {
		opts.BatchWindow = 10 * time.Millisecond
	}
	opts.BatchMax = cmp.Or(opts.BatchMax, 2000)
	opts.Workers = cmp.Or(opts.Workers, 2)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Live{opts: opts, log: log.With("source", opts.Source), ready: make(chan struct{})}
	l.factory, l.informers = newInformers(opts.Client, opts.Secrets)
	l.kinds = liveKinds[:]
	if opts.Secrets {
		l.kinds = append(slices.Clone(l.kinds), graph.KindSecret)
	}
	for _, inf := range l.informers {
		if _, err := inf.inf.AddEventHandler(l.handler(inf)); err != nil {
			return nil, fmt.Errorf("indexer: add %s handler: %w", inf.kind, err)
		}
		if err := inf.inf.SetWatchErrorHandlerWithContext(l.watchErrorHandler(inf)); err != nil {
			return nil, fmt.Errorf("indexer: set %s watch error handler: %w", inf.kind, err)
		}
	}
	return l, nil
}

// Ready is closed once the initial list is committed (or found to be in the graph already). It stays open if
// Run fails or ends before that.
func (l *Live) Ready() <-chan struct{} { return l.ready }

// Run indexes the cluster until ctx ends, then returns nil; it returns an error if the informers' initial list
// cannot be committed, or if Run was called before. Run may be called once.
//
// It starts the informers and waits for every cache to sync, logging each kind's object count. It then commits
// the difference between the caches and the graph's head as ONE revision: every object on a first start; on a
// restart the objects added, changed and deleted while kiem was down (deleted objects become recorded deletions,
// never silent gaps). An empty difference commits nothing. Then Ready closes and the workers start.
//
// On return every goroutine Run started has ended: the informers are stopped, the queue is shut down, the
// workers and the batcher are waited for, and the batch pending at that moment is dropped (see batcher.run).
func (l *Live) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("indexer: Live.Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	// Per-item exponential backoff only: the controller default's overall 10 qps bucket would take minutes to
	// requeue the keys of one failed 2000-change batch.
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[key](10*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[key]{})
	l.mu.Lock()
	l.queue = q
	l.mu.Unlock()

	var wg sync.WaitGroup
	defer func() {
		// Order matters: factory.Shutdown blocks forever unless the informers' stop channel is closed first
		// (TECH-NOTES §3, pitfall 1).
		cancel()
		q.ShutDown()
		wg.Wait()
		l.factory.Shutdown()
	}()
	l.factory.Start(ctx.Done())

	if err := l.initialSync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	close(l.ready)

	b := &batcher{graph: l.opts.Graph, source: l.opts.Source, window: l.opts.BatchWindow, max: l.opts.BatchMax,
		queue: q, log: l.log, stats: &l.stats, in: make(chan item)}
	wg.Go(func() { b.run(ctx) })
	for range l.opts.Workers {
		wg.Go(func() { l.work(ctx, q, b.in) })
	}
	<-ctx.Done()
	return nil
}

// work takes keys until the queue shuts down, and hands each object's current state to the batcher. The key
// is marked done once handed over, and the workqueue never gives one key to two workers at a time, so the
// batcher receives the states of one object in order.
func (l *Live) work(ctx context.Context, q workqueue.TypedRateLimitingInterface[key], out chan<- item) {
	for {
		k, shutdown := q.Get()
		if shutdown {
			return
		}
		after, err := l.lookup(k)
		if err != nil {
			// The cache holds a type the converter does not know: a bug that retrying cannot fix.
			l.log.Error("cannot convert cached object", "object", k.ref(), "err", err)
			q.Forget(k)
			q.Done(k)
			continue
		}
		select {
		case out <- item{key: k, after: after}:
		case <-ctx.Done():
		}
		q.Done(k)
	}
}

// initialSync waits for the informers to sync and commits the reconciling revision.
func (l *Live) initialSync(ctx context.Context) error {
	if err := l.waitForSync(ctx); err != nil {
		return err
	}
	head := l.opts.Graph.Current()
	changes, listed, err := l.reconcile(head)
	if err != nil {
		return err
	}
	source := l.opts.Source + ":reconcile"
	if head == nil || head.Objects().Count() == 0 {
		source = l.opts.Source + ":initial-list"
	}
	if len(changes) == 0 {
		l.log.Info("graph already matches the cluster; no reconciling revision", "objects", listed)
		return nil
	}
	start := time.Now()
	rev, err := l.opts.Graph.Commit(ctx, source, changes)
	if err != nil {
		return fmt.Errorf("indexer: commit %s revision of %d changes: %w", source, len(changes), err)
	}
	l.stats.committed(rev, len(changes), time.Since(start))
	l.log.Info("committed "+source, "revision", rev, "changes", len(changes), "objects", listed,
		"latency", time.Since(start))
	return nil
}

// waitForSync waits until every informer has listed its kind, logging each kind as it completes and, every
// 10 seconds of a long list, how far the others are.
func (l *Live) waitForSync(ctx context.Context) error {
	start := time.Now()
	waiting := slices.Clone(l.kinds)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	lastProgress := start
	for {
		waiting = slices.DeleteFunc(waiting, func(k graph.Kind) bool {
			inf := l.informers[k].inf
			if !inf.HasSynced() {
				return false
			}
			l.log.Info("listed", "kind", k, "objects", len(inf.GetStore().ListKeys()), "elapsed", time.Since(start))
			return true
		})
		if len(waiting) == 0 {
			return nil
		}
		if time.Since(lastProgress) >= 10*time.Second {
			lastProgress = time.Now()
			for _, k := range waiting {
				l.log.Info("listing", "kind", k, "objects", len(l.informers[k].inf.GetStore().ListKeys()),
					"elapsed", time.Since(start))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
	}
}

// reconcile returns the changes that turn head into what the synced caches hold, ordered by kind (liveKinds),
// namespace and name, and the number of objects the caches hold.
func (l *Live) reconcile(head *graph.Snapshot) ([]graph.Change, int, error) {
	listed := make(map[graph.ObjectRef]bool)
	var changes []graph.Change
	for _, kind := range l.kinds {
		objs := l.informers[kind].inf.GetStore().List()
		converted := make([]graph.Object, 0, len(objs))
		for _, obj := range objs {
			o, err := convertLive(obj)
			if err != nil {
				return nil, 0, fmt.Errorf("indexer: initial list: %w", err)
			}
			converted = append(converted, o)
		}
		slices.SortFunc(converted, func(a, b graph.Object) int { return compareRefs(a.Ref(), b.Ref()) })
		for _, o := range converted {
			ref := o.Ref()
			listed[ref] = true
			if before := headObject(head, ref); !sameObject(before, o) {
				changes = append(changes, graph.NewChange(before, o))
			}
		}
	}
	if head != nil {
		var gone []graph.Change
		head.Objects().Each(func(o graph.Object) bool {
			// Objects() holds aggregated ClusterRoles with the rules the snapshot computed; Object(ref) holds
			// them as they were committed, the true before.
			// Only the kinds the cluster holds are the cluster's to delete: declared Users come from elsewhere.
			if ref := o.Ref(); !listed[ref] && slices.Contains(l.kinds, ref.Kind) {
				gone = append(gone, graph.NewChange(headObject(head, ref), nil))
			}
			return true
		})
		changes = append(changes, gone...)
		kindOrder := func(k graph.Kind) int { return slices.Index(l.kinds, k) }
		slices.SortStableFunc(changes, func(a, b graph.Change) int {
			return cmp.Or(cmp.Compare(kindOrder(a.Ref.Kind), kindOrder(b.Ref.Kind)), compareRefs(a.Ref, b.Ref))
		})
	}
	return changes, len(listed), nil
}

// compareRefs orders references by namespace, then name (the kind is the caller's business).
func compareRefs(a, b graph.ObjectRef) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}
