package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
	"github.com/kiem-io/kiem/queries/filters"
	"github.com/kiem-io/kiem/queries/sinks"
)

// Store keeps filters, alerts, the engine's progress and the outbox: *graph.Store.
type Store interface {
	ViewSide(ctx context.Context, fn func(*graph.SideTxn) error) error
	UpdateSide(ctx context.Context, fn func(*graph.SideTxn) error) error
	// Changes calls fn for every change of (from, to].
	Changes(ctx context.Context, from, to graph.Revision, fn func(graph.ChangeRecord) bool) error
}

// Findings is the findings tracker the engine follows (*queries.Tracker): alerts about a revision are raised once
// its findings are known.
type Findings interface {
	Ready() <-chan struct{}
	Updated() <-chan struct{}
	Current() (graph.Revision, *queries.Result)
	Deltas(from, to graph.Revision) ([]queries.RevisionDelta, bool)
	At(ctx context.Context, rev graph.Revision) (*queries.Result, error)
}

// Differ gives the grants gained and lost between two revisions (*graph.Live).
type Differ interface {
	Diff(ctx context.Context, from, to graph.Revision) (graph.Diff, error)
}

// Outbox is told when deliveries were enqueued (*sinks.Deliverer).
type Outbox interface{ Nudge() }

// Options configure an Engine.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Outbox is nudged after alerts with deliveries were stored; nil when no deliverer runs.
	Outbox Outbox
	// Retention is how long alerts are kept; 0 means 90 days.
	Retention time.Duration
	// Observe, when set, is told how long each step took (evaluating the filters and storing the alerts) and
	// how many alerts it raised: for metrics and benchmarks.
	Observe func(from, to graph.Revision, alerts int, took time.Duration)
}

// Engine evaluates the saved filters on every revision. Run owns its goroutine; the other methods are safe for
// concurrent use.
type Engine struct {
	st       Store
	findings Findings
	differ   Differ
	opts     Options

	compiled atomic.Pointer[[]*filters.Compiled]
	reload   chan struct{}
	broker   *broker
	last     atomic.Uint64 // the newest revision evaluated
	// evaluated is closed and replaced each time last moves.
	evaluated atomic.Pointer[chan struct{}]
}

// NewEngine returns an engine; call Run to start it.
func NewEngine(st Store, f Findings, d Differ, opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention <= 0 {
		opts.Retention = 90 * 24 * time.Hour
	}
	e := &Engine{st: st, findings: f, differ: d, opts: opts, reload: make(chan struct{}, 1), broker: newBroker()}
	empty := []*filters.Compiled{}
	e.compiled.Store(&empty)
	ch := make(chan struct{})
	e.evaluated.Store(&ch)
	return e
}

// Evaluated returns a channel closed when the engine stores a newer revision (take it before Last).
func (e *Engine) Evaluated() <-chan struct{} { return *e.evaluated.Load() }

func (e *Engine) setLast(rev graph.Revision) {
	e.last.Store(uint64(rev))
	ch := make(chan struct{})
	close(*e.evaluated.Swap(&ch))
}

// Reload reads the saved filters again (after one was saved or deleted); it takes effect from the next
// revision evaluated.
func (e *Engine) Reload(ctx context.Context) error {
	fs, err := filters.List(ctx, e.st)
	if err != nil {
		return err
	}
	var cs []*filters.Compiled
	for _, f := range fs {
		c, err := filters.Compile(f)
		if err != nil {
			// Saved filters were valid when saved; one that no longer compiles (a model change) is skipped.
			e.opts.Logger.Error("saved filter does not compile: skipped", "filter", f.ID, "err", err)
			continue
		}
		cs = append(cs, c)
	}
	e.compiled.Store(&cs)
	return nil
}

// Last returns the newest revision whose alerts are stored.
func (e *Engine) Last() graph.Revision { return graph.Revision(e.last.Load()) }

// state is the engine's progress, stored with the alerts of the revision it reached.
type state struct {
	Last graph.Revision `json:"last"`
}

var stateKey = []byte("alerts/state")

// Run evaluates the filters on every revision the findings tracker reaches, until ctx ends. On a first start it
// begins at the revision the tracker first evaluates (the state then is the baseline, no alert); after a
// restart it first evaluates every revision committed since the last one it stored.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Reload(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case <-e.findings.Ready():
	}
	var s state
	err := e.st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		v, err := tx.Get(stateKey)
		if errors.Is(err, graph.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return json.Unmarshal(v, &s)
	})
	if err != nil {
		return fmt.Errorf("alerts: read state: %w", err)
	}
	if s.Last == 0 {
		rev, _ := e.findings.Current()
		if err := e.store(ctx, nil, rev); err != nil {
			return err
		}
	} else {
		e.setLast(s.Last)
	}
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		updated := e.findings.Updated()
		if err := e.catchUp(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A failed step is retried on the next revision; nothing is marked evaluated that was not.
			e.opts.Logger.Error("evaluating saved filters", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-updated:
		case <-e.reload:
		case <-prune.C:
			if _, err := Prune(ctx, e.st, e.opts.Now().Add(-e.opts.Retention)); err != nil && ctx.Err() == nil {
				e.opts.Logger.Error("pruning old alerts", "err", err)
			}
		}
	}
}

