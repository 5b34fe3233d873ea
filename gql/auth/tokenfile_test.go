package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sha(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// writeTokens writes content to a fresh file with mode perm and returns its path.
func writeTokens(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; the tests need it exact.
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceTokens swaps in new content the way editors and config management do: write aside, then rename.
func replaceTokens(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTokenFileParse(t *testing.T) {
	content := strings.Join([]string{
		"# kiem tokens",
		"",
		"plain-token-alice,alice,admin",
		"  sha256:" + sha("hashed-token-bob") + " , bob , viewer  ",
		"sha256:" + strings.ToUpper(sha("upper-hex")) + ",carol,Viewer\r",
		"   # indented comment",
	}, "\n")
	log, _ := newLog()
	f, err := LoadTokenFile(writeTokens(t, content, 0o600), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		token string
		user  string
		role  Role
	}{
		{"plain-token-alice", "alice", RoleAdmin},
		{"hashed-token-bob", "bob", RoleViewer},
		{"upper-hex", "carol", RoleViewer},
	} {
		p, err := f.Authenticate(ctx, tc.token)
		if err != nil || p.User != tc.user || p.Role != tc.role || p.Mode != ModeTokenFile {
			t.Errorf("Authenticate(%q)=%+v, %v; want %s as %v", tc.token, p, err, tc.user, tc.role)
		}
	}
	for _, tok := range []string{"sha256:" + sha("hashed-token-bob"), "plain-token-alice ", "nobody"} {
		if _, err := f.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q): %v, want ErrUnauthenticated", tok, err)
		}
	}
	if _, err := f.Authenticate(ctx, ""); !errors.Is(err, ErrNoToken) {
		t.Errorf("Authenticate(\"\"): %v, want ErrNoToken", err)
	}
}

func TestTokenFileErrors(t *testing.T) {
	const secret = "do-not-echo-me"
	for _, tc := range []struct {
		name    string
		content string
		want    []string // each must appear in the error
	}{
		{"too few fields", "ok-token,u,admin\n" + secret + ",alice\n", []string{":2: want TOKEN,USER,ROLE, found 2 fields"}},
		{"too many fields", secret + ",alice,admin,extra\n", []string{":1: want TOKEN,USER,ROLE, found 4 fields"}},
		{"unknown role", "# c\n" + secret + ",alice,root\n", []string{`:2: unknown role "root" (want viewer, admin or audit-writer)`}},
		{"empty user", secret + ", ,admin\n", []string{":1: empty user"}},
		{"empty token", " ,alice,admin\n", []string{":1: empty token"}},
		{"short hash", "sha256:abc123,alice,admin\n", []string{":1: sha256: needs 64 hex digits"}},
		{"non-hex hash", "sha256:" + strings.Repeat("zz", 32) + ",alice,admin\n", []string{":1: sha256: needs 64 hex digits"}},
		{"duplicate plain", secret + ",alice,admin\n\n" + secret + ",bob,viewer\n", []string{":3: duplicate token (first at line 1)"}},
		{"duplicate plain and hash", secret + ",alice,admin\nsha256:" + sha(secret) + ",bob,viewer\n",
			[]string{":2: duplicate token (first at line 1)"}},
		{"every bad line", secret + ",a\n" + secret + ",b,root\n", []string{":1: want", ":2: unknown role"}},
		{"no tokens", "# nothing yet\n\n", []string{"no tokens"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLog()
			path := writeTokens(t, tc.content, 0o600)
			_, err := LoadTokenFile(path, log)
			if err == nil {
				t.Fatal("LoadTokenFile succeeded")
			}
			for _, w := range tc.want {
				if strings.HasPrefix(w, ":") {
					w = path + w
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
				t.Errorf("the token leaked: error %q, log %q", err, logs.String())
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		log, _ := newLog()
		if _, err := LoadTokenFile(filepath.Join(t.TempDir(), "nope"), log); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("LoadTokenFile(missing): %v, want ErrNotExist", err)
		}
	})
}

func TestTokenFilePermissions(t *testing.T) {
	// A group other than the process' own, for files whose group is not kiem's.
	other := os.Getegid() + 4242
	for _, tc := range []struct {
		name  string
		perm  os.FileMode
		group int // -1: the process' own
		warn  bool
	}{
		{"owner only", 0o600, -1, false},
		{"owner read-only", 0o400, -1, false},
		{"read by kiem's own group (Secret volume with fsGroup)", 0o440, -1, false},
		{"read by another group", 0o640, other, true},
		{"read by others", 0o604, -1, true},
		{"written by the group", 0o620, -1, true},
		{"written by another group", 0o660, other, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLog()
			path := writeTokens(t, "tok,alice,admin\n", tc.perm)
			if tc.group >= 0 {
				// Changing a file's group to one we are not in needs root: the CI and this machine run as root.
				if err := os.Chown(path, -1, tc.group); err != nil {
					t.Fatalf("chown (this case needs root): %v", err)
				}
			}
			if _, err := LoadTokenFile(path, log); err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(logs.String(), `"level":"WARN","msg":"token file is accessible to group or others; chmod 600 it"`)
			if got != tc.warn {
				t.Errorf("mode %#o: warned=%v, want %v; log %s", tc.perm, got, tc.warn, logs.String())
			}
		})
	}
}

func TestTokenFileReload(t *testing.T) {
	log, logs := newLog()
	path := writeTokens(t, "old,alice,admin\n", 0o600)
	f, err := LoadTokenFile(path, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	accepts := func(token string) bool {
		_, err := f.Authenticate(ctx, token)
		return err == nil
	}

	if tried, err := f.reloadIfChanged(); tried || err != nil {
		t.Fatalf("reloadIfChanged on an unchanged file: tried=%v, %v", tried, err)
	}

	replaceTokens(t, path, "new,alice,admin\n")
	if tried, err := f.reloadIfChanged(); !tried || err != nil {
		t.Fatalf("reloadIfChanged after a replacement: tried=%v, %v", tried, err)
	}
	if accepts("old") || !accepts("new") {
		t.Fatalf("after reload: old accepted=%v, new accepted=%v", accepts("old"), accepts("new"))
	}

	// A broken file keeps the tokens in force, and is reported once, not at every check.
	replaceTokens(t, path, "new,alice,admin\nbroken line\n")
	if tried, err := f.reloadIfChanged(); !tried || err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("reloadIfChanged of a broken file: tried=%v, %v", tried, err)
	}
	if !accepts("new") {
		t.Fatal("a broken file revoked the tokens in force")
	}
	if tried, err := f.reloadIfChanged(); tried || err != nil {
		t.Fatalf("second reloadIfChanged of the same broken file: tried=%v, %v", tried, err)
	}

	// An emptied file revokes everything.
	replaceTokens(t, path, "# all revoked\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if accepts("new") {
		t.Fatal("an emptied file left a token in force")
	}
	if !strings.Contains(logs.String(), "token file holds no tokens") {
		t.Errorf("no warning about the empty file; log %s", logs.String())
	}
}

func TestTokenFileRun(t *testing.T) {
	log, _ := newLog()
	path := writeTokens(t, "old,alice,admin\n", 0o600)
	f, err := LoadTokenFile(path, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, 5*time.Millisecond) }()

	replaceTokens(t, path, "new,bob,viewer\n")
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if p, err := f.Authenticate(ctx, "new"); err == nil {
			if p.User != "bob" || p.Role != RoleViewer {
				t.Fatalf("reloaded principal %+v, want bob as viewer", p)
			}
			break
		}
		select {
		case <-deadline:
			t.Fatal("Run did not pick up the replaced file within 10s")
		case <-tick.C:
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
