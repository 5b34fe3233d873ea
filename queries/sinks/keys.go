package sinks

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// Key layout of the side records this package owns (graph namespaces them; see graph.SideTxn):
//
//	sink/<sinkID>                          a sink as sinkRecord JSON, secret and URL included
//	outbox/<deliveryID>                    one message to one sink: its delivery state and the message (entry JSON)
//	sinks/due/<next:16 hex>/<deliveryID>   → "<sinkID>/<gen>": a pending delivery, by its next attempt's time
//	sinks/msg/<messageID>/<sinkID>         → deliveryID: makes Enqueue idempotent, finds a message's deliveries
//
// A deliveryID is <created: unix ns, 16 hex>-<random: 8 hex>, so outbox/ and the due times sort by time and a
// reverse scan of outbox/ is newest first. gen is a random id given to a sink when it is created (not when it is
// replaced): an entry remembers the gen it was enqueued for, so that a sink deleted and created again under the
// same id never receives the deleted sink's deliveries, even when Delete stopped before cancelling them all.
//
// Only pending entries have a due key, and every pending entry has exactly one; both change in the transaction
// that changes the entry's status or next attempt. "sink/" and "sinks/" do not share keys: the fifth byte differs.
var (
	prefixSink   = []byte("sink/")
	prefixOutbox = []byte("outbox/")
	prefixDue    = []byte("sinks/due/")
	prefixMsg    = []byte("sinks/msg/")
)

func sinkKey(id string) []byte { return append(bytes.Clone(prefixSink), id...) }

func outboxKey(deliveryID string) []byte { return append(bytes.Clone(prefixOutbox), deliveryID...) }

func dueKey(next time.Time, deliveryID string) []byte {
	k := append(bytes.Clone(prefixDue), hex16(next)...)
	k = append(k, '/')
	return append(k, deliveryID...)
}

// parseDueKey returns the time and delivery id of a due key (without the namespace graph adds).
func parseDueKey(k []byte) (time.Time, string, error) {
	rest := k[len(prefixDue):]
	if len(rest) < 18 || rest[16] != '/' {
		return time.Time{}, "", fmt.Errorf("bad due key %q", k)
	}
	ns, err := strconv.ParseUint(string(rest[:16]), 16, 64)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("bad due key %q: %w", k, err)
	}
	return time.Unix(0, int64(ns)), string(rest[17:]), nil
}

// dueValue names the sink (and its incarnation) of a pending delivery, so that Delete finds them without
// reading every entry.
func dueValue(sinkID, gen string) []byte { return []byte(sinkID + "/" + gen) }

func msgPrefix(messageID string) []byte {
	k := append(bytes.Clone(prefixMsg), messageID...)
	return append(k, '/')
}

func msgKey(messageID, sinkID string) []byte { return append(msgPrefix(messageID), sinkID...) }

// newDeliveryID returns an id that sorts by t and is unique without coordination.
func newDeliveryID(t time.Time) string { return hex16(t) + "-" + randomHex(4) }

// newGen returns a sink incarnation id.
func newGen() string { return randomHex(8) }

// hex16 is t in unix nanoseconds as 16 hex digits; times before 1970 count as 1970.
func hex16(t time.Time) string {
	ns := max(t.UnixNano(), 0)
	return fmt.Sprintf("%016x", uint64(ns))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b)
}
