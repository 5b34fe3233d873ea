package indexer

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// convertLive turns an object of the informer cache into its graph object. It gives the same result as the
// snapshot loader gives for the same object written by `kubectl get -o yaml` (liveconvert_test checks it), so
// that a graph filled from a file and then reconciled against the cluster records no spurious changes.
//
// The result shares maps and slices (labels, rules, subjects) with the cached object instead of copying them:
// with 100k pods the copies would double what the labels cost. That is safe because neither side mutates them:
// informer objects are immutable by client-go's contract (the transform, the only place allowed to modify them,
// builds new objects or clears fields, never touches these), and graph objects are immutable once committed.
func convertLive(obj any) (graph.Object, error) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return &graph.Namespace{Meta: liveMeta(&o.ObjectMeta, false)}, nil
	case *corev1.ServiceAccount:
		return &graph.ServiceAccount{Meta: liveMeta(&o.ObjectMeta, true), AutomountToken: o.AutomountServiceAccountToken}, nil
	case *rbacv1.Role:
		return &graph.Role{Kind: graph.KindRole, Meta: liveMeta(&o.ObjectMeta, true), Rules: o.Rules}, nil
	case *rbacv1.ClusterRole:
		// Rules are what the API holds: on a live cluster the aggregation controller fills them in.
		return &graph.Role{Kind: graph.KindClusterRole, Meta: liveMeta(&o.ObjectMeta, false), Rules: o.Rules,
			AggregationRule: o.AggregationRule}, nil
	case *rbacv1.RoleBinding:
		return &graph.Binding{Kind: graph.KindRoleBinding, Meta: liveMeta(&o.ObjectMeta, true), RoleRef: o.RoleRef,
			Subjects: o.Subjects}, nil
	case *rbacv1.ClusterRoleBinding:
		return &graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: liveMeta(&o.ObjectMeta, false),
			RoleRef: o.RoleRef, Subjects: o.Subjects}, nil
	case *corev1.Pod:
		p := &graph.Pod{
			Meta:           liveMeta(&o.ObjectMeta, true),
			ServiceAccount: podServiceAccount(o.Spec.ServiceAccountName, o.Spec.DeprecatedServiceAccount),
			AutomountToken: o.Spec.AutomountServiceAccountToken,
			NodeName:       o.Spec.NodeName,
		}
		if c := metav1.GetControllerOfNoCopy(o); c != nil {
			p.Owner = &graph.OwnerRef{Kind: c.Kind, Name: c.Name}
		}
		return p, nil
	case *corev1.Node:
		return &graph.Node{Meta: liveMeta(&o.ObjectMeta, false)}, nil
	case *corev1.Secret:
		return &graph.Secret{Meta: liveMeta(&o.ObjectMeta, true), Type: string(o.Type),
			ServiceAccount: o.Annotations[corev1.ServiceAccountNameKey]}, nil
	}
	return nil, fmt.Errorf("convert: unexpected object type %T", obj)
}

// liveMeta converts metadata. The creation time is kept in UTC at the second, as the API serializes it and the
// snapshot loader reads it back: a local-zone time would compare unequal to the same instant read from a file or
// from the store.
func liveMeta(m *metav1.ObjectMeta, namespaced bool) graph.Meta {
	gm := graph.Meta{
		Name:            m.Name,
		UID:             string(m.UID),
		ResourceVersion: m.ResourceVersion,
		Labels:          m.Labels,
		Annotations:     m.Annotations,
		Created:         m.CreationTimestamp.Truncate(time.Second).UTC(),
	}
	if namespaced {
		gm.Namespace = m.Namespace
	}
	return gm
}

// sameObject reports whether a and b (either may be nil: absent) hold the same content, ignoring the
// resourceVersion and the time zone of the creation time.
//
// The resourceVersion changes with every write, including the ones kiem drops (a pod's status, a node's
// heartbeat, managedFields), so comparing it would record a revision for every such write. Ignoring it means the
// graph keeps the resourceVersion of the last write that changed something kiem keeps. Everything else counts,
// annotations included, since graph.Meta keeps them.
//
// reflect.DeepEqual answers most calls; when it says no, the canonical encodings decide, because the store
// round-trips objects through JSON, which does not tell a nil map or slice from an empty one where the field
// is omitempty (labels: {} reads back as nil).
func sameObject(a, b graph.Object) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	a, b = normalized(a), normalized(b)
	if reflect.DeepEqual(a, b) {
		return true
	}
	if a.Ref() != b.Ref() {
		return false
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// normalized returns a shallow copy of o with an empty resourceVersion and the creation time in UTC; o itself is
// shared and must not be modified.
func normalized(o graph.Object) graph.Object {
	norm := func(m *graph.Meta) {
		m.ResourceVersion = ""
		m.Created = m.Created.UTC()
	}
	switch v := o.(type) {
	case *graph.Namespace:
		c := *v
		norm(&c.Meta)
		return &c
	case *graph.ServiceAccount:
		c := *v
		norm(&c.Meta)
		return &c
	case *graph.Role:
		c := *v
		norm(&c.Meta)
		return &c
	case *graph.Binding:
		c := *v
		norm(&c.Meta)
		return &c
	case *graph.Pod:
		c := *v
		norm(&c.Meta)
		return &c
	case *graph.Node:
		c := *v
		norm(&c.Meta)
		return &c
	}
	return o
}
