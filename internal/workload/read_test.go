package workload

import (
	"bytes"
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// readList decodes a `kind: List` document, YAML or JSON, into graph objects: the inverse of Write, written
// independently of it, with the decoder kubectl uses (JSON as JSON, YAML through sigs.k8s.io/yaml).
func readList(tb testing.TB, data []byte) *graph.Objects {
	tb.Helper()
	var list metav1.List
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&list); err != nil {
		tb.Fatalf("decode list: %v", err)
	}
	if list.Kind != "List" || list.APIVersion != "v1" {
		tb.Fatalf("list is %s %s, want v1 List", list.APIVersion, list.Kind)
	}
	out := &graph.Objects{}
	for i, raw := range list.Items {
		var tm metav1.TypeMeta
		decode := func(v any) {
			if err := json.Unmarshal(raw.Raw, v); err != nil {
				tb.Fatalf("decode item %d (%s): %v", i, tm.Kind, err)
			}
		}
		decode(&tm)
		switch tm.Kind {
		case "Namespace":
			var o corev1.Namespace
			decode(&o)
			out.Namespaces = append(out.Namespaces, graph.Namespace{Meta: metaOf(o.ObjectMeta)})
		case "ServiceAccount":
			var o corev1.ServiceAccount
			decode(&o)
			out.ServiceAccounts = append(out.ServiceAccounts, graph.ServiceAccount{Meta: metaOf(o.ObjectMeta), AutomountToken: o.AutomountServiceAccountToken})
		case "Role":
			var o rbacv1.Role
			decode(&o)
			out.Roles = append(out.Roles, graph.Role{Kind: graph.KindRole, Meta: metaOf(o.ObjectMeta), Rules: o.Rules})
		case "ClusterRole":
			var o rbacv1.ClusterRole
			decode(&o)
			out.ClusterRoles = append(out.ClusterRoles, graph.Role{Kind: graph.KindClusterRole, Meta: metaOf(o.ObjectMeta), Rules: o.Rules, AggregationRule: o.AggregationRule})
		case "RoleBinding":
			var o rbacv1.RoleBinding
			decode(&o)
			out.RoleBindings = append(out.RoleBindings, graph.Binding{Kind: graph.KindRoleBinding, Meta: metaOf(o.ObjectMeta), RoleRef: o.RoleRef, Subjects: o.Subjects})
		case "ClusterRoleBinding":
			var o rbacv1.ClusterRoleBinding
			decode(&o)
			out.ClusterRoleBindings = append(out.ClusterRoleBindings, graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: metaOf(o.ObjectMeta), RoleRef: o.RoleRef, Subjects: o.Subjects})
		case "Pod":
			var o corev1.Pod
			decode(&o)
			p := graph.Pod{
				Meta:           metaOf(o.ObjectMeta),
				ServiceAccount: o.Spec.ServiceAccountName,
				AutomountToken: o.Spec.AutomountServiceAccountToken,
				NodeName:       o.Spec.NodeName,
			}
			if p.ServiceAccount == "" {
				p.ServiceAccount = "default"
			}
			if c := metav1.GetControllerOfNoCopy(&o); c != nil {
				p.Owner = &graph.OwnerRef{Kind: c.Kind, Name: c.Name}
			}
			out.Pods = append(out.Pods, p)
		default:
			tb.Fatalf("item %d: unexpected kind %q", i, tm.Kind)
		}
	}
	return out
}

func metaOf(m metav1.ObjectMeta) graph.Meta {
	return graph.Meta{
		Namespace:       m.Namespace,
		Name:            m.Name,
		UID:             string(m.UID),
		ResourceVersion: m.ResourceVersion,
		Labels:          m.Labels,
		Annotations:     m.Annotations,
		Created:         m.CreationTimestamp.Time,
	}
}

// kubeadm returns the objects of the real kubeadm v1.33 cluster fixture, the usual base of Generate.
func kubeadm(tb testing.TB) *graph.Objects {
	tb.Helper()
	data, err := fixtures.FS.ReadFile(fixtures.KubeadmV133)
	if err != nil {
		tb.Fatal(err)
	}
	return readList(tb, data)
}
