package synthkube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kiem-io/kiem/internal/synthkube"
)

// mode is how the reflectors get their initial state: client-go's default WatchList, the classic LIST then
// WATCH, or WatchList refused by the server (422) so that reflectors fall back to LIST.
type mode struct {
	name        string
	watchList   bool // client feature gate
	noWatchList bool // server refuses sendInitialEvents
}

var modes = []mode{
	{"WatchList", true, false},
	{"ListWatch", false, false},
	{"ServerRefusesWatchList", true, true},
}

// cluster is a set of informers, one per kind, fed by a Server through the kubeconfig it wrote.
type cluster struct {
	stores map[synthkube.Kind]cache.Store
}

// startInformers runs a SharedInformerFactory against s, the way kiem does (cluster scope, no selectors, no
// resync), and returns once every informer has synced. The informers stop when the test ends.
func startInformers(t *testing.T, s *synthkube.Server, m mode) *cluster {
	t.Helper()
	clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.WatchListClient, m.watchList)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := s.WriteKubeconfig(path); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("loading the written kubeconfig: %v", err)
	}
	// The default 5 QPS would make the fault tests measure client-side throttling instead of the server.
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	c := &cluster{stores: map[synthkube.Kind]cache.Store{}}
	for _, k := range synthkube.Kinds() {
		c.stores[k] = informerFor(f, k).GetStore()
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		f.Shutdown()
	})
	f.Start(ctx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, 30*time.Second)
	defer syncCancel()
	for typ, ok := range f.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	return c
}

func informerFor(f informers.SharedInformerFactory, k synthkube.Kind) cache.SharedIndexInformer {
	core, rbac := f.Core().V1(), f.Rbac().V1()
	switch k {
	case synthkube.Namespace:
		return core.Namespaces().Informer()
	case synthkube.ServiceAccount:
		return core.ServiceAccounts().Informer()
	case synthkube.Pod:
		return core.Pods().Informer()
	case synthkube.Node:
		return core.Nodes().Informer()
	case synthkube.Secret:
		return core.Secrets().Informer()
	case synthkube.Role:
		return rbac.Roles().Informer()
	case synthkube.RoleBinding:
		return rbac.RoleBindings().Informer()
	case synthkube.ClusterRole:
		return rbac.ClusterRoles().Informer()
	case synthkube.ClusterRoleBinding:
		return rbac.ClusterRoleBindings().Informer()
	}
	panic("unknown kind " + k)
}

// versions maps "Kind/namespace/name" to resourceVersion: cheap enough to compare on every poll.
func serverVersions(t *testing.T, s *synthkube.Server) map[string]string {
	out := map[string]string{}
	for _, o := range s.Objects() {
		k, err := synthkube.KindOf(o)
		if err != nil {
			t.Fatal(err)
		}
		m := o.(metav1.Object)
		out[string(k)+"/"+m.GetNamespace()+"/"+m.GetName()] = m.GetResourceVersion()
	}
	return out
}

func (c *cluster) versions() map[string]string {
	out := map[string]string{}
	for k, st := range c.stores {
		for _, o := range st.List() {
			m := o.(metav1.Object)
			out[string(k)+"/"+m.GetNamespace()+"/"+m.GetName()] = m.GetResourceVersion()
		}
	}
	return out
}

// describeDiff summarises how two version maps differ, for failure messages.
func describeDiff(want, got map[string]string) string {
	var lines []string
	for k, v := range want {
		if got[k] != v {
			lines = append(lines, fmt.Sprintf("%s: server rv %s, cache rv %q", k, v, got[k]))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, fmt.Sprintf("%s: deleted on the server, cache rv %s", k, v))
		}
	}
	sort.Strings(lines)
	if len(lines) > 10 {
		lines = append(lines[:10], fmt.Sprintf("... and %d more", len(lines)-10))
	}
	return fmt.Sprintf("%d differences: %v", len(lines), lines)
}

// waitConverged polls until the caches hold exactly the server's objects, then compares them field by field.
func (c *cluster) waitConverged(t *testing.T, s *synthkube.Server, timeout time.Duration) {
	t.Helper()
	var want, got map[string]string
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) {
			want, got = serverVersions(t, s), c.versions()
			return len(want) == len(got) && describeDiff(want, got) == "0 differences: []", nil
		})
	if err != nil {
		t.Fatalf("caches did not converge within %v: %s", timeout, describeDiff(want, got))
	}
	for _, o := range s.Objects() {
		k, _ := synthkube.KindOf(o)
		cached, ok, err := c.stores[k].Get(o)
		if err != nil || !ok {
			t.Fatalf("%s %s missing from the cache after convergence (err %v)", k, key(o), err)
		}
		a, b := withoutTypeMeta(o), withoutTypeMeta(cached.(runtime.Object))
		if !apiequality.Semantic.DeepEqual(a, b) {
			aj, _ := json.Marshal(a)
			bj, _ := json.Marshal(b)
			t.Errorf("%s %s differs:\nserver %s\ncache  %s", k, key(o), aj, bj)
		}
	}
}

