package indexer

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/kiem-io/kiem/graph"
)

func TestSlim(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}

	t.Run("pod", func(t *testing.T) {
		p := apiPod("team", "p", "")
		p.Spec.DeprecatedServiceAccount = "old"
		p.Spec.AutomountServiceAccountToken = new(false)
		p.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"}
		p.Labels = map[string]string{"app": "web"}
		p.ManagedFields = managed
		p.Finalizers = []string{"f"}
		p.Status.PodIP = "10.0.0.1"
		got, err := slim(p)
		if err != nil {
			t.Fatal(err)
		}
		want := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "p", UID: p.UID, ResourceVersion: "1",
				CreationTimestamp: p.CreationTimestamp, Labels: p.Labels, OwnerReferences: p.OwnerReferences},
			Spec: corev1.PodSpec{DeprecatedServiceAccount: "old", AutomountServiceAccountToken: new(false),
				NodeName: "n1"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("slim(pod) (-want +got):\n%s", diff)
		}
		if again, _ := slim(got); !cmp.Equal(again, got) {
			t.Error("slim is not idempotent on pods")
		}
		if p.Status.PodIP == "" || p.ManagedFields == nil {
			t.Error("slim modified the pod it was given instead of building a new one")
		}
	})
	t.Run("node", func(t *testing.T) {
		n := apiNode("n1")
		n.ManagedFields = managed
		n.Spec.PodCIDR = "10.0.0.0/24"
		got, _ := slim(n)
		want := &corev1.Node{ObjectMeta: n.ObjectMeta}
		want.ManagedFields = nil
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("slim(node) (-want +got):\n%s", diff)
		}
	})
	t.Run("role", func(t *testing.T) {
		r := apiRole("team", "r", "get")
		r.ManagedFields = managed
		got, _ := slim(r)
		if got != any(r) || r.ManagedFields != nil || len(r.Rules) != 1 {
			t.Errorf("slim(role) = %+v, want the role without managedFields", got)
		}
	})
	t.Run("tombstone", func(t *testing.T) {
		ts := cache.DeletedFinalStateUnknown{Key: "team/p", Obj: apiPod("team", "p", "")}
		if got, _ := slim(ts); !cmp.Equal(got, any(ts)) {
			t.Errorf("slim(tombstone) = %v, want it unchanged", got)
		}
	})
}

func TestObjectKey(t *testing.T) {
	tests := []struct {
		name string
		kind graph.Kind
		obj  any
		want key
	}{
		{"namespaced", graph.KindRole, apiRole("team", "r"), key{graph.KindRole, "team", "r"}},
		{"cluster-scoped", graph.KindNode, apiNode("n1"), key{graph.KindNode, "", "n1"}},
		{"tombstone without object", graph.KindPod, cache.DeletedFinalStateUnknown{Key: "team/p"},
			key{graph.KindPod, "team", "p"}},
		// The stale object names another namespace: the key wins.
		{"tombstone with stale object", graph.KindRole,
			cache.DeletedFinalStateUnknown{Key: "team/r", Obj: apiRole("old", "r")}, key{graph.KindRole, "team", "r"}},
		{"cluster-scoped tombstone", graph.KindClusterRole, cache.DeletedFinalStateUnknown{Key: "cr"},
			key{graph.KindClusterRole, "", "cr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := objectKey(tt.kind, tt.obj)
			if err != nil || got != tt.want {
				t.Errorf("objectKey() = %v, %v, want %v", got, err, tt.want)
			}
		})
	}
	if _, err := objectKey(graph.KindPod, "not an object"); err == nil {
		t.Error("objectKey(string): no error")
	}
	if _, err := objectKey(graph.KindPod, cache.DeletedFinalStateUnknown{Key: "a/b/c"}); err == nil {
		t.Error("objectKey(bad tombstone key): no error")
	}
}

// TestLiveTombstone delivers deletes as a relist does when the watch missed them: a DeletedFinalStateUnknown
// whose object is stale or missing, for an object already gone from the cache.
func TestLiveTombstone(t *testing.T) {
	role, sa := apiRole("team", "r", "get"), apiServiceAccount("team", "builder")
	g := newFakeGraph(t)
	l := startLive(t, fake.NewClientset(apiNamespace("team"), role, sa), g, nil)
	n := len(g.revisions())

	for _, tc := range []struct {
		kind graph.Kind
		obj  any
		ts   cache.DeletedFinalStateUnknown
	}{
		{graph.KindRole, role, cache.DeletedFinalStateUnknown{Key: "team/r", Obj: role}},
		{graph.KindServiceAccount, sa, cache.DeletedFinalStateUnknown{Key: "team/builder"}},
	} {
		inf := l.informers[tc.kind]
		cached, _, _ := inf.inf.GetIndexer().GetByKey(tc.ts.Key)
		if err := inf.inf.GetIndexer().Delete(cached); err != nil {
			t.Fatal(err)
		}
		l.handler(inf).OnDelete(tc.ts)
		ns, name, _ := cache.SplitMetaNamespaceKey(tc.ts.Key)
		changes := g.waitChange(t, n, graph.OpDelete, ref(tc.kind, ns, name))
		if len(changes) != 1 {
			t.Errorf("%s: committed %v, want one delete", tc.kind, changes)
		}
		n = len(g.revisions())
		if got := l.Stats().Events[tc.kind].Deleted; got != 1 {
			t.Errorf("Stats().Events[%s].Deleted = %d, want 1", tc.kind, got)
		}
	}
}
