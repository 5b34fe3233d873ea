package graph

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Errors of the store. Callers branch on them with errors.Is; the store wraps them with context.
var (
	// ErrNotFound means the object (or change) does not exist at the revision asked.
	ErrNotFound = errors.New("not found")
	// ErrRevisionGone means the revision is older than the retention horizon: its state is no longer kept.
	ErrRevisionGone = errors.New("revision no longer retained")
	// ErrFutureRevision means the revision is newer than the head.
	ErrFutureRevision = errors.New("revision not committed yet")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrIncompatibleStore means the directory holds a store of another schema version, or no kiem store.
	ErrIncompatibleStore = errors.New("incompatible store")
)

// StoreOptions configure OpenStore.
type StoreOptions struct {
	// Dir is the directory of the store, created if missing. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory, with small caches (tests). Dir must be empty.
	InMemory bool
	// Retention says which revisions to keep. The zero value keeps everything.
	Retention Retention
	// Logger receives the store's own messages and Badger's at WARNING and above. nil discards them.
	Logger *slog.Logger
	// GCInterval is the period of the background loop that applies Retention and runs the value-log GC.
	// Zero means 10 minutes.
	GCInterval time.Duration

	now          func() time.Time // tests: the clock of age retention and of zero walls; nil = time.Now
	memTableSize int64            // tests: small memory settings around this memtable size (InMemory: 8 MiB)
}

// Store is kiem's versioned object store: Badger v4 in managed mode, where the commit timestamp of a write is
// the revision it creates (ARCHITECTURE §4). The key layout and the timestamp rules are in keys.go.
//
// Commit is the only writer of revisions and is serialised; reads at any retained revision run concurrently with
// it and with each other. A revision becomes visible (Head) only after its commit returned, durable.
//
// Crash safety: a revision commits in one Badger transaction, or, when too large for one, as a WriteBatch at its
// timestamp followed by a transaction holding m|head. A kill in between leaves versions above the recorded head;
// OpenStore finds them and rewrites every such key, at a fresh timestamp that is never a revision, to its value
// as of the head (repairLocked), so the interrupted revision is never read and its timestamp never reused.
//
// Revision numbers only grow but are not dense: SetActor, retention and repair commit at timestamps of their own.
type Store struct {
	db   *badger.DB
	opts StoreOptions
	log  *slog.Logger
	now  func() time.Time

	// mu serialises every write. The fields below it are written only under mu.
	mu          sync.Mutex
	lastTS      uint64     // newest timestamp any write used, finished or not
	lastWall    time.Time  // wall time of the head revision
	revs        []Revision // retained revisions, oldest first; kept only for count retention
	schemaSaved bool       // m|schema is on disk
	broken      error      // set when a failed revision could not be repaired: writes refuse until reopen

	head    atomic.Uint64 // published head revision
	horizon atomic.Uint64 // oldest readable revision
	readTS  atomic.Uint64 // newest finished write: plain keys are read here

	retainMu sync.Mutex // one retention pass at a time

	closeMu sync.RWMutex // readers and writers hold it shared; Close exclusively
	closed  bool

	cancel context.CancelFunc
	nudge  chan struct{}
	done   chan struct{}
}

// OpenStore opens (creating if needed) the store described by opts, repairs what a kill left (an interrupted
// revision; the empty log files Badger itself cannot open), raises the horizon to what opts.Retention asks for,
// and starts the background loop that applies retention and runs the value-log GC; Close stops it. The loop
// lives until Close, not until ctx is done: ctx bounds the opening only.
//
// Returns ErrIncompatibleStore when the directory holds a store of another schema version or something that is
// not a kiem store.
func OpenStore(ctx context.Context, opts StoreOptions) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.InMemory == (opts.Dir != "") {
		return nil, errors.New("open store: set exactly one of Dir and InMemory")
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 10 * time.Minute
	}
	s := &Store{opts: opts, log: opts.Logger, now: opts.now, nudge: make(chan struct{}, 1), done: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "store")
	if s.now == nil {
		s.now = time.Now
	}
	if !opts.InMemory {
		if err := removeEmptyLogs(opts.Dir, s.log); err != nil {
			return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
		}
	}
	db, err := badger.OpenManaged(badgerOptions(opts, s.log))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	s.db = db
	if err := s.load(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open store %s: %w", opts.Dir, err), db.Close())
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go s.loop(loopCtx)
	return s, nil
}

