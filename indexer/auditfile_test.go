package indexer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

// tailIDPrefix begins the auditID of every test event; twelve digits, the event's number, end it.
const tailIDPrefix = "6f8c2f1e-0d4e-4d3a-9a55-"

// tailID is the auditID of test event n.
func tailID(n int) string { return fmt.Sprintf("%s%012d", tailIDPrefix, n) }

// tailLine is test event n as the apiserver's log backend writes it: one line of JSON.
func tailLine(n int) string {
	return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"` + tailID(n) + `",` +
		`"stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods?limit=500","verb":"list",` +
		`"user":{"username":"alice","groups":["system:authenticated"]},"sourceIPs":["10.0.0.1"],` +
		`"userAgent":"kubectl/v1.33.13 (linux/amd64) kubernetes/abc",` +
		`"objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},` +
		`"requestReceivedTimestamp":"2026-11-24T10:00:00.000000Z","stageTimestamp":"2026-11-24T10:00:00.001000Z",` +
		`"annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}` + "\n"
}

// tailLines is test events ns, one a line.
func tailLines(ns ...int) string {
	var b strings.Builder
	for _, n := range ns {
		b.WriteString(tailLine(n))
	}
	return b.String()
}

// tailNum is the n of an event tailLine made.
func tailNum(t *testing.T, e AuditEvent) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(e.AuditID, tailIDPrefix))
	if err != nil || !strings.HasPrefix(e.AuditID, tailIDPrefix) {
		t.Fatalf("event %q is not a test event: %v", e.AuditID, err)
	}
	return n
}

func tailWrite(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tailAppend appends as the apiserver writes, creating the file if need be.
func tailAppend(t *testing.T, name, s string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func tailRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func tailTruncate(t *testing.T, name string) {
	t.Helper()
	if err := os.Truncate(name, 0); err != nil {
		t.Fatal(err)
	}
}

// tailCursor is the cursor at offset (line the next line) in the file at name now.
func tailCursor(t *testing.T, followed, name string, offset int64, line int) AuditCursor {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	dev, ino := fileIdentity(fi)
	if ino == 0 {
		t.Fatalf("%s has no inode", name)
	}
	return AuditCursor{Path: followed, Dev: dev, Inode: ino, Offset: offset, Line: line}
}

func tailSeq(from, to int) []int {
	var s []int
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

// tailRun is a Run of an AuditFollower in the background, owned by one test. Unless the test gives its own
// Sink, the sink passes each batch to the test through batches and waits until the test takes it, so the test
// paces the follower without sleeping.
type tailRun struct {
	t        *testing.T
	ctx      context.Context    // the test's deadline
	cancel   context.CancelFunc // ends Run
	batches  chan AuditFileBatch
	done     chan error
	finished bool
}

func startTail(t *testing.T, f *AuditFollower) *tailRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	runCtx, stop := context.WithCancel(ctx)
	r := &tailRun{t: t, ctx: ctx, cancel: stop, batches: make(chan AuditFileBatch), done: make(chan error, 1)}
	if f.Sink == nil {
		f.Sink = func(ctx context.Context, b AuditFileBatch) error {
			if len(b.Events)+len(b.Malformed) == 0 {
				t.Errorf("empty batch sent, cursor %+v", b.Cursor)
			}
			select {
			case r.batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	f.Poll = cmp.Or(f.Poll, 2*time.Millisecond)
	go func() { r.done <- f.Run(runCtx) }()
	t.Cleanup(r.stop)
	return r
}

// tailRecv takes the next value from ch, failing the test at its deadline or if Run ends.
func tailRecv[T any](r *tailRun, ch <-chan T) T {
	r.t.Helper()
	select {
	case v := <-ch:
		return v
	case err := <-r.done:
		r.finished = true
		r.t.Fatalf("Run returned %v, want it to go on", err)
	case <-r.ctx.Done():
		r.t.Fatal("nothing received before the test's deadline")
	}
	panic("unreachable")
}

// tailGot is what a test collected from the sink.
type tailGot struct {
	batches []AuditFileBatch
	ids     []int
	bad     []*AuditError
}

func (g tailGot) last() AuditCursor { return g.batches[len(g.batches)-1].Cursor }

// collect takes batches until they hold events events and bad malformed lines; more is an error.
func (r *tailRun) collect(events, bad int) tailGot {
	r.t.Helper()
	var g tailGot
	for len(g.ids) < events || len(g.bad) < bad {
		b := tailRecv(r, r.batches)
		g.batches = append(g.batches, b)
		for _, e := range b.Events {
			g.ids = append(g.ids, tailNum(r.t, e))
		}
		g.bad = append(g.bad, b.Malformed...)
	}
	if len(g.ids) != events || len(g.bad) != bad {
		r.t.Fatalf("got events %v and malformed %v, want %d and %d", g.ids, g.bad, events, bad)
	}
	return g
}

// stop ends Run and checks that it returns nil promptly.
func (r *tailRun) stop() {
	r.t.Helper()
	if r.finished {
		return
	}
	r.finished = true
	r.cancel()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run after its context ended = %v, want nil", err)
		}
	case <-timer.C:
		r.t.Error("Run did not return within 5s of its context's end")
	}
}

// tailLog is a slog.Handler that keeps what is logged, for a test to wait on and check.
type tailLog struct {
	mu      sync.Mutex
	records []string      // "LEVEL message key=value…"
	changed chan struct{} // closed, and replaced, at each record
}

func newTailLog() *tailLog { return &tailLog{changed: make(chan struct{})} }

func (h *tailLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *tailLog) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, b.String())
	close(h.changed)
	h.changed = make(chan struct{})
	return nil
}

// WithAttrs drops the attributes: the tests look at messages and the attributes of the call.
func (h *tailLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *tailLog) WithGroup(string) slog.Handler      { return h }

// count returns how many records contain all of subs.
func (h *tailLog) count(subs ...string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.records {
		if !slices.ContainsFunc(subs, func(s string) bool { return !strings.Contains(r, s) }) {
			n++
		}
	}
	return n
}

// waitFor waits until a record contains s.
func (h *tailLog) waitFor(r *tailRun, s string) {
	r.t.Helper()
	for {
		h.mu.Lock()
		ch := h.changed
		h.mu.Unlock()
		if h.count(s) > 0 {
			return
		}
		tailRecv(r, ch)
	}
}

func (h *tailLog) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.records, "\n")
}

