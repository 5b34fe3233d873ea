package kubetest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startBash starts a bash script through a spawner that the test closes once the process is stopped.
func startBash(t *testing.T, script string) *process {
	t.Helper()
	sp := newSpawner()
	p, err := startProcess(sp, "bash", "bash", filepath.Join(t.TempDir(), "bash.log"), []string{"-c", script})
	if err != nil {
		sp.close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(t.Context())
		sp.close()
	})
	return p
}

// TestStopKillsProcessGroup checks that stop escalates to SIGKILL for a child that ignores SIGTERM, and that
// nothing the child forked survives it.
func TestStopKillsProcessGroup(t *testing.T) {
	// Ignoring TERM is inherited by the background sleep, so only the group SIGKILL can end both.
	p := startBash(t, `trap '' TERM; sleep 300 & echo started; wait`)
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for len(groupMembers(t, p.pid())) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("group %d never had 2 members: %v", p.pid(), groupMembers(t, p.pid()))
		}
		<-tick.C
	}
	const grace = 300 * time.Millisecond
	// The clock starts before the grace does, so that a slow machine cannot make the grace look short.
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), grace)
	defer cancel()
	p.stop(ctx)
	if took := time.Since(start); took < grace {
		t.Errorf("stop took %s; SIGTERM should have been ignored until the %s grace ran out", took, grace)
	}
	if live := groupMembers(t, p.pid()); len(live) > 0 {
		t.Errorf("processes %v still in group %d after stop", live, p.pid())
	}
}

// TestSweepStale checks that only dirs whose owner has died are removed.
func TestSweepStale(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	owners := map[string]string{
		"dead":    strconv.Itoa(dead.Process.Pid), // reaped, so no process has this PID (barring instant reuse)
		"self":    strconv.Itoa(os.Getpid()),
		"init":    "1", // alive, and not ours to signal: EPERM for non-root still means alive
		"garbage": "x",
		"none":    "",
	}
	for name, owner := range owners {
		dir := filepath.Join(root, "c-"+name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweepStale(filepath.Join(root, "c-*"))
	for name := range owners {
		_, err := os.Stat(filepath.Join(root, "c-"+name))
		if gone, want := os.IsNotExist(err), name == "dead"; gone != want {
			t.Errorf("dir owned by %s: removed=%v, want %v", name, gone, want)
		}
	}
}

// TestWaitReadyReportsLogTail checks that a child dying during start-up fails fast with its last words.
func TestWaitReadyReportsLogTail(t *testing.T) {
	p := startBash(t, `echo "fatal: boom-marker" >&2; exit 3`)
	err := waitReady(t.Context(), p, time.Minute, func(context.Context) error { return errors.New("not yet") })
	if err == nil {
		t.Fatal("waitReady succeeded for a process that exited")
	}
	for _, want := range []string{"exited before it was ready", "exit status 3", "fatal: boom-marker"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestFindBinDirMissing checks the hint a machine without the binaries gets.
func TestFindBinDirMissing(t *testing.T) {
	t.Setenv(envBinDir, t.TempDir())
	_, err := findBinDir(t.Context())
	if err == nil || !strings.Contains(err.Error(), "make kube-binaries") {
		t.Fatalf("findBinDir with an empty %s: err=%v, want a hint to run make kube-binaries", envBinDir, err)
	}
}

func TestNewIdentities(t *testing.T) {
	ids, err := newIdentities(map[string][]string{"bob": nil, "alice": {"devs", "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tokens := map[string]bool{}
	for _, id := range ids {
		names = append(names, id.user)
		tokens[id.token] = true
	}
	if got, want := strings.Join(names, ","), "admin,alice,bob"; got != want {
		t.Errorf("users=%s, want %s", got, want)
	}
	if len(tokens) != len(ids) {
		t.Errorf("%d distinct tokens for %d users", len(tokens), len(ids))
	}

	path := filepath.Join(t.TempDir(), "tokens.csv")
	if err := writeTokenFile(path, ids); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := ids[1].token + `,alice,uid-alice,"devs,ops"`; !strings.Contains(string(b), want+"\n") {
		t.Errorf("token file:\n%s\nlacks line %s", b, want)
	}

	for name, users := range map[string]map[string][]string{
		"admin reserved": {"admin": nil},
		"comma in group": {"carol": {"a,b"}},
		"empty name":     {"": nil},
	} {
		if _, err := newIdentities(users); err == nil {
			t.Errorf("%s: newIdentities(%v) succeeded", name, users)
		}
	}
}

func TestWaitAggregatedWithoutControllerManager(t *testing.T) {
	var c Cluster
	if err := c.WaitAggregated(t.Context()); err == nil {
		t.Fatal("WaitAggregated without a controller manager succeeded")
	}
}
