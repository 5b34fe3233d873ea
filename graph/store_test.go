package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
)

// mustOpenStore opens an in-memory store (opts.InMemory is forced) closed at the end of the test.
func mustOpenStore(tb testing.TB, opts StoreOptions) *Store {
	tb.Helper()
	opts.InMemory, opts.Dir = true, ""
	return openStoreAt(tb, opts)
}

// openStoreAt opens opts as given and closes the store at the end of the test (Close is idempotent).
func openStoreAt(tb testing.TB, opts StoreOptions) *Store {
	tb.Helper()
	s, err := OpenStore(context.Background(), opts)
	if err != nil {
		tb.Fatalf("OpenStore: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func ns(name string, kv ...string) *Namespace {
	n := &Namespace{Meta: Meta{Name: name}}
	if len(kv) > 0 {
		n.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			n.Labels[kv[i]] = kv[i+1]
		}
	}
	return n
}

func sa(namespace, name, version string) *ServiceAccount {
	return &ServiceAccount{Meta: Meta{Namespace: namespace, Name: name, ResourceVersion: version}}
}

func mustCommit(tb testing.TB, s *Store, wall time.Time, changes ...Change) RevisionInfo {
	tb.Helper()
	info, err := s.Commit(context.Background(), "test", wall, changes)
	if err != nil {
		tb.Fatalf("Commit: %v", err)
	}
	return info
}

// state turns a set of objects into a map for comparison.
func state(objs *Objects) map[ObjectRef]Object {
	m := map[ObjectRef]Object{}
	objs.Each(func(o Object) bool { m[o.Ref()] = o; return true })
	return m
}

func stateOf(objs ...Object) map[ObjectRef]Object {
	m := map[ObjectRef]Object{}
	for _, o := range objs {
		m[o.Ref()] = o
	}
	return m
}

func mustObjects(tb testing.TB, s *Store, rev Revision) map[ObjectRef]Object {
	tb.Helper()
	objs, err := s.Objects(context.Background(), rev)
	if err != nil {
		tb.Fatalf("Objects(%d): %v", rev, err)
	}
	return state(objs)
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// history commits three revisions to s and returns the state after each (index = revision number).
func history(tb testing.TB, s *Store) []map[ObjectRef]Object {
	tb.Helper()
	a1, x1 := ns("a", "pss", "baseline"), sa("a", "x", "1")
	mustCommit(tb, s, t0, NewChange(nil, a1), NewChange(nil, x1))
	x2, r := sa("a", "x", "2"), &Role{Kind: KindRole, Meta: Meta{Namespace: "a", Name: "r"}}
	mustCommit(tb, s, t0.Add(time.Minute), NewChange(x1, x2), NewChange(nil, r))
	a3 := ns("a", "pss", "restricted")
	mustCommit(tb, s, t0.Add(2*time.Minute), NewChange(x2, nil), NewChange(a1, a3))
	return []map[ObjectRef]Object{{}, stateOf(a1, x1), stateOf(a1, x2, r), stateOf(a3, r)}
}

func TestStoreTimeTravel(t *testing.T) {
	s := mustOpenStore(t, StoreOptions{})
	want := history(t, s)
	if got := s.Head(); got != 3 {
		t.Fatalf("Head()=%d, want 3", got)
	}
	ctx := context.Background()
	for rev, w := range want {
		if diff := cmp.Diff(w, mustObjects(t, s, Revision(rev))); diff != "" {
			t.Errorf("Objects(%d) (-want +got):\n%s", rev, diff)
		}
		for _, ref := range []ObjectRef{{KindNamespace, "", "a"}, {KindServiceAccount, "a", "x"}, {KindRole, "a", "r"}} {
			got, err := s.Object(ctx, Revision(rev), ref)
			if w[ref] == nil {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("Object(%d, %s)=%v, %v; want ErrNotFound", rev, ref, got, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Object(%d, %s): %v", rev, ref, err)
			}
			if diff := cmp.Diff(w[ref], got); diff != "" {
				t.Errorf("Object(%d, %s) (-want +got):\n%s", rev, ref, diff)
			}
		}
	}
	if _, err := s.Objects(ctx, 4); !errors.Is(err, ErrFutureRevision) {
		t.Errorf("Objects(4): err=%v, want ErrFutureRevision", err)
	}
	if _, err := s.Object(ctx, 4, ObjectRef{KindNamespace, "", "a"}); !errors.Is(err, ErrFutureRevision) {
		t.Errorf("Object(4): err=%v, want ErrFutureRevision", err)
	}
	if _, err := s.Object(ctx, 1, ObjectRef{"User", "", "alice"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Object(User): err=%v, want ErrNotFound", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Objects(cancelled, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("Objects(cancelled ctx): err=%v", err)
	}
}

func TestStoreChanges(t *testing.T) {
	s := mustOpenStore(t, StoreOptions{})
	history(t, s)
	type rec struct {
		Rev Revision
		Seq int
		Op  Op
		Ref string
	}
	all := []rec{
		{1, 0, OpAdd, "Namespace/a"}, {1, 1, OpAdd, "ServiceAccount/a/x"},
		{2, 0, OpUpdate, "ServiceAccount/a/x"}, {2, 1, OpAdd, "Role/a/r"},
		{3, 0, OpDelete, "ServiceAccount/a/x"}, {3, 1, OpUpdate, "Namespace/a"},
	}
	for _, tc := range []struct {
		name     string
		from, to Revision
		limit    int
		want     []rec
	}{
		{"all", 0, 3, 0, all},
		{"middle", 1, 2, 0, all[2:4]},
		{"last", 2, 3, 0, all[4:]},
		{"empty", 2, 2, 0, nil},
		{"reversed", 3, 1, 0, nil},
		{"stop early", 0, 3, 3, all[:3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []rec
			err := s.Changes(context.Background(), tc.from, tc.to, func(c ChangeRecord) bool {
				got = append(got, rec{c.Revision, c.Seq, c.Op, c.Ref.String()})
				return tc.limit == 0 || len(got) < tc.limit
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Changes(%d, %d) (-want +got):\n%s", tc.from, tc.to, diff)
			}
		})
	}
	var upd ChangeRecord
	_ = s.Changes(context.Background(), 1, 2, func(c ChangeRecord) bool { upd = c; return false })
	want := ChangeRecord{Revision: 2, Op: OpUpdate, Ref: ObjectRef{KindServiceAccount, "a", "x"},
		Before: sa("a", "x", "1"), After: sa("a", "x", "2"), Source: "test", Time: t0.Add(time.Minute)}
	if diff := cmp.Diff(want, upd); diff != "" {
		t.Errorf("change 2/0 (-want +got):\n%s", diff)
	}
	if err := s.Changes(context.Background(), 0, 4, func(ChangeRecord) bool { return true }); !errors.Is(err, ErrFutureRevision) {
		t.Errorf("Changes(0, 4): err=%v, want ErrFutureRevision", err)
	}
}

func TestStoreRevisions(t *testing.T) {
	s := mustOpenStore(t, StoreOptions{})
	history(t, s)
	all := []RevisionInfo{
		{Revision: 1, Time: t0, Source: "test", Changes: 2, Summary: map[Kind][3]int{KindNamespace: {1, 0, 0}, KindServiceAccount: {1, 0, 0}}},
		{Revision: 2, Time: t0.Add(time.Minute), Source: "test", Changes: 2, Summary: map[Kind][3]int{KindServiceAccount: {0, 1, 0}, KindRole: {1, 0, 0}}},
		{Revision: 3, Time: t0.Add(2 * time.Minute), Source: "test", Changes: 2, Summary: map[Kind][3]int{KindServiceAccount: {0, 0, 1}, KindNamespace: {0, 1, 0}}},
	}
	for _, tc := range []struct {
		from, to Revision
		want     []RevisionInfo
	}{{0, 3, all}, {1, 3, all[1:]}, {0, 1, all[:1]}, {3, 3, nil}} {
		var got []RevisionInfo
		if err := s.Revisions(context.Background(), tc.from, tc.to, func(ri RevisionInfo) bool { got = append(got, ri); return true }); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Revisions(%d, %d) (-want +got):\n%s", tc.from, tc.to, diff)
		}
		var back []RevisionInfo
		if err := s.RevisionsBackward(context.Background(), tc.from, tc.to, func(ri RevisionInfo) bool { back = append(back, ri); return true }); err != nil {
			t.Fatal(err)
		}
		slices.Reverse(back)
		if diff := cmp.Diff(tc.want, back); diff != "" {
			t.Errorf("RevisionsBackward(%d, %d), reversed (-want +got):\n%s", tc.from, tc.to, diff)
		}
	}
	if err := s.Revisions(context.Background(), 0, 9, func(RevisionInfo) bool { return true }); !errors.Is(err, ErrFutureRevision) {
		t.Errorf("Revisions(0, 9): err=%v, want ErrFutureRevision", err)
	}
}

func TestStoreRevisionAt(t *testing.T) {
	s := mustOpenStore(t, StoreOptions{})
	history(t, s)
	// A clock stepping back: recorded at the previous revision's wall, so the index stays in revision order.
	info := mustCommit(t, s, t0.Add(time.Minute), NewChange(nil, ns("b")))
	if !info.Time.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("Commit with an earlier wall: Time=%v, want %v", info.Time, t0.Add(2*time.Minute))
	}
	for _, tc := range []struct {
		at   time.Time
		want Revision
	}{
		{t0.Add(-time.Second), 0},
		{t0, 1},
		{t0.Add(59 * time.Second), 1},
		{t0.Add(time.Minute), 2},
		{t0.Add(2 * time.Minute), 4},
		{t0.Add(time.Hour), 4},
	} {
		got, err := s.RevisionAt(context.Background(), tc.at)
		if err != nil || got != tc.want {
			t.Errorf("RevisionAt(%v)=%d, %v; want %d", tc.at, got, err, tc.want)
		}
	}
}

func TestStoreSetActor(t *testing.T) {
	s := mustOpenStore(t, StoreOptions{})
	history(t, s)
	ctx := context.Background()
	alice := Actor{User: "alice", Groups: []string{"ops"}, AuditID: "a-1"}
	if err := s.SetActor(ctx, 2, 1, alice); err != nil {
		t.Fatalf("SetActor: %v", err)
	}
	var got []*Actor
	_ = s.Changes(ctx, 1, 2, func(c ChangeRecord) bool { got = append(got, c.Actor); return true })
	if diff := cmp.Diff([]*Actor{nil, &alice}, got); diff != "" {
		t.Errorf("actors of revision 2 (-want +got):\n%s", diff)
	}
	// SetActor commits at a timestamp of its own: the next revision is above it, and reads are unchanged.
	before := mustObjects(t, s, 3)
	if info := mustCommit(t, s, time.Time{}, NewChange(nil, ns("b"))); info.Revision <= 4 {
		t.Errorf("revision after SetActor = %d, want > 4", info.Revision)
	}
	if diff := cmp.Diff(before, mustObjects(t, s, 4)); diff != "" {
		t.Errorf("Objects(4) between revisions 3 and 5 (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		rev  Revision
		seq  int
		want error
	}{{2, 2, ErrNotFound}, {2, -1, ErrNotFound}, {4, 0, ErrNotFound}, {99, 0, ErrFutureRevision}} {
		if err := s.SetActor(ctx, tc.rev, tc.seq, alice); !errors.Is(err, tc.want) {
			t.Errorf("SetActor(%d, %d): err=%v, want %v", tc.rev, tc.seq, err, tc.want)
		}
	}
}

func TestStoreCommitRules(t *testing.T) {
	s := mustOpenStore(t, StoreOptions{})
	ctx := context.Background()
	if info, err := s.Commit(ctx, "test", t0, nil); err != nil || info.Revision != 0 {
		t.Errorf("empty Commit on an empty store = %+v, %v; want the zero info", info, err)
	}
	// One object changed twice in a revision: the later change wins, both are logged.
	a1, a2 := ns("a", "v", "1"), ns("a", "v", "2")
	first := mustCommit(t, s, t0, NewChange(nil, a1), NewChange(a1, a2))
	if diff := cmp.Diff(stateOf(a2), mustObjects(t, s, first.Revision)); diff != "" {
		t.Errorf("object changed twice (-want +got):\n%s", diff)
	}
	if first.Changes != 2 || first.Summary[KindNamespace] != [3]int{1, 1, 0} {
		t.Errorf("info=%+v, want 2 changes, 1 add 1 update", first)
	}
	if info, err := s.Commit(ctx, "other", t0.Add(time.Hour), []Change{}); err != nil || info.Revision != first.Revision || info.Source != "test" {
		t.Errorf("empty Commit = %+v, %v; want the head's info", info, err)
	}
	bad := map[string]Change{
		"unknown op":     {Op: "patch", After: ns("b")},
		"add without":    {Op: OpAdd, Ref: ObjectRef{KindNamespace, "", "b"}},
		"ref mismatch":   {Op: OpUpdate, Ref: ObjectRef{KindNamespace, "", "c"}, After: ns("b")},
		"delete w/after": {Op: OpDelete, After: ns("b")},
		"group kind":     {Op: OpDelete, Ref: ObjectRef{KindGroup, "", "devs"}},
		"nul in name":    {Op: OpAdd, After: ns("b\x00c")},
		"no name":        {Op: OpDelete, Ref: ObjectRef{Kind: KindNamespace}},
	}
	for name, c := range bad {
		if _, err := s.Commit(ctx, "test", t0, []Change{NewChange(nil, ns("ok")), c}); err == nil {
			t.Errorf("Commit(%s): no error", name)
		}
	}
	if s.Head() != first.Revision {
		t.Errorf("Head()=%d after refused commits, want %d", s.Head(), first.Revision)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Commit(ctx2, "test", t0, []Change{NewChange(nil, ns("b"))}); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit(cancelled): err=%v", err)
	}
}

func TestStoreReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openStoreAt(t, StoreOptions{Dir: dir})
	want := history(t, s)
	if err := s.SetActor(ctx, 3, 0, Actor{User: "bob"}); err != nil {
		t.Fatal(err)
	}
	collect := func(s *Store) (revs []RevisionInfo, changes []ChangeRecord) {
		_ = s.Revisions(ctx, 0, s.Head(), func(ri RevisionInfo) bool { revs = append(revs, ri); return true })
		_ = s.Changes(ctx, 0, s.Head(), func(c ChangeRecord) bool { changes = append(changes, c); return true })
		return revs, changes
	}
	revs, changes := collect(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, StoreOptions{Dir: dir})
	if n := s.SizeBytes(); n <= 0 || n > 64<<20 {
		t.Errorf("SizeBytes()=%d for three small revisions", n)
	}
	if s.Head() != 3 || s.Horizon() != 0 {
		t.Fatalf("after reopen Head()=%d Horizon()=%d, want 3 and 0", s.Head(), s.Horizon())
	}
	for rev, w := range want {
		if diff := cmp.Diff(w, mustObjects(t, s, Revision(rev))); diff != "" {
			t.Errorf("Objects(%d) after reopen (-want +got):\n%s", rev, diff)
		}
	}
	revs2, changes2 := collect(s)
	if diff := cmp.Diff(revs, revs2); diff != "" {
		t.Errorf("Revisions after reopen (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(changes, changes2); diff != "" {
		t.Errorf("Changes after reopen (-before +after):\n%s", diff)
	}
	if info := mustCommit(t, s, t0, NewChange(nil, ns("b"))); info.Revision <= 4 || !info.Time.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("first commit after reopen = %+v, want a revision above SetActor's 4 and the head's wall", info)
	}
}

func TestStoreSchemaMismatch(t *testing.T) {
	ctx := context.Background()
	t.Run("other version", func(t *testing.T) {
		dir := t.TempDir()
		s := openStoreAt(t, StoreOptions{Dir: dir})
		history(t, s)
		_ = s.Close()
		rawWrite(t, dir, 100, kv{key: keySchema, val: []byte{0, 0, 0, 7}})
		_, err := OpenStore(ctx, StoreOptions{Dir: dir})
		if !errors.Is(err, ErrIncompatibleStore) || !strings.Contains(err.Error(), "version 7") || !strings.Contains(err.Error(), "version 1") ||
			!strings.Contains(err.Error(), "newer kiem") {
			t.Errorf("OpenStore: err=%v, want ErrIncompatibleStore naming versions 7 and 1 and a newer kiem", err)
		}
	})
	t.Run("older version", func(t *testing.T) {
		dir := t.TempDir()
		s := openStoreAt(t, StoreOptions{Dir: dir})
		history(t, s)
		_ = s.Close()
		rawWrite(t, dir, 100, kv{key: keySchema, val: []byte{0, 0, 0, 0}})
		_, err := OpenStore(ctx, StoreOptions{Dir: dir})
		if !errors.Is(err, ErrIncompatibleStore) || !strings.Contains(err.Error(), "older kiem") || !strings.Contains(err.Error(), "kiem export") {
			t.Errorf("OpenStore: err=%v, want ErrIncompatibleStore saying how to move an older store", err)
		}
	})
	t.Run("not kiem", func(t *testing.T) {
		dir := t.TempDir()
		rawWrite(t, dir, 1, kv{key: []byte("hello"), val: []byte("world")})
		if _, err := OpenStore(ctx, StoreOptions{Dir: dir}); !errors.Is(err, ErrIncompatibleStore) {
			t.Errorf("OpenStore: err=%v, want ErrIncompatibleStore", err)
		}
	})
}

// rawWrite writes entries at ts into the Badger database in dir, bypassing the store.
func rawWrite(tb testing.TB, dir string, ts uint64, entries ...kv) {
	tb.Helper()
	db, err := badger.OpenManaged(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		tb.Fatal(err)
	}
	txn := db.NewTransactionAt(ts, true)
	for _, e := range entries {
		if err := setOrDelete(txn, e); err != nil {
			tb.Fatal(err)
		}
	}
	if err := txn.CommitAt(ts, nil); err != nil {
		tb.Fatal(err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

func TestStoreClosed(t *testing.T) {
	s := mustOpenStore(t, StoreOptions{})
	history(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Commit(ctx, "test", t0, []Change{NewChange(nil, ns("b"))}); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit after Close: err=%v", err)
	}
	if _, err := s.Objects(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Objects after Close: err=%v", err)
	}
	if err := s.SetActor(ctx, 1, 0, Actor{User: "a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetActor after Close: err=%v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStoreOpenOptions(t *testing.T) {
	for name, opts := range map[string]StoreOptions{"neither": {}, "both": {Dir: t.TempDir(), InMemory: true}} {
		if _, err := OpenStore(context.Background(), opts); err == nil {
			t.Errorf("OpenStore(%s): no error", name)
		}
	}
}

// logBuffer returns a logger writing text lines to a new buffer.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return logTo(&buf)
}

func logTo(buf *bytes.Buffer) (*slog.Logger, *bytes.Buffer) {
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// TestStoreBigRevision commits a revision far beyond one Badger transaction (ErrTxnTooBig comes near 45k
// entries with a 64 MiB memtable; this one has 600k: objects and change log), as the initial list of a big
// cluster does, and reads it back.
func TestStoreBigRevision(t *testing.T) {
	const n = 300_000
	s := openStoreAt(t, StoreOptions{Dir: t.TempDir()})
	changes := make([]Change, n)
	for i := range changes {
		changes[i] = NewChange(nil, &Pod{Meta: Meta{Namespace: fmt.Sprintf("ns-%d", i%1000), Name: fmt.Sprintf("pod-%d", i)},
			ServiceAccount: "default", NodeName: fmt.Sprintf("node-%d", i%50)})
	}
	ctx := context.Background()
	info, err := s.Commit(ctx, "initial list", t0, changes)
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision != 1 || info.Changes != n || info.Summary[KindPod] != [3]int{n, 0, 0} {
		t.Fatalf("Commit: %+v", info)
	}
	objs, err := s.Objects(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Pods) != n || objs.Count() != n {
		t.Fatalf("Objects(1): %d pods, %d objects; want %d", len(objs.Pods), objs.Count(), n)
	}
	got := map[ObjectRef]Pod{}
	for _, p := range objs.Pods {
		got[p.Ref()] = p
	}
	for _, c := range changes {
		if p, ok := got[c.Ref]; !ok || !reflect.DeepEqual(p, *c.After.(*Pod)) {
			t.Fatalf("pod %s: got %+v (present %v), want %+v", c.Ref, p, ok, c.After)
		}
	}
	// The change log: every record is there (counted raw: decoding 300k records is Changes' own business) and
	// reads back.
	count := 0
	err = s.view(ctx, s.readTS.Load(), func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: changesPrefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			count++
		}
		return nil
	})
	if err != nil || count != n {
		t.Errorf("change log of revision 1: %d records, %v; want %d", count, err, n)
	}
	var first []ChangeRecord
	_ = s.Changes(ctx, 0, 1, func(c ChangeRecord) bool { first = append(first, c); return len(first) < 3 })
	if len(first) != 3 || first[2].Seq != 2 || !reflect.DeepEqual(first[2].After, changes[2].After) {
		t.Errorf("Changes(0, 1) from the start: %+v", first)
	}
}
