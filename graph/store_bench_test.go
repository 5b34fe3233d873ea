package graph_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
)

// The store's benchmarks on workload L (ARCHITECTURE §8), on a real directory. They print their figures; run
// them once each: go test ./graph -run '^$' -bench Store -benchtime 1x.

func workloadL(tb testing.TB) *graph.Objects {
	tb.Helper()
	return workload.Generate(nil, workload.L(), 1)
}

func addAll(objs *graph.Objects) []graph.Change {
	changes := make([]graph.Change, 0, objs.Count())
	objs.Each(func(o graph.Object) bool { changes = append(changes, graph.NewChange(nil, o)); return true })
	return changes
}

func openDir(tb testing.TB, dir string) *graph.Store {
	tb.Helper()
	s, err := graph.OpenStore(context.Background(), graph.StoreOptions{Dir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// storeWithL returns a store in a new directory holding L as its first revision, and L.
func storeWithL(b *testing.B) (*graph.Store, string, *graph.Objects) {
	b.Helper()
	objs := workloadL(b)
	dir := b.TempDir()
	s := openDir(b, dir)
	if _, err := s.Commit(context.Background(), "bench", time.Time{}, addAll(objs)); err != nil {
		b.Fatal(err)
	}
	return s, dir, objs
}

func BenchmarkStoreCommitL(b *testing.B) {
	objs := workloadL(b)
	changes := addAll(objs)
	var took time.Duration
	var size int64
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		s := openDir(b, dir)
		b.StartTimer()
		start := time.Now()
		if _, err := s.Commit(context.Background(), "bench", time.Time{}, changes); err != nil {
			b.Fatal(err)
		}
		took = time.Since(start)
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		size = openDir(b, dir).SizeBytes() // reopened: the memtables are flushed
		b.StartTimer()
	}
	b.ReportMetric(took.Seconds(), "commit-s")
	b.ReportMetric(float64(len(changes))/took.Seconds(), "objects/s")
	fmt.Printf("store: commit L (%d objects) as one revision: %v (%.0f objects/s), %.1f MiB on disk\n",
		len(changes), took, float64(len(changes))/took.Seconds(), float64(size)/(1<<20))
}

func BenchmarkStoreObjectsL(b *testing.B) {
	s, _, objs := storeWithL(b)
	defer s.Close()
	var took time.Duration
	for b.Loop() {
		start := time.Now()
		got, err := s.Objects(context.Background(), s.Head())
		took = time.Since(start)
		if err != nil || got.Count() != objs.Count() {
			b.Fatalf("Objects: %d objects, %v; want %d", got.Count(), err, objs.Count())
		}
	}
	b.ReportMetric(took.Seconds(), "objects-s")
	fmt.Printf("store: Objects(head) of L (%d objects): %v\n", objs.Count(), took)
}

// podChanges returns n changes, each updating one pod of objs (a label bump), starting at pod i.
func podChanges(objs *graph.Objects, i, n int) []graph.Change {
	out := make([]graph.Change, n)
	for j := range out {
		before := &objs.Pods[(i+j)%len(objs.Pods)]
		after := *before
		after.Labels = map[string]string{"bench": strconv.Itoa(i + j)}
		out[j] = graph.NewChange(before, &after)
	}
	return out
}

func BenchmarkStoreCommitSmall(b *testing.B) {
	s, _, objs := storeWithL(b)
	defer s.Close()
	for _, n := range []int{1, 10, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var lat []time.Duration
			i := 0
			start := time.Now()
			for b.Loop() {
				changes := podChanges(objs, i, n)
				i += n
				t := time.Now()
				if _, err := s.Commit(context.Background(), "bench", time.Time{}, changes); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			elapsed := time.Since(start)
			slices.Sort(lat)
			p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
			perSec := float64(len(lat)) / elapsed.Seconds()
			b.ReportMetric(perSec, "revisions/s")
			b.ReportMetric(perSec*float64(n), "changes/s")
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
			fmt.Printf("store: commits of %3d changes on L: %6.0f revisions/s, %7.0f changes/s, p50 %v, p99 %v (n=%d)\n",
				n, perSec, perSec*float64(n), p50, p99, len(lat))
		})
	}
}

// BenchmarkStoreHistory measures the disk cost of history: 100,000 single-object changes (pod updates, in
// revisions of 10) on top of L, against L's own size; then the time to open the oldest revision.
func BenchmarkStoreHistory(b *testing.B) {
	const changes, perRevision = 100_000, 10
	for b.Loop() {
		s, dir, objs := storeWithL(b)
		var snapshot int64
		objs.Each(func(o graph.Object) bool {
			v, _ := graph.MarshalObject(o)
			snapshot += int64(len(v))
			return true
		})
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		s = openDir(b, dir)
		base := s.SizeBytes()
		first := s.Head()
		start := time.Now()
		for i := 0; i < changes; i += perRevision {
			if _, err := s.Commit(context.Background(), "bench", time.Time{}, podChanges(objs, i, perRevision)); err != nil {
				b.Fatal(err)
			}
		}
		took := time.Since(start)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		s = openDir(b, dir)
		total := s.SizeBytes()
		perChange := float64(total-base) / changes
		t := time.Now()
		if _, err := s.Objects(context.Background(), first); err != nil {
			b.Fatal(err)
		}
		oldest := time.Since(t)
		_ = s.Close()
		b.ReportMetric(perChange, "bytes/change")
		b.ReportMetric(float64(total)/float64(snapshot), "total/snapshot")
		fmt.Printf("store: L as one revision %.1f MiB on disk (its objects encoded: %.1f MiB); +%d changes in %v: %.1f MiB total, %.0f B/change; target %.1f MiB; Objects(first revision) %v\n",
			float64(base)/(1<<20), float64(snapshot)/(1<<20), changes, took, float64(total)/(1<<20), perChange,
			(2*float64(snapshot)+2048*changes)/(1<<20), oldest)
	}
}
