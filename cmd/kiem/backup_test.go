package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/internal/testutil"
)

// TestBackupWhileServing backs up a serving kiem through /backup (admin only), restores it, and compares the
// restored store's history with the original's once that is stopped; then backs up the stopped store directly.
func TestBackupWhileServing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--data-dir", dir, "--listen", addr}, strings.NewReader(""), io.Discard, &stderr)
	}()
	waitFor(t, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })
	token := printedToken(t, &stderr)
	// A saved filter is among what a backup keeps.
	if code, body := post(t, "http://"+addr+"/graphql", token, `mutation { saveFilter(input: {id: "kept", name: "kept", target: CHANGES, expression: "true"}) { id } }`); code != 200 || !strings.Contains(body, `"kept"`) {
		t.Fatalf("saveFilter = %d %s", code, body)
	}

	if code, _ := get("http://" + addr + "/backup"); code != http.StatusUnauthorized {
		t.Fatalf("/backup without a token = %d, want 401", code)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "kiem.backup")
	if r := kiem(t, "", "backup", "--server", "http://"+addr, "--token-file", tokenFile, "-o", file); r.code != 0 || !strings.Contains(r.err, "written to") {
		t.Fatalf("backup --server: %d %s", r.code, r.err)
	}
	if r := kiem(t, "", "backup", "--server", "http://"+addr, "-o", file+"2"); r.code == 0 || !strings.Contains(r.err, "admin token") {
		t.Fatalf("backup --server without a token: %d %s", r.code, r.err)
	}
	stopServe(t, cancel, done, &stderr)

	restored := filepath.Join(t.TempDir(), "restored")
	if r := kiem(t, "", "restore", "--data-dir", restored, file); r.code != 0 || !strings.Contains(r.err, "restored revision") {
		t.Fatalf("restore: %d %s", r.code, r.err)
	}
	if r := kiem(t, "", "restore", "--data-dir", restored, file); r.code == 0 || !strings.Contains(r.err, "not empty") {
		t.Fatalf("restore over a store: %d %s", r.code, r.err)
	}
	history := func(dir string) string {
		t.Helper()
		r := kiem(t, "", "history", "--data-dir", dir, "-o", "json")
		if r.code != 0 {
			t.Fatalf("history of %s: %d %s", dir, r.code, r.err)
		}
		var revs []json.RawMessage
		if err := json.Unmarshal([]byte(r.out), &revs); err != nil || len(revs) < 7 {
			t.Fatalf("history of %s: %v %s", dir, err, r.out)
		}
		return r.out
	}
	if a, b := history(dir), history(restored); a != b {
		t.Fatalf("the restored history differs:\n original %s\n restored %s", a, b)
	}

	// A stopped store is backed up directly; its restore answers the same questions.
	file2 := filepath.Join(t.TempDir(), "stopped.backup")
	if r := kiem(t, "", "backup", "--data-dir", dir, "-o", file2); r.code != 0 {
		t.Fatalf("backup --data-dir: %d %s", r.code, r.err)
	}
	again := filepath.Join(t.TempDir(), "again")
	if r := kiem(t, "", "restore", "--data-dir", again, file2); r.code != 0 {
		t.Fatalf("restore: %d %s", r.code, r.err)
	}
	if a, b := kiem(t, "", "export", "--data-dir", dir), kiem(t, "", "export", "--data-dir", again); a.code != 0 || a.out != b.out {
		t.Fatalf("export of the original and of the restored store differ (%d/%d)", a.code, b.code)
	}
	if r := kiem(t, "", "backup", "--data-dir", dir); r.code == 0 || !strings.Contains(r.err, "-o FILE is required") {
		t.Fatalf("backup without -o: %d %s", r.code, r.err)
	}
}
