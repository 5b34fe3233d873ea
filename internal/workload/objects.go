package workload

import (
	"hash/fnv"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kiem-io/kiem/graph"
)

// items is the sequence of API objects Write writes, in apply order: namespaces first, then cluster-scoped
// roles and bindings, then the namespaced objects, pods last (their ServiceAccounts exist by then).
type items struct {
	objs *graph.Objects
	ends [7]int // cumulative lengths of the kinds, in order
}

func newItems(o *graph.Objects) items {
	l := items{objs: o}
	n := 0
	for i, k := range []int{
		len(o.Namespaces), len(o.ClusterRoles), len(o.ClusterRoleBindings), len(o.ServiceAccounts),
		len(o.Roles), len(o.RoleBindings), len(o.Pods),
	} {
		n += k
		l.ends[i] = n
	}
	return l
}

// len returns the number of items.
func (l items) len() int { return l.ends[len(l.ends)-1] }

// at returns the API object of item i, with apiVersion and kind set, and its reference for error messages.
func (l items) at(i int) (any, graph.ObjectRef) {
	o := l.objs
	switch {
	case i < l.ends[0]:
		n := &o.Namespaces[i]
		return &corev1.Namespace{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: objectMeta(n.Meta),
			// What the apiserver returns for every live namespace; without it corev1 writes `spec: {}`.
			Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		}, n.Ref()
	case i < l.ends[1]:
		r := &o.ClusterRoles[i-l.ends[0]]
		return &rbacv1.ClusterRole{
			TypeMeta:        metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta:      objectMeta(r.Meta),
			Rules:           nonNil(r.Rules),
			AggregationRule: r.AggregationRule,
		}, r.Ref()
	case i < l.ends[2]:
		b := &o.ClusterRoleBindings[i-l.ends[1]]
		return &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: objectMeta(b.Meta),
			Subjects:   b.Subjects,
			RoleRef:    b.RoleRef,
		}, b.Ref()
	case i < l.ends[3]:
		s := &o.ServiceAccounts[i-l.ends[2]]
		return &corev1.ServiceAccount{
			TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta:                   objectMeta(s.Meta),
			AutomountServiceAccountToken: s.AutomountToken,
		}, s.Ref()
	case i < l.ends[4]:
		r := &o.Roles[i-l.ends[3]]
		return &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: objectMeta(r.Meta),
			Rules:      nonNil(r.Rules),
		}, r.Ref()
	case i < l.ends[5]:
		b := &o.RoleBindings[i-l.ends[4]]
		return &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: objectMeta(b.Meta),
			Subjects:   b.Subjects,
			RoleRef:    b.RoleRef,
		}, b.Ref()
	}
	p := &o.Pods[i-l.ends[5]]
	out := &pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: objectMeta(p.Meta),
		Spec: podSpec{
			ServiceAccountName:           p.ServiceAccount,
			AutomountServiceAccountToken: p.AutomountToken,
			NodeName:                     p.NodeName,
		},
	}
	if p.Owner != nil {
		out.OwnerReferences = []metav1.OwnerReference{{
			APIVersion:         ownerAPIVersion(p.Owner.Kind),
			Kind:               p.Owner.Kind,
			Name:               p.Owner.Name,
			UID:                ownerUID(p.Namespace, p.Owner),
			Controller:         new(true),
			BlockOwnerDeletion: new(true),
		}}
	}
	return out, p.Ref()
}

// pod is a core/v1 Pod cut down to the fields graph.Pod models, with corev1's JSON names. corev1.Pod itself
// would write `containers: null` and `status: {}`, since PodSpec.Containers and Pod.Status have no omitempty.
type pod struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              podSpec `json:"spec"`
}

// podSpec holds the PodSpec fields of graph.Pod.
type podSpec struct {
	ServiceAccountName           string `json:"serviceAccountName,omitempty"`
	AutomountServiceAccountToken *bool  `json:"automountServiceAccountToken,omitempty"`
	NodeName                     string `json:"nodeName,omitempty"`
}

// objectMeta converts kiem's metadata to the API's. Origin has no API field and is dropped.
func objectMeta(m graph.Meta) metav1.ObjectMeta {
	om := metav1.ObjectMeta{
		Name:            m.Name,
		Namespace:       m.Namespace,
		UID:             types.UID(m.UID),
		ResourceVersion: m.ResourceVersion,
		Labels:          m.Labels,
		Annotations:     m.Annotations,
	}
	if !m.Created.IsZero() {
		om.CreationTimestamp = metav1.NewTime(m.Created)
	}
	return om
}

// nonNil returns rules, or an empty list for none: `rules` is a required field, and `rules: []` is how manifests
// ship aggregated ClusterRoles.
func nonNil(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	if rules == nil {
		return []rbacv1.PolicyRule{}
	}
	return rules
}

// ownerAPIVersion returns the API version of a pod owner's kind.
func ownerAPIVersion(kind string) string {
	switch kind {
	case "ReplicaSet", "StatefulSet", "DaemonSet", "Deployment":
		return "apps/v1"
	case "Job", "CronJob":
		return "batch/v1"
	}
	return "v1"
}

// ownerUID returns a UID for a pod's owner, which graph.Pod does not keep: a hash of its namespace, kind and
// name, so that the pods of one owner agree and the output stays deterministic.
func ownerUID(ns string, o *graph.OwnerRef) types.UID {
	h := fnv.New128a()
	for _, s := range []string{ns, o.Kind, o.Name} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var b [16]byte
	h.Sum(b[:0])
	return types.UID(formatUUID(b))
}
