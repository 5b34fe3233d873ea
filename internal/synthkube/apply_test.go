package synthkube_test

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kiem-io/kiem/internal/kubetest"
	"github.com/kiem-io/kiem/internal/synthkube"
)

// TestApplySemantics checks the metadata the server owns: UID and creationTimestamp set on create and kept on
// replace, one global resourceVersion, TypeMeta on what Get returns, and copies on the way in and out.
func TestApplySemantics(t *testing.T) {
	s := synthkube.New(synthkube.Options{})
	t.Cleanup(s.Close)

	in := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p", UID: "ignored"}}
	rv1 := s.Apply(in)
	in.Labels = map[string]string{"mutated": "after apply"}
	got1, ok := s.Get(synthkube.Pod, "a", "p")
	if !ok {
		t.Fatal("Get after Apply found nothing")
	}
	p1 := got1.(*corev1.Pod)
	rv2 := s.Apply(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p", UID: "other"},
		Spec: corev1.PodSpec{NodeName: "n"}})
	got2, _ := s.Get(synthkube.Pod, "a", "p")
	p2 := got2.(*corev1.Pod)
	p2.Spec.NodeName = "changed by the caller"
	got3, _ := s.Get(synthkube.Pod, "a", "p")
	rvDel, deleted := s.Delete(synthkube.Pod, "a", "p")
	_, again := s.Delete(synthkube.Pod, "a", "p")
	_, gone := s.Get(synthkube.Pod, "a", "p")

	checks := []struct {
		name string
		ok   bool
	}{
		{"resourceVersions count up by one per write", rv1 == 2 && rv2 == 3 && rvDel == 4},
		{"stored RV is the returned one", p1.ResourceVersion == "2" && p2.ResourceVersion == "3"},
		{"server assigns a UUID, ignoring the caller's", len(p1.UID) == 36 && p1.UID != "ignored"},
		{"UID kept on replace", p2.UID == p1.UID},
		{"creationTimestamp set and kept", !p1.CreationTimestamp.IsZero() && p2.CreationTimestamp.Equal(&p1.CreationTimestamp)},
		{"TypeMeta set", p1.Kind == "Pod" && p1.APIVersion == "v1"},
		{"Apply copies its input", p1.Labels == nil},
		{"Get returns copies", got3.(*corev1.Pod).Spec.NodeName == "n"},
		{"Delete reports what it deleted", deleted && !again && !gone},
		{"Objects empty after delete", len(s.Objects()) == 0},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: p1 %+v, p2 %+v", c.name, p1.ObjectMeta, p2.ObjectMeta)
		}
	}

	for _, bad := range []runtime.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "c"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "no-namespace"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "namespaced"}},
		&corev1.Node{},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Apply(%T %+v) did not panic", bad, bad.(metav1.Object).GetName())
				}
			}()
			s.Apply(bad)
		}()
	}
}

// TestKubectl runs the real kubectl against the written kubeconfig: discovery, a cluster-wide list, a
// namespaced list and a single-object get must all work.
func TestKubectl(t *testing.T) {
	kubectl, err := kubetest.Kubectl(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s := synthkube.New(synthkube.Options{Token: "t"})
	t.Cleanup(s.Close)
	for _, ns := range []string{"b", "a"} {
		for _, n := range []string{"rb2", "rb1"} {
			s.Apply(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n + "-" + ns}})
		}
	}
	s.Apply(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"}})
	s.Apply(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "cr"}})
	cr, _ := s.Get(synthkube.ClusterRole, "", "cr")

	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := s.WriteKubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"get", "rolebindings", "-A", "-o", "name"}, "rolebinding.rbac.authorization.k8s.io/rb1-a\n" +
			"rolebinding.rbac.authorization.k8s.io/rb2-a\nrolebinding.rbac.authorization.k8s.io/rb1-b\n" +
			"rolebinding.rbac.authorization.k8s.io/rb2-b\n"},
		{[]string{"get", "po", "-n", "a", "-o", "name"}, "pod/p\n"},
		// -w lists, then watches from the list's resourceVersion until the client-side timeout ends it.
		{[]string{"get", "rolebindings", "-n", "a", "-o", "name", "-w", "--request-timeout=1s"},
			"rolebinding.rbac.authorization.k8s.io/rb1-a\nrolebinding.rbac.authorization.k8s.io/rb2-a\n"},
		{[]string{"get", "clusterrole", "cr", "-o", "jsonpath={.metadata.uid}"}, string(cr.(metav1.Object).GetUID())},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			args := append([]string{"--kubeconfig", kc, "--cache-dir", filepath.Join(dir, "cache")}, c.args...)
			out, err := exec.CommandContext(ctx, kubectl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl %v: %v\n%s", args, err, out)
			}
			if string(out) != c.want {
				t.Errorf("kubectl %v:\n got %q\nwant %q", c.args, out, c.want)
			}
		})
	}
}

// BenchmarkApply measures Apply with one watch per kind open and draining, the shape of kiem's informers.
func BenchmarkApply(b *testing.B) {
	s := synthkube.New(synthkube.Options{Token: "t", WatchHistory: 100_000})
	defer s.Close()
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	paths := []string{"/api/v1/namespaces", "/api/v1/serviceaccounts", "/api/v1/pods", "/api/v1/nodes",
		"/api/v1/secrets", rolesPath + "/roles", rolesPath + "/rolebindings", rolesPath + "/clusterroles",
		rolesPath + "/clusterrolebindings"}
	for _, p := range paths {
		resp := do(b, ctx, s, "t", p+"?watch=1&resourceVersion=1&allowWatchBookmarks=true")
		wg.Go(func() {
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
		})
	}
	g := newGen(1, 1000)
	kinds := synthkube.Kinds()
	objs := make([]runtime.Object, 4096)
	for i := range objs {
		objs[i] = g.object(kinds[i%len(kinds)])
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		s.Apply(objs[i%len(objs)])
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "applies/s")
	b.StopTimer()
	// A watcher that fell a whole history behind would have been expired, and the benchmark would then have
	// measured Apply without it.
	if st := s.Stats(); st.Gone != 0 || st.OpenWatches != int64(len(paths)) {
		b.Errorf("watchers did not keep up: %+v", st)
	}
	cancel()
	s.Close()
	wg.Wait()
}