func TestAuditFollowerFollows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	tailWrite(t, path, tailLines(1, 2, 3))
	r := startTail(t, &AuditFollower{Path: path})

	g := r.collect(3, 0)
	if diff := gocmp.Diff([]int{1, 2, 3}, g.ids); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(tailCursor(t, path, path, int64(len(tailLines(1, 2, 3))), 4), g.last()); diff != "" {
		t.Errorf("cursor (-want +got):\n%s", diff)
	}

	tailAppend(t, path, tailLines(4, 5))
	g = r.collect(2, 0)
	if diff := gocmp.Diff([]int{4, 5}, g.ids); diff != "" {
		t.Errorf("appended events (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(tailCursor(t, path, path, int64(len(tailLines(1, 2, 3, 4, 5))), 6), g.last()); diff != "" {
		t.Errorf("cursor after appending (-want +got):\n%s", diff)
	}
	e := g.batches[0].Events[0]
	if e.Verb != "list" || e.User.Username != "alice" || e.ObjectRef == nil || e.ObjectRef.Resource != "pods" {
		t.Errorf("event decoded as %+v", e)
	}
}

func TestAuditFollowerBatches(t *testing.T) {
	lines := []string{tailLine(1), tailLine(2), tailLine(3), "{not json\n", tailLine(5), "\n", tailLine(7)}
	content := strings.Join(lines, "")
	ends := []int64{0} // ends[i]: the offset after line i
	for _, l := range lines {
		ends = append(ends, ends[len(ends)-1]+int64(len(l)))
	}
	for _, maxBatch := range []int{1, 2, 3, 1000} {
		t.Run(fmt.Sprint(maxBatch), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			tailWrite(t, path, content)
			r := startTail(t, &AuditFollower{Path: path, MaxBatch: maxBatch})

			g := r.collect(5, 1)
			if diff := gocmp.Diff([]int{1, 2, 3, 5, 7}, g.ids); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if g.bad[0].Where != path+":line 4" {
				t.Errorf("malformed at %q, want %s:line 4", g.bad[0].Where, path)
			}
			for i, b := range g.batches {
				n := len(b.Events) + len(b.Malformed)
				if n > maxBatch || i < len(g.batches)-1 && n != maxBatch {
					t.Errorf("batch %d holds %d lines, want %d (at most, for the last)", i, n, maxBatch)
				}
				if c := b.Cursor; c.Line < 2 || c.Line > len(ends) || c.Offset != ends[c.Line-1] {
					t.Errorf("batch %d ends at offset %d before line %d; the lines end at %v", i, c.Offset, c.Line, ends)
				}
			}
			if got, want := g.last(), tailCursor(t, path, path, int64(len(content)), 8); got != want {
				t.Errorf("last cursor %+v, want %+v", got, want)
			}
		})
	}
}

