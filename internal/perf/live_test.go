package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// BenchmarkLiveL measures the versioned graph on L with a real store on disk: ingesting L into an empty store
// (one revision, snapshot built), sustained churn in revisions of 10 changes as the indexer's batcher commits them
// (each durable and applied to the head snapshot), opening a past revision, and diffing two revisions 1,000
// changes apart.
func BenchmarkLiveL(b *testing.B) {
	ctx := context.Background()
	objs := workloadL(b)
	for b.Loop() {
		st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		g, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		first, err := g.Commit(ctx, "bench:initial-list", graph.ReconcileChanges(g.Current(), objs))
		if err != nil {
			b.Fatal(err)
		}
		ingest := time.Since(start)
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		fmt.Printf("L ingest into an empty store: %v (%d objects, one revision); Go heap in use after: %.0f MiB; store %.0f MiB\n",
			ingest, objs.Count(), float64(ms.HeapInuse)/(1<<20), float64(st.SizeBytes())/(1<<20))
		b.ReportMetric(ingest.Seconds(), "ingest-s")

		ch, err := churnTens(ctx, g, 1_000)
		if err != nil {
			b.Fatal(err)
		}
		revs := append([]graph.Revision{first}, ch.revs...)
		report(b, "revision of 10 changes: commit+apply", ch.perRevision)
		rate := float64(ch.changes) / ch.elapsed.Seconds()
		b.ReportMetric(rate, "changes/s")
		fmt.Printf("L sustained: %.0f changes/s (%d changes in %d durable revisions, %v)\n", rate, ch.changes, len(ch.perRevision), ch.elapsed)

		open, objects, err := openPast(ctx, g, revs[1])
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("L open past revision %d (%d objects): %v\n", revs[1], objects, open)
		b.ReportMetric(open.Seconds(), "open-past-s")

		diff, d, err := timeDiff(ctx, g, revs[len(revs)-101], revs[len(revs)-1])
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("L diff of two revisions 1,000 changes apart: %v (%d objects, %d subjects with deltas)\n", diff, len(d.Objects), len(d.Subjects))
		b.ReportMetric(diff.Seconds(), "diff-1000-s")
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// churn is what churnTens measured.
type churn struct {
	perRevision latencies        // each Commit: durable in the store and applied to the head snapshot
	revs        []graph.Revision // the revisions committed, oldest first
	changes     int
	elapsed     time.Duration
}

// churnTens commits batches revisions of 10 changes to g one after the other, as the indexer's batcher does: new
// RoleBindings in random namespaces, rebindings of existing ones and, one change in 50, a new
// ClusterRoleBinding. The draws are seeded, so every run commits the same changes to the same workload.
func churnTens(ctx context.Context, g *graph.Live, batches int) (churn, error) {
	r := rand.New(rand.NewPCG(9, 0))
	o := g.Current().Objects()
	rbs, crbs := o.RoleBindings, o.ClusterRoleBindings
	var out churn
	start := time.Now()
	for batch := range batches {
		cs := make([]graph.Change, 0, 10)
		for i := range 10 {
			n := batch*10 + i
			switch {
			case n%50 == 0: // now and then a ClusterRoleBinding
				c := crbs[r.IntN(len(crbs))]
				c.Name = fmt.Sprintf("churn-crb-%d", n)
				cs = append(cs, graph.NewChange(nil, &c))
			case n%3 == 0: // rebinding
				old := rbs[r.IntN(len(rbs))]
				if cur, ok := g.Current().Object(old.Ref()); ok {
					nb := *cur.(*graph.Binding)
					nb.Subjects = rbs[r.IntN(len(rbs))].Subjects
					cs = append(cs, graph.NewChange(cur, &nb))
				}
			default: // a new binding in a random namespace
				nb := rbs[r.IntN(len(rbs))]
				nb.Name = fmt.Sprintf("churn-%d", n)
				cs = append(cs, graph.NewChange(nil, &nb))
			}
		}
		t := time.Now()
		rev, err := g.Commit(ctx, "bench:churn", cs)
		if err != nil {
			return churn{}, fmt.Errorf("churn revision %d: %w", batch, err)
		}
		out.perRevision = append(out.perRevision, time.Since(t))
		out.changes += len(cs)
		out.revs = append(out.revs, rev)
	}
	out.elapsed = time.Since(start)
	return out, nil
}

// openPast materialises revision rev of g from the store and indexes it; objects is how many it holds.
func openPast(ctx context.Context, g *graph.Live, rev graph.Revision) (took time.Duration, objects int, err error) {
	start := time.Now()
	past, err := g.At(ctx, rev)
	if err != nil {
		return 0, 0, fmt.Errorf("open revision %d: %w", rev, err)
	}
	return time.Since(start), past.Objects().Count(), nil
}

// timeDiff times the diff of revisions from and to of g.
func timeDiff(ctx context.Context, g *graph.Live, from, to graph.Revision) (time.Duration, graph.Diff, error) {
	start := time.Now()
	d, err := g.Diff(ctx, from, to)
	if err != nil {
		return 0, graph.Diff{}, fmt.Errorf("diff %d..%d: %w", from, to, err)
	}
	return time.Since(start), d, nil
}
