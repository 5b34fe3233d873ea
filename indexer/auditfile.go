package indexer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// AuditCursor is how far a follower has read an audit log: the file's identity and the offset after the last
// complete line handed to the sink.
type AuditCursor struct {
	// Path is the followed path (AuditFollower.Path), also while the file read is a rotated one; Dev and Inode
	// say which file it is.
	Path string `json:"path"`
	// Dev and Inode identify the file (device, inode), so that a rotated file is recognised under its new name.
	// Both are zero on platforms without inodes.
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
	Line   int    `json:"line"` // number of the next line (1-based), for error messages
}

// AuditFileBatch is what the follower hands its sink: events read, malformed lines, and the cursor after them.
type AuditFileBatch struct {
	Events    []AuditEvent
	Malformed []*AuditError // Where is "FILE:line N", FILE the name the file was opened by
	Cursor    AuditCursor
}

// AuditFollower follows a kube-apiserver audit log (the log backend: one JSON event a line) as tail -F does: it
// hands each complete line to Sink in file order, survives rotation and truncation, and resumes where a cursor
// says. Path and Sink are required.
//
// Choices a user may notice:
//   - Delivery is at least once, and exactly once for a sink that commits each batch's effects together with its
//     Cursor and resumes from that cursor: a batch Sink rejects is retried, the same batch, until it is accepted
//     or ctx ends; nothing is skipped.
//   - Changes are found by polling os.Stat(Path), every Poll and each time the open file has been read to its
//     end; there is no inotify, so any filesystem works, at the cost of up to Poll of latency.
//   - Rotation by rename (logrotate, or lumberjack inside the apiserver) is noticed when Path names another file.
//     The old file, which stays open, is read to its end first, then closed, and the new one read from offset 0.
//     While Path is missing the old file goes on being read. Lines written to the old file after the new one
//     has appeared are not read: lumberjack never writes them, a writer that logrotate signals to reopen might
//     in the moment before it does. Two rotations within one Poll skip the file between them.
//   - A partial last line in a rotated file is reported malformed, since nothing will complete it. In the file
//     at Path a partial line waits until it is complete.
//   - Truncation in place (copytruncate) is noticed when the file is shorter than the offset read; the file is
//     then read from its start, with a warning. As with any tail, lines truncated away before they were read are
//     lost, and a file truncated and rewritten past the offset within one Poll goes unnoticed.
//   - Resuming from a Start whose file is no longer at Path (rotated while kiem was stopped) looks in Path's
//     directory for the regular file with Start's (Dev, Inode), .gz files skipped, and reads its remainder first.
//     If there is none, a warning says events may be lost and the file at Path is read from its start. A Start
//     whose Offset is past the end of its file, or does not follow a newline (its inode was reused by another
//     file), is not trusted either: that file is read from its start, with a warning. (A reused inode whose
//     file happens to have a newline there goes unnoticed.)
//   - A line over 16 MiB is malformed and skipped without being held in memory. A batch holds at most MaxBatch
//     lines (events and malformed ones together) and at most about 64 MiB of them, so memory stays bounded
//     whatever the size of the file.
type AuditFollower struct {
	Path string
	// Start is where to resume. The zero cursor is the beginning of the file at Path. A cursor without identity
	// (Dev and Inode zero, from a platform without inodes) is taken to be in the first file found at Path.
	Start AuditCursor
	// Sink receives the batches in file order, never an empty one. It may keep the batch; an error makes the
	// follower log it and retry the same batch after a backoff (the lesser of Poll and 100ms, doubling to 5s).
	Sink     func(ctx context.Context, b AuditFileBatch) error
	Poll     time.Duration // how often to look for new data and rotation; default 1s
	MaxBatch int           // most lines (events and malformed ones) per Sink call; default 1000
	Logger   *slog.Logger  // nil: discard
}

const (
	// firstSinkBackoff and maxSinkBackoff bound the wait before retrying a batch Sink rejected.
	firstSinkBackoff = 100 * time.Millisecond
	maxSinkBackoff   = 5 * time.Second
	// maxAuditFileBatch bounds the bytes of the lines in one batch, as maxAuditBatch bounds a webhook's.
	maxAuditFileBatch = maxAuditBatch
)

// errIncompleteLine is the error of a partial last line left in a rotated file.
var errIncompleteLine = errors.New("incomplete last line of a rotated file")

