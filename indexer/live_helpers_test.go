package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kiem-io/kiem/graph"
)

// fakeGraph is a LiveGraph that keeps objects in a map, builds a snapshot on each Commit and records every
// revision. It checks the indexer's side of the contract: each object at most once per revision, and each
// change's Before what the graph holds.
type fakeGraph struct {
	t    testing.TB
	mu   sync.Mutex
	objs map[graph.ObjectRef]graph.Object
	head *graph.Snapshot
	revs []fakeRevision
	// fail, when set, is asked before each commit; an error it returns fails the commit.
	fail func(source string, changes []graph.Change) error
}

type fakeRevision struct {
	rev     graph.Revision
	source  string
	changes []graph.Change
}

var _ LiveGraph = (*fakeGraph)(nil)

func newFakeGraph(t testing.TB, objs ...graph.Object) *fakeGraph {
	g := &fakeGraph{t: t, objs: make(map[graph.ObjectRef]graph.Object)}
	for _, o := range objs {
		g.objs[o.Ref()] = o
	}
	g.rebuild()
	return g
}

func (g *fakeGraph) rebuild() {
	var objs graph.Objects
	for _, o := range g.objs {
		objs.Add(o)
	}
	g.head = graph.NewSnapshot(&objs)
}

func (g *fakeGraph) Current() *graph.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.head
}

func (g *fakeGraph) Commit(ctx context.Context, source string, changes []graph.Change) (graph.Revision, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail != nil {
		if err := g.fail(source, changes); err != nil {
			return 0, err
		}
	}
	seen := make(map[graph.ObjectRef]bool)
	for _, c := range changes {
		if seen[c.Ref] {
			g.t.Errorf("revision %d names %s twice", len(g.revs)+1, c.Ref)
		}
		seen[c.Ref] = true
		cur, ok := g.objs[c.Ref]
		if ok != (c.Op != graph.OpAdd) || !sameObject(cur, c.Before) {
			g.t.Errorf("%s %s: Before %v does not match the graph's %v (present %v)", c.Op, c.Ref, c.Before, cur, ok)
		}
		if c.After == nil {
			delete(g.objs, c.Ref)
		} else {
			g.objs[c.Ref] = c.After
		}
	}
	g.rebuild()
	g.revs = append(g.revs, fakeRevision{rev: graph.Revision(len(g.revs) + 1), source: source, changes: changes})
	return graph.Revision(len(g.revs)), nil
}

// revisions returns the revisions committed so far.
func (g *fakeGraph) revisions() []fakeRevision {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.revs)
}

// changesAfter returns the changes of the revisions after the first n.
func (g *fakeGraph) changesAfter(n int) []graph.Change {
	var out []graph.Change
	for _, r := range g.revisions()[n:] {
		out = append(out, r.changes...)
	}
	return out
}

// object returns what the graph holds of ref.
func (g *fakeGraph) object(ref graph.ObjectRef) graph.Object {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.objs[ref]
}

// eventually polls cond until it holds, failing the test after a deadline generous enough for -race.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// waitChange waits until a revision after the first n records op on ref, and returns the changes committed
// after the first n revisions.
func (g *fakeGraph) waitChange(t testing.TB, n int, op graph.Op, ref graph.ObjectRef) []graph.Change {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s", op, ref), func() bool {
		return slices.ContainsFunc(g.changesAfter(n), func(c graph.Change) bool { return c.Op == op && c.Ref == ref })
	})
	return g.changesAfter(n)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// startLive runs a Live indexer until the test ends and waits for it to be ready. The cleanup checks that Run
// returns nil promptly.
func startLive(t testing.TB, client kubernetes.Interface, g LiveGraph, tune func(*LiveOptions)) *Live {
	t.Helper()
	r := runLive(t, client, g, tune)
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	select {
	case <-r.l.Ready():
	case <-r.done:
		t.Fatalf("Run() = %v before Ready", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}
	return r.l
}

// liveRun is a Live whose Run runs in a goroutine.
type liveRun struct {
	l      *Live
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned err
	err    error
}

// runLive starts Run in a goroutine.
func runLive(t testing.TB, client kubernetes.Interface, g LiveGraph, tune func(*LiveOptions)) *liveRun {
	t.Helper()
	opts := LiveOptions{Client: client, Graph: g, Source: "cluster:test",
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	if tune != nil {
		tune(&opts)
	}
	l, err := NewLive(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &liveRun{l: l, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = l.Run(ctx)
		close(r.done)
	}()
	return r
}

// stop cancels Run and returns what it returned.
func (r *liveRun) stop() error {
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(10 * time.Second):
		return errors.New("Run did not return within 10s of cancel")
	}
}

// Fixtures: API objects as the informers deliver them.

func objMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), ResourceVersion: "1",
		CreationTimestamp: metav1.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func apiNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: objMeta("", name)}
}

