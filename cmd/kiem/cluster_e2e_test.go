package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/kubetest"
)

// liveIndex runs the live indexer over a real store until the returned stop is called.
type liveIndex struct {
	g    *graph.Live
	stop func()
}

func startIndex(t *testing.T, cs kubernetes.Interface, dir string) *liveIndex {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	g, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{APIAggregation: true})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := indexer.NewLive(indexer.LiveOptions{Client: cs, Graph: g, Source: "cluster:e2e"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	select {
	case <-ix.Ready():
	case err := <-done:
		t.Fatalf("indexer stopped before its initial sync: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("initial sync did not finish")
	}
	li := &liveIndex{g: g}
	stopped := false
	li.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("indexer: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	}
	t.Cleanup(li.stop)
	return li
}

// eventually polls cond until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(limit)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("not within %v: %s", limit, what)
		case <-tick.C:
		}
	}
}

// TestClusterE2E indexes a real kube-apiserver into a real store: changes show as revisions and diffs within 2 s,
// the live-indexed graph answers exactly as the apiserver's SubjectAccessReview, and an apiserver restart is
// survived.
func TestClusterE2E(t *testing.T) {
	cl := kubetest.Start(t, kubetest.DefaultOptions())
	ctx := context.Background()
	if err := cl.WaitAggregated(ctx); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cl.RESTConfig("admin"))
	li := startIndex(t, cs, t.TempDir())

	// A change becomes a revision, and its diff names the subject's new grant.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e"}}
	mustCreate(t, func() error { _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); return err })
	before := li.g.Head()
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "viewers", Namespace: "e2e"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}}
	mustCreate(t, func() error {
		_, err := cs.RbacV1().RoleBindings("e2e").Create(ctx, rb, metav1.CreateOptions{})
		return err
	})
	eventually(t, 2*time.Second, "the RoleBinding is indexed", func() bool {
		_, ok := li.g.Current().Object(graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: "e2e", Name: "viewers"})
		return ok
	})
	d, err := li.g.Diff(ctx, before, li.g.Head())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(d.Subjects, func(s graph.GrantDelta) bool { return s.Subject.Name == "alice" && len(s.Gained) > 0 }) {
		t.Fatalf("diff after the binding: %+v, want alice gaining view's rules", d.Subjects)
	}

	t.Run("SubjectAccessReview", func(t *testing.T) { differential(t, cs, li, 7) })

	// The apiserver goes away and comes back; the indexer catches up.
	if err := cl.StopAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "after-restart", Namespace: "e2e"}}
	mustCreate(t, func() error {
		_, err := cs.CoreV1().ServiceAccounts("e2e").Create(ctx, sa, metav1.CreateOptions{})
		return err
	})
	eventually(t, 30*time.Second, "the ServiceAccount created after the apiserver restart is indexed", func() bool {
		_, ok := li.g.Current().Object(graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "e2e", Name: "after-restart"})
		return ok
	})
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

