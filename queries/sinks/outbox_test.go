package sinks

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// messagesOf returns the message ids of a sink's deliveries, sorted.
func messagesOf(t *testing.T, st Store, sinkID string) []string {
	t.Helper()
	var ids []string
	for _, d := range mustDeliveries(t, st, Query{SinkID: sinkID}) {
		ids = append(ids, d.MessageID)
	}
	slices.Sort(ids)
	return ids
}

func TestEnqueueRoutes(t *testing.T) {
	st := mustOpenStore(t)
	mustSave(t, st, webhook("only-a", "https://x.example", "a"))
	mustSave(t, st, webhook("a-and-b", "https://x.example", "a", "b"))
	mustSave(t, st, webhook("all", "https://x.example"))
	mustEnqueue(t, st, t0, message("m1", "a"))
	mustEnqueue(t, st, t0.Add(time.Second), message("m2", "b"), message("m3", "c"))
	for _, tc := range []struct {
		sink string
		want []string
	}{
		{"only-a", []string{"m1"}},
		{"a-and-b", []string{"m1", "m2"}},
		{"all", []string{"m1", "m2", "m3"}},
	} {
		if got := messagesOf(t, st, tc.sink); !slices.Equal(got, tc.want) {
			t.Errorf("sink %s got messages %v, want %v", tc.sink, got, tc.want)
		}
	}
	for _, d := range mustDeliveries(t, st, Query{}) {
		if d.Status != StatusPending || d.Attempts != 0 || !d.NextAttempt.Equal(d.Created) {
			t.Errorf("new delivery %+v: want pending, no attempt, due at creation", d)
		}
	}
	if got, want := dueKeys(t, st), 6; got != want {
		t.Errorf("%d due keys, want %d (one per pending delivery)", got, want)
	}
}

