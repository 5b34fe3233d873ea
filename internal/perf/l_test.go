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
	base, err := kubeadmPolicy(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return workload.Generate(base, workload.L(), 1)
}

// kubeadmPolicy loads the real kubeadm v1.33 policy, the base of the reference workloads.
func kubeadmPolicy(ctx context.Context) (*graph.Objects, error) {
	base, _, err := indexer.LoadFS(ctx, fixtures.FS, []string{fixtures.KubeadmV133}, indexer.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("load the kubeadm policy: %w", err)
	}
	return base, nil
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
			var n int
			l, n = measureCan(snap, queries)
			allowed += n
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
		var l latencies
		for b.Loop() {
			var err error
			if l, err = measureEffectivePermissions(ctx, snap, r, 20_000); err != nil {
				b.Fatal(err)
			}
		}
		report(b, "EffectivePermissions(ServiceAccount)", l)
	})

	b.Run("WhoCan", func(b *testing.B) {
		var l latencies
		for b.Loop() {
			var err error
			if l, err = measureWhoCan(ctx, snap, queries[:2_000]); err != nil {
				b.Fatal(err)
			}
		}
		report(b, "WhoCan(verb, resource, namespace)", l)
	})
}

// measureCan times Can on each query, each call on its own; allowed counts the requests it allowed.
func measureCan(snap *graph.Snapshot, qs []query) (l latencies, allowed int) {
	l = make(latencies, 0, len(qs))
	for _, q := range qs {
		t := time.Now()
		d := snap.Can(q.id, q.a)
		l = append(l, time.Since(t))
		if d.Allowed {
			allowed++
		}
	}
	return l, allowed
}

// measureEffectivePermissions times EffectivePermissions of n ServiceAccounts drawn with r.
func measureEffectivePermissions(ctx context.Context, snap *graph.Snapshot, r *rand.Rand, n int) (latencies, error) {
	sas := snap.Objects().ServiceAccounts
	l := make(latencies, 0, n)
	for range n {
		sa := sas[r.IntN(len(sas))]
		t := time.Now()
		_, err := snap.EffectivePermissions(ctx, graph.ServiceAccountIdentity(sa.Namespace, sa.Name))
		l = append(l, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("EffectivePermissions of %s/%s: %w", sa.Namespace, sa.Name, err)
		}
	}
	return l, nil
}

// measureWhoCan times WhoCan on the action of each query.
func measureWhoCan(ctx context.Context, snap *graph.Snapshot, qs []query) (latencies, error) {
	l := make(latencies, 0, len(qs))
	for _, q := range qs {
		t := time.Now()
		_, err := snap.WhoCan(ctx, q.a)
		l = append(l, time.Since(t))
		if err != nil {
			return nil, fmt.Errorf("WhoCan(%+v): %w", q.a, err)
		}
	}
	return l, nil
}

// BenchmarkLoadL writes L as JSON and YAML and measures what a user waits for: reading the file and indexing it
// in process, and the wall time and peak RSS of a `kiem can-i --snapshot` process from start to answer.
func BenchmarkLoadL(b *testing.B) {
	dir := b.TempDir()
	objs := workloadL(b)
	bin, err := buildKiem(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, format := range []string{"json", "yaml"} {
		file := filepath.Join(dir, "l."+format)
		size, err := writeWorkload(file, objs, format)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(format, func(b *testing.B) {
			var load, index, proc time.Duration
			var rssKiB int64
			for b.Loop() {
				var err error
				if load, index, err = loadInProcess(context.Background(), file); err != nil {
					b.Fatal(err)
				}
				if proc, rssKiB, err = runCanI(bin, file); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(load.Seconds()+index.Seconds(), "load+index-s")
			b.ReportMetric(float64(rssKiB)/1024, "kiem-peak-rss-MiB")
			fmt.Printf("L %s (%.0f MiB): load %v + index %v in process; kiem can-i process %v, peak RSS %.0f MiB\n",
				format, float64(size)/(1<<20), load, index, proc, float64(rssKiB)/1024)
		})
	}
}

// buildKiem builds the kiem command into dir and returns the binary's path. The benchmarks run in this package's
// directory, hence the relative path.
func buildKiem(dir string) (string, error) {
	bin := filepath.Join(dir, "kiem")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/kiem")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build kiem: %w\n%s", err, out)
	}
	return bin, nil
}

// writeWorkload writes objs to file in format ("json" or "yaml") and returns the file's size.
func writeWorkload(file string, objs *graph.Objects, format string) (int64, error) {
	f, err := os.Create(file)
	if err != nil {
		return 0, fmt.Errorf("write workload: %w", err)
	}
	if err := workload.Write(f, objs, format); err != nil {
		f.Close()
		return 0, fmt.Errorf("write workload as %s: %w", format, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("write workload: %w", err)
	}
	st, err := os.Stat(file)
	if err != nil {
		return 0, fmt.Errorf("write workload: %w", err)
	}
	return st.Size(), nil
}

// loadInProcess reads file as kiem does and indexes it, timing the two steps.
func loadInProcess(ctx context.Context, file string) (load, index time.Duration, err error) {
	t := time.Now()
	loaded, _, err := indexer.Load(ctx, []string{file}, indexer.LoadOptions{})
	if err != nil {
		return 0, 0, fmt.Errorf("load %s: %w", file, err)
	}
	load = time.Since(t)
	t = time.Now()
	graph.NewSnapshot(loaded)
	return load, time.Since(t), nil
}

// runCanI runs `kiem can-i --snapshot file` as a user would, from process start to answer, and returns its wall
// time and peak RSS in KiB (the kernel's rusage of the child). That peak is at least this process's own peak RSS
// at the time (see runCanIAlone, which avoids it).
func runCanI(bin, file string) (wall time.Duration, maxRSSKiB int64, err error) {
	cmd := exec.Command(bin, "can-i", "get", "secrets", "-n", "kube-system", "--as", "system:serviceaccount:kube-system:default", "--snapshot", file, "-q")
	t := time.Now()
	err = cmd.Run()
	wall = time.Since(t)
	if cmd.ProcessState == nil {
		return 0, 0, fmt.Errorf("kiem can-i: %w", err)
	}
	// can-i exits 1 for "no": only other codes are failures.
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
		return 0, 0, fmt.Errorf("kiem can-i: %w", err)
	}
	return wall, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, nil
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