func TestAuditFollowerPartialLine(t *testing.T) {
	second := tailLine(2)
	for _, tc := range []struct {
		name string
		cut  int // bytes of the second line written at first
	}{
		{"one byte", 1},
		{"half", len(second) / 2},
		{"all but the newline", len(second) - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			tailWrite(t, path, tailLine(1)+second[:tc.cut])
			r := startTail(t, &AuditFollower{Path: path})

			// The follower reads to the end, partial line included, before it hands on the first batch.
			g := r.collect(1, 0)
			if got, want := g.last(), tailCursor(t, path, path, int64(len(tailLine(1))), 2); got != want {
				t.Errorf("cursor %+v, want %+v: after the complete line only", got, want)
			}
			tailAppend(t, path, second[tc.cut:])
			g = r.collect(1, 0)
			if g.ids[0] != 2 {
				t.Errorf("completed line read as event %d, want 2", g.ids[0])
			}
			if got, want := g.last(), tailCursor(t, path, path, int64(len(tailLines(1, 2))), 3); got != want {
				t.Errorf("cursor %+v, want %+v", got, want)
			}
		})
	}
}

func TestAuditFollowerMalformed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	noUser := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"ResponseComplete",` +
		`"verb":"get","stageTimestamp":"2026-11-24T10:00:00.001000Z"}` + "\n"
	content := tailLine(1) + "{garbage\n" + "\n" + noUser + tailLine(5)
	tailWrite(t, path, content)
	r := startTail(t, &AuditFollower{Path: path})

	g := r.collect(2, 2)
	if diff := gocmp.Diff([]int{1, 5}, g.ids); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	for i, want := range []string{path + ":line 2: not an audit event", path + ":line 4: no user.username"} {
		if got := g.bad[i].Error(); !strings.HasPrefix(got, want) {
			t.Errorf("malformed[%d] = %q, want %q…", i, got, want)
		}
	}
	if got, want := g.last(), tailCursor(t, path, path, int64(len(content)), 6); got != want {
		t.Errorf("cursor %+v, want %+v", got, want)
	}

	// A batch of malformed lines only still moves the cursor on.
	tailAppend(t, path, "kube-apiserver: not an event\n")
	content += "kube-apiserver: not an event\n"
	g = r.collect(0, 1)
	if len(g.batches) != 1 || g.bad[0].Where != path+":line 6" {
		t.Errorf("batches %+v, want one with line 6 malformed", g.batches)
	}
	if got, want := g.last(), tailCursor(t, path, path, int64(len(content)), 7); got != want {
		t.Errorf("cursor %+v, want %+v", got, want)
	}

	tailAppend(t, path, tailLine(7))
	if g = r.collect(1, 0); g.ids[0] != 7 || g.last().Line != 8 {
		t.Errorf("then event %d with cursor %+v, want 7 and line 8", g.ids[0], g.last())
	}
}

func TestAuditFollowerRotation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rotated string // the old file's new name
		seeOld  bool   // the follower reads what the writer adds to the old file before the new file appears
	}{
		{"logrotate", "audit.log.1", false},
		{"logrotate, old file read while the new one is missing", "audit.log.1", true},
		{"lumberjack", "audit-2026-11-24T10-00-00.000.log", false},
		{"lumberjack, old file read while the new one is missing", "audit-2026-11-24T10-00-00.000.log", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, rotated := filepath.Join(dir, "audit.log"), filepath.Join(dir, tc.rotated)
			tailWrite(t, path, tailLines(1, 2))
			r := startTail(t, &AuditFollower{Path: path})
			g := r.collect(2, 0)
			ids := g.ids

			tailRename(t, path, rotated)
			// The writer has not moved to the new file yet: this lands in the old one, under its new name.
			tailAppend(t, rotated, tailLine(3))
			if tc.seeOld {
				g := r.collect(1, 0)
				ids = append(ids, g.ids...)
			}
			torn := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Meta`
			tailAppend(t, rotated, torn)
			oldEnd := tailCursor(t, path, rotated, int64(len(tailLines(1, 2, 3))+len(torn)), 5)
			tailWrite(t, path, tailLines(4, 5))

			g = r.collect(5-len(ids), 1)
			ids = append(ids, g.ids...)
			if diff := gocmp.Diff(tailSeq(1, 5), ids); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if bad := g.bad[0]; bad.Where != path+":line 4" || !errors.Is(bad, errIncompleteLine) {
				t.Errorf("malformed %q, want the torn line 4 of the old file, incomplete", bad)
			}
			// The torn line comes with the old file's cursor, before anything of the new file.
			for i, b := range g.batches {
				if len(b.Malformed) > 0 {
					if b.Cursor != oldEnd {
						t.Errorf("cursor after the torn line %+v, want %+v", b.Cursor, oldEnd)
					}
					break
				}
				if b.Cursor.Inode != oldEnd.Inode {
					t.Errorf("batch %d (%+v) of the new file before the torn line of the old one", i, b)
				}
			}
			if got, want := g.last(), tailCursor(t, path, path, int64(len(tailLines(4, 5))), 3); got != want {
				t.Errorf("cursor %+v, want %+v in the new file", got, want)
			}
		})
	}
}

func TestAuditFollowerCopytruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	tailWrite(t, path, tailLines(1, 2, 3))
	log := newTailLog()
	r := startTail(t, &AuditFollower{Path: path, Logger: slog.New(log)})
	r.collect(3, 0)

	// logrotate's copytruncate: copy, truncate in place; the writer, appending, goes on at the new end.
	tailWrite(t, path+".1", tailLines(1, 2, 3))
	tailTruncate(t, path)
	tailAppend(t, path, tailLine(4))
	g := r.collect(1, 0)
	if g.ids[0] != 4 {
		t.Errorf("after truncation event %d, want 4", g.ids[0])
	}
	if got, want := g.last(), tailCursor(t, path, path, int64(len(tailLine(4))), 2); got != want {
		t.Errorf("cursor %+v, want %+v", got, want)
	}
	if log.count("WARN", "truncated") != 1 {
		t.Errorf("log:\n%s\nwant one truncation warning", log)
	}
}

func TestAuditFollowerResume(t *testing.T) {
	const lumberjack = "audit-2026-11-24T10-00-00.000.log"
	for _, tc := range []struct {
		name   string
		down   func(t *testing.T, dir, path string) // what happens while kiem is stopped
		cursor func(c *AuditCursor)                 // what becomes of the saved cursor
		want   []int                                // the events the second run hands on
		line   int                                  // the cursor's Line after them
		warn   string                               // the warning it logs, if any
	}{
		{name: "appended", want: []int{3, 4, 5}, line: 6,
			down: func(t *testing.T, dir, path string) { tailAppend(t, path, tailLine(5)) }},
		{name: "rotated", want: []int{3, 4, 5, 6}, line: 2,
			down: func(t *testing.T, dir, path string) {
				tailAppend(t, path, tailLine(5))
				tailRename(t, path, filepath.Join(dir, "audit.log.1"))
				tailWrite(t, path, tailLine(6))
			}},
		{name: "rotated, no new file yet", want: []int{3, 4, 5}, line: 6,
			down: func(t *testing.T, dir, path string) {
				tailAppend(t, path, tailLine(5))
				tailRename(t, path, filepath.Join(dir, lumberjack))
			}},
		{name: "rotated file deleted", want: []int{6}, line: 2, warn: "may be lost",
			down: func(t *testing.T, dir, path string) {
				tailRename(t, path, filepath.Join(dir, lumberjack))
				// Created before the old file is deleted, so that it cannot reuse its inode.
				tailWrite(t, path, tailLine(6))
				if err := os.Remove(filepath.Join(dir, lumberjack)); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "rotated file compressed", want: []int{6}, line: 2, warn: "may be lost",
			down: func(t *testing.T, dir, path string) {
				// Same inode, but a .gz name: its bytes are not the log's, so it is not read.
				tailRename(t, path, filepath.Join(dir, "audit.log.1.gz"))
				tailWrite(t, path, tailLine(6))
			}},
		{name: "truncated", want: []int{6}, line: 2, warn: "truncated while stopped",
			down: func(t *testing.T, dir, path string) {
				tailTruncate(t, path)
				tailAppend(t, path, tailLine(6))
			}},
		{name: "inode reused", want: []int{1, 2, 3, 4}, line: 5, warn: "does not follow a line",
			cursor: func(c *AuditCursor) { c.Offset -= 10 }},
		{name: "cursor without identity", want: []int{3, 4}, line: 5,
			cursor: func(c *AuditCursor) { c.Dev, c.Inode = 0, 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "audit.log")
			tailWrite(t, path, tailLines(1, 2, 3, 4))
			first := startTail(t, &AuditFollower{Path: path, MaxBatch: 2})
			c := first.collect(2, 0).last()
			if want := tailCursor(t, path, path, int64(len(tailLines(1, 2))), 3); c != want {
				t.Fatalf("first run's cursor %+v, want %+v", c, want)
			}
			first.stop() // with the second batch unprocessed

			if tc.down != nil {
				tc.down(t, dir, path)
			}
			if tc.cursor != nil {
				tc.cursor(&c)
			}
			log := newTailLog()
			r := startTail(t, &AuditFollower{Path: path, Start: c, MaxBatch: 2, Logger: slog.New(log)})
			g := r.collect(len(tc.want), 0)
			if diff := gocmp.Diff(tc.want, g.ids); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if got := g.last().Line; got != tc.line {
				t.Errorf("cursor %+v, want line %d", g.last(), tc.line)
			}
			// Nothing else comes before an event appended now (none repeated, none in between).
			tailAppend(t, path, tailLine(100))
			if g := r.collect(1, 0); g.ids[0] != 100 {
				t.Errorf("then event %d, want 100", g.ids[0])
			}
			if warns := log.count("WARN"); tc.warn == "" && warns > 0 || tc.warn != "" && (warns != 1 || log.count("WARN", tc.warn) != 1) {
				t.Errorf("log:\n%s\nwant one warning with %q (none if empty)", log, tc.warn)
			}
		})
	}
}

