package load

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/workload"
)

// initialSpec is the cluster the load starts from: a tenth of L in bindings and accounts (2,000 namespaces would
// only slow the setup), on the real kubeadm v1.33 policy. Large enough that every query does real work, small
// enough that the 60 s run measures the load rather than the initial list.
var initialSpec = workload.Spec{
	Namespaces:          200,
	ServiceAccounts:     4000,
	Roles:               1000,
	RoleBindings:        6000,
	ClusterRoles:        100,
	ClusterRoleBindings: 200,
	Users:               500,
	Groups:              50,
	Pods:                10000,
}

// initialObjects generates the initial cluster as API objects.
func initialObjects(tb testing.TB) []runtime.Object {
	tb.Helper()
	base, _, err := indexer.LoadFS(context.Background(), fixtures.FS, []string{fixtures.KubeadmV133}, indexer.LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return apiObjects(workload.Generate(base, initialSpec, 1))
}

// apiObjects converts kiem's objects back to the API's, as a cluster would hold them.
func apiObjects(o *graph.Objects) []runtime.Object {
	var out []runtime.Object
	tm := func(kind string) metav1.TypeMeta {
		if kind == "Namespace" || kind == "ServiceAccount" || kind == "Pod" || kind == "Node" {
			return metav1.TypeMeta{APIVersion: "v1", Kind: kind}
		}
		return metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: kind}
	}
	for _, n := range o.Namespaces {
		out = append(out, &corev1.Namespace{TypeMeta: tm("Namespace"), ObjectMeta: apiMeta(n.Meta)})
	}
	for _, n := range o.Nodes {
		out = append(out, &corev1.Node{TypeMeta: tm("Node"), ObjectMeta: apiMeta(n.Meta)})
	}
	for _, r := range o.ClusterRoles {
		out = append(out, &rbacv1.ClusterRole{TypeMeta: tm("ClusterRole"), ObjectMeta: apiMeta(r.Meta), Rules: r.Rules, AggregationRule: r.AggregationRule})
	}
	for _, b := range o.ClusterRoleBindings {
		out = append(out, &rbacv1.ClusterRoleBinding{TypeMeta: tm("ClusterRoleBinding"), ObjectMeta: apiMeta(b.Meta), Subjects: b.Subjects, RoleRef: b.RoleRef})
	}
	for _, s := range o.ServiceAccounts {
		out = append(out, &corev1.ServiceAccount{TypeMeta: tm("ServiceAccount"), ObjectMeta: apiMeta(s.Meta), AutomountServiceAccountToken: s.AutomountToken})
	}
	for _, r := range o.Roles {
		out = append(out, &rbacv1.Role{TypeMeta: tm("Role"), ObjectMeta: apiMeta(r.Meta), Rules: r.Rules})
	}
	for _, b := range o.RoleBindings {
		out = append(out, &rbacv1.RoleBinding{TypeMeta: tm("RoleBinding"), ObjectMeta: apiMeta(b.Meta), Subjects: b.Subjects, RoleRef: b.RoleRef})
	}
	for _, p := range o.Pods {
		pod := &corev1.Pod{TypeMeta: tm("Pod"), ObjectMeta: apiMeta(p.Meta),
			Spec: corev1.PodSpec{ServiceAccountName: p.ServiceAccount, AutomountServiceAccountToken: p.AutomountToken, NodeName: p.NodeName}}
		if p.Owner != nil {
			pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: p.Owner.Kind, Name: p.Owner.Name,
				UID: types.UID("owner-" + p.Namespace + "-" + p.Owner.Name), Controller: new(true)}}
		}
		out = append(out, pod)
	}
	return out
}

// apiMeta keeps what the API server would hand back of kiem's metadata; UID and resourceVersion are the synthetic
// server's to assign.
func apiMeta(m graph.Meta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, Labels: m.Labels, Annotations: m.Annotations}
}
