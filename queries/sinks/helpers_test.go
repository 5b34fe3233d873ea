package sinks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// *graph.Store is the Store kiem passes in.
var _ Store = (*graph.Store)(nil)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testSecret = "0123456789abcdef-secret"

// openStore opens a store in dir, closed when the test ends (a second Close is harmless for the test).
func openStore(tb testing.TB, dir string) *graph.Store {
	tb.Helper()
	st, err := graph.OpenStore(tb.Context(), graph.StoreOptions{Dir: dir})
	if err != nil {
		tb.Fatalf("OpenStore: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

func mustOpenStore(tb testing.TB) *graph.Store {
	tb.Helper()
	return openStore(tb, tb.TempDir())
}

// testCtx bounds a test that waits on channels.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// clock is the real clock plus an offset tests move forward; timers still run on real time.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time           { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) advance(by time.Duration) { c.off.Add(int64(by)) }

func mustSave(tb testing.TB, st Store, s Sink) {
	tb.Helper()
	if err := Save(tb.Context(), st, s, t0); err != nil {
		tb.Fatalf("Save(%s): %v", s.ID, err)
	}
}

func webhook(id, url string, filters ...string) Sink {
	return Sink{ID: id, Name: "sink " + id, Type: TypeWebhook, URL: url, Secret: testSecret, Filters: filters, Owner: "alice"}
}

func message(id, filter string) Message {
	return Message{
		ID: id, FilterID: filter, FilterName: "filter " + filter, Revision: 7, Time: t0,
		Summary: "alert " + id, Body: []byte(`{"id":"` + id + `","filter":"` + filter + `"}`),
	}
}

func mustEnqueue(tb testing.TB, st Store, now time.Time, ms ...Message) {
	tb.Helper()
	err := st.UpdateSide(tb.Context(), func(tx *graph.SideTxn) error {
		for _, m := range ms {
			if err := Enqueue(tx, m, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("Enqueue: %v", err)
	}
}

func mustDeliveries(tb testing.TB, st Store, q Query) []Delivery {
	tb.Helper()
	ds, err := Deliveries(tb.Context(), st, q)
	if err != nil {
		tb.Fatalf("Deliveries(%+v): %v", q, err)
	}
	return ds
}

// dueKeys counts the due index's keys: every pending delivery has one, nothing else does.
func dueKeys(tb testing.TB, st Store) int {
	tb.Helper()
	n := 0
	err := st.ViewSide(tb.Context(), func(tx *graph.SideTxn) error {
		return tx.Scan(prefixDue, nil, false, func(_, _ []byte) (bool, error) { n++; return true, nil })
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// received is one request a receiver got.
type received struct {
	n      int // 1 for the first request the receiver got
	header http.Header
	body   []byte
}

// receiver is an HTTP server that records its requests and answers with respond (nil: 200).
type receiver struct {
	*httptest.Server
	reqs chan received

	mu     sync.Mutex
	n      int
	perKey map[string]int
}

func newReceiver(tb testing.TB, respond func(w http.ResponseWriter, r *http.Request, got received)) *receiver {
	tb.Helper()
	rc := &receiver{reqs: make(chan received, 1024), perKey: map[string]int{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			tb.Errorf("receiver: read body: %v", err)
		}
		rc.mu.Lock()
		rc.n++
		got := received{n: rc.n, header: r.Header.Clone(), body: body}
		rc.perKey[r.Header.Get(HeaderIdempotencyKey)]++
		rc.mu.Unlock()
		select {
		case rc.reqs <- got:
		default:
			tb.Errorf("receiver: more requests than the test expects")
		}
		if respond != nil {
			respond(w, r, got)
		}
	}))
	tb.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count(key string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if key == "" {
		return rc.n
	}
	return rc.perKey[key]
}

// next returns the receiver's next request.
func (rc *receiver) next(tb testing.TB, ctx context.Context) received {
	tb.Helper()
	select {
	case r := <-rc.reqs:
		return r
	case <-ctx.Done():
		tb.Fatalf("waiting for a request: %v", ctx.Err())
	}
	return received{}
}

// run is a Deliverer running in the background of a test; its recorded states arrive on marks.
type run struct {
	d     *Deliverer
	marks chan Delivery
	wait  func() error // waits for Run to return, and returns what it did
	stop  func() error // cancels Run's context, then waits
}

// startDeliverer runs a Deliverer on st with tiny backoffs until stop (or the test's end).
func startDeliverer(tb testing.TB, st Store, opts Options) *run {
	tb.Helper()
	if opts.MinBackoff == 0 {
		opts.MinBackoff = time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 4 * time.Millisecond
	}
	d := NewDeliverer(st, opts)
	r := &run{d: d, marks: make(chan Delivery, 1024)}
	d.afterMark = func(del Delivery) {
		select {
		case r.marks <- del:
		default:
			tb.Errorf("more recorded states than the test expects")
		}
	}
	ctx, cancel := context.WithCancel(tb.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var runErr error
	r.wait = func() error {
		once.Do(func() { runErr = <-done })
		return runErr
	}
	r.stop = func() error {
		cancel()
		return r.wait()
	}
	tb.Cleanup(func() {
		if err := r.stop(); err != nil && !errors.Is(err, graph.ErrClosed) {
			tb.Errorf("Run: %v", err)
		}
	})
	return r
}

// waitMark returns the first recorded state that ok accepts, skipping others.
func (r *run) waitMark(tb testing.TB, ctx context.Context, ok func(Delivery) bool) Delivery {
	tb.Helper()
	for {
		select {
		case del := <-r.marks:
			if ok(del) {
				return del
			}
		case <-ctx.Done():
			tb.Fatalf("waiting for a delivery state: %v", ctx.Err())
			return Delivery{}
		}
	}
}

func isStatus(s Status) func(Delivery) bool { return func(d Delivery) bool { return d.Status == s } }