func TestAuditFollowerSinkError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	tailWrite(t, path, tailLines(1, 2, 3))
	calls := make(chan AuditFileBatch)
	failures := 3
	log := newTailLog()
	r := startTail(t, &AuditFollower{Path: path, MaxBatch: 2, Logger: slog.New(log),
		Sink: func(ctx context.Context, b AuditFileBatch) error {
			select {
			case calls <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			if failures > 0 {
				failures--
				return errors.New("audit store: disk full")
			}
			return nil
		}})

	first := tailRecv(r, calls)
	for i := range 3 {
		if diff := gocmp.Diff(first, tailRecv(r, calls)); diff != "" {
			t.Errorf("retry %d is another batch (-first +retry):\n%s", i+1, diff)
		}
	}
	if len(first.Events) != 2 || tailNum(t, first.Events[0]) != 1 {
		t.Errorf("first batch %+v, want events 1 and 2", first)
	}
	next := tailRecv(r, calls)
	if len(next.Events) != 1 || tailNum(t, next.Events[0]) != 3 {
		t.Errorf("after the retries batch %+v, want event 3", next)
	}
	if got := log.count("WARN", "audit sink failed", "disk full"); got != 3 {
		t.Errorf("log:\n%s\nwant 3 sink failures", log)
	}
}

func TestAuditFollowerLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	long := `{"kind":"Event","annotations":{"x":"` + strings.Repeat("x", maxAuditLine) + `"}}`
	tailWrite(t, path, tailLine(1)+long)
	r := startTail(t, &AuditFollower{Path: path})

	// Incomplete, the long line waits like any other.
	if g := r.collect(1, 0); g.last().Line != 2 {
		t.Errorf("cursor %+v, want line 2", g.last())
	}
	tailAppend(t, path, "\n"+tailLine(3))
	g := r.collect(1, 1)
	if g.ids[0] != 3 {
		t.Errorf("event %d after the long line, want 3", g.ids[0])
	}
	if bad := g.bad[0]; bad.Where != path+":line 2" || !errors.Is(bad, errLongLine) {
		t.Errorf("malformed %q, want line 2, too long", bad)
	}
	if got, want := g.last(), tailCursor(t, path, path, int64(len(tailLine(1))+len(long)+1+len(tailLine(3))), 4); got != want {
		t.Errorf("cursor %+v, want %+v", got, want)
	}
}

func TestAuditFollowerMissing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    string // under the test's directory
		removed bool   // the file is there with event 1, and removed once read
	}{
		{"created later", "audit.log", false},
		{"directory created later", "log/kube/audit.log", false},
		{"removed and created again", "audit.log", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.path)
			wait := "waiting for the audit log to appear"
			if tc.removed {
				tailWrite(t, path, tailLine(1))
				wait = "audit log gone"
			}
			log := newTailLog()
			r := startTail(t, &AuditFollower{Path: path, Logger: slog.New(log)})
			if tc.removed {
				r.collect(1, 0)
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			}
			log.waitFor(r, wait)

			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			tailWrite(t, path, tailLine(2))
			g := r.collect(1, 0)
			if got, want := g.last(), tailCursor(t, path, path, int64(len(tailLine(2))), 2); g.ids[0] != 2 || got != want {
				t.Errorf("event %d with cursor %+v, want 2 with %+v", g.ids[0], got, want)
			}
			if n := log.count(wait); n != 1 {
				t.Errorf("log:\n%s\nwant %q once", log, wait)
			}
		})
	}
}

