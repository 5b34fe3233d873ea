package graph

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Retention says which revisions a Store keeps. The zero value keeps every revision.
//
// Age keeps every revision newer than Age, plus the one that was current Age ago, so that any time inside the
// window resolves to a readable revision. Revisions keeps the last Revisions revisions. When both are set, a
// revision is kept while either rule keeps it. The head is always kept.
//
// Retention moves the horizon (Store.Horizon): the store refuses reads below it, tells Badger that versions at
// or below it may be compacted away (keeping, per key, the newest version at the horizon, so the state at the
// horizon stays exact), and deletes the change log, revision info and time index of the revisions below it.
// Count retention lets up to 1% more revisions pile up before it moves the horizon, so that steady commits do
// not each pay for a retention write.
type Retention struct {
	// Age is how far back revisions are kept; zero sets no age limit.
	Age time.Duration
	// Revisions is how many of the newest revisions are kept; zero sets no count limit.
	Revisions uint64
}

// IsZero reports whether r keeps everything.
func (r Retention) IsZero() bool { return r.Age <= 0 && r.Revisions == 0 }

// String renders r the way ParseRetention reads it: "30d", "36h0m0s", "10000", "30d,10000", or "" for
// keep-everything.
func (r Retention) String() string {
	var parts []string
	if r.Age > 0 {
		if r.Age%(24*time.Hour) == 0 {
			parts = append(parts, strconv.FormatInt(int64(r.Age/(24*time.Hour)), 10)+"d")
		} else {
			parts = append(parts, r.Age.String())
		}
	}
	if r.Revisions > 0 {
		parts = append(parts, strconv.FormatUint(r.Revisions, 10))
	}
	return strings.Join(parts, ",")
}

// ParseRetention reads the --retention flag: a duration ("720h", "90m", or days as "30d"), a number of
// revisions ("10000"), or both separated by a comma ("30d,10000"). The empty string and "0" keep everything.
func ParseRetention(s string) (Retention, error) {
	var r Retention
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return r, nil
	}
	var sawAge, sawCount bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if n, err := strconv.ParseUint(part, 10, 64); err == nil {
			if sawCount {
				return Retention{}, fmt.Errorf("retention %q: two revision counts", s)
			}
			r.Revisions, sawCount = n, true
			continue
		}
		d, err := parseAge(part)
		if err != nil {
			return Retention{}, fmt.Errorf("retention %q: %q is neither a duration (720h, 30d) nor a revision count", s, part)
		}
		if d <= 0 || sawAge {
			return Retention{}, fmt.Errorf("retention %q: want one positive duration", s)
		}
		r.Age, sawAge = d, true
	}
	return r, nil
}

func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// loop is the store's background goroutine: on every tick it applies retention and runs the value-log GC; a
// poke from Commit (count retention) applies retention at once. Close cancels ctx and waits for it.
func (s *Store) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	retain := func() {
		if err := s.retain(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.Error("apply retention", "err", err)
		}
	}
	retain() // a restart may have left entries below the horizon, and time has passed
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.nudge:
			retain()
		case <-t.C:
			retain()
			s.gcValueLog(ctx)
		}
	}
}

// poke asks the loop for a retention pass without waiting.
func (s *Store) poke() {
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// gcValueLog rewrites value-log files until Badger finds none worth it. Graph values sit in the LSM (they are
// far below Badger's value threshold), so this rarely reclaims anything; it is there for large values.
func (s *Store) gcValueLog(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected), errors.Is(err, badger.ErrGCInMemoryMode):
		default:
			s.log.Error("value log GC", "err", err)
		}
		return
	}
}

// retain applies the retention policy as of now: it raises the horizon when the policy allows, then deletes the
// change log, revision info and time index entries below the horizon (also those a pass cut short left).
func (s *Store) retain(ctx context.Context, now time.Time) error {
	if s.opts.Retention.IsZero() && s.Horizon() == 0 {
		return nil // keeps everything, and never dropped anything
	}
	s.retainMu.Lock()
	defer s.retainMu.Unlock()
	if err := s.applyHorizonRLocked(ctx, now); err != nil {
		return err
	}
	return s.dropBelowHorizon(ctx)
}

