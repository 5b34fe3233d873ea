package sinks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// verify checks a generic webhook delivery the way docs/sinks.md tells receivers to.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	ts := h.Get("X-Kiem-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("stale timestamp %s", ts)
	}
	got, ok := strings.CutPrefix(h.Get("X-Kiem-Signature"), "sha256=")
	if !ok {
		return errors.New("no sha256= signature")
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return errors.New("signature mismatch")
	}
	return nil
}

func TestDeliverWebhook(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	rc := newReceiver(t, nil)
	mustSave(t, st, webhook("hook", rc.URL+"/in"))
	clk := &clock{}
	r := startDeliverer(t, st, Options{Now: clk.Now})

	m := message("m1", "a")
	mustEnqueue(t, st, clk.Now(), m)
	r.d.Nudge() // Run is already waiting: the nudge makes it look
	got := rc.next(t, ctx)
	del := r.waitMark(t, ctx, isStatus(StatusDelivered))

	for _, h := range []struct{ name, want string }{
		{"Content-Type", "application/json"},
		{"Idempotency-Key", "m1.hook"},
		{"X-Kiem-Delivery", del.ID},
	} {
		if v := got.header.Get(h.name); v != h.want {
			t.Errorf("header %s = %q, want %q", h.name, v, h.want)
		}
	}
	if err := verify(testSecret, got.header, got.body, clk.Now()); err != nil {
		t.Errorf("receiver check with the secret: %v", err)
	}
	if err := verify("another-secret-0123456789", got.header, got.body, clk.Now()); err == nil {
		t.Errorf("the signature verifies with another secret")
	}
	if err := verify(testSecret, got.header, append(bytes.Clone(got.body), ' '), clk.Now()); err == nil {
		t.Errorf("the signature verifies a changed body")
	}

	var env struct {
		Kind  string          `json:"kind"`
		Sink  string          `json:"sink"`
		Alert json.RawMessage `json:"alert"`
	}
	dec := json.NewDecoder(bytes.NewReader(got.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	if env.Kind != "kiem.alert" || env.Sink != "hook" || !bytes.Equal(env.Alert, m.Body) {
		t.Errorf("body %s, want kind kiem.alert, sink hook, alert %s", got.body, m.Body)
	}

	if del.Attempts != 1 || del.LastCode != 200 || del.LastError != "" || del.DeliveredAt.IsZero() || del.MessageID != "m1" ||
		del.SinkID != "hook" || del.FilterID != "a" || del.Revision != 7 {
		t.Errorf("delivered %+v", del)
	}
	if ds := mustDeliveries(t, st, Query{MessageID: "m1"}); len(ds) != 1 || ds[0] != del {
		t.Errorf("Deliveries(m1) = %+v, want %+v", ds, del)
	}
	if n := dueKeys(t, st); n != 0 {
		t.Errorf("%d due keys after delivery, want 0", n)
	}
}

func TestDeliverSlack(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	rc := newReceiver(t, nil)
	mustSave(t, st, Sink{ID: "chat", Name: "chat", Type: TypeSlack, URL: rc.URL + "/services/T/B/tokentokentoken"})
	// Enqueued before Run: picked up at start.
	mustEnqueue(t, st, time.Now(), message("m1", "a"))
	r := startDeliverer(t, st, Options{})
	got := rc.next(t, ctx)
	r.waitMark(t, ctx, isStatus(StatusDelivered))
	if string(got.body) != `{"text":"alert m1"}` {
		t.Errorf("slack body %s, want {\"text\":\"alert m1\"}", got.body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, h := range []string{"X-Kiem-Signature", "X-Kiem-Timestamp"} {
		if v := got.header.Get(h); v != "" {
			t.Errorf("slack delivery has %s %q", h, v)
		}
	}
}

// TestRetryUntilRecovered: a receiver that fails twice and then recovers gets the message, and the state after
// each attempt says what happened.
func TestRetryUntilRecovered(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fail     func(w http.ResponseWriter)
		wantCode int
		wantErr  string
	}{
		{"500", func(w http.ResponseWriter) { http.Error(w, "receiver down\nsorry", http.StatusInternalServerError) }, 500, "HTTP 500: receiver down sorry"},
		{"hang up", func(w http.ResponseWriter) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, 0, "post http://127.0.0.1:"},
		{"401 is retried", func(w http.ResponseWriter) { http.Error(w, "bad signature", http.StatusUnauthorized) }, 401, "HTTP 401: bad signature"},
		{"429 without Retry-After", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooManyRequests) }, 429, "HTTP 429: Too Many Requests"},
		{"big body", func(w http.ResponseWriter) {
			http.Error(w, strings.Repeat("x", 10<<10), http.StatusInternalServerError)
		}, 500, "HTTP 500: xxx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			st := mustOpenStore(t)
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, got received) {
				if got.n <= 2 {
					tc.fail(w)
				}
			})
			mustSave(t, st, webhook("hook", rc.URL+"/in"))
			mustEnqueue(t, st, time.Now(), message("m1", "a"))
			r := startDeliverer(t, st, Options{})
			var states []Delivery
			for range 3 {
				states = append(states, r.waitMark(t, ctx, func(Delivery) bool { return true }))
			}
			for i, s := range states[:2] {
				if s.Status != StatusPending || s.Attempts != i+1 || s.LastCode != tc.wantCode ||
					!strings.HasPrefix(s.LastError, tc.wantErr) || !s.NextAttempt.After(s.Created) || !s.DeliveredAt.IsZero() {
					t.Errorf("after attempt %d: %+v, want pending, code %d, error %q…", i+1, s, tc.wantCode, tc.wantErr)
				}
				if len(s.LastError) > len("HTTP 500: ")+maxResponseRead {
					t.Errorf("after attempt %d: error of %d bytes, more than the 4 KiB read", i+1, len(s.LastError))
				}
			}
			if s := states[2]; s.Status != StatusDelivered || s.Attempts != 3 || s.LastCode != 200 || s.LastError != "" {
				t.Errorf("after recovery: %+v, want delivered at the third attempt", s)
			}
			if n := rc.count("m1.hook"); n != 3 {
				t.Errorf("receiver got %d requests, want 3", n)
			}
			if ds := mustDeliveries(t, st, Query{}); len(ds) != 1 || ds[0] != states[2] {
				t.Errorf("Deliveries() = %+v, want %+v", ds, states[2])
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, got received) {
		if got.n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mustSave(t, st, webhook("hook", rc.URL))
	clk := &clock{}
	mustEnqueue(t, st, clk.Now(), message("m1", "a"))
	r := startDeliverer(t, st, Options{Now: clk.Now})
	first := r.waitMark(t, ctx, func(Delivery) bool { return true })
	if wait := first.NextAttempt.Sub(clk.Now()); first.LastCode != 503 || wait < 59*time.Minute || wait > time.Hour {
		t.Fatalf("after a 503 with Retry-After 3600: %+v, next attempt in %v; want about an hour", first, wait)
	}
	clk.advance(time.Hour)
	r.d.Nudge()
	if del := r.waitMark(t, ctx, isStatus(StatusDelivered)); del.Attempts != 2 {
		t.Errorf("delivered %+v, want at the second attempt", del)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	elsewhere := newReceiver(t, nil)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if got.n == 1 {
			http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
		}
	})
	mustSave(t, st, webhook("hook", rc.URL))
	mustEnqueue(t, st, time.Now(), message("m1", "a"))
	// A client that would follow redirects: the Deliverer still does not.
	r := startDeliverer(t, st, Options{Client: &http.Client{}})
	first := r.waitMark(t, ctx, func(Delivery) bool { return true })
	if first.Status != StatusPending || first.LastCode != 307 || first.LastError != "HTTP 307: redirect not followed" {
		t.Errorf("after a redirect: %+v, want pending with the 307", first)
	}
	r.waitMark(t, ctx, isStatus(StatusDelivered))
	if n := elsewhere.count(""); n != 0 {
		t.Errorf("the redirect's target got %d requests", n)
	}
}

func TestMaxAge(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	gate := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if got.n > 1 {
			select { // the second attempt fails once the clock passed MaxAge
			case <-gate:
			case <-r.Context().Done():
			}
		}
		http.Error(w, "still down", http.StatusInternalServerError)
	})
	mustSave(t, st, webhook("hook", rc.URL))
	clk := &clock{}
	mustEnqueue(t, st, clk.Now(), message("m1", "a"))
	r := startDeliverer(t, st, Options{Now: clk.Now, MaxAge: time.Hour})
	if first := r.waitMark(t, ctx, func(Delivery) bool { return true }); first.Status != StatusPending {
		t.Fatalf("after a failure within MaxAge: %+v, want pending", first)
	}
	clk.advance(2 * time.Hour)
	close(gate)
	last := r.waitMark(t, ctx, func(Delivery) bool { return true })
	if last.Status != StatusFailed || last.Attempts != 2 || last.LastCode != 500 || last.LastError != "HTTP 500: still down" {
		t.Errorf("after a failure past MaxAge: %+v, want failed at the second attempt", last)
	}
	if n := dueKeys(t, st); n != 0 {
		t.Errorf("%d due keys after giving up, want 0", n)
	}
	if ds := mustDeliveries(t, st, Query{Status: StatusFailed}); len(ds) != 1 || ds[0] != last {
		t.Errorf("Deliveries(failed) = %+v", ds)
	}
	if n := rc.count(""); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}

