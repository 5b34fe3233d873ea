package oracle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
)

// Policy is a set of RBAC objects in the API's own types. Both sides of the differential test are built from one
// Policy: the oracle directly, kiem through GraphObjects. Names are unique per kind and namespace, as in the API.
type Policy struct {
	ServiceAccounts     []*corev1.ServiceAccount
	Roles               []*rbacv1.Role
	ClusterRoles        []*rbacv1.ClusterRole
	RoleBindings        []*rbacv1.RoleBinding
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
}

// DeepCopy returns a copy of p that shares nothing with it.
func (p *Policy) DeepCopy() *Policy {
	out := &Policy{}
	for _, o := range p.ServiceAccounts {
		out.ServiceAccounts = append(out.ServiceAccounts, o.DeepCopy())
	}
	for _, o := range p.Roles {
		out.Roles = append(out.Roles, o.DeepCopy())
	}
	for _, o := range p.ClusterRoles {
		out.ClusterRoles = append(out.ClusterRoles, o.DeepCopy())
	}
	for _, o := range p.RoleBindings {
		out.RoleBindings = append(out.RoleBindings, o.DeepCopy())
	}
	for _, o := range p.ClusterRoleBindings {
		out.ClusterRoleBindings = append(out.ClusterRoleBindings, o.DeepCopy())
	}
	return out
}

// ClusterRole returns the ClusterRole called name, or nil.
func (p *Policy) ClusterRole(name string) *rbacv1.ClusterRole {
	for _, cr := range p.ClusterRoles {
		if cr.Name == name {
			return cr
		}
	}
	return nil
}

// Role returns the Role ns/name, or nil.
func (p *Policy) Role(ns, name string) *rbacv1.Role {
	for _, r := range p.Roles {
		if r.Namespace == ns && r.Name == name {
			return r
		}
	}
	return nil
}

// RoleRules returns the rules a binding in namespace bindingNS with roleRef ref resolves to, the way the
// authorizer resolves it: kind Role names a Role of the binding's namespace (none for a ClusterRoleBinding), kind
// ClusterRole a ClusterRole. ok is false for a dangling or unsupported roleRef.
func (p *Policy) RoleRules(ref rbacv1.RoleRef, bindingNS string) (rules []rbacv1.PolicyRule, ok bool) {
	switch ref.Kind {
	case "Role":
		if bindingNS == "" {
			return nil, false
		}
		if r := p.Role(bindingNS, ref.Name); r != nil {
			return r.Rules, true
		}
	case "ClusterRole":
		if cr := p.ClusterRole(ref.Name); cr != nil {
			return cr.Rules, true
		}
	}
	return nil, false
}

// GraphObjects converts the policy into kiem's input. Everything is deep-copied, so kiem can neither see nor
// disturb the oracle's objects; subjects are kept exactly as written.
func (p *Policy) GraphObjects() *graph.Objects {
	objs := &graph.Objects{}
	for _, sa := range p.ServiceAccounts {
		objs.ServiceAccounts = append(objs.ServiceAccounts, graph.ServiceAccount{
			Meta: graphMeta(sa.ObjectMeta), AutomountToken: sa.AutomountServiceAccountToken,
		})
	}
	for _, r := range p.Roles {
		objs.Roles = append(objs.Roles, graph.Role{
			Kind: graph.KindRole, Meta: graphMeta(r.ObjectMeta), Rules: copyRules(r.Rules),
		})
	}
	for _, cr := range p.ClusterRoles {
		objs.ClusterRoles = append(objs.ClusterRoles, graph.Role{
			Kind: graph.KindClusterRole, Meta: graphMeta(cr.ObjectMeta), Rules: copyRules(cr.Rules),
			AggregationRule: cr.AggregationRule.DeepCopy(),
		})
	}
	for _, b := range p.RoleBindings {
		objs.RoleBindings = append(objs.RoleBindings, graph.Binding{
			Kind: graph.KindRoleBinding, Meta: graphMeta(b.ObjectMeta), RoleRef: b.RoleRef,
			Subjects: slices.Clone(b.Subjects),
		})
	}
	for _, b := range p.ClusterRoleBindings {
		objs.ClusterRoleBindings = append(objs.ClusterRoleBindings, graph.Binding{
			Kind: graph.KindClusterRoleBinding, Meta: graphMeta(b.ObjectMeta), RoleRef: b.RoleRef,
			Subjects: slices.Clone(b.Subjects),
		})
	}
	return objs
}

func graphMeta(m metav1.ObjectMeta) graph.Meta {
	var labels map[string]string
	if m.Labels != nil {
		labels = make(map[string]string, len(m.Labels))
		for k, v := range m.Labels {
			labels[k] = v
		}
	}
	return graph.Meta{Namespace: m.Namespace, Name: m.Name, UID: string(m.UID), Labels: labels}
}

func copyRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	if rules == nil {
		return nil
	}
	out := make([]rbacv1.PolicyRule, len(rules))
	for i := range rules {
		rules[i].DeepCopyInto(&out[i])
	}
	return out
}

