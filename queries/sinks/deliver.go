package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// Options configure a Deliverer. A zero field means its default.
type Options struct {
	// Client sends the requests. Default: a 10 s timeout. Redirects are never followed, whatever Client says:
	// the Deliverer uses a copy whose CheckRedirect refuses them.
	Client *http.Client
	// Logger receives one line per failed attempt and per given-up delivery. nil discards.
	Logger *slog.Logger
	// Now is the clock of the outbox's times. Default time.Now.
	Now func() time.Time
	// MinBackoff is the delay after a first failed attempt; it doubles per further failure, with jitter (the
	// delay is between half and all of it), up to MaxBackoff. Defaults 1 s and 5 min.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxAge is how long a delivery keeps being retried: an attempt that fails later than MaxAge after the
	// delivery's creation makes it StatusFailed. Default 24 h.
	MaxAge time.Duration
	// Workers is how many sends run at once. Default 4.
	Workers int
	// Retention is how long finished deliveries stay queryable before the Deliverer prunes them (hourly).
	// Default 7 days.
	Retention time.Duration
}

// Defaults of Options.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultMaxAge     = 24 * time.Hour
	DefaultWorkers    = 4
	DefaultRetention  = 7 * 24 * time.Hour

	pruneEvery = time.Hour
)

// Log keys.
const (
	keyComponent = "component"
	keyDelivery  = "delivery"
	keySink      = "sink"
	keyMessage   = "message"
	keyCode      = "code"
	keyAttempts  = "attempts"
	keyNext      = "next"
	keyErr       = "err"
	keyCount     = "count"
)

// Deliverer sends the outbox's pending deliveries. Run one per store.
type Deliverer struct {
	st         Store
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time
	minBackoff time.Duration
	maxBackoff time.Duration
	maxAge     time.Duration
	retention  time.Duration
	workers    int

	nudge   chan struct{}
	running atomic.Bool

	// afterMark, when set (tests), is called with each state the Deliverer records, after it committed.
	afterMark func(Delivery)
}