func apiServiceAccount(ns, name string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: objMeta(ns, name)}
}

func apiRole(ns, name string, verbs ...string) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: objMeta(ns, name),
		Rules: []rbacv1.PolicyRule{{Verbs: verbs, APIGroups: []string{""}, Resources: []string{"pods"}}}}
}

func apiClusterRole(name string, verbs ...string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: objMeta("", name),
		Rules: []rbacv1.PolicyRule{{Verbs: verbs, APIGroups: []string{""}, Resources: []string{"secrets"}}}}
}

func apiRoleBinding(ns, name, role string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: objMeta(ns, name),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "builder", Namespace: ns}}}
}

func apiClusterRoleBinding(name, role string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{ObjectMeta: objMeta("", name),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "ops"}}}
}

func apiPod(ns, name, sa string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: objMeta(ns, name),
		Spec: corev1.PodSpec{ServiceAccountName: sa, NodeName: "n1",
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending}}
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs",
		UID: "uid-rs", Controller: new(true)}}
	return p
}

func apiNode(name string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: objMeta("", name)}
	n.Labels = map[string]string{"kubernetes.io/os": "linux"}
	n.Status.Images = []corev1.ContainerImage{{Names: []string{"busybox"}, SizeBytes: 1 << 20}}
	return n
}

func ref(kind graph.Kind, ns, name string) graph.ObjectRef {
	return graph.ObjectRef{Kind: kind, Namespace: ns, Name: name}
}

var (
	gvrNamespaces          = corev1.SchemeGroupVersion.WithResource("namespaces")
	gvrServiceAccounts     = corev1.SchemeGroupVersion.WithResource("serviceaccounts")
	gvrPods                = corev1.SchemeGroupVersion.WithResource("pods")
	gvrNodes               = corev1.SchemeGroupVersion.WithResource("nodes")
	gvrRoles               = rbacv1.SchemeGroupVersion.WithResource("roles")
	gvrClusterRoles        = rbacv1.SchemeGroupVersion.WithResource("clusterroles")
	gvrRoleBindings        = rbacv1.SchemeGroupVersion.WithResource("rolebindings")
	gvrClusterRoleBindings = rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings")
)

// gvrOf maps a graph kind to its resource, for the fake tracker.
var gvrOf = map[graph.Kind]schema.GroupVersionResource{
	graph.KindNamespace: gvrNamespaces, graph.KindServiceAccount: gvrServiceAccounts, graph.KindPod: gvrPods,
	graph.KindNode: gvrNodes, graph.KindRole: gvrRoles, graph.KindClusterRole: gvrClusterRoles,
	graph.KindRoleBinding: gvrRoleBindings, graph.KindClusterRoleBinding: gvrClusterRoleBindings,
}

// oneOfEach is a small cluster with one object of every kind.
func oneOfEach() []kruntime.Object {
	return []kruntime.Object{
		apiNamespace("team"), apiServiceAccount("team", "builder"), apiRole("team", "r", "get"),
		apiClusterRole("cr", "get"), apiRoleBinding("team", "rb", "r"), apiClusterRoleBinding("crb", "cr"),
		apiPod("team", "p", "builder"), apiNode("n1"),
	}
}

func labelsOf(o graph.Object) map[string]string {
	switch v := normalized(o).(type) {
	case *graph.Namespace:
		return v.Labels
	case *graph.ServiceAccount:
		return v.Labels
	case *graph.Role:
		return v.Labels
	case *graph.Binding:
		return v.Labels
	case *graph.Pod:
		return v.Labels
	case *graph.Node:
		return v.Labels
	}
	return nil
}

// slimmed returns what the informer cache holds of obj.
func slimmed(obj kruntime.Object) any {
	o, _ := slim(obj.DeepCopyObject())
	return o
}
