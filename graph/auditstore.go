package graph

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// AuditStore keeps what audit events taught kiem and the graph does not hold: when identities were seen, which
// group memberships they authenticated with, which requests each principal made, how far a log was read, and the
// actors of changes whose revision has not been matched yet.
//
// It is a Badger database of its own, apart from the history store: its records are overwritten many times a
// second (a last-seen time moves with every request), which in the history store would leave a version per write
// until the retention horizon passed them. Here Badger keeps one version and compaction drops the rest.
//
// Every record merges monotonically (first seen is the minimum, last seen the maximum), so applying the same
// events twice leaves the store as applying them once: ingestion is idempotent on the events, whatever their
// order, without a per-event record.
//
//	u <principal> <verb> <group> <resource> <subresource> <namespace> <name> <nonResourceURL> → Seen   (usage)
//	i <user>                → Seen    a user (or ServiceAccount user name) seen
//	g <group>               → Seen    a group seen
//	m <user> <group>        → Seen    a membership seen
//	c <name>                → bytes   a cursor (a followed log's position), owned by the caller
//	p <auditID>             → JSON    a PendingActor
//	w                       → JSON    Coverage
//
// Parts are length-prefixed (uvarint), so that any string, NUL included, keeps records apart and a prefix scan
// by principal or user finds exactly its records.
type AuditStore struct {
	db  *badger.DB
	log *slog.Logger
	mu  sync.Mutex // serialises Apply: read-modify-write of merged records
}

// AuditStoreOptions configures OpenAuditStore. Set exactly one of Dir and InMemory.
type AuditStoreOptions struct {
	Dir      string
	InMemory bool
	Logger   *slog.Logger
}

// Record prefixes of the audit store.
const (
	auditUsage      = 'u'
	auditUser       = 'i'
	auditGroup      = 'g'
	auditMembership = 'm'
	auditCursor     = 'c'
	auditPending    = 'p'
	auditCoverage   = 'w'
)

// OpenAuditStore opens (creating if needed) an audit store.
func OpenAuditStore(ctx context.Context, opts AuditStoreOptions) (*AuditStore, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.InMemory == (opts.Dir != "") {
		return nil, errors.New("open audit store: set exactly one of Dir and InMemory")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "audit-store")
	if !opts.InMemory {
		if err := removeEmptyLogs(opts.Dir, log); err != nil {
			return nil, fmt.Errorf("open audit store %s: %w", opts.Dir, err)
		}
	}
	o := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{log}).
		WithNumVersionsToKeep(1).
		WithSyncWrites(true). // a batch acknowledged to the apiserver is on disk
		WithMetricsEnabled(false).
		WithDetectConflicts(false). // one writer: Apply holds mu
		// Its records are small and few next to the history's: small memtables and caches keep it light.
		WithMemTableSize(16 << 20).WithNumMemtables(2).WithBlockCacheSize(16 << 20).WithIndexCacheSize(8 << 20).
		WithValueThreshold(1 << 10).
		WithCompactL0OnClose(true)
	if opts.InMemory {
		o = o.WithDir("").WithValueDir("").WithInMemory(true).WithCompression(options.Snappy)
	}
	db, err := badger.Open(o)
	if err != nil {
		return nil, fmt.Errorf("open audit store %s: %w", opts.Dir, err)
	}
	return &AuditStore{db: db, log: log}, nil
}

// Close closes the store.
func (a *AuditStore) Close() error { return a.db.Close() }

// PendingActor is the actor of a write an audit event reported, kept until the change it made is found in the
// history: audit batches arrive seconds after the watch event, and sometimes before it.
type PendingActor struct {
	Actor Actor `json:"actor"`
	// Object is the object written; UID and ResourceVersion are those the apiserver answered with. A deletion has
	// no new resourceVersion: it is matched by UID.
	Object          ObjectRef `json:"object"`
	UID             string    `json:"uid"`
	ResourceVersion string    `json:"resourceVersion,omitempty"`
	Delete          bool      `json:"delete,omitempty"`
	// Time is when the request was received; a pending actor older than the store's patience is dropped.
	Time time.Time `json:"time"`
}

