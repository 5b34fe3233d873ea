package queries

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
)

// TestTrackerFollowsLive runs a tracker on a live graph in a real Badger directory, commits random changes while
// it runs, and checks that once it reaches the head its findings are a full evaluation's, and that the deltas it
// recorded add up to the difference between the first and the last evaluation.
func TestTrackerFollowsLive(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	live, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := workload.Spec{Namespaces: 5, ServiceAccounts: 30, Roles: 15, RoleBindings: 40, ClusterRoles: 20,
		ClusterRoleBindings: 15, Users: 10, Groups: 4, Pods: 20}
	objs := workload.Generate(kubeadmObjects(t), spec, 9)
	if _, err := live.Commit(ctx, "test", live.Reconcile(objs)); err != nil {
		t.Fatal(err)
	}
	e := embeddedEngine(t, Options{})
	tr := NewTracker(e, live, TrackerOptions{})
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	<-tr.Ready()
	firstRev, first := tr.Current()

	r := rand.New(rand.NewPCG(9, 9))
	for range 20 {
		_, snap := live.HeadSnapshot()
		if _, err := live.Commit(ctx, "test", randomChanges(r, snap.Objects(), 1+r.IntN(3))); err != nil {
			t.Fatal(err)
		}
	}
	head := live.Head()
	waitForRevision(t, tr, head)
	rev, got := tr.Current()
	_, snap := live.HeadSnapshot()
	want, err := e.Evaluate(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(summarize(want.Findings()), summarize(got.Findings())); diff != "" {
		t.Fatalf("tracked findings at %d differ from a full evaluation (-full +tracked):\n%s", rev, diff)
	}
	deltas, ok := tr.Deltas(firstRev, head)
	if !ok || len(deltas) == 0 {
		t.Fatalf("Deltas(%d, %d) = %d deltas, ok %v", firstRev, head, len(deltas), ok)
	}
	// Replaying the deltas over the first evaluation gives the last one.
	set := map[string]Finding{}
	for _, f := range first.Findings() {
		set[f.Fingerprint] = f
	}
	for _, d := range deltas {
		for _, f := range d.Resolved {
			delete(set, f.Fingerprint)
		}
		for _, f := range d.New {
			set[f.Fingerprint] = f
		}
	}
	var replayed []Finding
	for _, f := range set {
		replayed = append(replayed, f)
	}
	if diff := cmp.Diff(fingerprints(want.Findings()), fingerprints(replayed)); diff != "" {
		t.Fatalf("replaying the deltas does not give the head's findings (-head +replayed):\n%s", diff)
	}
	// A past revision is evaluated on demand.
	past, err := tr.At(ctx, firstRev)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(summarize(first.Findings()), summarize(past.Findings())); diff != "" {
		t.Fatalf("findings at %d differ (-tracked then +evaluated now):\n%s", firstRev, diff)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func fingerprints(fs []Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.Fingerprint)
	}
	slices.Sort(out)
	return out
}

// waitForRevision waits until the tracker has evaluated rev, woken by its Updated channel.
func waitForRevision(t *testing.T, tr *Tracker, rev graph.Revision) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		updated := tr.Updated()
		if got, res := tr.Current(); got >= rev && !res.PathsPending() {
			return
		}
		select {
		case <-updated:
		case <-deadline:
			got, _ := tr.Current()
			t.Fatalf("tracker stuck at revision %d, want %d", got, rev)
		}
	}
}

// TestTrackerChoosesTheCheaperStep checks the choice between updating the changed objects and evaluating
// everything, as the measured costs make it.
func TestTrackerChoosesTheCheaperStep(t *testing.T) {
	for _, tc := range []struct {
		name      string
		full      time.Duration // measured full evaluation; 0: not yet
		perObject time.Duration // measured incremental cost per object; 0: not yet
		changed   int
		want      bool
	}{
		{"few changes always update", time.Millisecond, time.Second, minFullEvaluation, false},
		{"unmeasured: many changes evaluate in full", 0, 0, minFullEvaluation + 1, true},
		{"small cluster: full is cheap", 3 * time.Second, 2 * time.Millisecond, 5000, true},
		{"large cluster: updating 5,000 beats 16 s", 16 * time.Second, 2 * time.Millisecond, 5000, false},
		{"large cluster: 9,000 is past break-even", 16 * time.Second, 2 * time.Millisecond, 9000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Tracker{}
			if tc.full > 0 {
				tr.measured(true, 0, tc.full)
			}
			if tc.perObject > 0 {
				tr.measured(false, 1000, 1000*tc.perObject)
			}
			if got := tr.cheaperInFull(tc.changed); got != tc.want {
				t.Errorf("cheaperInFull(%d) = %v, want %v", tc.changed, got, tc.want)
			}
		})
	}
	// The per-object cost is a moving average, and small steps do not move it.
	tr := &Tracker{}
	tr.measured(false, 1000, 1000*time.Millisecond)
	tr.measured(false, 10, time.Second) // 100 ms per object, but a small step
	tr.measured(false, 1000, 5000*time.Millisecond)
	if want := 2 * time.Millisecond; tr.perObject != want {
		t.Errorf("perObject = %v, want %v", tr.perObject, want)
	}
}
