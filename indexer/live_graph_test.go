package indexer

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kiem-io/kiem/graph"
)

var _ LiveGraph = (*graph.Live)(nil)

// TestLiveOnGraphLive runs the indexer on the real versioned graph (an in-memory store) across restarts. The
// objects of a reopened store come back through JSON, which turns empty maps and slices into nil: the restart
// on an unchanged cluster must still commit nothing, and a delete made while kiem was down must come back as
// one reconciling revision holding exactly that delete.
func TestLiveOnGraphLive(t *testing.T) {
	ctx := t.Context()
	store, err := graph.OpenStore(ctx, graph.StoreOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	open := func() *graph.Live {
		t.Helper()
		g, err := graph.OpenLive(ctx, store, graph.SnapshotOptions{APIAggregation: true})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}

	objs := oneOfEach()
	// Empty, not nil, where a JSON round trip would make them nil.
	view := apiClusterRole("view")
	view.Labels = map[string]string{}
	view.Rules = []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"},
		ResourceNames: []string{}}}
	view.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
		{MatchLabels: map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}}}}
	objs = append(objs, view)
	cs := fake.NewClientset(objs...)

	run := func() (*graph.Live, graph.Revision) {
		t.Helper()
		g := open()
		head := g.Head()
		r := runLive(t, cs, g, nil)
		waitReady(t, r)
		if err := r.stop(); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		return g, head
	}

	g, _ := run()
	first := g.Head()
	if first == 0 || g.Current().Objects().Count() != len(objs) {
		t.Fatalf("initial list: head %d with %d objects, want %d", first, g.Current().Objects().Count(), len(objs))
	}

	g, _ = run()
	if got := g.Head(); got != first {
		t.Errorf("restart on an unchanged cluster moved the head from %d to %d", first, got)
	}

	if err := cs.RbacV1().RoleBindings("team").Delete(ctx, "rb", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	g, before := run()
	var records []graph.ChangeRecord
	err = store.Changes(ctx, before, g.Head(), func(c graph.ChangeRecord) bool {
		records = append(records, c)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ref(graph.KindRoleBinding, "team", "rb")
	if len(records) != 1 || records[0].Op != graph.OpDelete || records[0].Ref != want ||
		records[0].Source != "cluster:test:reconcile" {
		t.Errorf("changes recorded by the restart: %+v, want one reconciling delete of %s", records, want)
	}
}