// Run follows the log until ctx ends, then returns nil. It returns an error, naming the file, only when the
// follower is misconfigured or the log cannot be read for a reason waiting will not cure: a read error, a
// permission denied, a Path that is not a regular file. A missing file is waited for. Run keeps its state to
// itself, so it may be called again, with a later Start, once it has returned.
func (f *AuditFollower) Run(ctx context.Context) error {
	switch {
	case f.Path == "":
		return errors.New("indexer: AuditFollower.Path is empty")
	case f.Sink == nil:
		return errors.New("indexer: AuditFollower.Sink is nil")
	case f.Poll < 0 || f.MaxBatch < 0:
		return errors.New("indexer: negative AuditFollower value")
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &auditFollow{
		path:     f.Path,
		sink:     f.Sink,
		poll:     cmp.Or(f.Poll, time.Second),
		maxBatch: cmp.Or(f.MaxBatch, 1000),
		log:      log.With("file", f.Path),
	}
	defer r.closeFile()
	err := r.run(ctx, f.Start)
	if ctx.Err() != nil {
		return nil // ctx ending is a clean stop, whatever it interrupted
	}
	return err
}

// auditFollow is the state of one Run.
type auditFollow struct {
	path     string
	sink     func(context.Context, AuditFileBatch) error
	poll     time.Duration
	maxBatch int
	log      *slog.Logger

	cur     *auditFile   // the file being read; nil until one is found
	start   *AuditCursor // a Start without identity, for the first file opened at path
	missing bool         // path was missing at the last look, and that was logged
}

// auditFile is an open log file and how far it has been handed to the sink.
type auditFile struct {
	f        *os.File
	name     string      // the name it was opened by: the followed path, or a rotated file's found on resume
	fi       os.FileInfo // from fstat at open: which file it is, for os.SameFile with later stats of the path
	dev, ino uint64
	off      int64 // after the last line handed on
	line     int   // number of the line at off
}

func (r *auditFollow) run(ctx context.Context, start AuditCursor) error {
	if err := r.resume(start); err != nil {
		return err
	}
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		if r.cur != nil {
			if err := r.drain(ctx, false); err != nil {
				return err
			}
		}
		again, err := r.check(ctx)
		if err != nil {
			return err
		}
		if again {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// resume opens the file start points into, if it can be found, and moves to start's offset in it.
func (r *auditFollow) resume(start AuditCursor) error {
	if start.Dev == 0 && start.Inode == 0 {
		if start.Offset != 0 {
			r.start = &start
		}
		return nil
	}
	af, err := openAuditFile(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case af.dev == start.Dev && af.ino == start.Inode:
		r.cur = af
		return r.seek(start)
	default:
		af.close() // another file: start's was rotated away while kiem was stopped
	}
	af, err = findAuditFile(filepath.Dir(r.path), start.Dev, start.Inode)
	if af == nil {
		// Reading the current file from its start loses nothing of it; only the rest of the rotated file is gone.
		r.log.Warn("the audit log file the cursor points into is gone (rotated away while stopped); events between it and the current file may be lost",
			"dev", start.Dev, "inode", start.Inode, "offset", start.Offset, "err", err)
		return nil
	}
	r.log.Info("resuming in the rotated audit log", "rotated", af.name, "offset", start.Offset)
	r.cur = af
	return r.seek(start)
}

// seek moves the current file to c's offset, unless c cannot have been taken in it: then it stays at the start
// of the file, with a warning.
func (r *auditFollow) seek(c AuditCursor) error {
	af := r.cur
	switch {
	case c.Offset <= 0:
		return nil
	case c.Offset > af.fi.Size():
		r.log.Warn("audit log shorter than the cursor (truncated while stopped, or a new file reusing the inode); reading it from the start",
			"name", af.name, "size", af.fi.Size(), "offset", c.Offset)
		return nil
	}
	// A cursor always follows a complete line, so the byte before it is a newline. If it is not, the inode has
	// been reused by another file since.
	var b [1]byte
	if _, err := af.f.ReadAt(b[:], c.Offset-1); err != nil {
		return fmt.Errorf("read audit log %s: %w", af.name, err)
	}
	if b[0] != '\n' {
		r.log.Warn("audit log cursor does not follow a line (inode reused by another file?); reading the file from the start",
			"name", af.name, "offset", c.Offset)
		return nil
	}
	af.off, af.line = c.Offset, max(c.Line, 1)
	return nil
}

// check stats the path and acts on what changed since the last look: a file appeared, was truncated or was
// rotated. It reports whether there may be lines to read at once.
func (r *auditFollow) check(ctx context.Context) (bool, error) {
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		if !r.missing {
			r.missing = true
			if r.cur == nil {
				r.log.Info("waiting for the audit log to appear")
			} else {
				r.log.Info("audit log gone; reading the rest of the file that was there until a new one appears")
			}
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat audit log %s: %w", r.path, err)
	}
	r.missing = false
	if r.cur != nil && os.SameFile(r.cur.fi, fi) {
		if fi.Size() >= r.cur.off {
			return false, nil // growth is read at the next tick: a partial line would make "now" a busy loop
		}
		r.log.Warn("audit log truncated; reading it from the start", "size", fi.Size(), "offset", r.cur.off)
		r.cur.off, r.cur.line = 0, 1
		return true, nil
	}
	if r.cur != nil {
		// Rotated. The writer has moved to the new file, so the old one is complete: hand on the rest of it,
		// a partial last line included, before anything of the new one.
		if err := r.drain(ctx, true); err != nil {
			return false, err
		}
		r.log.Info("audit log rotated; reading the new file", "lines", r.cur.line-1)
		r.closeFile()
	}
	af, err := openAuditFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // gone again since the stat
	}
	if err != nil {
		return false, err
	}
	r.cur = af
	if r.start != nil {
		start := *r.start
		r.start = nil
		if err := r.seek(start); err != nil {
			return false, err
		}
	}
	return true, nil
}

// drain reads the current file from its offset to its end and hands the lines to the sink in batches. If final
// (the file has been rotated and will not grow), a partial last line is handed on too, as malformed.
func (r *auditFollow) drain(ctx context.Context, final bool) error {
	af := r.cur
	// A fresh reader at af.off each time: a partial line read last time is read again, now perhaps complete.
	lr := newAuditLineReader(io.NewSectionReader(af.f, af.off, math.MaxInt64-af.off), maxAuditLine)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, eof, err := r.read(lr, final)
		if err != nil {
			return err
		}
		// A batch of blank lines only is not sent; its cursor is not worth a sink call.
		if len(b.Events) > 0 || len(b.Malformed) > 0 {
			if err := r.deliver(ctx, b); err != nil {
				return err
			}
		}
		af.off, af.line = b.Cursor.Offset, b.Cursor.Line
		if eof {
			return nil
		}
	}
}

// read reads the next batch of the current file from lr, which is at the file's offset. eof reports that the
// batch ends at the end of the file (or at the partial line there, unless final).
func (r *auditFollow) read(lr *auditLineReader, final bool) (b AuditFileBatch, eof bool, err error) {
	af := r.cur
	off, line := af.off, af.line
	for len(b.Events)+len(b.Malformed) < r.maxBatch && off-af.off < maxAuditFileBatch {
		raw, n, long, err := lr.next()
		if errors.Is(err, io.EOF) {
			eof = true
			if final && n > 0 {
				b.Malformed = append(b.Malformed, &AuditError{Where: af.where(line), Err: fmt.Errorf("%w (%d bytes)", errIncompleteLine, n)})
				off, line = off+n, line+1
			}
			break
		}
		if err != nil {
			return AuditFileBatch{}, false, fmt.Errorf("read audit log %s: %w", af.name, err)
		}
		switch e, ok, derr := decodeLine(raw, long, n); {
		case derr != nil:
			b.Malformed = append(b.Malformed, &AuditError{Where: af.where(line), Err: derr})
		case ok:
			b.Events = append(b.Events, e)
		}
		off, line = off+n, line+1
	}
	b.Cursor = AuditCursor{Path: r.path, Dev: af.dev, Inode: af.ino, Offset: off, Line: line}
	return b, eof, nil
}

// deliver hands b to the sink, retrying after a growing backoff until the sink accepts it or ctx ends.
func (r *auditFollow) deliver(ctx context.Context, b AuditFileBatch) error {
	wait := min(r.poll, firstSinkBackoff)
	for attempt := 1; ; attempt++ {
		err := r.sink(ctx, b)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Logged rather than returned: the follower cannot go on without this batch, nor end for it.
		r.log.Warn("audit sink failed; retrying the batch", "offset", b.Cursor.Offset, "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxSinkBackoff)
	}
}

func (r *auditFollow) closeFile() {
	if r.cur != nil {
		r.cur.close()
		r.cur = nil
	}
}

// openAuditFile opens name for reading from its start.
func openAuditFile(name string) (*auditFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat audit log %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("audit log %s is not a regular file (%s)", name, fi.Mode().Type())
	}
	dev, ino := fileIdentity(fi)
	return &auditFile{f: f, name: name, fi: fi, dev: dev, ino: ino, line: 1}, nil
}

// findAuditFile opens the regular file in dir whose identity is (dev, ino), or returns nil if there is none.
// Compressed rotations (.gz) are skipped: their bytes are not the log's.
func findAuditFile(dir string, dev, ino uint64) (*auditFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("look for the rotated audit log in %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".gz") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed since ReadDir
		}
		if d, i := fileIdentity(fi); d != dev || i != ino {
			continue
		}
		af, err := openAuditFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if af.dev == dev && af.ino == ino {
			return af, nil
		}
		af.close() // renamed over since ReadDir
	}
	return nil, nil
}

func (af *auditFile) where(line int) string { return fmt.Sprintf("%s:line %d", af.name, line) }

// close closes the file; it was only read, so a failure loses nothing.
func (af *auditFile) close() { _ = af.f.Close() }
