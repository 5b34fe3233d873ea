package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/workload"
)

// workloadL generates L on the real kubeadm v1.33 policy.
func workloadL(tb testing.TB) *graph.Objects {
	tb.Helper()
	base, _, err := indexer.LoadFS(context.Background(), fixtures.FS, []string{fixtures.KubeadmV133}, indexer.LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return workload.Generate(base, workload.L(), 1)
}

// query is one sampled request.
type query struct {
	id graph.Identity
	a  graph.Action
}

// sampleQueries draws n requests shaped like real ones from the snapshot: ServiceAccount tokens and users named in
// bindings (with groups named in bindings), asking verbs on resources the rules mention, in namespaces that exist.
func sampleQueries(s *graph.Snapshot, n int, seed uint64) []query {
	r := rand.New(rand.NewPCG(seed, 0))
	objs := s.Objects()
	var users, groups []string
	for _, bs := range [][]graph.Binding{objs.ClusterRoleBindings, objs.RoleBindings} {
		for _, b := range bs {
			for _, sub := range b.Subjects {
				switch sub.Kind {
				case "User":
					users = append(users, sub.Name)
				case "Group":
					groups = append(groups, sub.Name)
				}
			}
		}
	}
	type res struct{ group, resource, sub string }
	var resources []res
	for _, rs := range [][]graph.Role{objs.ClusterRoles, objs.Roles} {
		for _, role := range rs {
			for _, rule := range role.Rules {
				for _, g := range rule.APIGroups {
					for _, name := range rule.Resources {
						if g == "*" || strings.HasPrefix(name, "*") {
							continue
						}
						base, sub, _ := strings.Cut(name, "/")
						resources = append(resources, res{g, base, sub})
					}
				}
			}
		}
	}
	var namespaces []string
	for _, ns := range objs.Namespaces {
		namespaces = append(namespaces, ns.Name)
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	out := make([]query, n)
	for i := range out {
		var id graph.Identity
		if r.IntN(2) == 0 {
			sa := objs.ServiceAccounts[r.IntN(len(objs.ServiceAccounts))]
			id = graph.ServiceAccountIdentity(sa.Namespace, sa.Name)
		} else {
			var gs []string
			for range r.IntN(3) {
				gs = append(gs, groups[r.IntN(len(groups))])
			}
			id = graph.ImpersonatedIdentity(users[r.IntN(len(users))], gs)
		}
		rs := resources[r.IntN(len(resources))]
		a := graph.Action{Verb: verbs[r.IntN(len(verbs))], APIGroup: rs.group, Resource: rs.resource, Subresource: rs.sub,
			Namespace: namespaces[r.IntN(len(namespaces))]}
		if r.IntN(4) == 0 {
			a.Name = fmt.Sprintf("obj-%d", r.IntN(10))
		}
		out[i] = query{id, a}
	}
	return out
}

// latencies records one duration per call and reports percentiles.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func (l latencies) mean() time.Duration {
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(len(l))
}

func report(b *testing.B, what string, l latencies) {
	b.ReportMetric(float64(l.pct(0.50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l.pct(0.99).Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(l.mean().Nanoseconds()), "mean-ns")
	fmt.Printf("L %-34s n=%-7d p50=%-10v p99=%-10v mean=%v\n", what, len(l), l.pct(0.50), l.pct(0.99), l.mean())
}

// BenchmarkL measures the queries of ARCHITECTURE §8 on workload L in process.
func BenchmarkL(b *testing.B) {
	objs := workloadL(b)
	start := time.Now()
	snap := graph.NewSnapshot(objs)
	fmt.Printf("L index (NewSnapshot, aggregation included): %v for %d objects\n", time.Since(start), objs.Count())
	ctx := context.Background()
	queries := sampleQueries(snap, 100_000, 7)

	b.Run("Can", func(b *testing.B) {
		var l latencies
		allowed := 0
		for b.Loop() {
			l = l[:0]
			for _, q := range queries {
				t := time.Now()
				d := snap.Can(q.id, q.a)
				l = append(l, time.Since(t))
				if d.Allowed {
					allowed++
				}
			}
		}
		report(b, "Can", l)
		fmt.Printf("L Can allowed %d of %d sampled queries\n", allowed/max(1, b.N), len(queries))
	})

	b.Run("NaiveCan", func(b *testing.B) {
		n := newNaive(snap.Objects())
		sample := queries[:2_000] // the naive evaluator is slow: a sample suffices for its mean
		var naive, indexed latencies
		for b.Loop() {
			naive, indexed = naive[:0], indexed[:0]
			for _, q := range sample {
				t := time.Now()
				want := n.can(q.id, q.a)
				naive = append(naive, time.Since(t))
				t = time.Now()
				got := snap.Can(q.id, q.a).Allowed
				indexed = append(indexed, time.Since(t))
				if got != want {
					b.Fatalf("indexed Can(%+v, %+v) = %v, naive = %v", q.id, q.a, got, want)
				}
			}
		}
		report(b, "naive Can (every binding visited)", naive)
		speedup := float64(naive.mean()) / float64(indexed.mean())
		b.ReportMetric(speedup, "speedup-x")
		fmt.Printf("L speed-up of indexed Can over naive: %.0fx (same %d answers)\n", speedup, len(sample))
	})

	b.Run("EffectivePermissionsSA", func(b *testing.B) {
		r := rand.New(rand.NewPCG(3, 0))
		sas := snap.Objects().ServiceAccounts
		var l latencies
		perms := 0
		for b.Loop() {
			l = l[:0]
			for range 20_000 {
				sa := sas[r.IntN(len(sas))]
				t := time.Now()
				ps, err := snap.EffectivePermissions(ctx, graph.ServiceAccountIdentity(sa.Namespace, sa.Name))
				l = append(l, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				perms += len(ps)
			}
		}
		report(b, "EffectivePermissions(ServiceAccount)", l)
	})

	b.Run("WhoCan", func(b *testing.B) {
		var l latencies
		entries := 0
		for b.Loop() {
			l = l[:0]
			for _, q := range queries[:2_000] {
				t := time.Now()
				es, err := snap.WhoCan(ctx, q.a)
				l = append(l, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				entries += len(es)
			}
		}
		report(b, "WhoCan(verb, resource, namespace)", l)
	})
}

// BenchmarkLoadL writes L as JSON and YAML and measures what a user waits for: reading the file and indexing it
// in process, and the wall time and peak RSS of a `kiem can-i --snapshot` process from start to answer.
func BenchmarkLoadL(b *testing.B) {
	dir := b.TempDir()
	objs := workloadL(b)
	bin := filepath.Join(dir, "kiem")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/kiem")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build kiem: %v\n%s", err, out)
	}
	for _, format := range []string{"json", "yaml"} {
		file := filepath.Join(dir, "l."+format)
		f, err := os.Create(file)
		if err != nil {
			b.Fatal(err)
		}
		if err := workload.Write(f, objs, format); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		st, _ := os.Stat(file)
		b.Run(format, func(b *testing.B) {
			var load, index, proc time.Duration
			var rssKiB int64
			for b.Loop() {
				t := time.Now()
				loaded, _, err := indexer.Load(context.Background(), []string{file}, indexer.LoadOptions{})
				if err != nil {
					b.Fatal(err)
				}
				load = time.Since(t)
				t = time.Now()
				graph.NewSnapshot(loaded)
				index = time.Since(t)

				cmd := exec.Command(bin, "can-i", "get", "secrets", "-n", "kube-system", "--as", "system:serviceaccount:kube-system:default", "--snapshot", file, "-q")
				t = time.Now()
				err = cmd.Run()
				proc = time.Since(t)
				if code := cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
					b.Fatalf("kiem can-i: %v", err)
				}
				rssKiB = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
			}
			b.ReportMetric(load.Seconds()+index.Seconds(), "load+index-s")
			b.ReportMetric(float64(rssKiB)/1024, "kiem-peak-rss-MiB")
			fmt.Printf("L %s (%.0f MiB): load %v + index %v in process; kiem can-i process %v, peak RSS %.0f MiB\n",
				format, float64(st.Size())/(1<<20), load, index, proc, float64(rssKiB)/1024)
		})
	}
}

// BenchmarkApplyL measures how the live graph follows one change on L: Apply rebuilds only the shard the change
// touches (a namespace; or ClusterRoles and ClusterRoleBindings, aggregation included) and shares the rest.
func BenchmarkApplyL(b *testing.B) {
	objs := workloadL(b)
	snap := graph.NewSnapshot(objs)
	o := snap.Objects()
	rb, crb, cr := o.RoleBindings[len(o.RoleBindings)/2], o.ClusterRoleBindings[len(o.ClusterRoleBindings)/2], o.ClusterRoles[len(o.ClusterRoles)/2]
	pod := o.Pods[len(o.Pods)/2]
	for _, tc := range []struct {
		name   string
		change func(i int) graph.Change
	}{
		{"RoleBinding", func(i int) graph.Change {
			n := rb
			n.Name = fmt.Sprintf("bench-%d", i)
			return graph.NewChange(nil, &n)
		}},
		{"Pod", func(i int) graph.Change {
			n := pod
			n.Name = fmt.Sprintf("bench-%d", i)
			return graph.NewChange(nil, &n)
		}},
		{"ClusterRoleBinding", func(i int) graph.Change {
			n := crb
			n.Name = fmt.Sprintf("bench-%d", i)
			return graph.NewChange(nil, &n)
		}},
		{"ClusterRole", func(i int) graph.Change {
			n := cr
			n.Labels = map[string]string{"bench": fmt.Sprint(i)}
			return graph.NewChange(&cr, &n)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var l latencies
			cur := snap
			i := 0
			for b.Loop() {
				c := tc.change(i)
				i++
				t := time.Now()
				cur = cur.Apply([]graph.Change{c})
				l = append(l, time.Since(t))
			}
			report(b, "Apply one "+tc.name, l)
		})
	}
	start := time.Now()
	graph.NewSnapshot(objs)
	fmt.Printf("L full rebuild for comparison: %v\n", time.Since(start))
}
