package indexer

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/workqueue"

	"github.com/kiem-io/kiem/graph"
)

// graphRole is a converted Role team/name with the given verbs.
func graphRole(t testing.TB, name string, verbs ...string) graph.Object {
	t.Helper()
	o, err := convertLive(apiRole("team", name, verbs...))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func roleKey(name string) key { return key{kind: graph.KindRole, namespace: "team", name: name} }

func TestPendingAdd(t *testing.T) {
	v1, v2, v3 := graphRole(t, "x", "get"), graphRole(t, "x", "list"), graphRole(t, "x", "watch")
	head := newFakeGraph(t, v1).Current()
	type step struct {
		after graph.Object
		want  bool // add's result
	}
	tests := []struct {
		name  string
		key   key
		steps []step
		want  []graph.Change
	}{{
		name:  "unchanged",
		key:   roleKey("x"),
		steps: []step{{v1, false}},
	}, {
		name:  "two updates: one change from the head's state to the last",
		key:   roleKey("x"),
		steps: []step{{v2, true}, {v3, true}},
		want:  []graph.Change{graph.NewChange(v1, v3)},
	}, {
		name:  "the same state twice",
		key:   roleKey("x"),
		steps: []step{{v2, true}, {v2, false}},
		want:  []graph.Change{graph.NewChange(v1, v2)},
	}, {
		// Compared with the head only, the revert would look unchanged and v2 would be committed.
		name:  "change and revert",
		key:   roleKey("x"),
		steps: []step{{v2, true}, {v1, true}},
	}, {
		name:  "revert, then change again",
		key:   roleKey("x"),
		steps: []step{{v2, true}, {v1, true}, {v3, true}},
		want:  []graph.Change{graph.NewChange(v1, v3)},
	}, {
		name:  "update, then delete",
		key:   roleKey("x"),
		steps: []step{{v2, true}, {nil, true}},
		want:  []graph.Change{graph.NewChange(v1, nil)},
	}, {
		name:  "create and delete of a new object",
		key:   roleKey("y"),
		steps: []step{{graphRole(t, "y", "get"), true}, {nil, true}},
	}, {
		name:  "delete of an object the graph lacks",
		key:   roleKey("y"),
		steps: []step{{nil, false}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPending()
			for i, s := range tt.steps {
				if got := p.add(item{key: tt.key, after: s.after}, head); got != s.want {
					t.Errorf("step %d: add() = %v, want %v", i, got, s.want)
				}
			}
			got := p.build()
			if len(got) != len(tt.want) || p.changes != len(tt.want) {
				t.Fatalf("build() = %v (changes %d), want %v", got, p.changes, tt.want)
			}
			for i := range got {
				if got[i].Op != tt.want[i].Op || got[i].Ref != tt.want[i].Ref ||
					!sameObject(got[i].Before, tt.want[i].Before) || !sameObject(got[i].After, tt.want[i].After) {
					t.Errorf("change %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestBatcherMaxAndShutdown feeds items without pause: every BatchMax changes make a revision, and the batch
// pending when ctx ends is dropped.
func TestBatcherMaxAndShutdown(t *testing.T) {
	g := newFakeGraph(t)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[key]())
	defer q.ShutDown()
	b := &batcher{graph: g, source: "s", window: time.Hour, max: 100, queue: q,
		log: slog.New(slog.DiscardHandler), stats: &liveCounters{}, in: make(chan item)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		b.run(ctx)
		close(done)
	}()
	for i := range 250 {
		b.in <- item{key: roleKey(fmt.Sprint(i)), after: graphRole(t, fmt.Sprint(i), "get")}
	}
	// The unbuffered send of item 201 returned only after the batcher took it, after the second commit.
	revs := g.revisions()
	if len(revs) != 2 || len(revs[0].changes) != 100 || len(revs[1].changes) != 100 {
		t.Fatalf("revisions %v, want two of 100 changes", revs)
	}
	cancel()
	<-done
	if n := len(g.revisions()); n != 2 {
		t.Errorf("%d revisions after shutdown, want 2: the last 50 changes are dropped", n)
	}
	if got := b.stats.changes.Load(); got != 200 {
		t.Errorf("changes committed = %d, want 200", got)
	}
}

// TestLiveBatching creates 500 objects as fast as the fake client takes them: they land in few revisions, each
// within BatchMax.
//
// It uses NewSimpleClientset: NewClientset's field-managed tracker took 4-8 s for 500 creates here (its cost
// grows with the objects it holds), which spreads them over dozens of windows and tests nothing about batching.
// Creates go in bursts, each well within one window.
func TestLiveBatching(t *testing.T) {
	cs := fake.NewSimpleClientset(apiNamespace("team"))
	g := newFakeGraph(t)
	l := startLive(t, cs, g, func(o *LiveOptions) {
		o.BatchWindow = 100 * time.Millisecond
		o.BatchMax = 100
	})
	n := len(g.revisions())
	const objects, burst = 500, 50
	for i := range objects {
		sa := apiServiceAccount("team", fmt.Sprintf("sa-%03d", i))
		if _, err := cs.CoreV1().ServiceAccounts("team").Create(t.Context(), sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if (i+1)%burst == 0 {
			// The fake's watch channel holds 100 events and panics when full: let the informer catch up.
			eventually(t, "informer events", func() bool {
				return l.Stats().Events[graph.KindServiceAccount].Added >= uint64(i+1)
			})
		}
	}
	eventually(t, "500 adds", func() bool { return len(g.changesAfter(n)) >= objects })
	revs := g.revisions()[n:]
	seen := make(map[graph.ObjectRef]bool)
	for _, r := range revs {
		if len(r.changes) > 100 {
			t.Errorf("revision %d has %d changes, over BatchMax", r.rev, len(r.changes))
		}
		for _, c := range r.changes {
			if c.Op != graph.OpAdd || seen[c.Ref] {
				t.Errorf("unexpected change %s %s", c.Op, c.Ref)
			}
			seen[c.Ref] = true
		}
	}
	if len(seen) != objects {
		t.Errorf("%d objects added, want %d", len(seen), objects)
	}
	// At least 5 revisions (BatchMax); far fewer than one per object.
	t.Logf("500 creates in %d revisions", len(revs))
	if len(revs) > 25 {
		t.Errorf("500 creates took %d revisions, want few", len(revs))
	}
	// The batcher counts a commit once Commit has returned, a moment after the fake recorded it.
	last := revs[len(revs)-1].rev
	eventually(t, "Stats() to count every change", func() bool {
		s := l.Stats()
		return s.Changes == objects+1 && s.LastRevision == last
	})
}
