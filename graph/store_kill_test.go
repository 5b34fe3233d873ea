package graph

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The kill test: TestKill re-executes the test binary as a child running TestKillChild, which commits revisions
// in a loop into the store named by killDirEnv and prints "committed N" once revision N's Commit returned. The
// parent SIGKILLs it at random moments, reopens the store and checks it against the revisions recomputed from
// their numbers.

const killDirEnv = "KIEM_STORE_KILL_DIR"

// killOptions are the store options of both sides: a 512 KiB memtable, so that every fourth revision is too big
// for one Badger transaction and goes through a WriteBatch, which a kill can cut in the middle.
func killOptions(dir string, log *bytes.Buffer) StoreOptions {
	opts := StoreOptions{Dir: dir, memTableSize: 512 << 10}
	if log != nil {
		opts.Logger, _ = logTo(log)
	}
	return opts
}

func killWall(rev Revision) time.Time { return t0.Add(time.Duration(rev) * time.Millisecond) }

// killChanges returns the changes of revision rev on top of state cur. Their effect depends on rev alone, so
// that the parent can recompute every state from the list of revisions: Namespace n<rev%50> is set, every
// third revision deletes a namespace (perhaps the one just set), every fourth sets 200–380 pods, and every
// eighth from 2 deletes every third of those pods.
func killChanges(rev Revision, cur map[ObjectRef]Object) []Change {
	next := maps.Clone(cur)
	var out []Change
	set := func(o Object) {
		c := NewChange(next[o.Ref()], o)
		next[o.Ref()] = o
		out = append(out, c)
	}
	del := func(ref ObjectRef) {
		if old := next[ref]; old != nil {
			delete(next, ref)
			out = append(out, NewChange(old, nil))
		}
	}
	r := uint64(rev)
	set(ns(fmt.Sprintf("n%d", r%50), "rev", strconv.FormatUint(r, 10)))
	if r%3 == 0 {
		del(ObjectRef{KindNamespace, "", fmt.Sprintf("n%d", (r/3)%50)})
	}
	if r%4 == 0 {
		for i := range 200 + int(r%7)*30 {
			set(&Pod{Meta: Meta{Namespace: "big", Name: fmt.Sprintf("p%d", i), Labels: map[string]string{"rev": strconv.FormatUint(r, 10)}},
				ServiceAccount: "default", NodeName: "node-1"})
		}
	}
	if r%8 == 2 {
		for i := 0; i < 380; i += 3 {
			del(ObjectRef{KindPod, "big", fmt.Sprintf("p%d", i)})
		}
	}
	return out
}

func applyChanges(cur map[ObjectRef]Object, changes []Change) map[ObjectRef]Object {
	next := maps.Clone(cur)
	for _, c := range changes {
		if c.After == nil {
			delete(next, c.Ref)
		} else {
			next[c.Ref] = c.After
		}
	}
	return next
}

