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

		r := rand.New(rand.NewPCG(9, 0))
		o := g.Current().Objects()
		rbs, crbs := o.RoleBindings, o.ClusterRoleBindings
		var l latencies
		revs := []graph.Revision{first}
		churnStart := time.Now()
		changes := 0
		for batch := range 1_000 {
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
				b.Fatal(err)
			}
			l = append(l, time.Since(t))
			changes += len(cs)
			revs = append(revs, rev)
		}
		elapsed := time.Since(churnStart)
		report(b, "revision of 10 changes: commit+apply", l)
		rate := float64(changes) / elapsed.Seconds()
		b.ReportMetric(rate, "changes/s")
		fmt.Printf("L sustained: %.0f changes/s (%d changes in %d durable revisions, %v)\n", rate, changes, len(l), elapsed)

		start = time.Now()
		past, err := g.At(ctx, revs[1])
		if err != nil {
			b.Fatal(err)
		}
		open := time.Since(start)
		fmt.Printf("L open past revision %d (%d objects): %v\n", revs[1], past.Objects().Count(), open)
		b.ReportMetric(open.Seconds(), "open-past-s")

		start = time.Now()
		d, err := g.Diff(ctx, revs[len(revs)-101], revs[len(revs)-1])
		if err != nil {
			b.Fatal(err)
		}
		diff := time.Since(start)
		fmt.Printf("L diff of two revisions 1,000 changes apart: %v (%d objects, %d subjects with deltas)\n", diff, len(d.Objects), len(d.Subjects))
		b.ReportMetric(diff.Seconds(), "diff-1000-s")
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