// ReadList decodes a `kind: List` YAML or JSON document, such as `kubectl get … -o yaml` prints, keeping the
// ServiceAccounts and RBAC objects and ignoring every other kind.
func ReadList(data []byte) (*Policy, error) {
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := yaml.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	if list.Kind != "List" && list.Kind != "" {
		return nil, fmt.Errorf("decode list: kind %q is not List", list.Kind)
	}
	p := &Policy{}
	for i, raw := range list.Items {
		if err := p.add(raw, ""); err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
	}
	return p, nil
}

// ReadDocuments decodes a multi-document YAML stream of manifests, keeping the ServiceAccounts and RBAC objects.
// Namespaced objects without a namespace get namespace, as `kubectl apply -n namespace` would do.
func ReadDocuments(data []byte, namespace string) (*Policy, error) {
	p := &Policy{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return p, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		raw, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			continue // an empty document
		}
		if err := p.add(raw, namespace); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
	}
}

// add decodes one object; namespace fills in a missing namespace of a namespaced object.
func (p *Policy) add(raw json.RawMessage, namespace string) error {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return err
	}
	defaultNS := func(m *metav1.ObjectMeta) {
		if m.Namespace == "" {
			m.Namespace = namespace
		}
	}
	var err error
	switch tm.Kind {
	case "ServiceAccount":
		p.ServiceAccounts, err = appendDecoded(p.ServiceAccounts, raw)
		if err == nil {
			defaultNS(&p.ServiceAccounts[len(p.ServiceAccounts)-1].ObjectMeta)
		}
	case "Role":
		p.Roles, err = appendDecoded(p.Roles, raw)
		if err == nil {
			defaultNS(&p.Roles[len(p.Roles)-1].ObjectMeta)
		}
	case "ClusterRole":
		p.ClusterRoles, err = appendDecoded(p.ClusterRoles, raw)
	case "RoleBinding":
		p.RoleBindings, err = appendDecoded(p.RoleBindings, raw)
		if err == nil {
			defaultNS(&p.RoleBindings[len(p.RoleBindings)-1].ObjectMeta)
		}
	case "ClusterRoleBinding":
		p.ClusterRoleBindings, err = appendDecoded(p.ClusterRoleBindings, raw)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return nil
}

// Merge adds the objects of o to p; an object of o replaces p's object of the same kind, namespace and name, as
// applying o's manifests over p's would.
func (p *Policy) Merge(o *Policy) {
	p.ServiceAccounts = mergeObjects(p.ServiceAccounts, o.ServiceAccounts, func(x *corev1.ServiceAccount) metav1.Object { return x })
	p.Roles = mergeObjects(p.Roles, o.Roles, func(x *rbacv1.Role) metav1.Object { return x })
	p.ClusterRoles = mergeObjects(p.ClusterRoles, o.ClusterRoles, func(x *rbacv1.ClusterRole) metav1.Object { return x })
	p.RoleBindings = mergeObjects(p.RoleBindings, o.RoleBindings, func(x *rbacv1.RoleBinding) metav1.Object { return x })
	p.ClusterRoleBindings = mergeObjects(p.ClusterRoleBindings, o.ClusterRoleBindings,
		func(x *rbacv1.ClusterRoleBinding) metav1.Object { return x })
}

func mergeObjects[T any](dst, src []*T, meta func(*T) metav1.Object) []*T {
	for _, o := range src {
		m := meta(o)
		i := slices.IndexFunc(dst, func(d *T) bool {
			dm := meta(d)
			return dm.GetNamespace() == m.GetNamespace() && dm.GetName() == m.GetName()
		})
		if i >= 0 {
			dst[i] = o
		} else {
			dst = append(dst, o)
		}
	}
	return dst
}

func appendDecoded[T any](dst []*T, raw json.RawMessage) ([]*T, error) {
	obj := new(T)
	if err := json.Unmarshal(raw, obj); err != nil {
		return dst, err
	}
	return append(dst, obj), nil
}

// WriteList encodes the policy as a `kind: List` YAML document that kiem's --snapshot flag reads. Aggregated
// ClusterRoles are written with the rules p holds (for a generated world: none, as created from manifests).
func (p *Policy) WriteList() ([]byte, error) {
	items := make([]any, 0, len(p.ServiceAccounts)+len(p.Roles)+len(p.ClusterRoles)+len(p.RoleBindings)+
		len(p.ClusterRoleBindings))
	for _, o := range p.ServiceAccounts {
		o = o.DeepCopy()
		o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}
		items = append(items, o)
	}
	rbac := func(kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
	}
	for _, o := range p.Roles {
		o = o.DeepCopy()
		o.TypeMeta = rbac("Role")
		items = append(items, o)
	}
	for _, o := range p.ClusterRoles {
		o = o.DeepCopy()
		o.TypeMeta = rbac("ClusterRole")
		items = append(items, o)
	}
	for _, o := range p.RoleBindings {
		o = o.DeepCopy()
		o.TypeMeta = rbac("RoleBinding")
		items = append(items, o)
	}
	for _, o := range p.ClusterRoleBindings {
		o = o.DeepCopy()
		o.TypeMeta = rbac("ClusterRoleBinding")
		items = append(items, o)
	}
	return yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
}
