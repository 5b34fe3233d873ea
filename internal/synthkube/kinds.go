package synthkube

import (
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kind names one of the nine kinds the server holds. Kinds are unambiguous across the two API groups served,
// so the kind alone identifies the resource.
type Kind string

// The kinds served, in the order Kinds returns them.
const (
	Namespace          Kind = "Namespace"
	ServiceAccount     Kind = "ServiceAccount"
	Pod                Kind = "Pod"
	Node               Kind = "Node"
	Secret             Kind = "Secret"
	Role               Kind = "Role"
	RoleBinding        Kind = "RoleBinding"
	ClusterRole        Kind = "ClusterRole"
	ClusterRoleBinding Kind = "ClusterRoleBinding"
)

// kindInfo is what the server needs to know about a kind to route, encode and describe it.
type kindInfo struct {
	kind       Kind
	group      string
	version    string
	resource   string
	singular   string
	shortNames []string
	namespaced bool
	newObj     func() runtime.Object
}

func (k *kindInfo) gvk() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.group, Version: k.version, Kind: string(k.kind)}
}

func (k *kindInfo) apiVersion() string {
	return k.gvk().GroupVersion().String()
}

// kindTable is a function rather than a package variable so that no caller can change what another sees.
func kindTable() []kindInfo {
	rbac := rbacv1.SchemeGroupVersion.Group
	return []kindInfo{
		{Namespace, "", "v1", "namespaces", "namespace", []string{"ns"}, false,
			func() runtime.Object { return &corev1.Namespace{} }},
		{ServiceAccount, "", "v1", "serviceaccounts", "serviceaccount", []string{"sa"}, true,
			func() runtime.Object { return &corev1.ServiceAccount{} }},
		{Pod, "", "v1", "pods", "pod", []string{"po"}, true,
			func() runtime.Object { return &corev1.Pod{} }},
		{Node, "", "v1", "nodes", "node", []string{"no"}, false,
			func() runtime.Object { return &corev1.Node{} }},
		{Secret, "", "v1", "secrets", "secret", nil, true,
			func() runtime.Object { return &corev1.Secret{} }},
		{Role, rbac, "v1", "roles", "role", nil, true,
			func() runtime.Object { return &rbacv1.Role{} }},
		{RoleBinding, rbac, "v1", "rolebindings", "rolebinding", nil, true,
			func() runtime.Object { return &rbacv1.RoleBinding{} }},
		{ClusterRole, rbac, "v1", "clusterroles", "clusterrole", nil, false,
			func() runtime.Object { return &rbacv1.ClusterRole{} }},
		{ClusterRoleBinding, rbac, "v1", "clusterrolebindings", "clusterrolebinding", nil, false,
			func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }},
	}
}

// Kinds returns the kinds the server holds.
func Kinds() []Kind {
	t := kindTable()
	out := make([]Kind, len(t))
	for i := range t {
		out[i] = t[i].kind
	}
	return out
}

// KindOf returns the Kind of one of the nine supported object types, going by the Go type rather than TypeMeta,
// which typed objects usually leave empty.
func KindOf(obj runtime.Object) (Kind, error) {
	switch obj.(type) {
	case *corev1.Namespace:
		return Namespace, nil
	case *corev1.ServiceAccount:
		return ServiceAccount, nil
	case *corev1.Pod:
		return Pod, nil
	case *corev1.Node:
		return Node, nil
	case *corev1.Secret:
		return Secret, nil
	case *rbacv1.Role:
		return Role, nil
	case *rbacv1.RoleBinding:
		return RoleBinding, nil
	case *rbacv1.ClusterRole:
		return ClusterRole, nil
	case *rbacv1.ClusterRoleBinding:
		return ClusterRoleBinding, nil
	}
	return "", fmt.Errorf("synthkube: unsupported object type %T", obj)
}

// kindIndex returns the position of k in the server's kind table.
func (s *Server) kindIndex(k Kind) (int, bool) {
	for i := range s.kinds {
		if s.kinds[i].kind == k {
			return i, true
		}
	}
	return 0, false
}

// resourceIndex finds the kind served at group/resource, for routing.
func (s *Server) resourceIndex(group, resource string) (int, bool) {
	for i := range s.kinds {
		if s.kinds[i].group == group && s.kinds[i].resource == resource {
			return i, true
		}
	}
	return 0, false
}

// Discovery is served in the legacy (unaggregated) form: clients that ask for aggregated discovery first, as
// kubectl does, fall back to it when the response's content type lacks the aggregated profile.

func (s *Server) apiVersions(r *http.Request) metav1.APIVersions {
	return metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
			{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
		},
	}
}

func (s *Server) apiGroup(group string) metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: group + "/v1", Version: "v1"}
	return metav1.APIGroup{Name: group, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
}

func (s *Server) apiResourceList(group string) metav1.APIResourceList {
	gv := "v1"
	if group != "" {
		gv = group + "/v1"
	}
	list := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv,
	}
	for i := range s.kinds {
		k := &s.kinds[i]
		if k.group != group {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name:         k.resource,
			SingularName: k.singular,
			Namespaced:   k.namespaced,
			Kind:         string(k.kind),
			Verbs:        metav1.Verbs{"get", "list", "watch"},
			ShortNames:   k.shortNames,
		})
	}
	return list
}
