package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Side records are kiem's own data kept in the same store as the cluster's history, so that they share its
// durability and its directory: saved filters, alerts, the webhook outbox. They live under keys "x|<key>", are
// not versioned (read at the newest write) and untouched by retention.
//
//	x|<key>     a side record; the caller owns the layout of <key> and the value.
var sidePrefix = []byte{'x', keySep}

func sideKey(key []byte) []byte { return append(append([]byte(nil), sidePrefix...), key...) }

// SideTxn reads and writes side records inside ViewSide or UpdateSide. It sees its own writes.
type SideTxn struct {
	txn *badger.Txn
}

// Get returns a copy of key's value, ErrNotFound when there is none.
func (t *SideTxn) Get(key []byte) ([]byte, error) { return getValue(t.txn, sideKey(key)) }

// Set writes key. Only in UpdateSide.
func (t *SideTxn) Set(key, val []byte) error {
	if err := t.txn.SetEntry(badger.NewEntry(sideKey(key), val)); err != nil {
		return sideErr(err)
	}
	return nil
}

// Delete removes key. Only in UpdateSide.
func (t *SideTxn) Delete(key []byte) error {
	if err := t.txn.Delete(sideKey(key)); err != nil {
		return sideErr(err)
	}
	return nil
}

// ErrSideTooBig means an UpdateSide wrote more than one transaction holds; nothing was written.
var ErrSideTooBig = errors.New("side write too big for one transaction")

func sideErr(err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return ErrSideTooBig
	}
	return err
}

// Scan calls fn with every record whose key starts with prefix, in key order (reverse: descending), from start
// when it is not nil (inclusive; in reverse order, the greatest key ≤ start), until fn returns false. key and val
// are valid only during the call.
func (t *SideTxn) Scan(prefix, start []byte, reverse bool, fn func(key, val []byte) (bool, error)) error {
	p := sideKey(prefix)
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, Reverse: reverse, PrefetchValues: false})
	defer it.Close()
	seek := p
	switch {
	case start != nil:
		seek = sideKey(start)
	case reverse:
		seek = append(bytes.Clone(p), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	}
	for it.Seek(seek); it.ValidForPrefix(p); it.Next() {
		item := it.Item()
		var cont bool
		err := item.Value(func(val []byte) error {
			var err error
			cont, err = fn(item.Key()[len(sidePrefix):], val)
			return err
		})
		if err != nil {
			return err
		}
		if !cont {
			return nil
		}
	}
	return nil
}

// ViewSide runs fn on the newest side records.
func (s *Store) ViewSide(ctx context.Context, fn func(*SideTxn) error) error {
	return s.view(ctx, s.readTS.Load(), func(txn *badger.Txn) error { return fn(&SideTxn{txn: txn}) })
}

// UpdateSide runs fn and commits what it wrote atomically and durably, at a timestamp of its own that is not a
// revision; when fn returns an error, nothing is written. Side updates are serialised with each other and with
// commits: keep fn short, and its writes within one transaction (ErrSideTooBig otherwise).
func (s *Store) UpdateSide(ctx context.Context, fn func(*SideTxn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.broken != nil {
		return fmt.Errorf("store needs reopening after an earlier failure: %w", s.broken)
	}
	txn := s.db.NewTransactionAt(s.readTS.Load(), true)
	defer txn.Discard()
	if err := fn(&SideTxn{txn: txn}); err != nil {
		return err
	}
	if !s.schemaSaved { // the first write of a new store: say what it is, as a revision would
		if err := txn.SetEntry(badger.NewEntry(keySchema, schemaValue())); err != nil {
			return fmt.Errorf("side write: %w", sideErr(err))
		}
	}
	ts := s.lastTS + 1
	// m|ts declares the write finished (see keys.go); it commits in the same transaction.
	if err := txn.SetEntry(badger.NewEntry(keyTS, encodeUint64(ts))); err != nil {
		return fmt.Errorf("side write: %w", sideErr(err))
	}
	s.lastTS = ts
	if err := txn.CommitAt(ts, nil); err != nil {
		return fmt.Errorf("side write: %w", sideErr(err))
	}
	s.readTS.Store(ts)
	s.schemaSaved = true
	return nil
}
