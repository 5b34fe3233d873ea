package indexer

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/kubetest"
)

// commitBudget is how long a change may take from the API's answer to its revision.
const commitBudget = 2 * time.Second

// TestLiveE2E runs the indexer against a real kube-apiserver (with the aggregation and namespace controllers)
// and checks that every change of every kind reaches the graph within commitBudget, that a restart on the same
// graph records nothing when nothing changed, and exactly the changes made while it was down otherwise.
func TestLiveE2E(t *testing.T) {
	c := kubetest.Start(t, kubetest.DefaultOptions())
	if err := c.WaitAggregated(t.Context()); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig("admin"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	g := newFakeGraph(t)
	r := runLive(t, cs, g, nil)
	defer r.stop()
	select {
	case <-r.l.Ready():
	case <-r.done:
		t.Fatalf("Run() = %v", r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready after 30s")
	}
	view := ref(graph.KindClusterRole, "", "view")
	if v, ok := g.object(view).(*graph.Role); !ok || len(v.Rules) == 0 || v.AggregationRule == nil {
		t.Fatalf("initial list: view = %+v, want the aggregated role with rules", g.object(view))
	}

	// expect waits commitBudget for op on ref to be committed after the first n revisions.
	expect := func(t *testing.T, n int, op graph.Op, want graph.ObjectRef) graph.Change {
		t.Helper()
		start := time.Now()
		deadline := start.Add(commitBudget)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, ch := range g.changesAfter(n) {
				if ch.Op == op && ch.Ref == want {
					t.Logf("%s %s committed after %v", op, want, time.Since(start).Round(time.Millisecond))
					return ch
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s not committed within %v; committed: %v", op, want, commitBudget, g.changesAfter(n))
			}
			<-tick.C
		}
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	labelled := func(m metav1.ObjectMeta) metav1.ObjectMeta {
		m.Labels = map[string]string{"tier": "gold"}
		return m
	}

	const ns = "e2e"
	t.Run("Namespace", func(t *testing.T) {
		n := len(g.revisions())
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		check(t, err)
		expect(t, n, graph.OpAdd, ref(graph.KindNamespace, "", ns))
	})
	t.Run("ServiceAccount", func(t *testing.T) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: ns}}
		r := ref(graph.KindServiceAccount, ns, "builder")
		n := len(g.revisions())
		sa, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
		check(t, err)
		expect(t, n, graph.OpAdd, r)
		n = len(g.revisions())
		sa.ObjectMeta = labelled(sa.ObjectMeta)
		_, err = cs.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{})
		check(t, err)
		expect(t, n, graph.OpUpdate, r)
		n = len(g.revisions())
		check(t, cs.CoreV1().ServiceAccounts(ns).Delete(ctx, sa.Name, metav1.DeleteOptions{}))
		expect(t, n, graph.OpDelete, r)
	})
	t.Run("Role", func(t *testing.T) {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
		r := ref(graph.KindRole, ns, "reader")
		n := len(g.revisions())
		role, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
		check(t, err)
		expect(t, n, graph.OpAdd, r)
		n = len(g.revisions())
		role.Rules[0].Verbs = append(role.Rules[0].Verbs, "list")
		_, err = cs.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{})
		check(t, err)
		if ch := expect(t, n, graph.OpUpdate, r); !slices.Equal(ch.After.(*graph.Role).Rules[0].Verbs, []string{"get", "list"}) {
			t.Errorf("updated role: %+v", ch.After)
		}
		n = len(g.revisions())
		check(t, cs.RbacV1().Roles(ns).Delete(ctx, role.Name, metav1.DeleteOptions{}))
		expect(t, n, graph.OpDelete, r)
	})
	t.Run("RoleBinding", func(t *testing.T) {
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "devs-view", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "devs"}}}
		r := ref(graph.KindRoleBinding, ns, "devs-view")
		n := len(g.revisions())
		rb, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{})
		check(t, err)
		expect(t, n, graph.OpAdd, r)
		n = len(g.revisions())
		rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"})
		_, err = cs.RbacV1().RoleBindings(ns).Update(ctx, rb, metav1.UpdateOptions{})
		check(t, err)
		expect(t, n, graph.OpUpdate, r)
		n = len(g.revisions())
		check(t, cs.RbacV1().RoleBindings(ns).Delete(ctx, rb.Name, metav1.DeleteOptions{}))
		expect(t, n, graph.OpDelete, r)
	})
	t.Run("AggregatedClusterRole", func(t *testing.T) {
		widgets := rbacv1.PolicyRule{APIGroups: []string{"example.com"}, Resources: []string{"widgets"}, Verbs: []string{"get"}}
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "widgets-view",
			Labels: map[string]string{"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
			Rules: []rbacv1.PolicyRule{widgets}}
		hasWidgets := func(o graph.Object) bool {
			role, ok := o.(*graph.Role)
			return ok && slices.ContainsFunc(role.Rules, func(p rbacv1.PolicyRule) bool {
				return slices.Equal(p.Resources, widgets.Resources)
			})
		}
		n := len(g.revisions())
		_, err := cs.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{})
		check(t, err)
		expect(t, n, graph.OpAdd, ref(graph.KindClusterRole, "", cr.Name))
		// The controller's update of view flows through as an update of view.
		if ch := expect(t, n, graph.OpUpdate, view); !hasWidgets(ch.After) || hasWidgets(ch.Before) {
			t.Errorf("view update does not add the widgets rule: %+v", ch.After)
		}
		n = len(g.revisions())
		check(t, cs.RbacV1().ClusterRoles().Delete(ctx, cr.Name, metav1.DeleteOptions{}))
		expect(t, n, graph.OpDelete, ref(graph.KindClusterRole, "", cr.Name))
		if ch := expect(t, n, graph.OpUpdate, view); hasWidgets(ch.After) {
			t.Errorf("view still has the widgets rule: %+v", ch.After)
		}
	})
	t.Run("NamespaceDeletion", func(t *testing.T) {
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "doomed", Namespace: ns}}
		_, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
		check(t, err)
		expect(t, 0, graph.OpAdd, ref(graph.KindRole, ns, "doomed"))
		n := len(g.revisions())
		check(t, cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}))
		// The namespace controller empties the namespace, then removes it: time that, then kiem's part.
		waitGone(t, cs, ns)
		expect(t, n, graph.OpDelete, ref(graph.KindRole, ns, "doomed"))
		expect(t, n, graph.OpDelete, ref(graph.KindNamespace, "", ns))
	})

	t.Run("Restart", func(t *testing.T) {
		if err := r.stop(); err != nil {
			t.Fatalf("Run() = %v", err)
		}
		n := len(g.revisions())
		r2 := runLive(t, cs, g, nil)
		waitReady(t, r2)
		if got := g.changesAfter(n); len(got) != 0 {
			t.Errorf("restart on an unchanged cluster committed %v", got)
		}
		check(t, r2.stop())

		// Changed while kiem is down: one reconciling revision records it.
		check(t, cs.RbacV1().ClusterRoleBindings().Delete(ctx, "system:discovery", metav1.DeleteOptions{}))
		r3 := runLive(t, cs, g, nil)
		defer r3.stop()
		waitReady(t, r3)
		revs := g.revisions()[n:]
		if len(revs) != 1 || revs[0].source != "cluster:test:reconcile" || len(revs[0].changes) != 1 ||
			revs[0].changes[0].Op != graph.OpDelete ||
			revs[0].changes[0].Ref != ref(graph.KindClusterRoleBinding, "", "system:discovery") {
			t.Errorf("reconciling revisions after a delete while down: %+v", revs)
		}
	})
}

// waitGone waits for the namespace controller to finish deleting namespace name.
func waitGone(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("namespace %s still there: %v", name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitReady(t *testing.T, r *liveRun) {
	t.Helper()
	select {
	case <-r.l.Ready():
	case <-r.done:
		t.Fatalf("Run() = %v", r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready after 30s")
	}
}
