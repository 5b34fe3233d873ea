package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/synthkube"
)

func metaOf(o runtime.Object) metav1.Object {
	m, err := meta.Accessor(o)
	if err != nil {
		panic(fmt.Sprintf("%T has no metadata", o)) // every object here is a typed API object
	}
	return m
}

func kindOf(o runtime.Object) string {
	switch o.(type) {
	case *corev1.Namespace:
		return "Namespace"
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *corev1.Pod:
		return "Pod"
	case *corev1.Node:
		return "Node"
	case *rbacv1.Role:
		return "Role"
	case *rbacv1.ClusterRole:
		return "ClusterRole"
	case *rbacv1.RoleBinding:
		return "RoleBinding"
	case *rbacv1.ClusterRoleBinding:
		return "ClusterRoleBinding"
	}
	return fmt.Sprintf("%T", o)
}

func deleteObject(cl *synthkube.Server, o runtime.Object) error {
	m := metaOf(o)
	kind, err := synthkube.KindOf(o)
	if err != nil {
		return err
	}
	if _, ok := cl.Delete(kind, m.GetNamespace(), m.GetName()); !ok {
		return fmt.Errorf("delete %s: not found", refOf(o))
	}
	return nil
}

// dialSubscription opens a websocket, authenticates and subscribes to every change from now.
func dialSubscription(ctx context.Context, a *api) (*websocket.Conn, error) {
	url := "ws" + strings.TrimPrefix(a.url, "http") + "/graphql"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, err
	}
	for _, m := range []map[string]any{
		{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + a.token}},
		{"id": "1", "type": "subscribe", "payload": map[string]any{"query": `subscription { changes { revision changes summary { kind added } } }`}},
	} {
		b, _ := json.Marshal(m)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			conn.CloseNow()
			return nil, err
		}
	}
	return conn, nil
}

// checkStore opens kiem's store after it stopped and checks that every revision up to head is there with its
// changes, that the subscribers' revisions carry the counts the store has, and that the head holds the cluster's
// final objects with their content.
func checkStore(ctx context.Context, dir string, head uint64, final []runtime.Object, subs []*subscriber) error {
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		return err
	}
	defer st.Close()
	if got := uint64(st.Head()); got != head {
		return fmt.Errorf("store head %d after a clean stop, want %d", got, head)
	}
	// Revision numbers are Badger commit timestamps: increasing, not dense (graph.Store).
	var stored []sentRevision
	var errs []error
	if err := st.Revisions(ctx, 0, st.Head(), func(ri graph.RevisionInfo) bool {
		if ri.Changes == 0 {
			errs = append(errs, fmt.Errorf("revision %d has no changes", ri.Revision))
		}
		stored = append(stored, sentRevision{uint64(ri.Revision), ri.Changes})
		return len(errs) < 10
	}); err != nil {
		return err
	}
	if len(stored) == 0 || stored[len(stored)-1].rev != head {
		errs = append(errs, fmt.Errorf("the history does not end at the head %d", head))
	}
	// Each subscriber was sent exactly the stored revisions from its first on, with their change counts.
	for i, s := range subs {
		s.mu.Lock()
		got := slices.Clone(s.revs)
		s.mu.Unlock()
		if len(got) == 0 {
			errs = append(errs, fmt.Errorf("subscriber %d received nothing", i))
			continue
		}
		j, _ := slices.BinarySearchFunc(stored, got[0].rev, func(r sentRevision, rev uint64) int { return cmpUint(r.rev, rev) })
		want := stored[j:]
		if !slices.Equal(got, want) {
			errs = append(errs, fmt.Errorf("subscriber %d was sent %d revisions from %d on, the store holds %d; first difference: %s",
				i, len(got), got[0].rev, len(want), firstDifference(got, want)))
		}
	}
	objs, err := st.Objects(ctx, graph.Revision(head))
	if err != nil {
		return err
	}
	if d := compareContent(objs, final); d != "" {
		errs = append(errs, fmt.Errorf("the head differs from the cluster (-kiem +cluster):\n%s", d))
	}
	return errors.Join(errs...)
}

// kept is what kiem keeps of an object, in a form both sides convert to.
type kept struct {
	RV          string
	Labels      map[string]string
	Rules       []rbacv1.PolicyRule
	Subjects    []rbacv1.Subject
	RoleRef     rbacv1.RoleRef
	Automount   *bool
	SA, Node    string
	Aggregation *rbacv1.AggregationRule
}

func compareContent(objs *graph.Objects, final []runtime.Object) string {
	got := map[string]kept{}
	add := func(kind string, m graph.Meta, k kept) {
		k.RV, k.Labels = m.ResourceVersion, m.Labels
		got[kind+"/"+m.Namespace+"/"+m.Name] = k
	}
	for _, n := range objs.Namespaces {
		add("Namespace", n.Meta, kept{})
	}
	for _, n := range objs.Nodes {
		add("Node", n.Meta, kept{})
	}
	for _, s := range objs.ServiceAccounts {
		add("ServiceAccount", s.Meta, kept{Automount: s.AutomountToken})
	}
	for _, p := range objs.Pods {
		add("Pod", p.Meta, kept{SA: p.ServiceAccount, Automount: p.AutomountToken, Node: p.NodeName})
	}
	for _, r := range objs.Roles {
		add("Role", r.Meta, kept{Rules: r.Rules})
	}
	for _, r := range objs.ClusterRoles {
		add("ClusterRole", r.Meta, kept{Rules: r.Rules, Aggregation: r.AggregationRule})
	}
	for _, b := range objs.RoleBindings {
		add("RoleBinding", b.Meta, kept{Subjects: b.Subjects, RoleRef: b.RoleRef})
	}
	for _, b := range objs.ClusterRoleBindings {
		add("ClusterRoleBinding", b.Meta, kept{Subjects: b.Subjects, RoleRef: b.RoleRef})
	}
	want := map[string]kept{}
	for _, o := range final {
		k := kept{RV: rvOf(o), Labels: metaOf(o).GetLabels()}
		switch o := o.(type) {
		case *corev1.ServiceAccount:
			k.Automount = o.AutomountServiceAccountToken
		case *corev1.Pod:
			k.SA, k.Automount, k.Node = cmpOr(o.Spec.ServiceAccountName, "default"), o.Spec.AutomountServiceAccountToken, o.Spec.NodeName
		case *rbacv1.Role:
			k.Rules = o.Rules
		case *rbacv1.ClusterRole:
			k.Rules, k.Aggregation = o.Rules, o.AggregationRule
		case *rbacv1.RoleBinding:
			k.Subjects, k.RoleRef = o.Subjects, o.RoleRef
		case *rbacv1.ClusterRoleBinding:
			k.Subjects, k.RoleRef = o.Subjects, o.RoleRef
		}
		want[refOf(o)] = k
	}
	d := cmp.Diff(got, want, cmpopts.EquateEmpty())
	if len(d) > 4000 {
		d = d[:4000] + "\n…"
	}
	return d
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func firstDifference(got, want []sentRevision) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("sent %+v where the store has %+v", got[i], want[i])
		}
	}
	if len(got) > len(want) {
		return fmt.Sprintf("sent %+v beyond the store", got[len(want)])
	}
	return fmt.Sprintf("never sent %+v", want[len(got)])
}
