package graph

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestStoreSide: side records are written atomically, read back in key order both ways, survive a reopen and
// retention, and never become revisions.
func TestStoreSide(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStoreAt(t, StoreOptions{Dir: dir, Retention: Retention{Revisions: 1}})
	mustCommit(t, s, t0, NewChange(nil, ns("a")))
	put := func(kvs ...string) error {
		return s.UpdateSide(ctx, func(tx *SideTxn) error {
			for i := 0; i+1 < len(kvs); i += 2 {
				if err := tx.Set([]byte(kvs[i]), []byte(kvs[i+1])); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := put("f/1", "one", "f/2", "two", "f/3", "three", "g/1", "other"); err != nil {
		t.Fatal(err)
	}
	// A failing update writes nothing, not even what it set before failing.
	boom := errors.New("boom")
	if err := s.UpdateSide(ctx, func(tx *SideTxn) error {
		if err := tx.Set([]byte("f/4"), []byte("four")); err != nil {
			return err
		}
		if got, err := tx.Get([]byte("f/4")); err != nil || string(got) != "four" {
			t.Errorf("inside the update, Get(f/4) = %q, %v; want its own write", got, err)
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("UpdateSide = %v, want boom", err)
	}
	mustCommit(t, s, t0.Add(time.Minute), NewChange(nil, ns("b")))
	if err := s.UpdateSide(ctx, func(tx *SideTxn) error { return tx.Delete([]byte("f/2")) }); err != nil {
		t.Fatal(err)
	}
	scan := func(s *Store, prefix, start string, reverse bool) string {
		var out string
		err := s.ViewSide(ctx, func(tx *SideTxn) error {
			var from []byte
			if start != "" {
				from = []byte(start)
			}
			return tx.Scan([]byte(prefix), from, reverse, func(k, v []byte) (bool, error) {
				out += fmt.Sprintf("%s=%s ", k, v)
				return true, nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(s *Store) {
		t.Helper()
		for _, tc := range []struct {
			prefix, start string
			reverse       bool
			want          string
		}{
			{"f/", "", false, "f/1=one f/3=three "},
			{"f/", "", true, "f/3=three f/1=one "},
			{"f/", "f/2", false, "f/3=three "},
			{"f/", "f/2", true, "f/1=one "},
			{"g/", "", false, "g/1=other "},
			{"h/", "", false, ""},
		} {
			if got := scan(s, tc.prefix, tc.start, tc.reverse); got != tc.want {
				t.Errorf("Scan(%q, from %q, reverse %v) = %q, want %q", tc.prefix, tc.start, tc.reverse, got, tc.want)
			}
		}
		if err := s.ViewSide(ctx, func(tx *SideTxn) error {
			_, err := tx.Get([]byte("f/4"))
			return err
		}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(f/4) = %v, want ErrNotFound: the failed update wrote it", err)
		}
		var revs []Revision
		_ = s.Revisions(ctx, 0, s.Head(), func(ri RevisionInfo) bool { revs = append(revs, ri.Revision); return true })
		if len(revs) != 1 || revs[0] != s.Head() {
			t.Errorf("revisions %v with count retention 1 and head %d: side writes must not be revisions", revs, s.Head())
		}
	}
	if err := s.retain(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, StoreOptions{Dir: dir, Retention: Retention{Revisions: 1}})
	check(s)
	if info := mustCommit(t, s, t0.Add(2*time.Minute), NewChange(nil, ns("c"))); info.Revision <= 4 {
		t.Errorf("commit after side writes got revision %d: side writes spend timestamps", info.Revision)
	}
}

// TestStoreSideOnly: a store that holds side records and no revision yet reopens (its first write says what it is).
func TestStoreSideOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStoreAt(t, StoreOptions{Dir: dir})
	if err := s.UpdateSide(ctx, func(tx *SideTxn) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, StoreOptions{Dir: dir})
	err := s.ViewSide(ctx, func(tx *SideTxn) error {
		v, err := tx.Get([]byte("k"))
		if err == nil && string(v) != "v" {
			err = fmt.Errorf("got %q", v)
		}
		return err
	})
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	if s.Head() != 0 {
		t.Errorf("Head() = %d after side writes only, want 0", s.Head())
	}
}
