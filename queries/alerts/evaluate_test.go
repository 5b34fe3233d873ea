package alerts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

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
