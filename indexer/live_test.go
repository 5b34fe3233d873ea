package indexer

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kiem-io/kiem/graph"
)

func TestLiveInitialList(t *testing.T) {
	g := newFakeGraph(t)
	l := startLive(t, fake.NewClientset(oneOfEach()...), g, nil)

	revs := g.revisions()
	if len(revs) != 1 {
		t.Fatalf("%d revisions at Ready, want 1", len(revs))
	}
	if got, want := revs[0].source, "cluster:test:initial-list"; got != want {
		t.Errorf("source = %q, want %q", got, want)
	}
	var got []graph.ObjectRef
	for _, c := range revs[0].changes {
		if c.Op != graph.OpAdd {
			t.Errorf("%s: op %s, want add", c.Ref, c.Op)
		}
		got = append(got, c.Ref)
	}
	// In liveKinds order.
	want := []graph.ObjectRef{
		ref(graph.KindNamespace, "", "team"), ref(graph.KindClusterRole, "", "cr"),
		ref(graph.KindClusterRoleBinding, "", "crb"), ref(graph.KindServiceAccount, "team", "builder"),
		ref(graph.KindRole, "team", "r"), ref(graph.KindRoleBinding, "team", "rb"), ref(graph.KindPod, "team", "p"),
		ref(graph.KindNode, "", "n1"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("initial revision refs:\n got %v\nwant %v", got, want)
	}

	pod, _ := g.object(ref(graph.KindPod, "team", "p")).(*graph.Pod)
	wantPod := &graph.Pod{Meta: graph.Meta{Namespace: "team", Name: "p", UID: "uid-team-p", ResourceVersion: "1",
		Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, ServiceAccount: "builder", NodeName: "n1",
		Owner: &graph.OwnerRef{Kind: "ReplicaSet", Name: "rs"}}
	if !sameObject(pod, wantPod) || pod.ResourceVersion != "1" {
		t.Errorf("pod = %+v, want %+v", pod, wantPod)
	}

	s := l.Stats()
	if s.Revisions != 1 || s.Changes != 8 || s.LastRevision != 1 {
		t.Errorf("Stats() = %+v, want 1 revision of 8 changes", s)
	}
	for _, k := range liveKinds {
		if got := s.Events[k].Added; got != 1 {
			t.Errorf("Stats().Events[%s].Added = %d, want 1", k, got)
		}
	}
}

func TestLiveEvents(t *testing.T) {
	cs := fake.NewClientset()
	g := newFakeGraph(t)
	startLive(t, cs, g, nil)
	if n := len(g.revisions()); n != 0 {
		t.Fatalf("%d revisions for an empty cluster, want 0 (an empty initial list commits nothing)", n)
	}
	tr := cs.Tracker()

	for _, obj := range []kruntime.Object{
		apiNamespace("team"), apiServiceAccount("team", "builder"), apiRole("team", "r", "get"),
		apiClusterRole("cr", "get"), apiRoleBinding("team", "rb", "r"), apiClusterRoleBinding("crb", "cr"),
		apiPod("team", "p", "builder"), apiNode("n1"),
	} {
		o, err := convertLive(obj)
		if err != nil {
			t.Fatal(err)
		}
		r := o.Ref()
		gvr := gvrOf[r.Kind]
		t.Run(string(r.Kind), func(t *testing.T) {
			expect := func(n int, op graph.Op) {
				t.Helper()
				changes := g.waitChange(t, n, op, r)
				if len(changes) != 1 {
					t.Fatalf("%s: changes %v, want exactly one", op, changes)
				}
			}

			n := len(g.revisions())
			if err := tr.Create(gvr, obj, r.Namespace); err != nil {
				t.Fatal(err)
			}
			expect(n, graph.OpAdd)

			n = len(g.revisions())
			upd := obj.DeepCopyObject()
			m, _ := meta.Accessor(upd)
			m.SetLabels(map[string]string{"tier": "gold"})
			if err := tr.Update(gvr, upd, r.Namespace); err != nil {
				t.Fatal(err)
			}
			expect(n, graph.OpUpdate)
			if got := g.object(r); got == nil || labelsOf(got)["tier"] != "gold" {
				t.Errorf("after update the graph holds %+v", got)
			}

			n = len(g.revisions())
			if err := tr.Delete(gvr, r.Namespace, r.Name); err != nil {
				t.Fatal(err)
			}
			expect(n, graph.OpDelete)
			if got := g.object(r); got != nil {
				t.Errorf("after delete the graph holds %+v", got)
			}
		})
	}
}

func TestLiveIrrelevantUpdates(t *testing.T) {
	pod, node, role := apiPod("team", "p", "builder"), apiNode("n1"), apiRole("team", "r", "get")
	cs := fake.NewClientset(pod, node, role)
	g := newFakeGraph(t)
	l := startLive(t, cs, g, nil)
	ctx := t.Context()
	n := len(g.revisions())

	// Each update below must be processed and found to change nothing: wait for the skip counter, then check
	// that no revision appeared.
	skippedAfter := func(what string, do func()) {
		t.Helper()
		before := l.Stats().Skipped
		do()
		eventually(t, what+" skipped", func() bool { return l.Stats().Skipped > before })
		if got := g.changesAfter(n); len(got) != 0 {
			t.Fatalf("%s: committed %v, want nothing", what, got)
		}
	}
	skippedAfter("pod status update", func() {
		p := pod.DeepCopy()
		p.ResourceVersion = "2"
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = "10.0.0.7"
		if _, err := cs.CoreV1().Pods("team").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	skippedAfter("pod container image update", func() {
		p := pod.DeepCopy()
		p.ResourceVersion = "3"
		p.Spec.Containers[0].Image = "busybox:2"
		if _, err := cs.CoreV1().Pods("team").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	skippedAfter("node status update", func() {
		nd := node.DeepCopy()
		nd.ResourceVersion = "2"
		nd.Status.Images = nil
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, nd, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	skippedAfter("relist of an unchanged role", func() {
		// A relist after a watch 410 delivers every unchanged object as an update with the same
		// resourceVersion; call the handler as the informer would.
		cached, _, _ := l.informers[graph.KindRole].inf.GetIndexer().GetByKey("team/r")
		l.handler(l.informers[graph.KindRole]).OnUpdate(cached, cached)
	})

	// Annotations are part of graph.Meta: changing one is a change.
	r := role.DeepCopy()
	r.Annotations = map[string]string{"owner": "team-a"}
	if _, err := cs.RbacV1().Roles("team").Update(ctx, r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	changes := g.waitChange(t, n, graph.OpUpdate, ref(graph.KindRole, "team", "r"))
	if len(changes) != 1 {
		t.Fatalf("annotation update committed %v, want one change", changes)
	}
	if got := changes[0].After.(*graph.Role).Annotations["owner"]; got != "team-a" {
		t.Errorf("After annotations = %v", changes[0].After.(*graph.Role).Annotations)
	}
	if got := changes[0].Before.(*graph.Role).Annotations; len(got) != 0 {
		t.Errorf("Before annotations = %v, want none", got)
	}
}

func TestLiveReconcile(t *testing.T) {
	sa := apiServiceAccount("team", "builder")
	agg := apiClusterRole("view", "get")
	agg.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
		{MatchLabels: map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}}}}
	cs := fake.NewClientset(apiNamespace("team"), sa, agg, apiRole("team", "r", "get", "list"),
		apiRoleBinding("team", "new", "r"))

	// The graph as kiem left it: the namespace and ServiceAccount unchanged (but for a resourceVersion, which
	// does not count), the aggregated view as the API held it, the Role with fewer verbs, and a namespace
	// deleted while kiem was down.
	mustConvert := func(obj any) graph.Object {
		o, err := convertLive(obj)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	oldSA := mustConvert(sa).(*graph.ServiceAccount)
	oldSA.ResourceVersion = "0"
	oldRole := mustConvert(apiRole("team", "r", "get"))
	gone := mustConvert(apiNamespace("gone"))
	// A user whose groups a groups file declared is not the cluster's to delete.
	declared := &graph.User{Meta: graph.Meta{Name: "alice"}, Groups: []string{"devs"}}
	g := newFakeGraph(t, mustConvert(apiNamespace("team")), oldSA, mustConvert(agg), oldRole, gone, declared)

	startLive(t, cs, g, nil)
	revs := g.revisions()
	if len(revs) != 1 {
		t.Fatalf("%d revisions at Ready, want 1", len(revs))
	}
	if got, want := revs[0].source, "cluster:test:reconcile"; got != want {
		t.Errorf("source = %q, want %q", got, want)
	}
	type opRef struct {
		op  graph.Op
		ref graph.ObjectRef
	}
	var got []opRef
	for _, c := range revs[0].changes {
		got = append(got, opRef{c.Op, c.Ref})
	}
	want := []opRef{
		{graph.OpDelete, ref(graph.KindNamespace, "", "gone")},
		{graph.OpUpdate, ref(graph.KindRole, "team", "r")},
		{graph.OpAdd, ref(graph.KindRoleBinding, "team", "new")},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reconciling revision:\n got %v\nwant %v", got, want)
	}
	if c := revs[0].changes[1]; !sameObject(c.Before, oldRole) {
		t.Errorf("update Before = %+v, want the graph's old role", c.Before)
	}
	if c := revs[0].changes[0]; !sameObject(c.Before, gone) {
		t.Errorf("delete Before = %+v, want the deleted namespace", c.Before)
	}
}

func TestLiveReconcileNothingToDo(t *testing.T) {
	objs := oneOfEach()
	var prefill []graph.Object
	for _, o := range objs {
		c, err := convertLive(slimmed(o))
		if err != nil {
			t.Fatal(err)
		}
		prefill = append(prefill, c)
	}
	g := newFakeGraph(t, prefill...)
	startLive(t, fake.NewClientset(objs...), g, nil)
	if revs := g.revisions(); len(revs) != 0 {
		t.Fatalf("committed %d revisions for a graph that matches the cluster: %v", len(revs), revs[0].changes)
	}
}

func TestLiveCommitErrorsRequeue(t *testing.T) {
	cs := fake.NewClientset(apiNamespace("team"))
	g := newFakeGraph(t)
	failures := 0
	g.fail = func(source string, _ []graph.Change) error {
		if source == "cluster:test" && failures < 2 {
			failures++
			return errors.New("disk full")
		}
		return nil
	}
	l := startLive(t, cs, g, nil)
	n := len(g.revisions())
	if _, err := cs.RbacV1().Roles("team").Create(t.Context(), apiRole("team", "r", "get"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	changes := g.waitChange(t, n, graph.OpAdd, ref(graph.KindRole, "team", "r"))
	if len(changes) != 1 {
		t.Errorf("committed %v, want the role once", changes)
	}
	if got := l.Stats().CommitErrors; got != 2 {
		t.Errorf("Stats().CommitErrors = %d, want 2", got)
	}
}

func TestLiveInitialCommitFails(t *testing.T) {
	g := newFakeGraph(t)
	g.fail = func(string, []graph.Change) error { return errors.New("disk full") }
	r := runLive(t, fake.NewClientset(apiNamespace("team")), g, nil)
	select {
	case <-r.done:
		if r.err == nil || !strings.Contains(r.err.Error(), "disk full") {
			t.Fatalf("Run() = %v, want the commit error", r.err)
		}
	case <-time.After(10 * time.Second):
		r.stop()
		t.Fatal("Run did not return")
	}
	select {
	case <-r.l.Ready():
		t.Error("Ready closed although the initial list was not committed")
	default:
	}
}

func TestLiveRunTwiceAndOptions(t *testing.T) {
	if _, err := NewLive(LiveOptions{Graph: newFakeGraph(t)}); err == nil {
		t.Error("NewLive without Client: no error")
	}
	if _, err := NewLive(LiveOptions{Client: fake.NewClientset()}); err == nil {
		t.Error("NewLive without Graph: no error")
	}
	l := startLive(t, fake.NewClientset(), newFakeGraph(t), nil)
	if err := l.Run(t.Context()); err == nil {
		t.Error("second Run: no error")
	}
	if got := l.opts; got.BatchWindow != 10*time.Millisecond || got.BatchMax != 2000 || got.Workers != 2 {
		t.Errorf("defaults = %+v", got)
	}
}

func TestLiveRunLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	cs := fake.NewClientset(oneOfEach()...)
	g := newFakeGraph(t)
	r := runLive(t, cs, g, nil)
	select {
	case <-r.l.Ready():
	case <-r.done:
		t.Fatalf("Run() = %v", r.err)
	}
	if _, err := cs.RbacV1().Roles("team").Create(t.Context(), apiRole("team", "r2", "get"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	g.waitChange(t, 1, graph.OpAdd, ref(graph.KindRole, "team", "r2"))
	if err := r.stop(); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Run returned, %d before:\n%s", runtime.NumGoroutine(), before,
				buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

// TestLiveListForbidden: a kind kiem may not list keeps the indexer unready, and says so in Stats (and the log)
// instead of waiting silently.
func TestLiveListForbidden(t *testing.T) {
	cs := fake.NewClientset(apiNamespace("team"))
	cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, kruntime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("nodes"), "", errors.New("kiem may not list nodes"))
	})
	r := runLive(t, cs, newFakeGraph(t), nil)
	eventually(t, "a node watch error", func() bool { return r.l.Stats().Events[graph.KindNode].WatchErrors > 0 })
	select {
	case <-r.l.Ready():
		t.Error("ready although nodes cannot be listed")
	default:
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run() = %v, want nil", err)
	}
}
