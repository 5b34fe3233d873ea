package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ctxEvery is how many items a long iteration handles between two looks at its context.
const ctxEvery = 1024

// Objects returns the full state at rev: every object as of the newest revision ≤ rev. rev 0 is the empty
// state before the first commit (while the horizon is 0).
//
// Returns ErrFutureRevision above the head and ErrRevisionGone below the horizon (Badger would answer those
// silently wrong, see ARCHITECTURE §4).
func (s *Store) Objects(ctx context.Context, rev Revision) (*Objects, error) {
	if err := s.checkRevision(rev); err != nil {
		return nil, fmt.Errorf("objects: %w", err)
	}
	// One goroutine iterates and copies, the others decode (JSON decoding is most of the cost), batch by batch;
	// the batches are added in key order so that the result does not depend on scheduling.
	var batches []*objectBatch
	work := make(chan *objectBatch, 8)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for b := range work {
				b.decode()
			}
		})
	}
	err := s.view(ctx, uint64(rev), func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: objectsPrefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		b := &objectBatch{}
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			ref, err := parseObjectKey(item.Key())
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("%s: %w", ref, err)
			}
			b.refs, b.vals = append(b.refs, ref), append(b.vals, v)
			if len(b.refs) == ctxEvery {
				if err := ctx.Err(); err != nil {
					return err
				}
				batches = append(batches, b)
				work <- b
				b = &objectBatch{}
			}
		}
		batches = append(batches, b)
		work <- b
		return nil
	})
	close(work)
	wg.Wait()
	if err == nil {
		err = s.stillRetained(rev)
	}
	if err != nil {
		return nil, fmt.Errorf("objects at %d: %w", rev, err)
	}
	objs := &Objects{}
	for _, b := range batches {
		if b.err != nil {
			return nil, fmt.Errorf("objects at %d: %w", rev, b.err)
		}
		for _, o := range b.objs {
			objs.Add(o)
		}
	}
	return objs, nil
}

// objectBatch is a run of consecutive o| values and, once decoded, their objects.
type objectBatch struct {
	refs []ObjectRef
	vals [][]byte
	objs []Object
	err  error
}

func (b *objectBatch) decode() {
	b.objs = make([]Object, len(b.vals))
	for i, v := range b.vals {
		o, err := UnmarshalObject(b.refs[i].Kind, v)
		if err != nil {
			b.err = fmt.Errorf("%s: %w", b.refs[i], err)
			return
		}
		b.objs[i] = o
	}
	b.vals = nil
}

// stillRetained re-checks the horizon after a read: retention may have raised it (and Badger's discard
// timestamp with it) between the first check and the read, in which case the read may be wrong.
func (s *Store) stillRetained(rev Revision) error {
	if h := s.Horizon(); rev < h {
		return fmt.Errorf("revision %d, horizon %d: %w", rev, h, ErrRevisionGone)
	}
	return nil
}

// Object returns the object ref names as of revision rev.
//
// Returns ErrNotFound when it does not exist at rev, ErrFutureRevision above the head, ErrRevisionGone below the
// horizon.
func (s *Store) Object(ctx context.Context, rev Revision, ref ObjectRef) (Object, error) {
	if err := s.checkRevision(rev); err != nil {
		return nil, fmt.Errorf("object %s: %w", ref, err)
	}
	key, err := objectKey(ref)
	if err != nil || !storedKind(ref.Kind) {
		return nil, fmt.Errorf("object %s at %d: %w", ref, rev, ErrNotFound)
	}
	var o Object
	err = s.view(ctx, uint64(rev), func(txn *badger.Txn) error {
		v, err := getValue(txn, key)
		if err != nil {
			return err
		}
		o, err = UnmarshalObject(ref.Kind, v)
		return err
	})
	if err == nil {
		err = s.stillRetained(rev)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s at %d: %w", ref, rev, err)
	}
	return o, nil
}

// Changes calls fn for every change of the revisions in (from, to], in revision then Seq order, until fn returns
// false. An empty range (from ≥ to) calls nothing.
//
// Returns ErrRevisionGone when from is below the horizon (the changes leading out of from are no longer kept),
// ErrFutureRevision when to is above the head.
func (s *Store) Changes(ctx context.Context, from, to Revision, fn func(ChangeRecord) bool) error {
	if from >= to {
		return nil
	}
	if err := s.checkRevision(from); err != nil {
		return fmt.Errorf("changes from %d: %w", from, err)
	}
	if err := s.checkRevision(to); err != nil {
		return fmt.Errorf("changes to %d: %w", to, err)
	}
	return s.view(ctx, s.readTS.Load(), func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: changesPrefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		n := 0
		for it.Seek(changeKey(from+1, 0)); it.Valid(); it.Next() {
			if n++; n%ctxEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			rev, seq, err := parseChangeKey(it.Item().Key())
			if err != nil {
				return err
			}
			if rev > to {
				return nil
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			rec, err := decodeChange(rev, seq, v)
			if err != nil {
				return err
			}
			if !fn(rec) {
				return nil
			}
		}
		return nil
	})
}