// AuditBatch collects the effects of a batch of audit events; AuditStore.Apply merges them in one transaction.
// The zero value is ready to use.
type AuditBatch struct {
	seen     map[string]Seen // encoded key → merged times
	cursors  map[string][]byte
	pending  map[string]PendingActor
	resolved map[string]bool
	events   uint64
	window   Seen
}

func (b *AuditBatch) see(key []byte, at time.Time) {
	if b.seen == nil {
		b.seen = map[string]Seen{}
	}
	k := string(key)
	b.seen[k] = b.seen[k].merge(Seen{First: at, Last: at})
}

// Use records that principal made a request described by k at time at.
func (b *AuditBatch) Use(principal string, k UsageKey, at time.Time) {
	b.see(usageKey(principal, k), at)
}

// SeeUser records that user (a user name, a ServiceAccount's included) made a request at time at.
func (b *AuditBatch) SeeUser(user string, at time.Time) { b.see(auditKey(auditUser, user), at) }

// SeeGroup records that a request at time at carried group.
func (b *AuditBatch) SeeGroup(group string, at time.Time) { b.see(auditKey(auditGroup, group), at) }

// SeeMembership records that user authenticated with group at time at.
func (b *AuditBatch) SeeMembership(user, group string, at time.Time) {
	b.see(auditKey(auditMembership, user, group), at)
}

// Event counts one ingested event received at time at, widening the coverage.
func (b *AuditBatch) Event(at time.Time) {
	b.events++
	b.window = b.window.merge(Seen{First: at, Last: at})
}

// SetCursor stores val under name, atomically with the rest of the batch: a log follower's position.
func (b *AuditBatch) SetCursor(name string, val []byte) {
	if b.cursors == nil {
		b.cursors = map[string][]byte{}
	}
	b.cursors[name] = val
}

// AddPending keeps p until ResolvePending(auditID).
func (b *AuditBatch) AddPending(auditID string, p PendingActor) {
	if b.pending == nil {
		b.pending = map[string]PendingActor{}
	}
	b.pending[auditID] = p
	delete(b.resolved, auditID)
}

// ResolvePending drops the pending actor of auditID: matched, or given up on.
func (b *AuditBatch) ResolvePending(auditID string) {
	if b.resolved == nil {
		b.resolved = map[string]bool{}
	}
	b.resolved[auditID] = true
	delete(b.pending, auditID)
}

// Len is the number of records the batch writes.
func (b *AuditBatch) Len() int {
	return len(b.seen) + len(b.cursors) + len(b.pending) + len(b.resolved)
}

