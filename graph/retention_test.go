package graph

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
)

func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Retention
		err  bool
	}{
		{"", Retention{}, false},
		{"0", Retention{}, false},
		{"720h", Retention{Age: 720 * time.Hour}, false},
		{"30d", Retention{Age: 30 * 24 * time.Hour}, false},
		{"10000", Retention{Revisions: 10000}, false},
		{"30d,10000", Retention{Age: 30 * 24 * time.Hour, Revisions: 10000}, false},
		{" 90m , 5 ", Retention{Age: 90 * time.Minute, Revisions: 5}, false},
		{"-5h", Retention{}, true},
		{"0s", Retention{}, true},
		{"30x", Retention{}, true},
		{"1,2", Retention{}, true},
		{"1d,2d", Retention{}, true},
		{"-3", Retention{}, true},
	} {
		got, err := ParseRetention(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseRetention(%q)=%+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil {
			if back, err := ParseRetention(got.String()); err != nil || back != got {
				t.Errorf("ParseRetention(%q.String()=%q)=%+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}

// hourly commits six revisions, one an hour from t0+1h, to s; the i-th sets Namespace a (label v=i), adds
// ServiceAccount s<i> and deletes s<i-2>. It returns the revisions (revs[0] = 0, the empty state; numbers are
// not dense while the loop applies retention) and the state after each.
func hourly(tb testing.TB, s *Store) ([]Revision, map[Revision]map[ObjectRef]Object) {
	tb.Helper()
	revs := []Revision{0}
	states := map[Revision]map[ObjectRef]Object{0: {}}
	cur := map[ObjectRef]Object{}
	for i := 1; i <= 6; i++ {
		a := ns("a", "v", fmt.Sprint(i))
		changes := []Change{NewChange(cur[a.Ref()], a), NewChange(nil, sa("a", fmt.Sprintf("s%d", i), "1"))}
		if old := sa("a", fmt.Sprintf("s%d", i-2), "1"); cur[old.Ref()] != nil {
			changes = append(changes, NewChange(old, nil))
		}
		info := mustCommit(tb, s, t0.Add(time.Duration(i)*time.Hour), changes...)
		next := maps.Clone(cur)
		for _, c := range changes {
			if c.After == nil {
				delete(next, c.Ref)
			} else {
				next[c.Ref] = c.After
			}
		}
		revs, states[info.Revision], cur = append(revs, info.Revision), next, next
	}
	return revs, states
}

func TestRetention(t *testing.T) {
	now := t0.Add(6 * time.Hour)
	for _, tc := range []struct {
		name string
		r    Retention
		want int // index of the horizon in hourly's revisions
	}{
		{"count", Retention{Revisions: 3}, 4},
		{"age", Retention{Age: 150 * time.Minute}, 3}, // cutoff t0+3h30: the third revision was current then
		{"both keep the union", Retention{Revisions: 3, Age: 150 * time.Minute}, 3},
		{"count above history", Retention{Revisions: 10}, 0},
		{"age above history", Retention{Age: 7 * time.Hour}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := StoreOptions{Dir: dir, Retention: tc.r, now: func() time.Time { return now }, memTableSize: 8 << 20}
			s := openStoreAt(t, opts)
			revs, states := hourly(t, s)
			if err := s.retain(context.Background(), now); err != nil {
				t.Fatalf("retain: %v", err)
			}
			want := revs[tc.want]
			if got := s.Horizon(); got != want {
				t.Fatalf("Horizon()=%d, want %d (revisions %v)", got, want, revs)
			}
			checkRetained(t, s, revs, states)
			if n := plainKeysBelow(t, s, want); n != 0 {
				t.Errorf("%d change log, revision or time entries below the horizon remain", n)
			}
			if err := s.Close(); err != nil { // compacts L0 with the raised discard timestamp
				t.Fatal(err)
			}
			s = openStoreAt(t, opts)
			if err := s.db.Flatten(2); err != nil {
				t.Fatal(err)
			}
			if got := s.Horizon(); got != want {
				t.Fatalf("Horizon() after reopen=%d, want %d", got, want)
			}
			checkRetained(t, s, revs, states)
			if tc.want > 1 {
				// What the refusal protects against: Badger itself now answers below the horizon wrongly.
				if raw := rawObjects(t, s, revs[1]); cmp.Equal(raw, encodedState(t, states[revs[1]])) {
					t.Errorf("raw read at %d below horizon %d still exact: compaction did not run, the test proves nothing", revs[1], want)
				}
			}
			s.gcValueLog(context.Background())
		})
	}
}

// checkRetained asserts that every revision from the horizon up reads back exactly and every one below is
// refused, through every read.
func checkRetained(t *testing.T, s *Store, revs []Revision, states map[Revision]map[ObjectRef]Object) {
	t.Helper()
	ctx := context.Background()
	h := s.Horizon()
	var want []Revision
	for _, r := range revs {
		objs, err := s.Objects(ctx, r)
		_, oerr := s.Object(ctx, r, ObjectRef{KindNamespace, "", "a"})
		cerr := s.Changes(ctx, r, s.Head(), func(ChangeRecord) bool { return true })
		if r < h {
			for what, err := range map[string]error{"Objects": err, "Object": oerr, "Changes": cerr} {
				if !errors.Is(err, ErrRevisionGone) {
					t.Errorf("%s(%d) below horizon %d: err=%v, want ErrRevisionGone", what, r, h, err)
				}
			}
			continue
		}
		if err != nil || cerr != nil {
			t.Fatalf("reads at %d, horizon %d: %v, %v", r, h, err, cerr)
		}
		if diff := cmp.Diff(states[r], state(objs)); diff != "" {
			t.Errorf("Objects(%d), horizon %d (-want +got):\n%s", r, h, diff)
		}
		if r > 0 {
			want = append(want, r)
		}
	}
	var listed []Revision
	_ = s.Revisions(ctx, 0, s.Head(), func(ri RevisionInfo) bool { listed = append(listed, ri.Revision); return true })
	if diff := cmp.Diff(want, listed); diff != "" {
		t.Errorf("Revisions(0, head), horizon %d (-want +got):\n%s", h, diff)
	}
	at, err := s.RevisionAt(ctx, t0.Add(90*time.Minute))
	switch {
	case h > revs[1] && !errors.Is(err, ErrRevisionGone):
		t.Errorf("RevisionAt(t0+90m), horizon %d = %d, %v; want ErrRevisionGone", h, at, err)
	case h <= revs[1] && (err != nil || at != revs[1]):
		t.Errorf("RevisionAt(t0+90m), horizon %d = %d, %v; want %d", h, at, err, revs[1])
	}
}

// plainKeysBelow counts the c|, r| and t| keys of revisions below h.
func plainKeysBelow(t *testing.T, s *Store, h Revision) int {
	t.Helper()
	n := 0
	err := s.view(context.Background(), math.MaxUint64, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			var rev Revision
			var err error
			switch k[0] {
			case prefixChange:
				rev, _, err = parseChangeKey(k)
			case prefixRevision:
				rev, err = parseRevisionKey(k)
			case prefixTime:
				_, rev, err = parseTimeKey(k)
			default:
				continue
			}
			if err != nil {
				return err
			}
			if rev < h {
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rawObjects reads the o| keys at rev straight from Badger, bypassing the horizon check.
func rawObjects(tb testing.TB, s *Store, rev Revision) map[string]string {
	tb.Helper()
	m := map[string]string{}
	err := s.view(context.Background(), uint64(rev), func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: objectsPrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			m[string(it.Item().Key())] = string(v)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// encodedState is what rawObjects returns for a state.
func encodedState(tb testing.TB, st map[ObjectRef]Object) map[string]string {
	tb.Helper()
	m := map[string]string{}
	for ref, o := range st {
		k, err := objectKey(ref)
		if err != nil {
			tb.Fatal(err)
		}
		v, err := MarshalObject(o)
		if err != nil {
			tb.Fatal(err)
		}
		m[string(k)] = string(v)
	}
	return m
}

func TestRetentionAppliedOnOpen(t *testing.T) {
	dir := t.TempDir()
	s := openStoreAt(t, StoreOptions{Dir: dir, memTableSize: 8 << 20})
	revs, states := hourly(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A shorter retention takes effect before OpenStore returns; the loop deletes the history below later.
	s = openStoreAt(t, StoreOptions{Dir: dir, memTableSize: 8 << 20, Retention: Retention{Revisions: 2}})
	if got := s.Horizon(); got != revs[5] {
		t.Fatalf("Horizon() after reopening with 2 revisions = %d, want %d", got, revs[5])
	}
	checkRetained(t, s, revs, states)
	// The count keeps following commits: two more revisions move the horizon by two.
	a := ns("a", "v", "7")
	r7 := mustCommit(t, s, t0.Add(7*time.Hour), NewChange(states[revs[6]][a.Ref()], a)).Revision
	mustCommit(t, s, t0.Add(8*time.Hour), NewChange(a, ns("a", "v", "8")))
	if err := s.retain(context.Background(), t0.Add(8*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := s.Horizon(); got != r7 {
		t.Errorf("Horizon() after two more commits = %d, want %d", got, r7)
	}
	if n := plainKeysBelow(t, s, r7); n != 0 {
		t.Errorf("%d entries below the horizon remain", n)
	}
}

func TestRetentionString(t *testing.T) {
	for r, want := range map[Retention]string{
		{}:                                  "",
		{Age: 36 * time.Hour}:               "36h0m0s",
		{Age: 48 * time.Hour}:               "2d",
		{Revisions: 7}:                      "7",
		{Age: 24 * time.Hour, Revisions: 3}: "1d,3",
	} {
		if got := r.String(); got != want || strings.Contains(got, " ") {
			t.Errorf("%+v.String()=%q, want %q", r, got, want)
		}
	}
}