func key(o any) string {
	m := o.(metav1.Object)
	return m.GetNamespace() + "/" + m.GetName()
}

// withoutTypeMeta copies o with TypeMeta cleared: typed clients drop it on decode, the server sends it.
func withoutTypeMeta(o runtime.Object) runtime.Object {
	cp := o.DeepCopyObject()
	acc, err := meta.TypeAccessor(cp)
	if err != nil {
		panic(err)
	}
	acc.SetAPIVersion("")
	acc.SetKind("")
	return cp
}

// gen makes objects of every kind from small name pools, so that a stream of them mixes creates and updates.
type gen struct {
	rng   *rand.Rand
	seq   int
	names int
}

func newGen(seed uint64, names int) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, 1)), names: names}
}

func (g *gen) object(k synthkube.Kind) runtime.Object {
	g.seq++
	ns := "ns-" + strconv.Itoa(g.rng.IntN(8))
	om := metav1.ObjectMeta{
		Name:        fmt.Sprintf("%s-%d", lower(k), g.rng.IntN(g.names)),
		Namespace:   ns,
		Labels:      map[string]string{"seq": strconv.Itoa(g.seq), "team": "t" + strconv.Itoa(g.rng.IntN(4))},
		Annotations: map[string]string{"note": "synthetic <&> \"quoted\""},
	}
	rule := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "secrets"},
		Verbs: []string{"get", "list"}, ResourceNames: []string{fmt.Sprint(g.seq)}}
	subj := rbacv1.Subject{Kind: "ServiceAccount", Name: "sa-" + strconv.Itoa(g.rng.IntN(g.names)), Namespace: ns}
	switch k {
	case synthkube.Namespace:
		om.Namespace = ""
		return &corev1.Namespace{ObjectMeta: om, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	case synthkube.ServiceAccount:
		return &corev1.ServiceAccount{ObjectMeta: om, Secrets: []corev1.ObjectReference{{Name: "tok"}}}
	case synthkube.Pod:
		return &corev1.Pod{ObjectMeta: om, Spec: corev1.PodSpec{ServiceAccountName: subj.Name, NodeName: "node-1",
			Containers: []corev1.Container{{Name: "c", Image: "img:" + strconv.Itoa(g.seq)}}}}
	case synthkube.Node:
		om.Namespace = ""
		return &corev1.Node{ObjectMeta: om, Spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/24"}}
	case synthkube.Secret:
		return &corev1.Secret{ObjectMeta: om, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"k": []byte(strconv.Itoa(g.seq))}}
	case synthkube.Role:
		return &rbacv1.Role{ObjectMeta: om, Rules: []rbacv1.PolicyRule{rule}}
	case synthkube.RoleBinding:
		return &rbacv1.RoleBinding{ObjectMeta: om, Subjects: []rbacv1.Subject{subj},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "role-1"}}
	case synthkube.ClusterRole:
		om.Namespace = ""
		return &rbacv1.ClusterRole{ObjectMeta: om, Rules: []rbacv1.PolicyRule{rule}}
	case synthkube.ClusterRoleBinding:
		om.Namespace = ""
		return &rbacv1.ClusterRoleBinding{ObjectMeta: om, Subjects: []rbacv1.Subject{subj},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cr-1"}}
	}
	panic("unknown kind " + k)
}

func lower(k synthkube.Kind) string {
	b := []byte(k)
	b[0] += 'a' - 'A'
	return string(b)
}

// step applies a random object, or deletes the object it names one time in six.
func (g *gen) step(s *synthkube.Server) {
	kinds := synthkube.Kinds()
	o := g.object(kinds[g.rng.IntN(len(kinds))])
	if g.rng.IntN(6) == 0 {
		k, _ := synthkube.KindOf(o)
		m := o.(metav1.Object)
		s.Delete(k, m.GetNamespace(), m.GetName())
		return
	}
	s.Apply(o)
}

// churner applies changes from its own goroutine until stopped, in bursts paced by a ticker so that the
// informers under test get CPU too.
type churner struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startChurn(s *synthkube.Server, seed uint64, perTick int) *churner {
	c := &churner{stop: make(chan struct{})}
	c.wg.Go(func() {
		g := newGen(seed, 60)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			for range perTick {
				g.step(s)
			}
		}
	})
	return c
}

func (c *churner) Stop() {
	close(c.stop)
	c.wg.Wait()
}

// waitRV blocks until the server's resourceVersion reaches rv, which paces fault injection by progress
// rather than by wall-clock sleeps.
func waitRV(t *testing.T, s *synthkube.Server, rv uint64) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return s.ResourceVersion() >= rv, nil })
	if err != nil {
		t.Fatalf("resourceVersion stuck at %d, waiting for %d", s.ResourceVersion(), rv)
	}
}
