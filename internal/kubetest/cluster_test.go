package kubetest

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestCluster drives one cluster through everything kiem's tests rely on. The steps share the cluster because
// starting one costs seconds; each step creates the objects it needs.
func TestCluster(t *testing.T) {
	opts := DefaultOptions()
	opts.Users = map[string][]string{"alice": {"devs"}}
	c := Start(t, opts)
	admin := clientset(t, c.RESTConfig("admin"))

	t.Run("rbac", func(t *testing.T) {
		ctx := t.Context()
		mustCreate(t, "namespace", func() error {
			_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, "serviceaccount", func() error {
			_, err := admin.CoreV1().ServiceAccounts("team-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, "role", func() error {
			_, err := admin.RbacV1().Roles("team-a").Create(ctx, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}},
			}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, "rolebinding", func() error {
			_, err := admin.RbacV1().RoleBindings("team-a").Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "builder-reads-secrets"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "secret-reader"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: "builder"}},
			}, metav1.CreateOptions{})
			return err
		})
		review := func(ns, verb string) *authorizationv1.SubjectAccessReview {
			t.Helper()
			sar, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               "system:serviceaccount:team-a:builder",
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "secrets"},
				},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("SubjectAccessReview: %v", err)
			}
			return sar
		}
		// The apiserver's RBAC authorizer reads bindings from its own informers, so a binding just created is
		// authorized once its watch event arrives: wait for the first grant before checking the table.
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for !review("team-a", "get").Status.Allowed {
			select {
			case <-deadline:
				t.Fatal("the RoleBinding never took effect in the apiserver's authorizer")
			case <-tick.C:
			}
		}
		for _, tc := range []struct {
			ns, verb string
			want     bool
		}{
			{"team-a", "get", true},
			{"team-a", "watch", true},
			{"team-a", "delete", false}, // the Role grants reads only
			{"default", "get", false},   // a RoleBinding reaches its own namespace only
		} {
			sar := review(tc.ns, tc.verb)
			if got := sar.Status.Allowed; got != tc.want {
				t.Errorf("builder %s secrets in %s: allowed=%v, want %v (reason %q)", tc.verb, tc.ns, got, tc.want, sar.Status.Reason)
			}
		}
	})

	t.Run("forbidden", func(t *testing.T) {
		alice := clientset(t, c.RESTConfig("alice"))
		_, err := alice.CoreV1().Secrets("default").List(t.Context(), metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("alice lists secrets: err=%v, want Forbidden", err)
		}
	})

	t.Run("kubeconfig", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig("alice"))
		if err != nil {
			t.Fatalf("load kubeconfig: %v", err)
		}
		ssr, err := clientset(t, cfg).AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SelfSubjectReview: %v", err)
		}
		if got, want := ssr.Status.UserInfo.Username, "alice"; got != want {
			t.Errorf("username=%q, want %q", got, want)
		}
		if got := ssr.Status.UserInfo.Groups; !slices.Contains(got, "devs") {
			t.Errorf("groups=%v, want devs among them", got)
		}
	})

	t.Run("aggregation", func(t *testing.T) {
		if err := c.WaitAggregated(t.Context()); err != nil {
			t.Fatal(err)
		}
		view, err := admin.RbacV1().ClusterRoles().Get(t.Context(), "view", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get view: %v", err)
		}
		if len(view.Rules) == 0 {
			t.Fatal("view has no rules after WaitAggregated")
		}
	})

	t.Run("restart", func(t *testing.T) {
		ctx := t.Context()
		mustCreate(t, "namespace", func() error {
			_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "survivor"}}, metav1.CreateOptions{})
			return err
		})
		url := c.URL()
		stop := time.Now()
		if err := c.StopAPIServer(ctx); err != nil {
			t.Fatalf("StopAPIServer: %v", err)
		}
		t.Logf("kube-apiserver stopped in %s", time.Since(stop).Round(time.Millisecond))
		if _, err := admin.CoreV1().Namespaces().Get(ctx, "survivor", metav1.GetOptions{}); err == nil {
			t.Fatal("get namespace succeeded while kube-apiserver was stopped")
		}
		start := time.Now()
		if err := c.StartAPIServer(ctx); err != nil {
			t.Fatalf("StartAPIServer: %v", err)
		}
		t.Logf("kube-apiserver restarted in %s", time.Since(start).Round(time.Millisecond))
		if got := c.URL(); got != url {
			t.Errorf("URL()=%s after restart, want %s", got, url)
		}
		if c.kcm.exited() {
			t.Errorf("kube-controller-manager exited while kube-apiserver was down:\n%s", c.kcm.logTail())
		}
		// The old client (same URL, same CA, same token) must work again: etcd kept the data.
		if _, err := admin.CoreV1().Namespaces().Get(ctx, "survivor", metav1.GetOptions{}); err != nil {
			t.Fatalf("get namespace after restart: %v", err)
		}
	})

	t.Run("port taken", func(t *testing.T) {
		ctx := t.Context()
		if err := c.StopAPIServer(ctx); err != nil {
			t.Fatalf("StopAPIServer: %v", err)
		}
		l, err := net.Listen("tcp", strings.TrimPrefix(c.URL(), "https://"))
		if err != nil {
			t.Fatalf("take the apiserver's port: %v", err)
		}
		err = c.StartAPIServer(ctx)
		l.Close()
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("StartAPIServer on a taken port: err=%v, want one quoting the log's \"address already in use\"", err)
		}
		if err := c.StartAPIServer(ctx); err != nil {
			t.Fatalf("StartAPIServer once the port is free: %v", err)
		}
	})

	t.Run("stop", func(t *testing.T) {
		c.mu.Lock()
		procs := []*process{c.etcd, c.apiserver, c.kcm}
		c.mu.Unlock()
		for _, p := range procs {
			t.Logf("%s: pid %d, RSS %s", p.name, p.pid(), rss(p.pid()))
		}
		c.Stop()
		c.Stop() // idempotent
		for _, p := range procs {
			if live := groupMembers(t, p.pid()); len(live) > 0 {
				t.Errorf("%s (pid %d): processes %v still in its group after Stop", p.name, p.pid(), live)
			}
		}
		if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
			t.Errorf("cluster dir %s: stat err=%v, want it removed", c.dir, err)
		}
		if err := c.StartAPIServer(t.Context()); err == nil {
			t.Error("StartAPIServer after Stop succeeded")
		}
	})
}

// clientset builds a typed client or fails the test.
func clientset(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	return cs
}

// mustCreate fails the test if create returns an error.
func mustCreate(t *testing.T, what string, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatalf("create %s: %v", what, err)
	}
}

// groupMembers lists the live (not zombie) processes in process group pgid. Zombies count as gone: a
// grandchild that died after its parent is reaped by init, which may take a moment.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatalf("list /proc: %v", err)
	}
	var live []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process exited meanwhile
		}
		// The command name in parentheses may hold spaces; the fields after it are: state ppid pgrp ...
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		live = append(live, pid)
	}
	return live
}

// rss reads a process's resident set size from /proc, for the log.
func rss(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return err.Error()
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