func TestEnqueueAtomicAndIdempotent(t *testing.T) {
	st := mustOpenStore(t)
	mustSave(t, st, webhook("all", "https://x.example"))

	// The alert's transaction fails after Enqueue: no delivery exists.
	boom := errors.New("boom")
	err := st.UpdateSide(t.Context(), func(tx *graph.SideTxn) error {
		if err := tx.Set([]byte("alerts/m1"), []byte("{}")); err != nil {
			return err
		}
		if err := Enqueue(tx, message("m1", "a"), t0); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateSide = %v, want boom", err)
	}
	if ds := mustDeliveries(t, st, Query{}); len(ds) != 0 || dueKeys(t, st) != 0 {
		t.Errorf("deliveries %+v after a rolled back Enqueue, want none", ds)
	}

	// Enqueueing a message again adds nothing for the sinks that have it, and does for a new sink.
	mustEnqueue(t, st, t0, message("m1", "a"))
	mustEnqueue(t, st, t0.Add(time.Second), message("m1", "a"))
	mustSave(t, st, webhook("late", "https://x.example"))
	mustEnqueue(t, st, t0.Add(2*time.Second), message("m1", "a"))
	if got := mustDeliveries(t, st, Query{MessageID: "m1"}); len(got) != 2 || got[0].SinkID != "late" || got[1].SinkID != "all" {
		t.Errorf("deliveries of m1 = %+v, want one to late then one to all", got)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	st := mustOpenStore(t)
	mustSave(t, st, webhook("all", "https://x.example"))
	with := func(f func(*Message)) Message { m := message("m1", "a"); f(&m); return m }
	for _, tc := range []struct {
		name string
		m    Message
		want string
	}{
		{"no id", with(func(m *Message) { m.ID = "" }), "id: want 1 to 200 bytes"},
		{"slash", with(func(m *Message) { m.ID = "a/b" }), "id: want"},
		{"space", with(func(m *Message) { m.ID = "a b" }), "id: want"},
		{"no summary", with(func(m *Message) { m.Summary = "" }), "summary: empty"},
		{"no body", with(func(m *Message) { m.Body = nil }), "body: empty"},
		{"bad body", with(func(m *Message) { m.Body = []byte("{") }), "body: not valid JSON"},
		{"big body", with(func(m *Message) { m.Body = []byte(`"` + strings.Repeat("x", maxBodyLen) + `"`) }), "body: 262146 bytes, over 262144"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := st.UpdateSide(t.Context(), func(tx *graph.SideTxn) error { return Enqueue(tx, tc.m, t0) })
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Enqueue() = %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
	if ds := mustDeliveries(t, st, Query{}); len(ds) != 0 {
		t.Errorf("invalid messages enqueued %+v", ds)
	}
}

func TestDeliveriesQuery(t *testing.T) {
	st := mustOpenStore(t)
	// Deliveries created at the same time come in no particular order: y is added after m2 reached x, and m2 is
	// enqueued again for it.
	mustSave(t, st, webhook("x", "https://x.example"))
	mustEnqueue(t, st, t0, message("m1", "a"))
	mustEnqueue(t, st, t0.Add(time.Second), message("m2", "b"))
	mustSave(t, st, webhook("y", "https://x.example", "b"))
	mustEnqueue(t, st, t0.Add(1500*time.Millisecond), message("m2", "b"))
	mustEnqueue(t, st, t0.Add(2*time.Second), message("m3", "a"))
	// m2 to x was delivered.
	err := st.UpdateSide(t.Context(), func(tx *graph.SideTxn) error {
		id, err := tx.Get(msgKey("m2", "x"))
		if err != nil {
			return err
		}
		e, err := getEntry(tx, string(id))
		if err != nil {
			return err
		}
		e.Status, e.Attempts, e.DeliveredAt = StatusDelivered, 1, t0
		if err := tx.Delete(dueKey(e.NextAttempt, e.ID)); err != nil {
			return err
		}
		return putEntry(tx, e)
	})
	if err != nil {
		t.Fatal(err)
	}
	key := func(ds []Delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.MessageID+"."+d.SinkID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    Query
		want []string
	}{
		{"all newest first", Query{}, []string{"m3.x", "m2.y", "m2.x", "m1.x"}},
		{"first", Query{First: 2}, []string{"m3.x", "m2.y"}},
		{"sink", Query{SinkID: "x"}, []string{"m3.x", "m2.x", "m1.x"}},
		{"message", Query{MessageID: "m2"}, []string{"m2.y", "m2.x"}},
		{"message and sink", Query{MessageID: "m2", SinkID: "x"}, []string{"m2.x"}},
		{"message first", Query{MessageID: "m2", First: 1}, []string{"m2.y"}},
		{"filter", Query{FilterID: "a"}, []string{"m3.x", "m1.x"}},
		{"delivered", Query{Status: StatusDelivered}, []string{"m2.x"}},
		{"pending of x", Query{Status: StatusPending, SinkID: "x"}, []string{"m3.x", "m1.x"}},
		{"unknown message", Query{MessageID: "m9"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := key(mustDeliveries(t, st, tc.q)); !slices.Equal(got, tc.want) {
				t.Errorf("Deliveries(%+v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	if _, err := Deliveries(t.Context(), st, Query{Status: "lost"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Deliveries(status lost) = %v, want ErrInvalid", err)
	}
}

func TestDeleteCancelsPending(t *testing.T) {
	st := mustOpenStore(t)
	mustSave(t, st, webhook("gone", "https://x.example"))
	mustSave(t, st, webhook("kept", "https://x.example"))
	var ms []Message
	for i := range cancelBatch + 3 { // more than one batch
		ms = append(ms, message(fmt.Sprintf("m%03d", i), "a"))
	}
	mustEnqueue(t, st, t0, ms...)
	if err := Delete(t.Context(), st, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, d := range mustDeliveries(t, st, Query{SinkID: "gone", First: MaxFirst}) {
		if d.Status != StatusCancelled {
			t.Fatalf("delivery to a deleted sink %+v, want cancelled", d)
		}
	}
	if got := len(mustDeliveries(t, st, Query{SinkID: "gone", Status: StatusCancelled, First: MaxFirst})); got != len(ms) {
		t.Errorf("%d cancelled deliveries, want %d", got, len(ms))
	}
	if got := len(mustDeliveries(t, st, Query{SinkID: "kept", Status: StatusPending, First: MaxFirst})); got != len(ms) {
		t.Errorf("%d pending deliveries to the kept sink, want %d", got, len(ms))
	}
	if got, want := dueKeys(t, st), len(ms); got != want {
		t.Errorf("%d due keys, want %d: the kept sink's", got, want)
	}
}

func TestPrune(t *testing.T) {
	st := mustOpenStore(t)
	mustSave(t, st, webhook("x", "https://x.example"))
	mustEnqueue(t, st, t0, message("m1", "a"))
	mustEnqueue(t, st, t0.Add(time.Minute), message("m2", "a"))
	mustEnqueue(t, st, t0.Add(2*time.Minute), message("m3", "a"))
	mustEnqueue(t, st, t0.Add(3*time.Minute), message("m4", "a"))
	finish := func(mid string, s Status) {
		t.Helper()
		err := st.UpdateSide(t.Context(), func(tx *graph.SideTxn) error {
			id, err := tx.Get(msgKey(mid, "x"))
			if err != nil {
				return err
			}
			e, err := getEntry(tx, string(id))
			if err != nil {
				return err
			}
			if err := tx.Delete(dueKey(e.NextAttempt, e.ID)); err != nil {
				return err
			}
			e.Status = s
			return putEntry(tx, e)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	finish("m1", StatusDelivered)
	finish("m2", StatusFailed)
	finish("m4", StatusCancelled) // too young to prune
	// m3 is pending: it stays whatever its age.
	n, err := Prune(t.Context(), st, t0.Add(150*time.Second))
	if err != nil || n != 2 {
		t.Fatalf("Prune() = %d, %v; want 2", n, err)
	}
	if got := messagesOf(t, st, "x"); !slices.Equal(got, []string{"m3", "m4"}) {
		t.Errorf("after Prune, deliveries of %v, want m3 and m4", got)
	}
	if n, err := Prune(t.Context(), st, t0.Add(150*time.Second)); err != nil || n != 0 {
		t.Errorf("second Prune() = %d, %v; want 0", n, err)
	}
	// The message index went with the entry: m1 may be enqueued again.
	mustEnqueue(t, st, t0.Add(time.Hour), message("m1", "a"))
	if got := mustDeliveries(t, st, Query{MessageID: "m1"}); len(got) != 1 || got[0].Status != StatusPending {
		t.Errorf("m1 enqueued after pruning: %+v, want one pending delivery", got)
	}
}