// NewDeliverer returns a Deliverer of st's outbox; nothing runs until Run.
func NewDeliverer(st Store, opts Options) *Deliverer {
	d := &Deliverer{
		st:         st,
		log:        opts.Logger,
		now:        opts.Now,
		minBackoff: opts.MinBackoff,
		maxBackoff: opts.MaxBackoff,
		maxAge:     opts.MaxAge,
		retention:  opts.Retention,
		workers:    opts.Workers,
		nudge:      make(chan struct{}, 1),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With(keyComponent, "sinks")
	if d.now == nil {
		d.now = time.Now
	}
	if d.minBackoff <= 0 {
		d.minBackoff = DefaultMinBackoff
	}
	if d.maxBackoff <= 0 {
		d.maxBackoff = DefaultMaxBackoff
	}
	d.maxBackoff = max(d.maxBackoff, d.minBackoff)
	if d.maxAge <= 0 {
		d.maxAge = DefaultMaxAge
	}
	if d.retention <= 0 {
		d.retention = DefaultRetention
	}
	if d.workers <= 0 {
		d.workers = DefaultWorkers
	}
	c := http.Client{Timeout: DefaultTimeout}
	if opts.Client != nil {
		c = *opts.Client
	}
	// A sink's URL is set by an admin; a redirect could send its alerts (and signature) elsewhere.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d.client = &c
	return d
}

// Nudge tells a running Deliverer that a delivery was enqueued, so that it looks now rather than at its next
// planned wake-up. It never blocks; nudges coalesce.
func (d *Deliverer) Nudge() {
	select {
	case d.nudge <- struct{}{}:
	default:
	}
}

// job is a due delivery handed to a worker: its id and the time in its due key.
type job struct {
	id  string
	due time.Time
}

type result struct {
	id  string
	err error
}

// Run delivers until ctx ends, then waits for the sends in flight (their requests are cancelled: the entries
// stay pending, to be sent again by the next Run) and returns nil. It starts with every pending delivery, those
// an earlier process left included. It returns an error only if the store is closed under it.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("deliverer already running")
	}
	defer d.running.Store(false)

	// At most d.workers jobs are in flight, so neither channel ever blocks its sender.
	jobs := make(chan job, d.workers)
	results := make(chan result, d.workers)
	var wg sync.WaitGroup
	for range d.workers {
		wg.Go(func() {
			for j := range jobs {
				results <- result{j.id, d.deliver(ctx, j)}
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()

	// busy holds the deliveries not to dispatch: in flight (zero time), or resting until a time after an
	// error of the store, so that a persistent one does not spin.
	busy := make(map[string]time.Time)
	inFlight := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var nextPrune time.Time
	for {
		now := d.now()
		for id, until := range busy {
			if !until.IsZero() && !until.After(now) {
				delete(busy, id)
			}
		}
		if !now.Before(nextPrune) {
			// A closed store is reported by the scan below.
			if n, err := Prune(ctx, d.st, now.Add(-d.retention)); err != nil && ctx.Err() == nil && !errors.Is(err, graph.ErrClosed) {
				d.log.Error("prune deliveries", keyErr, err)
			} else if n > 0 {
				d.log.Debug("pruned deliveries", keyCount, n)
			}
			nextPrune = now.Add(pruneEvery)
		}
		wake := nextPrune
		if free := d.workers - inFlight; free > 0 {
			due, next, err := d.due(ctx, now, busy, free)
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, graph.ErrClosed):
				return fmt.Errorf("deliver: %w", err)
			case err != nil:
				d.log.Error("read the outbox", keyErr, err)
				next = now.Add(d.restAfterError())
			}
			for _, j := range due {
				busy[j.id] = time.Time{}
				inFlight++
				jobs <- j
			}
			wake = earlier(wake, next)
		}
		timer.Reset(max(wake.Sub(now), 0))
		select {
		case <-ctx.Done():
			return nil
		case <-d.nudge:
		case <-timer.C:
		case r := <-results:
			delete(busy, r.id)
			inFlight--
			if r.err != nil && ctx.Err() == nil {
				d.log.Error("deliver", keyDelivery, r.id, keyErr, r.err)
				busy[r.id] = d.now().Add(d.restAfterError())
			}
		}
	}
}

// restAfterError is how long a delivery rests after an error of the store, so that a lasting one does not spin.
func (d *Deliverer) restAfterError() time.Duration {
	return min(max(d.minBackoff, time.Second), d.maxBackoff)
}

// earlier returns the earlier of a and b, where zero means never.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// due returns up to limit deliveries due at now that are not busy, and when the next one falls due after them
// (zero: none, or more are due now than limit took).
func (d *Deliverer) due(ctx context.Context, now time.Time, busy map[string]time.Time, limit int) ([]job, time.Time, error) {
	var jobs []job
	var next time.Time
	err := d.st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		jobs, next = jobs[:0], time.Time{}
		return tx.Scan(prefixDue, nil, false, func(k, _ []byte) (bool, error) {
			t, id, err := parseDueKey(k)
			if err != nil {
				return false, err
			}
			if t.After(now) {
				next = earlier(next, t)
				return false, nil
			}
			if until, ok := busy[id]; ok {
				next = earlier(next, until)
				return true, nil
			}
			if len(jobs) == limit {
				return false, nil
			}
			jobs = append(jobs, job{id: id, due: t})
			return true, nil
		})
	})
	return jobs, next, err
}

// deliver makes one attempt at j and records its outcome. It returns only errors of the store; the entry then
// stays as it was.
func (d *Deliverer) deliver(ctx context.Context, j job) error {
	if ctx.Err() != nil {
		return nil
	}
	var e entry
	var s sinkRecord
	err := d.st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		var err error
		if e, err = getEntry(tx, j.id); err != nil || e.Status != StatusPending {
			return err
		}
		s, err = getSink(tx, e.SinkID)
		if errors.Is(err, graph.ErrNotFound) {
			return nil // s.Gen is "": cancelled below
		}
		return err
	})
	switch {
	case errors.Is(err, graph.ErrNotFound) || (err == nil && e.Status != StatusPending):
		return d.dropDue(ctx, j)
	case err != nil:
		return err
	case s.Gen != e.Gen:
		return d.cancel(ctx, j)
	}
	out := d.send(ctx, s, e)
	if !out.answered && ctx.Err() != nil {
		return nil // shutdown cut the attempt short: not the receiver's doing, so it stays pending, uncounted
	}
	// The outcome is recorded even when shutdown began during the send: a 2xx must not be sent again.
	del, err := d.mark(context.WithoutCancel(ctx), j, out)
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	d.logAttempt(ctx, del, s, out)
	return nil
}

// dropDue deletes j's due key when it no longer stands for a pending delivery (one deleted, or finished).
func (d *Deliverer) dropDue(ctx context.Context, j job) error {
	return d.st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		e, err := getEntry(tx, j.id)
		if err == nil && e.Status == StatusPending && e.NextAttempt.Equal(j.due) {
			return nil
		} else if err != nil && !errors.Is(err, graph.ErrNotFound) {
			return err
		}
		return tx.Delete(dueKey(j.due, j.id))
	})
}

