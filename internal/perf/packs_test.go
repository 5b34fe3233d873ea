package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// BenchmarkPacksL measures the risk packs on L: a full evaluation of every embedded pack (target ≤ 10 s), and the
// re-evaluation after one change (target p99 ≤ 50 ms), for the changes a cluster sees most: a RoleBinding to a
// ServiceAccount or user added or removed, a pod started, a Role edited.
func BenchmarkPacksL(b *testing.B) {
	ctx := context.Background()
	snap := graph.NewSnapshot(workloadL(b))
	packs, err := queries.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	e, err := queries.NewEngine(packs, queries.Options{Baseline: queries.DefaultBaseline()})
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	res, err := e.Evaluate(ctx, snap)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	fs := res.Findings()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	byStatus := map[queries.Status]int{}
	for _, f := range fs {
		byStatus[f.Status]++
	}
	fmt.Printf("L packs full evaluation: %v (%d rules, %d findings: %v; heap +%d MiB)\n", took, countRules(packs),
		len(fs), byStatus, (int64(after.HeapInuse)-int64(before.HeapInuse))>>20)
	b.ReportMetric(took.Seconds(), "full-s")

	o := snap.Objects()
	r := rand.New(rand.NewPCG(5, 5))
	lat := map[string]latencies{}
	cur := res
	for b.Loop() {
		for i := range 200 {
			kind := changeKinds[i%len(changeKinds)]
			c, ok := commonChange(r, o, kind, fmt.Sprintf("bench-%d", i), cur.Snapshot())
			if !ok {
				continue
			}
			t := time.Now()
			next := cur.Snapshot().Apply([]graph.Change{c})
			upd, _, err := e.Update(ctx, cur, next, graph.CondenseChanges([]graph.Change{c}))
			if err != nil {
				b.Fatal(err)
			}
			d := time.Since(t)
			lat[kind] = append(lat[kind], d)
			lat["all"] = append(lat["all"], d)
			cur = upd
		}
	}
	for _, k := range append(changeKinds, "all") {
		report(b, "packs after one "+k, lat[k])
	}
	// Attack-path findings are searched again once changes pause (the tracker's RefreshPaths).
	start = time.Now()
	if _, _, err := e.RefreshPaths(ctx, cur); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("L attack-path findings refreshed after the changes: %v\n", time.Since(start))
}

func countRules(ps []*queries.Pack) int {
	n := 0
	for _, p := range ps {
		n += len(p.Rules)
	}
	return n
}

// changeKinds are the changes a cluster sees most, which the incremental benchmarks replay.
var changeKinds = []string{"RoleBinding add", "RoleBinding delete", "Pod add", "Role edit"}

// commonChange makes one change of a kind from L's objects o: a copy of a RoleBinding or pod under a new name, the
// deletion of a RoleBinding cur still holds, or a rule added to a Role. ok is false when there is nothing to do.
func commonChange(r *rand.Rand, o *graph.Objects, kind, name string, cur *graph.Snapshot) (graph.Change, bool) {
	switch kind {
	case "RoleBinding add":
		n := o.RoleBindings[r.IntN(len(o.RoleBindings))]
		n.Name = name
		return graph.NewChange(nil, &n), true
	case "RoleBinding delete":
		old := o.RoleBindings[r.IntN(len(o.RoleBindings))]
		if _, ok := cur.Object(old.Ref()); !ok {
			return graph.Change{}, false
		}
		return graph.NewChange(&old, nil), true
	case "Pod add":
		n := o.Pods[r.IntN(len(o.Pods))]
		n.Name = name
		return graph.NewChange(nil, &n), true
	case "Role edit":
		old := o.Roles[r.IntN(len(o.Roles))]
		n := old
		n.Rules = append(slices.Clone(old.Rules), rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}})
		return graph.NewChange(&old, &n), true
	}
	return graph.Change{}, false
}
