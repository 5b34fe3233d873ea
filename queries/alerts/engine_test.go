package alerts

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/manifests"
	"github.com/kiem-io/kiem/queries"
	"github.com/kiem-io/kiem/queries/filters"
)

var testFilters = []filters.Filter{
	{ID: "new-admins", Name: "bindings to cluster-admin", Target: filters.TargetChanges,
		Expression: "change.op != 'delete' && change.object.roleRef.name == 'cluster-admin'"},
	{ID: "prod-secrets", Name: "read on secrets in prod", Target: filters.TargetGrants,
		Expression: "grant.allows(['get', 'list'], 'secrets') && grant.appliesIn('prod')"},
	{ID: "admin-bindings", Name: "cluster-admin bindings", Target: filters.TargetEntities, Kind: graph.KindClusterRoleBinding,
		Expression: "object.roleRef.name == 'cluster-admin'"},
	{ID: "critical", Name: "critical findings", Target: filters.TargetFindings,
		Expression: "finding.severity == 'critical' && finding.status == 'risky'"},
}

// system starts what kiem serve runs for alerts on a store directory: the live graph, the findings tracker and
// the alerts engine; stop ends them and closes the store.
type system struct {
	st      *graph.Store
	live    *graph.Live
	tracker *queries.Tracker
	engine  *Engine
	stop    func()
}

func start(t *testing.T, dir string, seed bool) *system {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	live, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if seed {
		objs, err := manifests.Load(ctx, fixtures.FS, []string{fixtures.KubeadmV133}, "")
		if err != nil {
			t.Fatal(err)
		}
		objs.Namespaces = append(objs.Namespaces, graph.Namespace{Meta: graph.Meta{Name: "prod"}})
		if _, err := live.Commit(ctx, "test", live.Reconcile(objs)); err != nil {
			t.Fatal(err)
		}
		for _, f := range testFilters {
			if _, err := filters.Save(ctx, st, f, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	packs, err := queries.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	qe, err := queries.NewEngine(packs, queries.Options{Baseline: queries.DefaultBaseline()})
	if err != nil {
		t.Fatal(err)
	}
	tr := queries.NewTracker(qe, live, queries.TrackerOptions{})
	e := NewEngine(st, tr, live, Options{})
	done := make(chan struct{}, 2)
	go func() { _ = tr.Run(ctx); done <- struct{}{} }()
	go func() {
		if err := e.Run(ctx); err != nil {
			t.Errorf("engine: %v", err)
		}
		done <- struct{}{}
	}()
	s := &system{st: st, live: live, tracker: tr, engine: e}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		<-done
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// waitEvaluated waits until the engine has stored the alerts of rev.
func (s *system) waitEvaluated(t *testing.T, rev graph.Revision) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		evaluated := s.engine.Evaluated()
		if s.engine.Last() >= rev {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("alerts of revision %d not evaluated (last %d)", rev, s.engine.Last())
		case <-evaluated:
		}
	}
}

func risky(name, user string) []graph.Change {
	crb := &graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: graph.Meta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: user, APIGroup: "rbac.authorization.k8s.io"}}}
	return []graph.Change{graph.NewChange(nil, crb)}
}

// TestEngine: a risky binding raises an alert on every target, live on a subscription and stored; removing it
// raises the "left" side; a restart that missed a revision evaluates it.
func TestEngine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := start(t, dir, true)
	<-s.tracker.Ready()
	s.waitEvaluated(t, s.live.Head())
	sub, cancel := s.engine.Subscribe([]string{"new-admins"})
	defer cancel()
	rev, err := s.live.Commit(ctx, "test", risky("mallory-admin", "mallory"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-sub:
		if a.Revision != rev || a.FilterID != "new-admins" || len(a.Entered) != 1 || !strings.Contains(a.Entered[0].Text, "mallory-admin") {
			t.Fatalf("subscription got %+v, want the new binding at revision %d", a, rev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert on the subscription")
	}
	s.waitEvaluated(t, rev)
	got := map[string]Alert{}
	all, err := s.engine.Alerts(ctx, Query{Since: rev - 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		got[a.FilterID] = a
	}
	for _, id := range []string{"new-admins", "prod-secrets", "admin-bindings", "critical"} {
		a, ok := got[id]
		if !ok || len(a.Entered) == 0 || a.Revision != rev {
			t.Errorf("filter %s: alert %+v, want one at revision %d with entered matches", id, a, rev)
			continue
		}
		if len(a.Causes) != 1 || a.Causes[0].Ref.Name != "mallory-admin" {
			t.Errorf("filter %s: causes %+v, want the binding", id, a.Causes)
		}
	}
	if a := got["prod-secrets"]; !slices.ContainsFunc(a.Entered, func(m Match) bool { return strings.Contains(m.Text, "User mallory") }) {
		t.Errorf("prod-secrets entered %+v, want mallory's new grant", a.Entered)
	}

	// Kill between a commit and its evaluation: the engine and tracker stop, a change commits, a new process
	// starts on the same store and raises the alert for the revision it missed.
	s.stop()
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	live, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crb := risky("mallory-admin", "mallory")[0].After
	missed, err := live.Commit(ctx, "test", []graph.Change{graph.NewChange(crb, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	s = start(t, dir, false)
	s.waitEvaluated(t, missed)
	left, err := s.engine.Alerts(ctx, Query{Since: missed - 1})
	if err != nil {
		t.Fatal(err)
	}
	byFilter := map[string]Alert{}
	for _, a := range left {
		byFilter[a.FilterID] = a
	}
	for _, id := range []string{"prod-secrets", "admin-bindings", "critical"} {
		if a := byFilter[id]; len(a.Left) == 0 || a.Revision != missed {
			t.Errorf("after restart, filter %s: %+v, want what left at revision %d", id, a, missed)
		}
	}
	if _, ok := byFilter["new-admins"]; ok {
		t.Errorf("a delete raised a new-admins alert: %+v", byFilter["new-admins"])
	}
	// Every alert is stored once: the restart did not raise the earlier ones again.
	everything, err := s.engine.Alerts(ctx, Query{First: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range everything {
		if seen[a.ID] {
			t.Fatalf("alert %s stored twice", a.ID)
		}
		seen[a.ID] = true
	}
	if n := len(everything); n != 7 {
		t.Errorf("%d alerts stored, want 7 (4 for the binding, 3 for its removal)", n)
	}
}
