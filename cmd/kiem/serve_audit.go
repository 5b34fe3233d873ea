package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
)

// auditService is what kiem keeps of audit events: the store, and the ingester the webhook endpoint and the
// log follower feed.
type auditService struct {
	store    *graph.AuditStore
	ingester *indexer.AuditIngester
}

// auditDir is where the audit store lives, inside the data directory: one directory to back up and to move.
func auditDir(dataDir string) string { return filepath.Join(dataDir, "audit") }

// startAudit opens the audit store, starts matching actors to revisions and, with --audit-log, follows the log.
// What it starts stops when ctx ends; the store is closed after them, and watchers waits for all of it (so the
// audit store closes before the history store it attributes changes in).
func startAudit(ctx context.Context, log *slog.Logger, g *graph.Live, dataDir, logPath string, watchers *sync.WaitGroup) (*auditService, error) {
	store, err := graph.OpenAuditStore(ctx, graph.AuditStoreOptions{Dir: auditDir(dataDir), Logger: log})
	if err != nil {
		return nil, err
	}
	// Its start reads and commits a little from local stores; a stop requested meanwhile is honoured after it, by
	// Run, rather than failing the start.
	in, err := indexer.NewAuditIngester(context.WithoutCancel(ctx), indexer.AuditIngesterOptions{Graph: g, Store: store, Logger: log.With("component", "audit")})
	if err != nil {
		return nil, errors.Join(err, store.Close())
	}
	var follower *indexer.AuditFollower
	if logPath != "" {
		if follower, err = logFollower(ctx, log, in, store, logPath); err != nil {
			return nil, errors.Join(err, store.Close())
		}
	}
	watchers.Go(func() {
		var group sync.WaitGroup
		group.Go(func() {
			if err := in.Run(ctx); err != nil {
				log.Error("audit actor matching stopped", "err", err)
			}
		})
		if follower != nil {
			group.Go(func() {
				if err := follower.Run(ctx); err != nil {
					log.Error("audit log follower stopped", "path", logPath, "err", err)
				}
			})
		}
		group.Wait()
		if err := store.Close(); err != nil {
			log.Error("closing the audit store", "err", err)
		}
	})
	return &auditService{store: store, ingester: in}, nil
}

// logFollower follows an audit log from the position stored with the last batch it ingested, storing the new
// position in the same transaction as each batch's effects: a restart neither skips nor repeats a line.
func logFollower(ctx context.Context, log *slog.Logger, in *indexer.AuditIngester, store *graph.AuditStore, path string) (*indexer.AuditFollower, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	name := "log:" + abs
	var start indexer.AuditCursor
	raw, ok, err := store.Cursor(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	if ok {
		if err := json.Unmarshal(raw, &start); err != nil {
			return nil, fmt.Errorf("--audit-log: stored position of %s: %w", abs, err)
		}
	}
	return &indexer.AuditFollower{
		Path:   abs,
		Start:  start,
		Logger: log.With("component", "audit-log"),
		Sink: func(ctx context.Context, b indexer.AuditFileBatch) error {
			cur, err := json.Marshal(b.Cursor)
			if err != nil {
				return err
			}
			return in.Ingest(ctx, b.Events, b.Malformed, func(ab *graph.AuditBatch) { ab.SetCursor(name, cur) })
		},
	}, nil
}