// cancel records that j's sink is gone (deleted, or deleted and created again): j is never sent.
func (d *Deliverer) cancel(ctx context.Context, j job) error {
	var e entry
	changed := false
	err := d.st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		var err error
		if e, err = getEntry(tx, j.id); err != nil || e.Status != StatusPending {
			return err
		}
		s, err := getSink(tx, e.SinkID)
		if err == nil && s.Gen == e.Gen {
			return nil // the sink is back: Save keeps the incarnation of a sink it replaces, so this is rare
		} else if err != nil && !errors.Is(err, graph.ErrNotFound) {
			return err
		}
		if err := tx.Delete(dueKey(e.NextAttempt, e.ID)); err != nil {
			return err
		}
		e.Status, changed = StatusCancelled, true
		return putEntry(tx, e)
	})
	if errors.Is(err, graph.ErrNotFound) {
		return d.dropDue(ctx, j)
	} else if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	if changed {
		d.log.Info("delivery cancelled: its sink was deleted", keyDelivery, e.ID, keySink, e.SinkID)
		d.observe(e.delivery())
	}
	return nil
}

// mark records the outcome of an attempt at j. Only a 2xx makes a delivery StatusDelivered.
func (d *Deliverer) mark(ctx context.Context, j job, out outcome) (Delivery, error) {
	now := d.now().UTC()
	var e entry
	err := d.st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
		var err error
		if e, err = getEntry(tx, j.id); err != nil {
			return err
		}
		wasPending, due := e.Status == StatusPending, e.NextAttempt
		e.Attempts++
		e.LastCode, e.LastError = out.code, out.err
		switch {
		case out.ok:
			// Also when Delete cancelled it during the send: it did arrive.
			e.Status, e.DeliveredAt, e.LastError = StatusDelivered, now, ""
		case !wasPending:
		case now.Sub(e.Created) >= d.maxAge:
			e.Status = StatusFailed
		default:
			e.NextAttempt = now.Add(d.backoff(e.Attempts, out.retryAfter))
		}
		if wasPending {
			if err := tx.Delete(dueKey(due, e.ID)); err != nil {
				return err
			}
		}
		if e.Status == StatusPending {
			if err := tx.Set(dueKey(e.NextAttempt, e.ID), dueValue(e.SinkID, e.Gen)); err != nil {
				return err
			}
		}
		return putEntry(tx, e)
	})
	if err != nil {
		return Delivery{}, err
	}
	del := e.delivery()
	d.observe(del)
	return del, nil
}

func (d *Deliverer) observe(del Delivery) {
	if d.afterMark != nil {
		d.afterMark(del)
	}
}

// backoff is the delay before attempt attempts+1: MinBackoff doubled per failure after the first, at most
// MaxBackoff, jittered to between half and all of it; or a receiver's Retry-After when longer (at most MaxAge).
func (d *Deliverer) backoff(attempts int, retryAfter time.Duration) time.Duration {
	b := d.minBackoff
	for i := 1; i < attempts && b < d.maxBackoff; i++ {
		b *= 2
	}
	b = min(b, d.maxBackoff)
	delay := b/2 + rand.N(b/2+1)
	if retryAfter > delay {
		delay = min(retryAfter, d.maxAge)
	}
	return delay
}

// logAttempt logs a failed attempt; this is where its error stops. Successes are logged at debug level.
func (d *Deliverer) logAttempt(ctx context.Context, del Delivery, s sinkRecord, out outcome) {
	attrs := []any{keyDelivery, del.ID, keySink, s.ID, keyMessage, del.MessageID, keyAttempts, del.Attempts}
	if out.code != 0 {
		attrs = append(attrs, keyCode, out.code)
	}
	switch {
	case out.ok:
		if d.log.Enabled(ctx, slog.LevelDebug) {
			d.log.Debug("delivered", attrs...)
		}
	case del.Status == StatusFailed:
		d.log.Error("delivery failed; giving up after the maximum age", append(attrs, keyErr, out.err)...)
	case del.Status != StatusPending:
		d.log.Info("attempt failed after the delivery was cancelled", append(attrs, keyErr, out.err)...)
	case out.code >= 300 && out.code < 400:
		d.log.Warn("receiver redirected; kiem never follows redirects, fix the sink's URL",
			append(attrs, keyErr, out.err, keyNext, del.NextAttempt)...)
	case out.code >= 400 && out.code < 500 && out.code != http.StatusRequestTimeout && out.code != http.StatusTooManyRequests:
		d.log.Warn("receiver rejected the delivery; check the sink's URL and secret (retrying)",
			append(attrs, keyErr, out.err, keyNext, del.NextAttempt)...)
	default:
		d.log.Info("delivery attempt failed; retrying", append(attrs, keyErr, out.err, keyNext, del.NextAttempt)...)
	}
}
