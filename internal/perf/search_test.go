package perf

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

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
	var mails []string
	for _, u := range s.Subjects(graph.KindUser) {
		if local, _, ok := strings.Cut(u, "@"); ok && len(local) > 6 {
			mails = append(mails, u)
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
			m := mails[r.IntN(len(mails))]
			local, _, _ := strings.Cut(m, "@")
			start := r.IntN(len(local) - 4)
			q.Text = m[start : start+4+r.IntN(len(local)-start-3)]
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
// one-RoleBinding change, which indexes the changed namespace and the snapshot's users and groups again.
func BenchmarkSearchL(b *testing.B) {
	ctx := context.Background()
	objs := workloadL(b)
	snap := graph.NewSnapshot(objs)
	queries := searchQueries(snap, 6_000, 11)

	b.Run("Cold", func(b *testing.B) {
		var cold time.Duration
		for b.Loop() {
			s := graph.NewSnapshot(objs)
			t := time.Now()
			if _, err := s.Search(ctx, graph.SearchQuery{Text: "secrets"}); err != nil {
				b.Fatal(err)
			}
			cold = time.Since(t)
		}
		b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
		fmt.Printf("L first Search after NewSnapshot (every shard indexed): %v\n", cold)
	})

	b.Run("Warm", func(b *testing.B) {
		if _, err := snap.Search(ctx, graph.SearchQuery{Text: "warm"}); err != nil {
			b.Fatal(err)
		}
		var l latencies
		var byShape [6]latencies
		hits := 0
		for b.Loop() {
			l = l[:0]
			for i, q := range queries {
				t := time.Now()
				hs, err := snap.Search(ctx, q)
				d := time.Since(t)
				l = append(l, d)
				byShape[i%6] = append(byShape[i%6], d)
				if err != nil {
					b.Fatal(err)
				}
				hits += len(hs)
			}
		}
		for i, name := range []string{"namespace name", "ServiceAccount prefix", "secrets", "pods/exec", "e-mail substring", "typo (fuzzy)"} {
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
}

func BenchmarkSearchSlowest(b *testing.B) {
	ctx := context.Background()
	snap := graph.NewSnapshot(workloadL(b))
	queries := searchQueries(snap, 6_000, 11)
	snap.Search(ctx, graph.SearchQuery{Text: "warm"})
	type qd struct {
		q graph.SearchQuery
		d time.Duration
		n int
	}
	var all []qd
	for b.Loop() {
		for _, q := range queries {
			t := time.Now()
			hs, _ := snap.Search(ctx, q)
			all = append(all, qd{q, time.Since(t), len(hs)})
		}
	}
	slices.SortFunc(all, func(a, b qd) int { return cmp.Compare(b.d, a.d) })
	for _, x := range all[:40] {
		t := time.Now()
		hs, _ := snap.Search(ctx, x.q)
		fmt.Printf("%v (again %v) %q kinds=%v ns=%q hits=%d\n", x.d, time.Since(t), x.q.Text, x.q.Kinds, x.q.Namespace, len(hs))
	}
}
