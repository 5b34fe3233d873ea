package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBackupRestore backs a store up while revisions keep committing, restores it into a new directory, and
// checks that the restored store is the original as of the backup's head: every revision's objects, the change
// log, the revision list and the side records. The restored store then takes new commits.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	s := openStoreAt(t, StoreOptions{Dir: t.TempDir()})
	for i := range 20 {
		mustCommit(t, s, t0.Add(time.Duration(i)*time.Minute), NewChange(nil, ns(fmt.Sprintf("ns-%02d", i), "i", fmt.Sprint(i))))
	}
	if err := s.UpdateSide(ctx, func(tx *SideTxn) error { return tx.Set([]byte("filter/x"), []byte("kept")) }); err != nil {
		t.Fatal(err)
	}
	// Commits go on during the backup.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 20; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Commit(ctx, "busy", t0.Add(time.Duration(i)*time.Minute), []Change{NewChange(nil, sa("busy", fmt.Sprint(i), "1"))}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var buf bytes.Buffer
	info, err := s.Backup(ctx, &buf)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if info.Head < 20 || info.Schema != storeSchema {
		t.Fatalf("backup info %+v", info)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	got, err := RestoreStore(ctx, dir, bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Head != info.Head {
		t.Fatalf("restore says head %d, backup %d", got.Head, info.Head)
	}
	r := openStoreAt(t, StoreOptions{Dir: dir})
	if r.Head() != info.Head || r.Horizon() != info.Horizon {
		t.Fatalf("restored head %d horizon %d; backup %+v", r.Head(), r.Horizon(), info)
	}
	revisions := func(st *Store) []RevisionInfo {
		var out []RevisionInfo
		if err := st.Revisions(ctx, 0, info.Head, func(ri RevisionInfo) bool { out = append(out, ri); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	same := func(what string, a, b any) {
		t.Helper()
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("%s differ:\n original %s\n restored %s", what, ja, jb)
		}
	}
	orig := revisions(s)
	same("revisions", orig, revisions(r))
	for _, ri := range orig {
		a, err := s.Objects(ctx, ri.Revision)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Objects(ctx, ri.Revision)
		if err != nil {
			t.Fatal(err)
		}
		same(fmt.Sprintf("objects at %d", ri.Revision), a, b)
	}
	changes := func(st *Store) []ChangeRecord {
		var out []ChangeRecord
		if err := st.Changes(ctx, 0, info.Head, func(c ChangeRecord) bool { out = append(out, c); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	same("changes", changes(s), changes(r))
	if err := r.ViewSide(ctx, func(tx *SideTxn) error {
		v, err := tx.Get([]byte("filter/x"))
		if err != nil || string(v) != "kept" {
			return fmt.Errorf("side record: %q, %v", v, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Nothing after the backup's moment came along.
	if _, err := r.Objects(ctx, info.Head+1); !errors.Is(err, ErrFutureRevision) {
		t.Fatalf("a revision after the backup's head: %v", err)
	}
	next := mustCommit(t, r, t0.Add(time.Hour*24), NewChange(nil, ns("after-restore")))
	if next.Revision <= info.Head {
		t.Fatalf("a commit after restore got revision %d, not above %d", next.Revision, info.Head)
	}
}

func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	s := openStoreAt(t, StoreOptions{Dir: t.TempDir()})
	mustCommit(t, s, t0, NewChange(nil, ns("a")))
	var buf bytes.Buffer
	if _, err := s.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	full := buf.String()
	header, data, _ := strings.Cut(full, "\n")
	occupied := t.TempDir()
	if err := os.WriteFile(filepath.Join(occupied, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, backup, want string
		wantErr                 error
	}{
		{"a directory that is not empty", occupied, full, "not empty", nil},
		{"not a backup", "", "hello\nworld", "not a kiem backup", nil},
		{"another schema", "", strings.Replace(header, fmt.Sprintf(`"schema":%d`, storeSchema), `"schema":99`, 1) + "\n" + data, "schema 99", ErrIncompatibleStore},
		{"cut short", "", full[:len(full)-len(data)/2], "backup data", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "restored")
			}
			_, err := RestoreStore(ctx, dir, strings.NewReader(tt.backup), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("RestoreStore = %v, want an error saying %q", err, tt.want)
			}
			if tt.dir == "" {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a failed restore left %s behind (%v)", dir, err)
				}
			}
		})
	}
}