// Apply merges b into the store in one durable transaction. A batch too big for one transaction is an error
// and writes nothing; keep batches to a few thousand records.
func (a *AuditStore) Apply(ctx context.Context, b *AuditBatch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.Len() == 0 && b.events == 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.db.Update(func(txn *badger.Txn) error {
		for k, s := range b.seen {
			key := []byte(k)
			old, err := getSeen(txn, key)
			if err != nil {
				return err
			}
			merged := old.merge(s)
			if merged.First.Equal(old.First) && merged.Last.Equal(old.Last) {
				continue // nothing new: most usage records of a busy principal
			}
			if err := txn.Set(key, encodeSeen(merged)); err != nil {
				return err
			}
		}
		for name, v := range b.cursors {
			if err := txn.Set(auditKey(auditCursor, name), v); err != nil {
				return err
			}
		}
		for id, p := range b.pending {
			v, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if err := txn.Set(auditKey(auditPending, id), v); err != nil {
				return err
			}
		}
		for id := range b.resolved {
			if err := txn.Delete(auditKey(auditPending, id)); err != nil {
				return err
			}
		}
		if b.events > 0 {
			cov, err := getCoverage(txn)
			if err != nil {
				return err
			}
			cov.Seen = cov.merge(b.window)
			cov.Events += b.events
			v, err := json.Marshal(cov)
			if err != nil {
				return err
			}
			return txn.Set([]byte{auditCoverage}, v)
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("audit store: batch of %d records too big for one transaction", b.Len())
	}
	if err != nil {
		return fmt.Errorf("audit store: apply batch: %w", err)
	}
	return nil
}

// Usage returns what principal was seen doing, in key order.
func (a *AuditStore) Usage(ctx context.Context, principal string) ([]Usage, error) {
	var out []Usage
	err := a.scan(ctx, auditKey(auditUsage, principal), func(key, val []byte) (bool, error) {
		u, err := decodeUsage(key, val)
		if err != nil {
			return false, err
		}
		out = append(out, u)
		return true, nil
	})
	return out, err
}

// EachUsage calls fn with every usage record, grouped by principal, until fn returns false.
func (a *AuditStore) EachUsage(ctx context.Context, fn func(Usage) bool) error {
	return a.scan(ctx, []byte{auditUsage}, func(key, val []byte) (bool, error) {
		u, err := decodeUsage(key, val)
		if err != nil {
			return false, err
		}
		return fn(u), nil
	})
}

// UserSeen returns when a user name was seen making requests; ok is false when never.
func (a *AuditStore) UserSeen(ctx context.Context, user string) (s Seen, ok bool, err error) {
	return a.getSeen(ctx, auditKey(auditUser, user))
}

// GroupSeen returns when a group was seen on a request; ok is false when never.
func (a *AuditStore) GroupSeen(ctx context.Context, group string) (s Seen, ok bool, err error) {
	return a.getSeen(ctx, auditKey(auditGroup, group))
}

// Membership is a group a user was seen authenticating with.
type Membership struct {
	User  string `json:"user"`
	Group string `json:"group"`
	Seen
}

// MembershipSeen returns when user was seen authenticating with group; ok is false when never.
func (a *AuditStore) MembershipSeen(ctx context.Context, user, group string) (s Seen, ok bool, err error) {
	return a.getSeen(ctx, auditKey(auditMembership, user, group))
}

// EachMembership calls fn with every membership seen, grouped by user, until fn returns false.
func (a *AuditStore) EachMembership(ctx context.Context, fn func(Membership) bool) error {
	return a.scan(ctx, []byte{auditMembership}, func(key, val []byte) (bool, error) {
		parts, err := splitAuditKey(key[1:], 2)
		if err != nil {
			return false, err
		}
		s, err := decodeSeen(val)
		if err != nil {
			return false, err
		}
		return fn(Membership{User: parts[0], Group: parts[1], Seen: s}), nil
	})
}

// Coverage returns the span of the events ingested so far (zero before the first).
func (a *AuditStore) Coverage(ctx context.Context) (Coverage, error) {
	var c Coverage
	err := a.view(ctx, func(txn *badger.Txn) error {
		var err error
		c, err = getCoverage(txn)
		return err
	})
	return c, err
}

// Cursor returns the value SetCursor stored under name; ok is false when none.
func (a *AuditStore) Cursor(ctx context.Context, name string) (val []byte, ok bool, err error) {
	err = a.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, auditKey(auditCursor, name))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		val, ok = v, err == nil
		return err
	})
	return val, ok, err
}

// Pending returns every pending actor by audit ID.
func (a *AuditStore) Pending(ctx context.Context) (map[string]PendingActor, error) {
	out := map[string]PendingActor{}
	err := a.scan(ctx, []byte{auditPending}, func(key, val []byte) (bool, error) {
		parts, err := splitAuditKey(key[1:], 1)
		if err != nil {
			return false, err
		}
		var p PendingActor
		if err := json.Unmarshal(val, &p); err != nil {
			return false, fmt.Errorf("pending actor %q: %w", parts[0], err)
		}
		out[parts[0]] = p
		return true, nil
	})
	return out, err
}

