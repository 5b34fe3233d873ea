package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// Message is one alert to deliver. The alert engine builds it.
type Message struct {
	// ID is the alert's id; with a sink's id it forms the idempotency key receivers dedupe on. 1 to 200 bytes
	// of printable ASCII other than '/' and space.
	ID         string
	FilterID   string
	FilterName string
	Revision   uint64
	Time       time.Time
	// Summary is one line of text (Slack's "text"). Required.
	Summary string
	// Body is the alert as JSON; the generic webhook posts {"kind":"kiem.alert","sink":<id>,"alert":Body}.
	// Required, at most 256 KiB.
	Body json.RawMessage
}

// Limits of a message.
const (
	maxMessageIDLen = 200
	maxSummaryLen   = 4000
	maxBodyLen      = 256 << 10
)

func (m Message) validate() error {
	var bad []string
	if m.ID == "" || len(m.ID) > maxMessageIDLen || strings.IndexFunc(m.ID, func(r rune) bool { return r <= ' ' || r > '~' || r == '/' }) >= 0 {
		bad = append(bad, fmt.Sprintf("id: want 1 to %d bytes of printable ASCII other than '/' and space", maxMessageIDLen))
	}
	if strings.TrimSpace(m.Summary) == "" {
		bad = append(bad, "summary: empty")
	} else if len(m.Summary) > maxSummaryLen {
		bad = append(bad, fmt.Sprintf("summary: %d bytes, over %d", len(m.Summary), maxSummaryLen))
	}
	switch {
	case len(m.Body) == 0:
		bad = append(bad, "body: empty")
	case len(m.Body) > maxBodyLen:
		bad = append(bad, fmt.Sprintf("body: %d bytes, over %d", len(m.Body), maxBodyLen))
	case !json.Valid(m.Body):
		bad = append(bad, "body: not valid JSON")
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w message: %s", ErrInvalid, strings.Join(bad, "; "))
	}
	return nil
}

// Status is where a delivery stands.
type Status string

const (
	// StatusPending: not delivered yet; the Deliverer tries at NextAttempt.
	StatusPending Status = "pending"
	// StatusDelivered: a 2xx answered an attempt.
	StatusDelivered Status = "delivered"
	// StatusFailed: attempts kept failing for Options.MaxAge; given up.
	StatusFailed Status = "failed"
	// StatusCancelled: the sink was deleted before delivery.
	StatusCancelled Status = "cancelled"
)