func decodeChange(rev Revision, seq int, v []byte) (ChangeRecord, error) {
	var cv changeValue
	if err := json.Unmarshal(v, &cv); err != nil {
		return ChangeRecord{}, fmt.Errorf("change %d/%d: %w", rev, seq, err)
	}
	rec := ChangeRecord{Revision: rev, Seq: seq, Op: cv.Op, Ref: cv.Ref, Source: cv.Source, Time: cv.Wall, Actor: cv.Actor}
	var err error
	if cv.Before != nil {
		if rec.Before, err = UnmarshalObject(cv.Ref.Kind, cv.Before); err != nil {
			return ChangeRecord{}, fmt.Errorf("change %d/%d before: %w", rev, seq, err)
		}
	}
	if cv.After != nil {
		if rec.After, err = UnmarshalObject(cv.Ref.Kind, cv.After); err != nil {
			return ChangeRecord{}, fmt.Errorf("change %d/%d after: %w", rev, seq, err)
		}
	}
	return rec, nil
}

// Revisions calls fn for every retained revision in (from, to], oldest first, until fn returns false. A from
// below the horizon is not an error: the listing starts at the horizon. An empty range calls nothing.
//
// Returns ErrFutureRevision when to is above the head.
func (s *Store) Revisions(ctx context.Context, from, to Revision, fn func(RevisionInfo) bool) error {
	return s.revisions(ctx, from, to, false, fn)
}

// RevisionsBackward is Revisions newest first: the revisions in (from, to], from to down.
func (s *Store) RevisionsBackward(ctx context.Context, from, to Revision, fn func(RevisionInfo) bool) error {
	return s.revisions(ctx, from, to, true, fn)
}

func (s *Store) revisions(ctx context.Context, from, to Revision, backward bool, fn func(RevisionInfo) bool) error {
	if from >= to {
		return nil
	}
	if to > s.Head() {
		return fmt.Errorf("revisions to %d, head %d: %w", to, s.Head(), ErrFutureRevision)
	}
	floor := max(from+1, s.Horizon())
	seek := revisionKey(floor)
	if backward {
		seek = revisionKey(to) // a reverse iterator seeks to the last key at or before this one
	}
	return s.view(ctx, s.readTS.Load(), func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: revisionsPrefix, PrefetchValues: true, Reverse: backward})
		defer it.Close()
		n := 0
		for it.Seek(seek); it.Valid(); it.Next() {
			if n++; n%ctxEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			rev, err := parseRevisionKey(it.Item().Key())
			if err != nil {
				return err
			}
			if rev > to || rev < floor {
				return nil
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			info, err := decodeRevision(rev, v)
			if err != nil {
				return err
			}
			if !fn(info) {
				return nil
			}
		}
		return nil
	})
}

func decodeRevision(rev Revision, v []byte) (RevisionInfo, error) {
	var rv revisionValue
	if err := json.Unmarshal(v, &rv); err != nil {
		return RevisionInfo{}, fmt.Errorf("revision %d: %w", rev, err)
	}
	return RevisionInfo{Revision: rev, Time: rv.Time, Source: rv.Source, Changes: rv.Changes, Summary: rv.Summary}, nil
}

// revisionInfo reads the info of one revision; ErrNotFound when rev is not a revision.
func (s *Store) revisionInfo(ctx context.Context, rev Revision) (RevisionInfo, error) {
	var info RevisionInfo
	err := s.view(ctx, math.MaxUint64, func(txn *badger.Txn) error {
		v, err := getValue(txn, revisionKey(rev))
		if err != nil {
			return err
		}
		info, err = decodeRevision(rev, v)
		return err
	})
	return info, err
}

// RevisionAt returns the newest revision committed at or before t, by the walls Commit recorded. Before the
// first revision it returns 0 (the empty state) while the horizon is 0.
//
// Returns ErrRevisionGone when t is older than the horizon's revision, whose predecessors are no longer kept.
func (s *Store) RevisionAt(ctx context.Context, t time.Time) (Revision, error) {
	head := s.Head() // before readTS: every revision up to head is below it
	var rev Revision
	found := false
	err := s.view(ctx, s.readTS.Load(), func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: timesPrefix, Reverse: true})
		defer it.Close()
		for it.Seek(timeKey(t, math.MaxUint64)); it.Valid(); it.Next() {
			var err error
			if _, rev, err = parseTimeKey(it.Item().Key()); err != nil {
				return err
			}
			if rev <= head { // a newer revision may have been committed since head was read
				found = true
				return nil
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return 0, fmt.Errorf("revision at %s: %w", t.Format(time.RFC3339Nano), err)
	case !found && s.Horizon() == 0:
		return 0, nil
	case !found || rev < s.Horizon():
		return 0, fmt.Errorf("revision at %s, horizon %d: %w", t.Format(time.RFC3339Nano), s.Horizon(), ErrRevisionGone)
	}
	return rev, nil
}
