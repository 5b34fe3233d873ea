package alerts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
	"github.com/kiem-io/kiem/queries"
	"github.com/kiem-io/kiem/queries/filters"
)

// TestIndexAgreesWithAll: evaluating only the filters the index picks raises exactly the alerts that evaluating
// every filter on every value raises.
func TestIndexAgreesWithAll(t *testing.T) {
	ctx := context.Background()
	spec := workload.Spec{Namespaces: 6, ServiceAccounts: 40, Roles: 20, RoleBindings: 60, ClusterRoles: 30,
		ClusterRoleBindings: 20, Users: 15, Groups: 6, Pods: 30}
	before := graph.NewSnapshot(workload.Generate(nil, spec, 1))
	after := graph.NewSnapshot(workload.Generate(nil, spec, 2))
	var changes []graph.ChangeRecord
	seq := 0
	add := func(b, a graph.Object) {
		c := graph.NewChange(b, a)
		changes = append(changes, graph.ChangeRecord{Revision: 2, Seq: seq, Op: c.Op, Ref: c.Ref, Before: b, After: a})
		seq++
	}
	for _, o := range after.Objects().RoleBindings {
		add(nil, &o)
	}
	for _, o := range before.Objects().ClusterRoleBindings {
		add(&o, nil)
	}
	diff, err := graph.DiffSnapshots(ctx, before, after, graph.CondenseChanges(toChanges(changes)))
	if err != nil {
		t.Fatal(err)
	}
	packs, _ := queries.Embedded()
	qe, err := queries.NewEngine(packs, queries.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := qe.Evaluate(ctx, before)
	b, _ := qe.Evaluate(ctx, after)
	delta := queries.Compare(a.Findings(), b.Findings())
	nss := after.NamespaceNames()
	r := rand.New(rand.NewPCG(1, 2))
	var fs []*filters.Compiled
	for i := range 80 {
		ns := nss[r.IntN(len(nss))]
		f := filters.Filter{ID: fmt.Sprintf("f-%d", i), Name: "f"}
		switch i % 8 {
		case 0:
			f.Target, f.Expression = filters.TargetChanges, fmt.Sprintf("change.namespace == %q && change.op == 'add'", ns)
		case 1:
			f.Target, f.Expression = filters.TargetChanges, "change.kind == 'ClusterRoleBinding'"
		case 2:
			f.Target, f.Expression = filters.TargetGrants, fmt.Sprintf("grant.allows(['get', 'list'], 'secrets') && grant.appliesIn(%q)", ns)
		case 3:
			f.Target, f.Expression = filters.TargetGrants, fmt.Sprintf("%q == grant.subject.namespace || grant.allows('*', 'pods')", ns)
		case 4:
			f.Target, f.Kind, f.Expression = filters.TargetEntities, graph.KindRoleBinding, fmt.Sprintf("object.namespace == %q", ns)
		case 5:
			f.Target, f.Kind, f.Expression = filters.TargetEntities, graph.KindClusterRoleBinding, "object.subjects.exists(s, s.kind == 'Group')"
		case 6:
			f.Target, f.Expression = filters.TargetFindings, fmt.Sprintf("finding.namespace == %q && finding.severity != 'info'", ns)
		case 7:
			f.Target, f.Expression = filters.TargetFindings, "finding.severity == 'critical'"
		}
		c, err := filters.Compile(f)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, c)
	}
	guarded := 0
	var unguarded []*filters.Compiled
	for _, f := range fs {
		if f.HasGuard {
			guarded++
		}
		g := *f
		g.HasGuard = false
		unguarded = append(unguarded, &g)
	}
	if guarded < 30 {
		t.Fatalf("only %d filters have a guard: the index is not exercised", guarded)
	}
	st := &step{from: 1, to: 2, changes: changes, findings: &delta,
		grants: func() ([]graph.GrantDelta, error) { return diff.Subjects, nil }}
	got, err := evaluate(ctx, fs, st)
	if err != nil {
		t.Fatal(err)
	}
	want, err := evaluate(ctx, unguarded, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 20 {
		t.Fatalf("only %d alerts: the step does not exercise the filters", len(want))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("indexed evaluation differs (-all +indexed):\n%s", d)
	}
}

func toChanges(rs []graph.ChangeRecord) []graph.Change {
	out := make([]graph.Change, len(rs))
	for i, c := range rs {
		out[i] = graph.Change{Op: c.Op, Ref: c.Ref, Before: c.Before, After: c.After}
	}
	return out
}

// TestPrune: alerts older than the limit go, with their index entries; newer ones stay.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := NewEngine(st, nil, nil, Options{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var as []Alert
	for i := range 1200 { // more than one batch
		a := Alert{FilterID: []string{"a", "b"}[i%2], FilterName: "f", Target: filters.TargetChanges, Revision: graph.Revision(i + 1),
			Time: t0.Add(time.Duration(i) * time.Minute), Entered: []Match{{Key: fmt.Sprint(i), Text: "x", Data: []byte("{}")}}, EnteredTotal: 1}
		a.ID = alertID(&a)
		as = append(as, a)
	}
	for i := 0; i < len(as); i += 100 {
		if err := e.store(ctx, as[i:i+100], as[i+99].Revision); err != nil {
			t.Fatal(err)
		}
	}
	n, err := Prune(ctx, st, t0.Add(1000*time.Minute))
	if err != nil || n != 1000 {
		t.Fatalf("Prune = %d, %v; want 1000", n, err)
	}
	left, err := List(ctx, st, Query{First: 1000})
	if err != nil || len(left) != 200 || left[len(left)-1].Revision != 1001 {
		t.Fatalf("after pruning: %d alerts (%v), want the 200 newest", len(left), err)
	}
	byFilter, err := List(ctx, st, Query{Filter: "a", First: 1000})
	if err != nil || len(byFilter) != 100 {
		t.Fatalf("filter a after pruning: %d alerts (%v), want 100: its index must follow", len(byFilter), err)
	}
}