func badgerOptions(opts StoreOptions, log *slog.Logger) badger.Options {
	o := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{log}).
		WithDetectConflicts(false). // single writer; conflict detection leaks memory in managed mode
		WithNumVersionsToKeep(1).   // with discardTs = horizon: the state at the horizon stays exact
		WithSyncWrites(true).       // a returned Commit is durable
		WithMetricsEnabled(false).
		WithNumCompactors(2).
		WithCompactL0OnClose(true)
	mt := opts.memTableSize
	if mt == 0 && opts.InMemory {
		mt = 8 << 20
	}
	if mt > 0 {
		// Badger refuses a value threshold above its largest batch, 15% of the memtable.
		o = o.WithMemTableSize(mt).WithNumMemtables(2).WithBlockCacheSize(16 << 20).WithIndexCacheSize(16 << 20).
			WithValueThreshold(min(1<<20, mt*15/100/2))
	} else {
		o = o.WithMemTableSize(64 << 20).WithNumMemtables(3).WithBlockCacheSize(128 << 20).WithIndexCacheSize(64 << 20)
	}
	if opts.InMemory {
		o = o.WithDir("").WithValueDir("").WithInMemory(true).WithCompression(options.Snappy)
	}
	return o
}

// load reads the meta keys, checks the schema, repairs an interrupted revision and sets the discard timestamp.
func (s *Store) load(ctx context.Context) error {
	// Taken before any write and while discardTs is still 0, so no compaction can yet have dropped a version
	// above the head: the repair timestamp must be above every version the interrupted revision left.
	maxVersion := s.db.MaxVersion()
	meta := map[string]uint64{}
	var schema []byte
	err := s.view(ctx, math.MaxUint64, func(txn *badger.Txn) error {
		for _, k := range [][]byte{keyHead, keyTS, keyHorizon} {
			v, err := getValue(txn, k)
			if errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			if meta[string(k)], err = decodeUint64(v); err != nil {
				return fmt.Errorf("meta %s: %w", k, err)
			}
		}
		v, err := getValue(txn, keySchema)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		schema = v
		return err
	})
	if err != nil {
		return err
	}
	if err := s.checkSchema(ctx, schema); err != nil {
		return err
	}
	head, metaTS, horizon := meta[string(keyHead)], meta[string(keyTS)], meta[string(keyHorizon)]
	s.lastTS = max(maxVersion, head, metaTS)
	s.readTS.Store(max(head, metaTS))
	s.head.Store(head)
	s.horizon.Store(horizon)
	s.db.SetDiscardTs(horizon)
	if err := s.repairLocked(ctx); err != nil {
		return fmt.Errorf("repair interrupted revision: %w", err)
	}
	if head > 0 {
		info, err := s.revisionInfo(ctx, Revision(head))
		if err != nil {
			return fmt.Errorf("head revision %d: %w", head, err)
		}
		s.lastWall = info.Time
	}
	if s.opts.Retention.Revisions > 0 {
		err := s.Revisions(ctx, 0, Revision(head), func(ri RevisionInfo) bool {
			s.revs = append(s.revs, ri.Revision)
			return true
		})
		if err != nil {
			return err
		}
	}
	// Raising the horizon is one small write: do it now, so that a store reopened with a shorter retention
	// never serves what it should no longer keep. Deleting the history below it is left to the loop.
	s.retainMu.Lock()
	defer s.retainMu.Unlock()
	return s.applyHorizonRLocked(ctx, s.now())
}

// checkSchema accepts the current schema version, or no version at all in a store without any key (new).
func (s *Store) checkSchema(ctx context.Context, schema []byte) error {
	if schema != nil {
		if len(schema) != 4 {
			return fmt.Errorf("%w: %s holds a malformed schema version %x", ErrIncompatibleStore, s.where(), schema)
		}
		if got := binary.BigEndian.Uint32(schema); got > storeSchema {
			return fmt.Errorf("%w: %s has schema version %d, written by a newer kiem; this kiem reads version %d: run that newer kiem",
				ErrIncompatibleStore, s.where(), got, storeSchema)
		} else if got != storeSchema {
			// Nothing is rewritten in place: a store is the audit record, and a failed conversion must not cost it.
			return fmt.Errorf("%w: %s has schema version %d, written by an older kiem; this kiem reads version %d: "+
				"export it with that kiem ('kiem export --data-dir DIR -o snapshot.yaml') and serve the export into a new --data-dir (docs/operations.md)",
				ErrIncompatibleStore, s.where(), got, storeSchema)
		}
		s.schemaSaved = true
		return nil
	}
	// m|schema is the first entry of the first write ever, so any key without it is not kiem's.
	return s.view(ctx, math.MaxUint64, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
		defer it.Close()
		if it.Rewind(); it.Valid() {
			return fmt.Errorf("%w: %s holds keys but no kiem schema version (this kiem reads version %d)", ErrIncompatibleStore, s.where(), storeSchema)
		}
		return nil
	})
}