// pruneBatch is how many alerts one write deletes.
const pruneBatch = 500

// Prune deletes the alerts raised before a time, oldest first, and returns how many. Alerts are stored in
// revision order, which is time order: it stops at the first one to keep.
func Prune(ctx context.Context, st Store, before time.Time) (int, error) {
	n := 0
	for {
		var old []Alert
		err := st.ViewSide(ctx, func(tx *graph.SideTxn) error {
			return tx.Scan([]byte(alertPrefix), nil, false, func(_, v []byte) (bool, error) {
				var a Alert
				if err := json.Unmarshal(v, &a); err != nil {
					return false, err
				}
				if !a.Time.Before(before) {
					return false, nil
				}
				old = append(old, a)
				return len(old) < pruneBatch, nil
			})
		})
		if err != nil {
			return n, fmt.Errorf("prune alerts: %w", err)
		}
		if len(old) == 0 {
			return n, nil
		}
		err = st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
			for _, a := range old {
				if err := tx.Delete([]byte(alertPrefix + a.ID)); err != nil {
					return err
				}
				if err := tx.Delete([]byte(filterPrefix + a.FilterID + "/" + a.ID)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("prune alerts: %w", err)
		}
		n += len(old)
	}
}

// catchUp evaluates the revisions after the last one stored up to the tracker's.
func (e *Engine) catchUp(ctx context.Context) error {
	rev, cur := e.findings.Current()
	last := e.Last()
	if rev <= last {
		return nil
	}
	if ds, ok := e.findings.Deltas(last, rev); ok && len(ds) > 0 && ds[0].From == last {
		for i := range ds {
			if err := e.evaluateStep(ctx, ds[i].From, ds[i].Revision, &ds[i].Delta); err != nil {
				return err
			}
		}
		return nil
	}
	// The tracker does not hold these revisions' findings deltas (kiem restarted): compare the findings of the
	// last revision evaluated with the tracker's.
	var delta *queries.Delta
	if e.wants(filters.TargetFindings) {
		past, err := e.findings.At(ctx, last)
		if err != nil {
			return fmt.Errorf("alerts: findings at revision %d: %w", last, err)
		}
		d := queries.Compare(past.Findings(), cur.Findings())
		delta = &d
	}
	return e.evaluateStep(ctx, last, rev, delta)
}

func (e *Engine) wants(t filters.Target) bool {
	for _, c := range *e.compiled.Load() {
		if c.Target == t {
			return true
		}
	}
	return false
}

// evaluateStep evaluates (from, to] and stores its alerts with to as the last revision evaluated.
func (e *Engine) evaluateStep(ctx context.Context, from, to graph.Revision, delta *queries.Delta) error {
	start := time.Now()
	st := &step{from: from, to: to, time: e.opts.Now(), findings: delta}
	err := e.st.Changes(ctx, from, to, func(c graph.ChangeRecord) bool {
		st.changes = append(st.changes, c)
		return true
	})
	if err != nil {
		return fmt.Errorf("alerts: changes of (%d, %d]: %w", from, to, err)
	}
	if len(st.changes) > 0 {
		st.time = st.changes[len(st.changes)-1].Time
	}
	st.grants = func() ([]graph.GrantDelta, error) {
		d, err := e.differ.Diff(ctx, from, to)
		if err != nil {
			return nil, fmt.Errorf("alerts: grants of (%d, %d]: %w", from, to, err)
		}
		return d.Subjects, nil
	}
	as, err := evaluate(ctx, *e.compiled.Load(), st)
	if err != nil {
		return err
	}
	if err := e.store(ctx, as, to); err != nil {
		return err
	}
	if e.opts.Observe != nil {
		e.opts.Observe(from, to, len(as), time.Since(start))
	}
	return nil
}

// Key layout (side records):
//
//	alert/<id>                    an alert (JSON Alert); ids sort by revision
//	alertf/<filter>/<id>          index of a filter's alerts (empty value)
//	alerts/state                  the engine's progress (JSON state)
const (
	alertPrefix  = "alert/"
	filterPrefix = "alertf/"
)

// store writes the alerts, their deliveries and the new state; in one write when it fits, else the alerts in
// several and the state in the last (their IDs are stable, so a crash in between only writes them again).
func (e *Engine) store(ctx context.Context, as []Alert, to graph.Revision) error {
	now := e.opts.Now()
	put := func(tx *graph.SideTxn, a *Alert) error {
		v, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := tx.Set([]byte(alertPrefix+a.ID), v); err != nil {
			return err
		}
		if err := tx.Set([]byte(filterPrefix+a.FilterID+"/"+a.ID), nil); err != nil {
			return err
		}
		return sinks.Enqueue(tx, sinks.Message{ID: a.ID, FilterID: a.FilterID, FilterName: a.FilterName,
			Revision: uint64(a.Revision), Time: a.Time, Summary: a.Summary(), Body: v}, now)
	}
	setState := func(tx *graph.SideTxn) error {
		v, err := json.Marshal(state{Last: to})
		if err != nil {
			return err
		}
		return tx.Set(stateKey, v)
	}
	err := e.st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		for i := range as {
			if err := put(tx, &as[i]); err != nil {
				return err
			}
		}
		return setState(tx)
	})
	if errors.Is(err, graph.ErrSideTooBig) {
		for i := range as {
			if err = e.st.UpdateSide(ctx, func(tx *graph.SideTxn) error { return put(tx, &as[i]) }); err != nil {
				break
			}
		}
		if err == nil {
			err = e.st.UpdateSide(ctx, setState)
		}
	}
	if err != nil {
		return fmt.Errorf("alerts: store revision %d: %w", to, err)
	}
	e.setLast(to)
	if len(as) > 0 {
		e.opts.Logger.Info("alerts raised", "revision", to, "alerts", len(as))
		if e.opts.Outbox != nil {
			e.opts.Outbox.Nudge()
		}
		for i := range as {
			e.broker.publish(&as[i])
		}
	}
	return nil
}