// TestDeletedSinkNeverSent: Delete cancels what is pending; the Deliverer never sends it.
func TestDeletedSinkNeverSent(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	gone, kept := newReceiver(t, nil), newReceiver(t, nil)
	mustSave(t, st, webhook("gone", gone.URL))
	mustSave(t, st, webhook("kept", kept.URL))
	mustEnqueue(t, st, time.Now(), message("m1", "a"), message("m2", "a"))
	if err := Delete(t.Context(), st, "gone"); err != nil {
		t.Fatal(err)
	}
	r := startDeliverer(t, st, Options{})
	for range 2 {
		if del := r.waitMark(t, ctx, func(Delivery) bool { return true }); del.SinkID != "kept" || del.Status != StatusDelivered {
			t.Errorf("recorded %+v, want deliveries to kept only", del)
		}
	}
	if n := gone.count(""); n != 0 {
		t.Errorf("the deleted sink's receiver got %d requests", n)
	}
	for _, d := range mustDeliveries(t, st, Query{SinkID: "gone"}) {
		if d.Status != StatusCancelled || d.Attempts != 0 {
			t.Errorf("delivery to the deleted sink %+v, want cancelled without an attempt", d)
		}
	}
}

// TestRecreatedSinkGetsNoOldDeliveries: a Delete that stopped before cancelling (a crash), then a new sink with
// the same id: the Deliverer cancels the old sink's deliveries instead of sending them to the new one.
func TestRecreatedSinkGetsNoOldDeliveries(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	rc := newReceiver(t, nil)
	mustSave(t, st, webhook("a", "https://old.example"))
	mustEnqueue(t, st, time.Now(), message("m1", "x"))
	if err := st.UpdateSide(t.Context(), func(tx *graph.SideTxn) error { return tx.Delete(sinkKey("a")) }); err != nil {
		t.Fatal(err)
	}
	mustSave(t, st, webhook("a", rc.URL))
	r := startDeliverer(t, st, Options{})
	if del := r.waitMark(t, ctx, func(Delivery) bool { return true }); del.MessageID != "m1" || del.Status != StatusCancelled {
		t.Fatalf("recorded %+v, want m1 cancelled", del)
	}
	mustEnqueue(t, st, time.Now(), message("m2", "x"))
	r.d.Nudge()
	if del := r.waitMark(t, ctx, func(Delivery) bool { return true }); del.MessageID != "m2" || del.Status != StatusDelivered {
		t.Fatalf("recorded %+v, want m2 delivered", del)
	}
	if n, m1 := rc.count(""), rc.count("m1.a"); n != 1 || m1 != 0 {
		t.Errorf("the new sink got %d requests, %d of them m1; want only m2", n, m1)
	}
	if n := dueKeys(t, st); n != 0 {
		t.Errorf("%d due keys, want 0", n)
	}
}