func (s *Store) where() string {
	if s.opts.InMemory {
		return "the in-memory store"
	}
	return s.opts.Dir
}

func schemaValue() []byte { return binary.BigEndian.AppendUint32(nil, storeSchema) }

// Head returns the newest committed revision, 0 before the first commit.
func (s *Store) Head() Revision { return Revision(s.head.Load()) }

// Horizon returns the oldest readable revision: reads below it fail with ErrRevisionGone. It is 0 while
// retention has dropped nothing (revision 0 is the empty state before the first commit).
func (s *Store) Horizon() Revision { return Revision(s.horizon.Load()) }

// SizeBytes returns the bytes the store occupies on disk (its SST, value-log, WAL and manifest files; the
// space the filesystem allocated, so preallocated log files count for what they hold). For an in-memory store
// it returns the size of its flushed tables.
func (s *Store) SizeBytes() int64 {
	if s.opts.InMemory {
		var n int64
		for _, t := range s.db.Tables() {
			n += int64(t.OnDiskSize)
		}
		return n
	}
	var n int64
	_ = filepath.WalkDir(s.opts.Dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file removed by a concurrent compaction: skip it
		}
		if info, err := d.Info(); err == nil {
			n += allocated(info)
		}
		return nil
	})
	return n
}

// Close stops the background loop and waits for it, waits for a commit in progress, then closes Badger.
// Reads and writes after Close return ErrClosed. Closing twice returns nil.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// view runs fn in a read transaction at ts and discards it. It is the only way reads reach Badger.
func (s *Store) view(ctx context.Context, ts uint64, fn func(*badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	txn := s.db.NewTransactionAt(ts, false)
	defer txn.Discard()
	return fn(txn)
}

// kv is one encoded write: a set of key to val, or a delete of key.
type kv struct {
	key, val []byte
	del      bool
}

// update writes body then tail at timestamp ts, durably. When both fit in one transaction they commit together
// atomically. Otherwise body goes through a WriteBatch (several transactions at ts) and tail commits in its own
// transaction only after every body transaction succeeded: tail carries the meta keys (m|head, m|ts) that
// declare the write finished. It is the only way writes reach Badger; callers hold s.mu and encode every entry
// beforehand.
func (s *Store) update(ts uint64, body, tail []kv) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	txn := s.db.NewTransactionAt(ts, true)
	defer txn.Discard()
	for _, part := range [][]kv{body, tail} {
		for _, e := range part {
			err := setOrDelete(txn, e)
			if errors.Is(err, badger.ErrTxnTooBig) {
				return s.updateBatched(ts, body, tail)
			} else if err != nil {
				return err
			}
		}
	}
	return txn.CommitAt(ts, nil)
}

func (s *Store) updateBatched(ts uint64, body, tail []kv) error {
	wb := s.db.NewWriteBatchAt(ts)
	defer wb.Cancel()
	for _, e := range body {
		var err error
		if e.del {
			err = wb.Delete(e.key)
		} else {
			err = wb.SetEntry(badger.NewEntry(e.key, e.val))
		}
		if err != nil {
			return fmt.Errorf("write batch: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write batch: %w", err)
	}
	txn := s.db.NewTransactionAt(ts, true)
	defer txn.Discard()
	for _, e := range tail {
		if err := setOrDelete(txn, e); err != nil {
			return err
		}
	}
	return txn.CommitAt(ts, nil)
}

func setOrDelete(txn *badger.Txn, e kv) error {
	if e.del {
		return txn.Delete(e.key)
	}
	return txn.SetEntry(badger.NewEntry(e.key, e.val))
}

// getValue returns a copy of key's value as txn sees it, ErrNotFound when absent.
func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

// badgerLogger bridges Badger's logger to slog, keeping warnings and errors only: Badger logs every compaction
// at INFO.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "source", "badger")
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "source", "badger")
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}

// allocated returns the bytes the filesystem allocated for a file where it tells (Badger preallocates its
// logs sparsely, so their apparent size overstates them), else the file's size.
func allocated(info fs.FileInfo) int64 {
	if n, ok := allocatedBlocks(info); ok {
		return min(n, info.Size())
	}
	return info.Size()
}
