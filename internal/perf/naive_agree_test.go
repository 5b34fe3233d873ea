package perf

import (
	"context"
	"testing"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/workload"
)

// TestNaiveAgrees checks that the baseline the benchmarks compare against answers like the indexed engine, on a
// generated workload large enough to exercise every index (a mid-size L).
func TestNaiveAgrees(t *testing.T) {
	base, _, err := indexer.LoadFS(context.Background(), fixtures.FS, []string{fixtures.KubeadmV133}, indexer.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := workload.Spec{Namespaces: 40, ServiceAccounts: 400, Roles: 200, RoleBindings: 1200, ClusterRoles: 60,
		ClusterRoleBindings: 80, Users: 100, Groups: 20, Pods: 200}
	snap := graph.NewSnapshot(workload.Generate(base, spec, 5))
	n := newNaive(snap.Objects())
	allowed := 0
	for _, q := range sampleQueries(snap, 20_000, 11) {
		got, want := snap.Can(q.id, q.a).Allowed, n.can(q.id, q.a)
		if got != want {
			t.Fatalf("Can(%+v, %+v) = %v, naive evaluator says %v", q.id, q.a, got, want)
		}
		if got {
			allowed++
		}
	}
	if allowed == 0 || allowed == 20_000 {
		t.Fatalf("%d of 20000 sampled queries allowed: the sample does not tell yes from no", allowed)
	}
}