func TestAuditFollowerCancel(t *testing.T) {
	// A sinkFor makes a sink that reports its calls on calls.
	type sinkFor = func(calls chan<- struct{}) func(context.Context, AuditFileBatch) error
	var block sinkFor = func(calls chan<- struct{}) func(context.Context, AuditFileBatch) error {
		return func(ctx context.Context, _ AuditFileBatch) error {
			calls <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
	}
	var fail sinkFor = func(calls chan<- struct{}) func(context.Context, AuditFileBatch) error {
		return func(context.Context, AuditFileBatch) error {
			select {
			case calls <- struct{}{}:
			default:
			}
			return errors.New("audit store: closed")
		}
	}
	for _, tc := range []struct {
		name string
		file bool    // the log holds an event
		sink sinkFor // nil: the test's
		wait string  // a log message to wait for, else a sink call
	}{
		{name: "waiting for the file", wait: "waiting for the audit log"},
		{name: "at the end of the file", file: true},
		{name: "in the sink", file: true, sink: block},
		{name: "backing off a failing sink", file: true, sink: fail, wait: "audit sink failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			if tc.file {
				tailWrite(t, path, tailLine(1))
			}
			log := newTailLog()
			// An hour's Poll: Run returning promptly shows it does not wait for the next tick.
			f := &AuditFollower{Path: path, Poll: time.Hour, Logger: slog.New(log)}
			calls := make(chan struct{}, 1)
			if tc.sink != nil {
				f.Sink = tc.sink(calls)
			}
			r := startTail(t, f)
			switch {
			case tc.wait != "":
				log.waitFor(r, tc.wait)
			case tc.sink != nil:
				tailRecv(r, calls)
			default:
				r.collect(1, 0)
			}
			r.stop()
		})
	}

	t.Run("context already ended", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		tailWrite(t, path, tailLine(1))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		f := &AuditFollower{Path: path, Sink: func(context.Context, AuditFileBatch) error {
			t.Error("sink called after the context ended")
			return nil
		}}
		if err := f.Run(ctx); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

func TestAuditFollowerConfig(t *testing.T) {
	dir := t.TempDir()
	sink := func(context.Context, AuditFileBatch) error { return nil }
	for _, tc := range []struct {
		name string
		f    AuditFollower
		want string
	}{
		{"no path", AuditFollower{Sink: sink}, "Path is empty"},
		{"no sink", AuditFollower{Path: filepath.Join(dir, "audit.log")}, "Sink is nil"},
		{"negative poll", AuditFollower{Path: filepath.Join(dir, "audit.log"), Sink: sink, Poll: -time.Second}, "negative"},
		{"not a regular file", AuditFollower{Path: dir, Sink: sink}, dir + " is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := tc.f.Run(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestAuditLineReader(t *testing.T) {
	type step struct {
		line string
		n    int64
		long bool
	}
	big := strings.Repeat("y", 200<<10) + "\n" // longer than the reader's buffer
	for _, tc := range []struct {
		name    string
		limit   int
		in      string
		want    []step
		partial int64 // what is left at the end
	}{
		{"lines", 8, "ab\n\ncd\n", []step{{"ab\n", 3, false}, {"\n", 1, false}, {"cd\n", 3, false}}, 0},
		{"at the limit", 8, "12345678\n", []step{{"12345678\n", 9, false}}, 0},
		{"over the limit", 8, "123456789\nab\n", []step{{"", 10, true}, {"ab\n", 3, false}}, 0},
		{"partial last line", 8, "ab\ncd", []step{{"ab\n", 3, false}}, 2},
		{"partial line over the limit", 8, "ab\n1234567890", []step{{"ab\n", 3, false}}, 10},
		{"longer than the buffer", 1 << 20, big + "z\n", []step{{big, int64(len(big)), false}, {"z\n", 2, false}}, 0},
		{"longer than the buffer, over the limit", 100 << 10, big + "z\n", []step{{"", int64(len(big)), true}, {"z\n", 2, false}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lr := newAuditLineReader(strings.NewReader(tc.in), tc.limit)
			var got []step
			for {
				line, n, long, err := lr.next()
				if errors.Is(err, io.EOF) {
					if n != tc.partial {
						t.Errorf("at the end %d bytes left, want %d", n, tc.partial)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, step{string(line), n, long})
			}
			if diff := gocmp.Diff(tc.want, got, gocmp.AllowUnexported(step{})); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

// tailRepeat reads n bytes of one value, without holding them.
type tailRepeat struct {
	chunk []byte
	n     int64
}

func (r *tailRepeat) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(int64(len(p)), r.n)], r.chunk)
	r.n -= int64(k)
	return k, nil
}

func TestReadEventLinesLongLine(t *testing.T) {
	const size = 256 << 20
	in := io.MultiReader(strings.NewReader(tailLine(1)), &tailRepeat{chunk: []byte(strings.Repeat("x", 64<<10)), n: size},
		strings.NewReader("\n"+tailLine(3)))
	var ids []int
	var bad []*AuditError
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := ReadEventLines(in, 1, func(e AuditEvent) error {
		ids = append(ids, tailNum(t, e))
		return nil
	}, func(e *AuditError) { bad = append(bad, e) })
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(tailLine(1)) + size + 1 + len(tailLine(3))); n != want {
		t.Errorf("consumed %d bytes, want %d", n, want)
	}
	if diff := gocmp.Diff([]int{1, 3}, ids); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(bad) != 1 || bad[0].Where != "line 2" || !errors.Is(bad[0], errLongLine) {
		t.Errorf("malformed %v, want line 2 too long", bad)
	}
	// Holding the line would allocate it at least once (256 MiB); keeping at most 16 MiB of it allocates a
	// few times that in all while its buffer grows.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 160<<20 {
		t.Errorf("allocated %d MiB reading a %d MiB line", alloc>>20, size>>20)
	}
}