// differential creates a random RBAC world in the cluster, waits for the indexer to hold it, and compares the
// live graph's Can with the apiserver's own SubjectAccessReview on random requests.
func differential(t *testing.T, cs kubernetes.Interface, li *liveIndex, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 0))
	namespaces := []string{"w1", "w2"}
	verbs := []string{"get", "list", "create", "delete", "*"}
	resources := []string{"pods", "pods/exec", "secrets", "deployments", "*", "*/scale"}
	groups := []string{"", "apps", "*"}
	users := []string{"u1", "u2", "system:serviceaccount:w1:sa1"}
	grps := []string{"g1", "g2", "system:serviceaccounts:w2"}
	subject := func() rbacv1.Subject {
		switch r.IntN(3) {
		case 0:
			return rbacv1.Subject{Kind: "User", Name: users[r.IntN(len(users))]}
		case 1:
			return rbacv1.Subject{Kind: "Group", Name: grps[r.IntN(len(grps))]}
		}
		return rbacv1.Subject{Kind: "ServiceAccount", Name: "sa" + fmt.Sprint(1+r.IntN(2)), Namespace: namespaces[r.IntN(2)]}
	}
	rules := func() []rbacv1.PolicyRule {
		var out []rbacv1.PolicyRule
		for range 1 + r.IntN(3) {
			pr := rbacv1.PolicyRule{Verbs: []string{verbs[r.IntN(len(verbs))]}, APIGroups: []string{groups[r.IntN(len(groups))]},
				Resources: []string{resources[r.IntN(len(resources))]}}
			if r.IntN(4) == 0 {
				pr.ResourceNames = []string{"a"}
			}
			out = append(out, pr)
		}
		return out
	}
	for _, n := range namespaces {
		mustCreate(t, func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
			return err
		})
	}
	var last graph.ObjectRef
	for i := range 12 {
		name := fmt.Sprintf("cr-%d", i)
		mustCreate(t, func() error {
			_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules()}, metav1.CreateOptions{})
			return err
		})
		roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
		if i%3 == 0 {
			mustCreate(t, func() error {
				_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
					RoleRef: roleRef, Subjects: []rbacv1.Subject{subject()}}, metav1.CreateOptions{})
				return err
			})
			continue
		}
		ns := namespaces[r.IntN(2)]
		if i%2 == 0 {
			mustCreate(t, func() error {
				_, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules()}, metav1.CreateOptions{})
				return err
			})
			roleRef.Kind = "Role"
		}
		mustCreate(t, func() error {
			_, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef: roleRef, Subjects: []rbacv1.Subject{subject(), subject()}}, metav1.CreateOptions{})
			return err
		})
		last = graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: ns, Name: name}
	}
	eventually(t, 10*time.Second, "the world is indexed", func() bool { _, ok := li.g.Current().Object(last); return ok })

	allowed, queries := 0, 300
	for range queries {
		id := graph.Identity{User: users[r.IntN(len(users))]}
		for range r.IntN(3) {
			id.Groups = append(id.Groups, grps[r.IntN(len(grps))])
		}
		res := resources[r.IntN(len(resources))]
		if strings.HasPrefix(res, "*") {
			res = "pods"
		}
		base, sub, _ := strings.Cut(res, "/")
		a := graph.Action{Verb: []string{"get", "list", "create", "delete"}[r.IntN(4)], APIGroup: []string{"", "apps"}[r.IntN(2)],
			Resource: base, Subresource: sub, Namespace: namespaces[r.IntN(2)]}
		if r.IntN(3) == 0 {
			a.Name = []string{"a", "b"}[r.IntN(2)]
		}
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: id.User, Groups: id.Groups, ResourceAttributes: &authzv1.ResourceAttributes{Namespace: a.Namespace, Verb: a.Verb,
				Group: a.APIGroup, Resource: a.Resource, Subresource: a.Subresource, Name: a.Name}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := li.g.Current().Can(id, a)
		if got.Allowed != sar.Status.Allowed {
			t.Fatalf("Can(%+v, %+v) = %v, the apiserver says %v (%s)", id, a, got.Allowed, sar.Status.Allowed, sar.Status.Reason)
		}
		if got.Allowed {
			allowed++
			if !strings.Contains(sar.Status.Reason, got.Reasons[0].String()) && len(got.Reasons) == 1 {
				t.Fatalf("reason: apiserver %q, kiem %q", sar.Status.Reason, got.Reasons[0].String())
			}
		}
	}
	if allowed == 0 || allowed == queries {
		t.Fatalf("%d of %d allowed: the world does not tell yes from no", allowed, queries)
	}
}

// TestKillDuringIngest kills `kiem serve` with SIGKILL at random moments while the cluster changes fast, 20
// times: the store always opens, revisions only grow, and after a final catch-up the graph equals the cluster.
func TestKillDuringIngest(t *testing.T) {
	cl := kubetest.Start(t, kubetest.DefaultOptions())
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cl.RESTConfig("admin"))
	bin := filepath.Join(t.TempDir(), "kiem")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build kiem: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "store")
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "churn"}}, metav1.CreateOptions{})
		return err
	})
	r := rand.New(rand.NewPCG(42, 0))
	var head graph.Revision
	n := 0
	for round := range 20 {
		cmd := exec.Command(bin, "serve", "--kubeconfig", cl.Kubeconfig("admin"), "--data-dir", dir, "--listen", "127.0.0.1:0", "--log-level", "error")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Heavy ingest: bindings created and deleted while kiem lists, commits and is killed.
		deadline := time.Now().Add(time.Duration(200+r.IntN(1200)) * time.Millisecond)
		for time.Now().Before(deadline) {
			name := fmt.Sprintf("rb-%d", n)
			n++
			_, err := cs.RbacV1().RoleBindings("churn").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}, Subjects: []rbacv1.Subject{{Kind: "User", Name: name}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n%3 == 0 {
				if err := cs.RbacV1().RoleBindings("churn").Delete(ctx, fmt.Sprintf("rb-%d", n-2), metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: the store does not open after SIGKILL: %v", round, err)
		}
		if st.Head() < head {
			t.Fatalf("round %d: head went back from %d to %d", round, head, st.Head())
		}
		head = st.Head()
		prev := graph.Revision(0)
		if err := st.Revisions(ctx, 0, head, func(info graph.RevisionInfo) bool {
			if info.Revision <= prev {
				t.Errorf("round %d: revision %d after %d", round, info.Revision, prev)
			}
			prev = info.Revision
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Objects(ctx, head); err != nil {
			t.Fatalf("round %d: head %d unreadable: %v", round, head, err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if head == 0 {
		t.Fatal("no revision was ever committed: kiem was always killed before its initial list")
	}
	// Catch up, then the graph must equal a fresh list of the cluster.
	li := startIndex(t, cs, dir)
	list, err := cs.RbacV1().RoleBindings("churn").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, b := range list.Items {
		want = append(want, b.Name)
	}
	for _, b := range li.g.Current().Objects().RoleBindings {
		if b.Namespace == "churn" {
			got = append(got, b.Name)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Fatalf("after catch-up the graph holds %d RoleBindings in churn, the cluster %d", len(got), len(want))
	}
}