// applyHorizonRLocked raises the horizon to what the policy asks for as of now. The caller holds retainMu.
func (s *Store) applyHorizonRLocked(ctx context.Context, now time.Time) error {
	h, err := s.retentionHorizon(ctx, now)
	if err != nil {
		return err
	}
	if h > s.Horizon() {
		if err := s.raiseHorizon(h); err != nil {
			return fmt.Errorf("raise horizon to %d: %w", h, err)
		}
	}
	return nil
}

// retentionHorizon returns the horizon the policy asks for as of now; 0 asks for none.
func (s *Store) retentionHorizon(ctx context.Context, now time.Time) (Revision, error) {
	r := s.opts.Retention
	var byCount, byAge Revision
	if r.Revisions > 0 {
		s.mu.Lock()
		if n := uint64(len(s.revs)); n > r.Revisions {
			byCount = s.revs[n-r.Revisions]
		}
		s.mu.Unlock()
	}
	if r.Age > 0 {
		rev, err := s.RevisionAt(ctx, now.Add(-r.Age))
		if err != nil && !errors.Is(err, ErrRevisionGone) {
			return 0, err
		}
		byAge = rev
	}
	switch {
	case r.Revisions > 0 && r.Age > 0:
		return min(byCount, byAge), nil
	case r.Revisions > 0:
		return byCount, nil
	}
	return byAge, nil
}

// raiseHorizon persists h as the horizon, then refuses reads below it, then lets Badger compact versions at or
// below it away, in that order: a read that began before must find the new horizon when it re-checks
// (stillRetained) before discarded versions can have affected it.
func (s *Store) raiseHorizon(h Revision) error {
	s.mu.Lock()
	err := s.writeAsideLocked([]kv{{key: keyHorizon, val: encodeUint64(uint64(h))}})
	if err == nil {
		i := 0
		for i < len(s.revs) && s.revs[i] < h {
			i++
		}
		s.revs = append(s.revs[:0], s.revs[i:]...)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.horizon.Store(uint64(h))
	s.db.SetDiscardTs(uint64(h))
	s.log.Info("retention horizon raised", "horizon", uint64(h))
	return nil
}

// dropChunk bounds the deletes of one retention write, so that it stays one small transaction.
const dropChunk = 4096

// dropBelowHorizon deletes the plain keys of the revisions below the horizon, a chunk per write so that commits
// are never held up for long. The time index is in time order, which Commit keeps equal to revision order.
func (s *Store) dropBelowHorizon(ctx context.Context) error {
	h := s.Horizon()
	revOf := map[byte]func([]byte) (Revision, error){
		prefixChange:   func(k []byte) (Revision, error) { r, _, err := parseChangeKey(k); return r, err },
		prefixRevision: parseRevisionKey,
		prefixTime:     func(k []byte) (Revision, error) { _, r, err := parseTimeKey(k); return r, err },
	}
	for _, prefix := range [][]byte{changesPrefix, revisionsPrefix, timesPrefix} {
		for {
			var dels []kv
			err := s.view(ctx, s.readTS.Load(), func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
				defer it.Close()
				for it.Rewind(); it.Valid() && len(dels) < dropChunk; it.Next() {
					rev, err := revOf[prefix[0]](it.Item().Key())
					if err != nil {
						return err
					}
					if rev >= h {
						break
					}
					dels = append(dels, kv{key: it.Item().KeyCopy(nil), del: true})
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(dels) == 0 {
				break
			}
			s.mu.Lock()
			err = s.writeAsideLocked(dels)
			s.mu.Unlock()
			if err != nil {
				return fmt.Errorf("drop history below %d: %w", h, err)
			}
		}
	}
	return nil
}