// TestKillChild is the child of TestKill. Run as an ordinary test (killDirEnv unset) it checks what the parent
// relies on: the content of a revision is a function of its number and of nothing else.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		a, b := map[ObjectRef]Object{}, map[ObjectRef]Object{}
		for rev := Revision(1); rev <= 24; rev++ {
			a = applyChanges(a, killChanges(rev, a))
			if rev%5 != 0 { // b skips some revisions, as a kill does
				b = applyChanges(b, killChanges(rev, b))
			}
		}
		// Revision 24 sets the pods and n24 in both; what differs is what 24 did not touch.
		for _, ref := range []ObjectRef{{KindNamespace, "", "n24"}, {KindPod, "big", "p199"}} {
			if a[ref] == nil || !cmp.Equal(a[ref], b[ref]) {
				t.Errorf("%s after revision 24: %v and %v, want the same object", ref, a[ref], b[ref])
			}
		}
		return
	}
	ctx := context.Background()
	s, err := OpenStore(ctx, killOptions(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := s.Objects(ctx, s.Head())
	if err != nil {
		t.Fatal(err)
	}
	cur := state(objs)
	for range 100_000 { // the parent kills it long before
		s.mu.Lock()
		rev := Revision(s.lastTS + 1)
		s.mu.Unlock()
		changes := killChanges(rev, cur)
		fmt.Printf("begin %d\n", rev)
		start := time.Now()
		info, err := s.Commit(ctx, "kill", killWall(rev), changes)
		if err != nil || info.Revision != rev {
			t.Fatalf("Commit: %+v, %v; want revision %d", info, err, rev)
		}
		fmt.Printf("committed %d %d\n", rev, time.Since(start).Microseconds())
		cur = applyChanges(cur, changes)
	}
}

func TestKill(t *testing.T) {
	seed := uint64(20261122)
	if v, err := strconv.ParseUint(os.Getenv("KIEM_KILL_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (KIEM_KILL_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	var reported []Revision            // every revision the child said it committed, in order
	var head Revision                  // the head at the previous reopen
	checked := map[Revision]bool{}     // revisions already checked through Objects
	bigCommit := 20 * time.Millisecond // how long a big revision's Commit took, last seen
	repairs, rounds := 0, 0
	// At least 20 kills; more, up to 40, until one of them cut a write (the targeted rounds aim at that).
	for ; rounds < 20 || (repairs == 0 && rounds < 40); rounds++ {
		k := killPlan{after: 1 + rng.IntN(8), targeted: rounds%2 == 1, at: rng.Float64()}
		got := runAndKill(t, dir, k, &bigCommit)
		for _, r := range got {
			if len(reported) > 0 && r <= reported[len(reported)-1] {
				t.Fatalf("round %d: child reported %d after %d", rounds, r, reported[len(reported)-1])
			}
			reported = append(reported, r)
		}
		var log bytes.Buffer
		s, err := OpenStore(context.Background(), killOptions(dir, &log))
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", rounds, err)
		}
		if strings.Contains(log.String(), "repaired an interrupted write") {
			repairs++
		}
		if s.Head() < head || (len(reported) > 0 && s.Head() < reported[len(reported)-1]) {
			t.Fatalf("round %d: head %d, previous head %d, last reported %d", rounds, s.Head(), head, reported[len(reported)-1])
		}
		head = s.Head()
		checkKillStore(t, s, reported, checked)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d kills, %d revisions reported, head %d, %d kills cut a write", rounds, len(reported), head, repairs)
	if repairs == 0 {
		t.Errorf("no kill in %d cut a write: the repair was not exercised", rounds)
	}
}

// killPlan says when to kill the child: after it reported `after` revisions, either at a random moment up to
// 25 ms later, or (targeted) inside the Commit of the next big revision, at fraction `at` of its usual length.
type killPlan struct {
	after    int
	targeted bool
	at       float64
}

// runAndKill runs the child, kills it as planned and returns the revisions it reported, whole lines only.
// bigCommit is the duration of the last big revision's Commit, updated from the child's reports.
func runAndKill(t *testing.T, dir string, plan killPlan, bigCommit *time.Duration) []Revision {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func(d time.Duration) { time.AfterFunc(d, func() { _ = cmd.Process.Kill() }) }
	var revs []Revision
	var other strings.Builder
	armed := false
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break // the child is dead; a line without its newline was cut by the kill
		} else if err != nil {
			t.Fatal(err)
		}
		var rev uint64
		var micros int64
		if _, err := fmt.Sscanf(line, "begin %d\n", &rev); err == nil {
			if armed && rev%4 == 0 {
				kill(time.Duration(plan.at * float64(*bigCommit)))
				armed = false
			}
			continue
		}
		if _, err := fmt.Sscanf(line, "committed %d %d\n", &rev, &micros); err != nil {
			other.WriteString(line)
			continue
		}
		if rev%4 == 0 {
			*bigCommit = time.Duration(micros) * time.Microsecond
		}
		if revs = append(revs, Revision(rev)); len(revs) == plan.after {
			if plan.targeted {
				armed = true
			} else {
				kill(time.Duration(plan.at * float64(25*time.Millisecond)))
			}
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended by itself (%v) after %d revisions:\n%s%s", err, len(revs), other.String(), stderr.String())
	}
	return revs
}

// checkKillStore checks that every reported revision is there and that every revision reads back as the child
// committed it: the ones not checked before through Objects, the others through their raw bytes.
func checkKillStore(t *testing.T, s *Store, reported []Revision, checked map[Revision]bool) {
	t.Helper()
	ctx := context.Background()
	var infos []RevisionInfo
	if err := s.Revisions(ctx, 0, s.Head(), func(ri RevisionInfo) bool { infos = append(infos, ri); return true }); err != nil {
		t.Fatal(err)
	}
	present := map[Revision]bool{}
	cur, encoded := map[ObjectRef]Object{}, map[string]string{}
	for _, info := range infos {
		rev := info.Revision
		present[rev] = true
		changes := killChanges(rev, cur)
		cur = applyChanges(cur, changes)
		for _, c := range changes {
			k, _ := objectKey(c.Ref)
			if c.After == nil {
				delete(encoded, string(k))
			} else {
				v, _ := MarshalObject(c.After)
				encoded[string(k)] = string(v)
			}
		}
		if !info.Time.Equal(killWall(rev)) || info.Source != "kill" || info.Changes != len(changes) {
			t.Fatalf("revision %d: info %+v, want wall %v and %d changes", rev, info, killWall(rev), len(changes))
		}
		if checked[rev] {
			// Cheap: compare bytes (cmp.Diff only to explain a difference).
			if raw := rawObjects(t, s, rev); !maps.Equal(encoded, raw) {
				t.Fatalf("revision %d changed since it was checked (-want +got):\n%s", rev, cmp.Diff(encoded, raw))
			}
			continue
		}
		if got := mustObjects(t, s, rev); !reflect.DeepEqual(cur, got) {
			t.Fatalf("Objects(%d) (-want +got):\n%s", rev, cmp.Diff(cur, got))
		}
		checked[rev] = true
	}
	for _, r := range reported {
		if !present[r] {
			t.Fatalf("reported revision %d is missing (head %d)", r, s.Head())
		}
	}
}
