package graph

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// backupFormat names kiem's backup files; backupVersion is the version of their framing (not of the store's
// schema, which the header also records).
const (
	backupFormat  = "kiem-backup"
	backupVersion = 1
)

// BackupInfo is the header of a backup: what it holds.
type BackupInfo struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Schema  uint32    `json:"schema"`
	Head    Revision  `json:"head"`
	Horizon Revision  `json:"horizon"`
	ReadTS  uint64    `json:"readTs"`
	Created time.Time `json:"created"`
}

// Backup writes the whole store as of one moment to w: every retained revision, the history and kiem's side
// records (saved filters, alerts, deliveries). It reads a consistent snapshot while commits go on (every
// version up to the newest finished write, nothing of a write in flight), so a serving kiem can be backed up.
// The format is a JSON header line then Badger's backup stream, gzip-compressed.
func (s *Store) Backup(ctx context.Context, w io.Writer) (BackupInfo, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return BackupInfo{}, ErrClosed
	}
	// Head and horizon before readTS: every version they name is at or below it.
	info := BackupInfo{Format: backupFormat, Version: backupVersion, Schema: storeSchema, Head: s.Head(), Horizon: s.Horizon(), Created: s.now().UTC()}
	info.ReadTS = s.readTS.Load()
	hdr, err := json.Marshal(info)
	if err != nil {
		return BackupInfo{}, err
	}
	if _, err := w.Write(append(hdr, '\n')); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	zw := gzip.NewWriter(w)
	stream := s.db.NewStreamAt(info.ReadTS)
	stream.LogPrefix = "kiem backup"
	stream.NumGo = 2
	stream.Prefix = nil
	// Stream stops when ctx ends.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream.ChooseKey = func(*badger.Item) bool { return sctx.Err() == nil }
	if _, err := stream.Backup(zw, 0); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	return info, nil
}

// ReadBackupInfo reads the header of a backup from r, leaving r at the start of its data.
func ReadBackupInfo(r *bufio.Reader) (BackupInfo, error) {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return BackupInfo{}, fmt.Errorf("not a kiem backup: %w", err)
	}
	var info BackupInfo
	if err := json.Unmarshal(line, &info); err != nil || info.Format != backupFormat {
		return BackupInfo{}, errors.New("not a kiem backup (its first line is not a kiem-backup header)")
	}
	if info.Version != backupVersion {
		return BackupInfo{}, fmt.Errorf("kiem backup version %d: this kiem reads version %d", info.Version, backupVersion)
	}
	if info.Schema != storeSchema {
		return BackupInfo{}, fmt.Errorf("the backup holds a store of schema %d and this kiem reads schema %d: %w",
			info.Schema, storeSchema, ErrIncompatibleStore)
	}
	return info, nil
}

// RestoreStore creates the store in dir, which must not exist or be empty, from a backup Backup wrote, then
// opens it as OpenStore does to prove it whole (its head must be the backup's). A restore that fails leaves
// dir removed, so it is never mistaken for a store.
func RestoreStore(ctx context.Context, dir string, r io.Reader, log *slog.Logger) (BackupInfo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return BackupInfo{}, fmt.Errorf("restore: %s is not empty; restore into a new directory", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return BackupInfo{}, fmt.Errorf("restore: %w", err)
	}
	br := bufio.NewReaderSize(r, 1<<20)
	info, err := ReadBackupInfo(br)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("restore: %w", err)
	}
	if err := restoreInto(ctx, dir, br, log); err != nil {
		return BackupInfo{}, errors.Join(fmt.Errorf("restore: %w", err), os.RemoveAll(dir))
	}
	return info, checkRestored(ctx, dir, info, log)
}

func restoreInto(ctx context.Context, dir string, r io.Reader, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("backup data: %w", err)
	}
	db, err := badger.OpenManaged(badgerOptions(StoreOptions{Dir: dir}, log))
	if err != nil {
		return err
	}
	if err := db.Load(&ctxReader{ctx: ctx, r: zr}, 256); err != nil {
		return errors.Join(fmt.Errorf("backup data: %w", err), db.Close())
	}
	return db.Close()
}

func checkRestored(ctx context.Context, dir string, info BackupInfo, log *slog.Logger) error {
	s, err := OpenStore(ctx, StoreOptions{Dir: dir, Logger: log})
	if err != nil {
		return errors.Join(fmt.Errorf("restore: the restored store does not open: %w", err), os.RemoveAll(dir))
	}
	head := s.Head()
	if err := s.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if head != info.Head {
		return errors.Join(fmt.Errorf("restore: the restored store's head is %d, the backup's %d", head, info.Head), os.RemoveAll(dir))
	}
	return nil
}

// ctxReader stops a long restore when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
