package auth

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// hashPrefix marks a token file entry that holds the SHA-256 of a token rather than the token.
const hashPrefix = "sha256:"

// tokenEntry is who a token stands for.
type tokenEntry struct {
	user string
	role Role
}

// tokenTable is one parse of the token file; it is never modified after parsing, so it is swapped whole.
type tokenTable struct {
	entries map[tokenHash]tokenEntry
	// stat is the file as it was read, to notice an edit in place or a replacement (an editor's rename).
	stat os.FileInfo
}

// changed reports whether the file now described by next differs from the one old was taken from.
func changed(old, next os.FileInfo) bool {
	return !os.SameFile(old, next) || !old.ModTime().Equal(next.ModTime()) || old.Size() != next.Size()
}

// TokenFile authenticates bearer tokens listed in a file of `TOKEN,USER,ROLE` lines, where TOKEN is the token
// itself or `sha256:` followed by the hex SHA-256 of the token, and ROLE is viewer or admin. Blank lines and
// lines starting with '#' are skipped. Plain tokens are hashed at load, so only hashes stay in memory.
//
// The file may be reloaded (Reload, or Run polling it); a reload that fails to parse leaves the previous tokens
// in force, so a typo never locks everybody out, and the failure is logged.
type TokenFile struct {
	path  string
	log   *slog.Logger
	table atomic.Pointer[tokenTable]
}

// LoadTokenFile reads and parses path. It logs a warning if group or others may read or write the file, and
// fails if the file holds no token or a malformed line; errors name the file and line, never the token.
func LoadTokenFile(path string, log *slog.Logger) (*TokenFile, error) {
	f := &TokenFile{path: path, log: log}
	t, err := f.read()
	if err != nil {
		return nil, err
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	f.table.Store(t)
	return f, nil
}

// Authenticate implements Authenticator. Users of the token file have no groups.
func (f *TokenFile) Authenticate(_ context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	e, ok := f.table.Load().entries[hashToken(token)]
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{User: e.user, Role: e.role, Mode: ModeTokenFile}, nil
}

// Reload re-reads the file and, if it parses, replaces the tokens in force. An empty file is accepted (with a
// warning): removing every line must revoke every token. On error the previous tokens stay in force.
func (f *TokenFile) Reload() error {
	t, err := f.read()
	if err != nil {
		return err
	}
	if len(t.entries) == 0 {
		f.log.Warn("token file holds no tokens; every request will be refused", "path", f.path)
	}
	f.table.Store(t)
	f.log.Info("token file reloaded", "path", f.path, "tokens", len(t.entries))
	return nil
}

// Run reloads the file whenever its modification time, size or identity (an editor's rename) changes, checking
// every interval until ctx ends; it returns nil then. A failed reload is logged and retried only after the
// file changes again; a missing file is logged once, not at every check.
func (f *TokenFile) Run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		_, err := f.reloadIfChanged()
		switch {
		case err == nil:
			last = ""
		case err.Error() != last:
			last = err.Error()
			f.log.Error("token file not reloaded; the previous tokens stay in force", "path", f.path, "err", err)
		}
	}
}

// reloadIfChanged reloads the file if it differs from the last version read, reporting whether it tried.
// A failed parse still records the new stamp, so a broken file is reported once, not at every tick.
func (f *TokenFile) reloadIfChanged() (bool, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return false, fmt.Errorf("stat token file: %w", err)
	}
	cur := f.table.Load()
	if !changed(cur.stat, fi) {
		return false, nil
	}
	if err := f.Reload(); err != nil {
		f.table.Store(&tokenTable{entries: cur.entries, stat: fi})
		return true, err
	}
	return true, nil
}

// read opens, checks and parses the file.
func (f *TokenFile) read() (*tokenTable, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("open token file: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat token file: %w", err)
	}
	// Readable by others means the tokens (or, for sha256 entries, material for offline guessing) leak;
	// writable by others means anybody may add an admin. Reading by the file's group is fine when that group is
	// kiem's own (a Secret volume with fsGroup).
	mask := os.FileMode(0o066)
	if groupIsOurs(fi) {
		mask = 0o026
	}
	if perm := fi.Mode().Perm(); perm&mask != 0 {
		f.log.Warn("token file is accessible to group or others; chmod 600 it", "path", f.path, "mode", fmt.Sprintf("%#o", perm))
	}
	entries, err := parseTokens(f.path, fh)
	if err != nil {
		return nil, err
	}
	return &tokenTable{entries: entries, stat: fi}, nil
}

// lineError is a malformed token file line. It carries the position only: the line itself may hold a token.
type lineError struct {
	path string
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.path, e.line, e.msg) }

// parseTokens parses token file lines; name is used in errors only.
func parseTokens(name string, r io.Reader) (map[tokenHash]tokenEntry, error) {
	entries := make(map[tokenHash]tokenEntry)
	firstLine := make(map[tokenHash]int)
	sc := bufio.NewScanner(r)
	var errs []error
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, args ...any) {
			errs = append(errs, &lineError{path: name, line: n, msg: fmt.Sprintf(format, args...)})
		}
		fields := strings.Split(line, ",")
		if len(fields) != 3 {
			bad("want TOKEN,USER,ROLE, found %d fields", len(fields))
			continue
		}
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		tok, user, roleName := fields[0], fields[1], fields[2]
		if tok == "" {
			bad("empty token")
			continue
		}
		if user == "" {
			bad("empty user")
			continue
		}
		role, err := ParseRole(roleName)
		if err != nil {
			bad("%v", err)
			continue
		}
		var h tokenHash
		if hexHash, ok := strings.CutPrefix(tok, hashPrefix); ok {
			b, err := hex.DecodeString(hexHash)
			if err != nil || len(b) != len(h) {
				bad("%s needs %d hex digits (printf %%s \"$TOKEN\" | sha256sum)", hashPrefix, 2*len(h))
				continue
			}
			copy(h[:], b)
		} else {
			h = hashToken(tok)
		}
		if first, dup := firstLine[h]; dup {
			bad("duplicate token (first at line %d)", first)
			continue
		}
		firstLine[h] = n
		entries[h] = tokenEntry{user: user, role: role}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}