// TestRestart: deliveries in flight when the process stops are sent again by the next one, from the same store
// directory; none is lost, none is sent more than once more, none stays pending.
func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int // attempts answered 500 before the receiver starts hanging
	}{
		{"receiver hangs", 0},
		{"receiver fails then hangs", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			var recovered atomic.Bool
			hanging := make(chan string, 16)
			var mu sync.Mutex
			tries := map[string]int{}
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ received) {
				if recovered.Load() {
					return // 200
				}
				key := r.Header.Get(HeaderIdempotencyKey)
				mu.Lock()
				tries[key]++
				n := tries[key]
				mu.Unlock()
				if n <= tc.failures {
					http.Error(w, "down", http.StatusInternalServerError)
					return
				}
				hanging <- key
				<-r.Context().Done() // until the sender gives up: kiem stops
			})

			st := openStore(t, dir)
			mustSave(t, st, webhook("hook", rc.URL))
			msgs := []Message{message("m1", "a"), message("m2", "a"), message("m3", "a")}
			mustEnqueue(t, st, time.Now(), msgs...)
			r := startDeliverer(t, st, Options{Workers: len(msgs)})
			for range msgs {
				select {
				case <-hanging:
				case <-ctx.Done():
					t.Fatal("waiting for the receiver to hang")
				}
			}
			if err := r.stop(); err != nil {
				t.Fatalf("Run() = %v after its context ended, want nil", err)
			}
			for _, d := range mustDeliveries(t, st, Query{}) {
				if d.Status != StatusPending || d.Attempts != tc.failures {
					t.Errorf("after the stop: %+v, want pending with %d attempts (the cut one does not count)", d, tc.failures)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			before := map[string]int{}
			for _, m := range msgs {
				before[m.ID] = rc.count(m.ID + ".hook")
			}
			recovered.Store(true)

			st = openStore(t, dir)
			r = startDeliverer(t, st, Options{})
			for range msgs {
				r.waitMark(t, ctx, isStatus(StatusDelivered))
			}
			for _, m := range msgs {
				key := m.ID + ".hook"
				if total, again := rc.count(key), rc.count(key)-before[m.ID]; again != 1 || total < 1 {
					t.Errorf("%s: %d requests after the restart (%d in all), want exactly 1", key, again, total)
				}
			}
			if ds := mustDeliveries(t, st, Query{Status: StatusPending}); len(ds) != 0 {
				t.Errorf("pending after the restart: %+v", ds)
			}
			for _, d := range mustDeliveries(t, st, Query{}) {
				if d.Status != StatusDelivered || d.Attempts != tc.failures+1 {
					t.Errorf("after the restart: %+v, want delivered at attempt %d", d, tc.failures+1)
				}
			}
			if n := dueKeys(t, st); n != 0 {
				t.Errorf("%d due keys, want 0", n)
			}
		})
	}
}