// Query selects stored alerts.
type Query struct {
	// Filter limits them to one filter's; empty means every filter's.
	Filter string
	// Since keeps those of revisions after it.
	Since graph.Revision
	// First bounds how many, newest first; 0 means 100.
	First int
}

// Alerts returns stored alerts, newest first.
func (e *Engine) Alerts(ctx context.Context, q Query) ([]Alert, error) { return List(ctx, e.st, q) }

// List returns the alerts a store holds, newest first.
func List(ctx context.Context, st Store, q Query) ([]Alert, error) {
	if q.First <= 0 {
		q.First = 100
	}
	var out []Alert
	err := st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		prefix := []byte(alertPrefix)
		if q.Filter != "" {
			prefix = []byte(filterPrefix + q.Filter + "/")
		}
		return tx.Scan(prefix, nil, true, func(k, v []byte) (bool, error) {
			if q.Filter != "" {
				id := string(k[len(prefix):])
				var err error
				if v, err = tx.Get([]byte(alertPrefix + id)); err != nil {
					return false, err
				}
			}
			var a Alert
			if err := json.Unmarshal(v, &a); err != nil {
				return false, err
			}
			if a.Revision <= q.Since {
				return false, nil // ids sort by revision: the rest are older
			}
			out = append(out, a)
			return len(out) < q.First, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// Subscribe returns a channel of the alerts of the given filters (all when empty) raised from now on, and a
// function that ends the subscription. A subscriber that falls behind by more than its buffer is dropped: its
// channel closes.
func (e *Engine) Subscribe(filterIDs []string) (<-chan *Alert, func()) {
	return e.broker.subscribe(filterIDs)
}

// NotifyFiltersChanged makes Run reload the filters.
func (e *Engine) NotifyFiltersChanged(ctx context.Context) error {
	if err := e.Reload(ctx); err != nil {
		return err
	}
	select {
	case e.reload <- struct{}{}:
	default:
	}
	return nil
}

// broker fans alerts out to subscribers.
type broker struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan *Alert
	filters map[string]bool
	closed  bool
}

func newBroker() *broker { return &broker{subs: map[*subscriber]struct{}{}} }

// subscriberBuffer is how many alerts a subscriber may fall behind before it is dropped.
const subscriberBuffer = 256

func (b *broker) subscribe(ids []string) (<-chan *Alert, func()) {
	s := &subscriber{ch: make(chan *Alert, subscriberBuffer)}
	if len(ids) > 0 {
		s.filters = map[string]bool{}
		for _, id := range ids {
			s.filters[id] = true
		}
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s.ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.dropLocked(s)
	}
}

func (b *broker) dropLocked(s *subscriber) {
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
	delete(b.subs, s)
}

func (b *broker) publish(a *Alert) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.filters != nil && !s.filters[a.FilterID] {
			continue
		}
		select {
		case s.ch <- a:
		default:
			b.dropLocked(s) // never block the engine on a slow reader
		}
	}
}
