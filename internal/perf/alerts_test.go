package perf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
	"github.com/kiem-io/kiem/queries/alerts"
	"github.com/kiem-io/kiem/queries/filters"
)

// BenchmarkAlertsL measures what 1,000 saved filters add to every revision of L (target p99 ≤ 20 ms): a quarter
// on each target (changes, grants, entities, findings), each about one namespace, evaluated on the changes a
// cluster sees most (RoleBindings added and removed, pods started, Roles edited), with the alerts stored in a
// real Badger store.
func BenchmarkAlertsL(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	live, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		b.Fatal(err)
	}
	objs := workloadL(b)
	if _, err := live.Commit(ctx, "bench", live.Reconcile(objs)); err != nil {
		b.Fatal(err)
	}
	nss := live.Current().NamespaceNames()
	now := time.Now()
	for i := range 1000 {
		ns := nss[i%len(nss)]
		f := filters.Filter{ID: fmt.Sprintf("f-%d", i), Name: fmt.Sprintf("filter %d", i)}
		switch i % 4 {
		case 0:
			f.Target, f.Expression = filters.TargetChanges, fmt.Sprintf("change.kind == 'RoleBinding' && change.namespace == %q && change.op == 'add'", ns)
		case 1:
			f.Target, f.Expression = filters.TargetGrants, fmt.Sprintf("grant.allows(['get', 'list'], 'secrets') && grant.appliesIn(%q)", ns)
		case 2:
			f.Target, f.Kind, f.Expression = filters.TargetEntities, graph.KindRoleBinding, fmt.Sprintf("object.namespace == %q && object.roleRef.name in ['edit', 'admin']", ns)
		case 3:
			f.Target, f.Expression = filters.TargetFindings, fmt.Sprintf("finding.severity in ['high', 'critical'] && finding.namespace == %q", ns)
		}
		if _, err := filters.Save(ctx, st, f, now); err != nil {
			b.Fatal(err)
		}
	}
	packs, err := queries.Embedded()
	if err != nil {
		b.Fatal(err)
	}
	qe, err := queries.NewEngine(packs, queries.Options{Baseline: queries.DefaultBaseline()})
	if err != nil {
		b.Fatal(err)
	}
	tr := queries.NewTracker(qe, live, queries.TrackerOptions{})
	var mu sync.Mutex
	took := map[graph.Revision]time.Duration{}
	raised := 0
	e := alerts.NewEngine(st, tr, live, alerts.Options{Observe: func(_, to graph.Revision, n int, d time.Duration) {
		mu.Lock()
		took[to] = d
		raised += n
		mu.Unlock()
	}})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = tr.Run(ctx) })
	wg.Go(func() { _ = e.Run(ctx) })
	waitEvaluated := func(rev graph.Revision) {
		for {
			ev := e.Evaluated()
			if e.Last() >= rev {
				return
			}
			select {
			case <-ev:
			case <-time.After(10 * time.Minute):
				b.Fatalf("revision %d not evaluated", rev)
			}
		}
	}
	waitEvaluated(live.Head())

	o := live.Current().Objects()
	r := rand.New(rand.NewPCG(7, 7))
	lat := map[string]latencies{}
	n := 0
	for b.Loop() {
		for i := range 200 {
			kind := changeKinds[i%len(changeKinds)]
			c, ok := commonChange(r, o, kind, fmt.Sprintf("bench-%d", n), live.Current())
			if !ok {
				continue
			}
			n++
			rev, err := live.Commit(ctx, "bench", []graph.Change{c})
			if err != nil {
				b.Fatal(err)
			}
			waitEvaluated(rev)
			mu.Lock()
			d, ok := took[rev]
			mu.Unlock()
			if ok {
				lat[kind] = append(lat[kind], d)
				lat["all"] = append(lat["all"], d)
			}
		}
	}
	for _, k := range append(changeKinds, "all") {
		report(b, "1,000 saved filters, one "+k, lat[k])
	}
	fmt.Printf("L alerts raised over %d revisions: %d\n", len(lat["all"]), raised)
}