// Size is the bytes the store occupies on disk (LSM and value log).
func (a *AuditStore) Size() int64 {
	lsm, vlog := a.db.Size()
	return lsm + vlog
}

func (a *AuditStore) view(ctx context.Context, fn func(*badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return a.db.View(fn)
}

func (a *AuditStore) getSeen(ctx context.Context, key []byte) (s Seen, ok bool, err error) {
	err = a.view(ctx, func(txn *badger.Txn) error {
		s, err = getSeen(txn, key)
		ok = !s.Last.IsZero()
		return err
	})
	return s, ok, err
}

// scan calls fn with every record under prefix in key order; key and val are valid during the call only.
func (a *AuditStore) scan(ctx context.Context, prefix []byte, fn func(key, val []byte) (bool, error)) error {
	return a.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			var cont bool
			err := item.Value(func(val []byte) error {
				var err error
				cont, err = fn(item.Key(), val)
				return err
			})
			if err != nil || !cont {
				return err
			}
		}
		return nil
	})
}

func getSeen(txn *badger.Txn, key []byte) (Seen, error) {
	v, err := getValue(txn, key)
	if errors.Is(err, ErrNotFound) {
		return Seen{}, nil
	} else if err != nil {
		return Seen{}, err
	}
	return decodeSeen(v)
}

func getCoverage(txn *badger.Txn) (Coverage, error) {
	var c Coverage
	v, err := getValue(txn, []byte{auditCoverage})
	if errors.Is(err, ErrNotFound) {
		return c, nil
	} else if err != nil {
		return c, err
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("audit coverage: %w", err)
	}
	return c, nil
}

// auditKey is prefix then each part length-prefixed.
func auditKey(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += binary.MaxVarintLen64 + len(p)
	}
	k := make([]byte, 1, n)
	k[0] = prefix
	for _, p := range parts {
		k = binary.AppendUvarint(k, uint64(len(p)))
		k = append(k, p...)
	}
	return k
}

// splitAuditKey splits the length-prefixed parts after a key's prefix byte; it wants exactly n.
func splitAuditKey(b []byte, n int) ([]string, error) {
	parts := make([]string, 0, n)
	for len(b) > 0 {
		l, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < l {
			return nil, errors.New("audit store: corrupt key")
		}
		parts = append(parts, string(b[w:w+int(l)]))
		b = b[w+int(l):]
	}
	if len(parts) != n {
		return nil, fmt.Errorf("audit store: key has %d parts, want %d", len(parts), n)
	}
	return parts, nil
}

func usageKey(principal string, k UsageKey) []byte {
	return auditKey(auditUsage, principal, k.Verb, k.APIGroup, k.Resource, k.Subresource, k.Namespace, k.Name, k.NonResourceURL)
}

func decodeUsage(key, val []byte) (Usage, error) {
	p, err := splitAuditKey(key[1:], 8)
	if err != nil {
		return Usage{}, err
	}
	s, err := decodeSeen(val)
	if err != nil {
		return Usage{}, err
	}
	return Usage{Principal: p[0], UsageKey: UsageKey{Verb: p[1], APIGroup: p[2], Resource: p[3], Subresource: p[4],
		Namespace: p[5], Name: p[6], NonResourceURL: p[7]}, First: s.First, Last: s.Last}, nil
}

// A Seen is stored as two varints of Unix nanoseconds.
func encodeSeen(s Seen) []byte {
	b := binary.AppendVarint(nil, s.First.UnixNano())
	return binary.AppendVarint(b, s.Last.UnixNano())
}

func decodeSeen(v []byte) (Seen, error) {
	first, n := binary.Varint(v)
	if n <= 0 {
		return Seen{}, errors.New("audit store: corrupt time")
	}
	last, m := binary.Varint(v[n:])
	if m <= 0 || n+m != len(v) {
		return Seen{}, errors.New("audit store: corrupt time")
	}
	return Seen{First: time.Unix(0, first).UTC(), Last: time.Unix(0, last).UTC()}, nil
}