// syncBuffer is a log destination safe for the Deliverer's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSlackURLNeverShown: a failed attempt's error and log name a Slack sink by its host only.
func TestSlackURLNeverShown(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	closed := newReceiver(t, nil)
	closed.Close() // connection refused
	var logs syncBuffer
	mustSave(t, st, Sink{ID: "chat", Name: "chat", Type: TypeSlack, URL: closed.URL + "/services/T/B/tokentokentoken"})
	mustEnqueue(t, st, time.Now(), message("m1", "a"))
	r := startDeliverer(t, st, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	del := r.waitMark(t, ctx, func(Delivery) bool { return true })
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if del.Status != StatusPending || del.LastCode != 0 || !strings.HasPrefix(del.LastError, "post "+closed.URL+": ") {
		t.Errorf("after a refused connection: %+v, want pending, error naming %s", del, closed.URL)
	}
	for what, s := range map[string]string{"error": del.LastError, "log": logs.String()} {
		if strings.Contains(s, "tokentoken") || strings.Contains(s, "/services") {
			t.Errorf("%s shows the Slack URL: %s", what, s)
		}
	}
	if !strings.Contains(logs.String(), "delivery attempt failed") {
		t.Errorf("log %q, want the failed attempt", logs.String())
	}
}

func TestRunEnds(t *testing.T) {
	ctx := testCtx(t)
	st := mustOpenStore(t)
	rc := newReceiver(t, nil)
	mustSave(t, st, webhook("hook", rc.URL))
	mustEnqueue(t, st, time.Now(), message("m1", "a"))
	r := startDeliverer(t, st, Options{})
	r.waitMark(t, ctx, isStatus(StatusDelivered)) // Run is running
	if err := r.d.Run(ctx); err == nil {
		t.Errorf("a second Run at once = nil, want an error")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r.d.Nudge()
	errc := make(chan error, 1)
	go func() { errc <- r.wait() }()
	select {
	case err := <-errc:
		if !errors.Is(err, graph.ErrClosed) {
			t.Errorf("Run() = %v after the store closed, want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after the store closed")
	}
}
