package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// repairLocked undoes the remnant of an interrupted write, run by OpenStore and after a failed Commit.
//
// Every finished write leaves its timestamp at or below w = max(m|head, m|ts) (see keys.go), so a version above
// w belongs to a write cut short: a revision whose WriteBatch was partly flushed when the process died, before
// its m|head. Readers never see it while it stays above the head, but the next revision would read straight
// through it. repairLocked therefore rewrites every key that has a version above w to its value as of w —
// deleting the keys that did not exist then — in one write at a fresh timestamp N above every version present
// (s.lastTS, which OpenStore takes from MaxVersion before any compaction ran), recording N in m|ts. N is not a
// revision; the next revision commits above it. A kill during the repair leaves versions above w again and the
// next open repairs from the same w. Meta keys are skipped: m|head and m|ts are only ever written with the tail
// that finishes a write, and m|schema, the first entry of a new store, is valid however far the write went.
//
// The caller holds s.mu (or, in OpenStore, is the only goroutine).
func (s *Store) repairLocked(ctx context.Context) error {
	w := s.readTS.Load()
	var keys [][]byte
	err := s.view(ctx, math.MaxUint64, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, SinceTs: w})
		defer it.Close()
		var last []byte
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if k[0] == prefixMeta || bytes.Equal(k, last) {
				continue
			}
			last = it.Item().KeyCopy(nil)
			keys = append(keys, last)
			if len(keys)%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	body := make([]kv, 0, len(keys))
	err = s.view(ctx, w, func(txn *badger.Txn) error {
		for _, k := range keys {
			v, err := getValue(txn, k)
			switch {
			case errors.Is(err, ErrNotFound):
				body = append(body, kv{key: k, del: true})
			case err != nil:
				return fmt.Errorf("key %q as of %d: %w", k, w, err)
			default:
				body = append(body, kv{key: k, val: v})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ts := s.lastTS + 1
	s.lastTS = ts
	if err := s.update(ts, body, []kv{{key: keyTS, val: encodeUint64(ts)}}); err != nil {
		return err
	}
	s.readTS.Store(ts)
	s.log.Warn("repaired an interrupted write", "keys", len(keys), "restoredTo", w, "repairTS", ts)
	return nil
}

// removeEmptyLogs removes the empty memtable and value-log files a kill can leave in dir: Badger creates such a
// file, then sizes it, and refuses to open a directory holding one that was never sized (z.NewFile, see
// dgraph-io/badger#2207, unfixed in v4.9.6). An empty file holds nothing, so removing it loses nothing.
func removeEmptyLogs(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); e.IsDir() || (ext != ".mem" && ext != ".vlog") {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
		log.Warn("removed an empty log file left by a kill", "file", e.Name())
	}
	return nil
}