func (s Status) valid() bool {
	switch s {
	case StatusPending, StatusDelivered, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Delivery is the state of one message to one sink.
type Delivery struct {
	// ID is sent as X-Kiem-Delivery; it sorts by Created.
	ID        string
	MessageID string
	SinkID    string
	FilterID  string
	Revision  uint64
	Status    Status
	// Attempts counts the attempts that got an answer or failed on their own; one cut short by shutdown does
	// not count.
	Attempts int
	// LastError says why the last attempt failed: "" after a success.
	LastError string
	// LastCode is the HTTP status of the last attempt, 0 if none (or no answer).
	LastCode    int
	Created     time.Time
	NextAttempt time.Time
	DeliveredAt time.Time
}

// entry is an outbox record: a delivery and the message it delivers. Its JSON names are the storage format.
type entry struct {
	ID          string    `json:"id"`
	MessageID   string    `json:"messageId"`
	SinkID      string    `json:"sinkId"`
	Gen         string    `json:"gen"`
	FilterID    string    `json:"filterId"`
	FilterName  string    `json:"filterName,omitempty"`
	Revision    uint64    `json:"revision"`
	Status      Status    `json:"status"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"lastError,omitempty"`
	LastCode    int       `json:"lastCode,omitempty"`
	Created     time.Time `json:"created"`
	NextAttempt time.Time `json:"nextAttempt"`
	DeliveredAt time.Time `json:"deliveredAt"`

	Time    time.Time       `json:"time"`
	Summary string          `json:"summary"`
	Body    json.RawMessage `json:"body"`
}

func (e entry) delivery() Delivery {
	return Delivery{
		ID: e.ID, MessageID: e.MessageID, SinkID: e.SinkID, FilterID: e.FilterID, Revision: e.Revision,
		Status: e.Status, Attempts: e.Attempts, LastError: e.LastError, LastCode: e.LastCode,
		Created: e.Created, NextAttempt: e.NextAttempt, DeliveredAt: e.DeliveredAt,
	}
}

func decodeEntry(id string, val []byte) (entry, error) {
	var e entry
	if err := json.Unmarshal(val, &e); err != nil {
		return entry{}, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return e, nil
}

func getEntry(tx *graph.SideTxn, id string) (entry, error) {
	val, err := tx.Get(outboxKey(id))
	if err != nil {
		return entry{}, err
	}
	return decodeEntry(id, val)
}

func putEntry(tx *graph.SideTxn, e entry) error {
	val, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return tx.Set(outboxKey(e.ID), val)
}

// Enqueue adds one pending delivery of m per sink that takes m.FilterID, inside the caller's transaction: the
// one that stores the alert, so that the alert and its deliveries commit together or not at all. It reads the
// sinks through tx. Enqueueing a message again adds nothing for the sinks that already have it. Call
// Deliverer.Nudge after the transaction commits. Returns an error wrapping ErrInvalid for a malformed message.
func Enqueue(tx *graph.SideTxn, m Message, now time.Time) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("enqueue alert: %w", err)
	}
	now = now.UTC() // as it reads back from the store, without a monotonic clock reading
	var targets []sinkRecord
	err := tx.Scan(prefixSink, nil, false, func(k, v []byte) (bool, error) {
		var r sinkRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return false, fmt.Errorf("decode %s: %w", k, err)
		}
		if r.sink().takes(m.FilterID) {
			targets = append(targets, r)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("enqueue alert %s: %w", m.ID, err)
	}
	for _, s := range targets {
		if _, err := tx.Get(msgKey(m.ID, s.ID)); err == nil {
			continue
		} else if !errors.Is(err, graph.ErrNotFound) {
			return fmt.Errorf("enqueue alert %s to %s: %w", m.ID, s.ID, err)
		}
		e := entry{
			ID: newDeliveryID(now), MessageID: m.ID, SinkID: s.ID, Gen: s.Gen, FilterID: m.FilterID,
			FilterName: m.FilterName, Revision: m.Revision, Status: StatusPending, Created: now, NextAttempt: now,
			Time: m.Time, Summary: m.Summary, Body: m.Body,
		}
		err := putEntry(tx, e)
		if err == nil {
			err = tx.Set(dueKey(e.NextAttempt, e.ID), dueValue(s.ID, s.Gen))
		}
		if err == nil {
			err = tx.Set(msgKey(m.ID, s.ID), []byte(e.ID))
		}
		if err != nil {
			return fmt.Errorf("enqueue alert %s to %s: %w", m.ID, s.ID, err)
		}
	}
	return nil
}

// Query selects deliveries; empty fields match everything.
type Query struct {
	SinkID    string
	MessageID string
	FilterID  string
	Status    Status
	// First is how many to return at most: 0 means DefaultFirst, and more than MaxFirst is MaxFirst.
	First int
}

// Page sizes of Deliveries.
const (
	DefaultFirst = 100
	MaxFirst     = 1000
)

func (q Query) matches(e entry) bool {
	return (q.SinkID == "" || e.SinkID == q.SinkID) && (q.MessageID == "" || e.MessageID == q.MessageID) &&
		(q.FilterID == "" || e.FilterID == q.FilterID) && (q.Status == "" || e.Status == q.Status)
}

// Deliveries returns the deliveries q selects, newest first (those created at the same instant, such as one
// message's to several sinks, in no particular order). With a MessageID it reads that message's
// deliveries only; otherwise it walks the outbox from the newest entry until it has q.First of them. Returns
// an error wrapping ErrInvalid for an unknown status.
func Deliveries(ctx context.Context, st Store, q Query) ([]Delivery, error) {
	if q.Status != "" && !q.Status.valid() {
		return nil, fmt.Errorf("deliveries: %w status %q", ErrInvalid, q.Status)
	}
	first := q.First
	if first <= 0 {
		first = DefaultFirst
	}
	first = min(first, MaxFirst)
	var out []Delivery
	err := st.ViewSide(ctx, func(tx *graph.SideTxn) error {
		out = out[:0]
		if q.MessageID != "" {
			return messageDeliveries(tx, q, first, &out)
		}
		return tx.Scan(prefixOutbox, nil, true, func(k, v []byte) (bool, error) {
			e, err := decodeEntry(string(k[len(prefixOutbox):]), v)
			if err != nil {
				return false, err
			}
			if q.matches(e) {
				out = append(out, e.delivery())
			}
			return len(out) < first, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	return out, nil
}

func messageDeliveries(tx *graph.SideTxn, q Query, first int, out *[]Delivery) error {
	var ids []string
	err := tx.Scan(msgPrefix(q.MessageID), nil, false, func(_, v []byte) (bool, error) {
		ids = append(ids, string(v))
		return true, nil
	})
	if err != nil {
		return err
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	for _, id := range ids {
		e, err := getEntry(tx, id)
		if errors.Is(err, graph.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if q.matches(e) {
			*out = append(*out, e.delivery())
		}
		if len(*out) == first {
			break
		}
	}
	return nil
}

// pruneBatch is how many outbox entries Prune deletes per transaction.
const pruneBatch = 256

// Prune deletes the finished deliveries (delivered, failed, cancelled) created before before, and says how
// many. Pending ones stay whatever their age. Each transaction deletes a bounded number.
func Prune(ctx context.Context, st Store, before time.Time) (int, error) {
	limit := hex16(before)
	var start []byte
	total := 0
	for {
		var n int
		done := true
		err := st.UpdateSide(ctx, func(tx *graph.SideTxn) error {
			n, done = 0, true
			var old []entry
			var next []byte
			err := tx.Scan(prefixOutbox, start, false, func(k, v []byte) (bool, error) {
				id := string(k[len(prefixOutbox):])
				if len(id) < 16 || id[:16] >= limit {
					return false, nil
				}
				next = append(append(next[:0], k...), 0) // the first key after k
				e, err := decodeEntry(id, v)
				if err != nil {
					return false, err
				}
				if e.Status != StatusPending {
					old = append(old, e)
				}
				if len(old) == pruneBatch {
					done = false
					return false, nil
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, e := range old {
				if err := tx.Delete(outboxKey(e.ID)); err != nil {
					return err
				}
				if err := deleteMsgKey(tx, e); err != nil {
					return err
				}
			}
			n, start = len(old), next
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune deliveries before %s: %w", before.Format(time.RFC3339), err)
		}
		total += n
		if done {
			return total, nil
		}
	}
}

// deleteMsgKey deletes the message index of e if it still points at e (a later Enqueue may have replaced it).
func deleteMsgKey(tx *graph.SideTxn, e entry) error {
	k := msgKey(e.MessageID, e.SinkID)
	v, err := tx.Get(k)
	if errors.Is(err, graph.ErrNotFound) || (err == nil && string(v) != e.ID) {
		return nil
	} else if err != nil {
		return err
	}
	return tx.Delete(k)
}
