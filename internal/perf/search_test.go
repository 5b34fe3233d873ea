package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kiem-io/kiem/graph"
)

// searchQueries draws n searches shaped like what a user types into the explorer: a namespace name, the start of
// a ServiceAccount name, "secrets", "pods/exec", part of a user's e-mail address, and a name with a typo, each
// with and without a kind or namespace filter.
func searchQueries(s *graph.Snapshot, n int, seed uint64) []graph.SearchQuery {
	r := rand.New(rand.NewPCG(seed, 0))
	namespaces := s.NamespaceNames()
	var sas []*graph.ServiceAccount
	s.Each(graph.KindServiceAccount, "", func(o graph.Object) bool {
		sas = append(sas, o.(*graph.ServiceAccount))
		return true
	})
	var mailboxes [][]rune // the local parts of e-mail addresses
	for _, u := range s.Subjects(graph.KindUser) {
		if local, _, ok := strings.Cut(u, "@"); ok && utf8.RuneCountInString(local) > 6 {
			mailboxes = append(mailboxes, []rune(local))
		}
	}
	var long []string // names to misspell: ServiceAccounts and ClusterRoles of 8 characters or more
	for _, a := range sas {
		if len(a.Name) >= 8 {
			long = append(long, a.Name)
		}
	}
	s.Each(graph.KindClusterRole, "", func(o graph.Object) bool {
		if name := o.(*graph.Role).Name; len(name) >= 8 && !strings.Contains(name, ":") {
			long = append(long, name)
		}
		return true
	})
	out := make([]graph.SearchQuery, n)
	for i := range out {
		var q graph.SearchQuery
		switch i % 6 {
		case 0:
			q.Text = namespaces[r.IntN(len(namespaces))]
		case 1:
			a := sas[r.IntN(len(sas))]
			q.Text = a.Name[:min(len(a.Name), 3+r.IntN(5))]
			if r.IntN(2) == 0 {
				q.Kinds = []graph.Kind{graph.KindServiceAccount}
			}
		case 2:
			q.Text = "secrets"
		case 3:
			q.Text = "pods/exec"
		case 4:
			m := mailboxes[r.IntN(len(mailboxes))]
			start := r.IntN(len(m) - 4)
			q.Text = string(m[start : start+4+r.IntN(len(m)-start-3)])
		case 5:
			name := []byte(long[r.IntN(len(long))])
			j := 1 + r.IntN(len(name)-2)
			if r.IntN(2) == 0 {
				name = append(name[:j], name[j+1:]...) // a letter dropped
			} else {
				name[j], name[j+1] = name[j+1], name[j] // two letters swapped
			}
			q.Text = string(name)
		}
		switch r.IntN(4) {
		case 0:
			q.Namespace = namespaces[r.IntN(len(namespaces))]
		case 1:
			if q.Kinds == nil {
				q.Kinds = []graph.Kind{graph.KindRole, graph.KindClusterRole, graph.KindRoleBinding}
			}
		}
		out[i] = q
	}
	return out
}

// BenchmarkSearchL measures Search on L (ARCHITECTURE §8: p99 ≤ 20 ms): the first search after a full build,
// which indexes every shard; a mix of searches on a warm index; and a search right after each Apply of a
// one-RoleBinding change, which indexes the changed namespace again.
func BenchmarkSearchL(b *testing.B) {
	ctx := context.Background()
	objs := workloadL(b)
	snap := graph.NewSnapshot(objs)
	queries := searchQueries(snap, 6_000, 11)

	b.Run("Cold", func(b *testing.B) {
		var cold time.Duration
		var heap [2]uint64
		for b.Loop() {
			s := graph.NewSnapshot(objs)
			heap[0] = heapInUse()
			t := time.Now()
			if _, err := s.Search(ctx, graph.SearchQuery{Text: "secrets"}); err != nil {
				b.Fatal(err)
			}
			cold = time.Since(t)
			heap[1] = heapInUse()
			runtime.KeepAlive(s)
		}
		index := float64(heap[1]-heap[0]) / (1 << 20)
		b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
		b.ReportMetric(index, "index-MiB")
		fmt.Printf("L first Search after NewSnapshot (every shard indexed): %v; the indexes take %.0f MiB of heap\n", cold, index)
	})

	b.Run("Warm", func(b *testing.B) {
		if _, err := snap.Search(ctx, graph.SearchQuery{Text: "warm"}); err != nil {
			b.Fatal(err)
		}
		var l latencies
		var byShape [6]latencies
		hits := 0
		for b.Loop() {
			w, err := measureSearch(ctx, snap, queries)
			if err != nil {
				b.Fatal(err)
			}
			l = w.all
			for i := range byShape {
				byShape[i] = append(byShape[i], w.byShape[i]...)
			}
			hits += w.hits
		}
		for i, name := range searchShapes() {
			fmt.Printf("L   Search %-22s p50=%-10v p99=%v\n", name, byShape[i].pct(0.5), byShape[i].pct(0.99))
		}
		report(b, "Search (warm index)", l)
		if hits == 0 {
			b.Fatal("no search found anything")
		}
	})

	b.Run("AfterApply", func(b *testing.B) {
		var rbs []*graph.Binding
		snap.Each(graph.KindRoleBinding, "", func(o graph.Object) bool {
			rbs = append(rbs, o.(*graph.Binding))
			return true
		})
		r := rand.New(rand.NewPCG(5, 0))
		var l latencies
		cur := snap
		i := 0
		for b.Loop() {
			l = l[:0]
			for _, q := range queries[:1_000] {
				nb := *rbs[r.IntN(len(rbs))]
				nb.Name = fmt.Sprintf("search-bench-%d", i)
				i++
				cur = cur.Apply([]graph.Change{graph.NewChange(nil, &nb)})
				t := time.Now()
				_, err := cur.Search(ctx, q)
				l = append(l, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, "Search right after Apply", l)
	})

	// The explorer lists users and groups from Subjects, which each snapshot builds on first use.
	b.Run("Subjects", func(b *testing.B) {
		var l latencies
		cur := snap
		for i := 0; b.Loop(); i++ {
			a := graph.ServiceAccount{Meta: graph.Meta{Namespace: "default", Name: fmt.Sprintf("subjects-bench-%d", i)}}
			cur = cur.Apply([]graph.Change{graph.NewChange(nil, &a)})
			t := time.Now()
			cur.Subjects(graph.KindUser)
			l = append(l, time.Since(t))
		}
		report(b, "Subjects, first call per snapshot", l)
	})
}

// searchShapes names the six shapes of searchQueries, by query index modulo 6.
func searchShapes() [6]string {
	return [6]string{"namespace name", "ServiceAccount prefix", "secrets", "pods/exec", "e-mail substring", "typo (fuzzy)"}
}

// searchRun is what measureSearch measured.
type searchRun struct {
	all     latencies
	byShape [6]latencies // by the shape of searchQueries
	hits    int
}

// measureSearch times Search on each query, each call on its own.
func measureSearch(ctx context.Context, snap *graph.Snapshot, qs []graph.SearchQuery) (searchRun, error) {
	out := searchRun{all: make(latencies, 0, len(qs))}
	for i, q := range qs {
		t := time.Now()
		hs, err := snap.Search(ctx, q)
		d := time.Since(t)
		if err != nil {
			return searchRun{}, fmt.Errorf("search %q: %w", q.Text, err)
		}
		out.all = append(out.all, d)
		out.byShape[i%6] = append(out.byShape[i%6], d)
		out.hits += len(hs)
	}
	return out, nil
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
