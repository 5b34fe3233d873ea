package indexer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// apiObject is one converted object: *graph.Namespace, *graph.ServiceAccount, *graph.Role, *graph.Binding,
// *graph.Pod (also a workload's template pod) or *graph.Node.
type apiObject interface {
	Ref() graph.ObjectRef
}

// object is what one document or List item turned into: an object kiem loads, or the "apiVersion/kind" of one
// it skips.
type object struct {
	value   apiObject
	skipped string
}

// typeMeta is what every document must carry, and what the items of a typed List (a RoleList) inherit.
type typeMeta struct {
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	Kind       string `json:"kind" yaml:"kind"`
}

// withDefaults fills what t lacks from def.
func (t typeMeta) withDefaults(def typeMeta) typeMeta {
	if t.APIVersion == "" {
		t.APIVersion = def.APIVersion
	}
	if t.Kind == "" {
		t.Kind = def.Kind
	}
	return t
}

// check reports a type that does not say what the document is.
func (t typeMeta) check() error {
	switch {
	case t.Kind == "":
		return errors.New("missing kind")
	case t.APIVersion == "":
		return errors.New("missing apiVersion")
	}
	return nil
}

// isList reports whether a document of type t whose items field is present or not (hasItems) is a List:
// "List", or a typed list such as "RoleList" that has items (a kind of another API that merely ends in "List"
// has none).
func (t typeMeta) isList(hasItems bool) bool {
	return t.Kind == "List" || (hasItems && strings.HasSuffix(t.Kind, "List"))
}

// itemDefaults returns the type the items of the List t inherit: the items of "kind: List" (kubectl get -o
// yaml) name their own; a typed list's items may leave out its apiVersion and its kind minus "List".
func (t typeMeta) itemDefaults() typeMeta {
	if t.Kind == "List" {
		return typeMeta{}
	}
	return typeMeta{APIVersion: t.APIVersion, Kind: strings.TrimSuffix(t.Kind, "List")}
}

// skippedKey is how Stats.Skipped counts a kind kiem does not load.
func (t typeMeta) skippedKey() string { return t.APIVersion + "/" + t.Kind }

// loadedKind maps the type of a document to the graph kind kiem loads, if any. The RBAC beta and alpha
// versions have the v1 schema for every field kiem reads, so they load too. A workload (see workload.go) maps
// to its own kind ("Deployment"), which no graph kind equals: its doc builds the Pod of its template.
func loadedKind(t typeMeta) (graph.Kind, bool) {
	if workloadKind(t) {
		return graph.Kind(t.Kind), true
	}
	switch t.Kind {
	case "Namespace", "ServiceAccount", "Pod", "Node", "Secret":
		if t.APIVersion == "v1" {
			return graph.Kind(t.Kind), true
		}
	case "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
		switch t.APIVersion {
		case rbacv1.SchemeGroupVersion.String(), "rbac.authorization.k8s.io/v1beta1", "rbac.authorization.k8s.io/v1alpha1":
			return graph.Kind(t.Kind), true
		}
	}
	return "", false
}

// converter turns decoded documents into graph objects.
type converter struct {
	defaultNamespace string
}

// doc is the decoded form of one kind. The types below mirror the API objects reduced to the fields graph
// keeps, so that decoding skips everything else (status, managedFields, containers) without allocating; they
// carry both json and yaml tags because YAML is decoded straight into them, without a detour through JSON.
type doc interface {
	build(c *converter, kind graph.Kind, origin string) (apiObject, error)
}

// newDoc returns an empty doc for a kind kiem loads.
func newDoc(kind graph.Kind) doc {
	switch kind {
	case graph.KindNamespace:
		return &namespaceDoc{}
	case graph.KindServiceAccount:
		return &serviceAccountDoc{}
	case graph.KindRole, graph.KindClusterRole:
		return &roleDoc{}
	case graph.KindRoleBinding, graph.KindClusterRoleBinding:
		return &bindingDoc{}
	case graph.KindNode:
		return &nodeDoc{}
	case graph.KindPod:
		return &podDoc{}
	case graph.KindSecret:
		return &secretDoc{}
	}
	return &workloadDoc{}
}

type (
	objectMeta struct {
		Name              string            `json:"name" yaml:"name"`
		Namespace         string            `json:"namespace" yaml:"namespace"`
		UID               string            `json:"uid" yaml:"uid"`
		ResourceVersion   string            `json:"resourceVersion" yaml:"resourceVersion"`
		Labels            map[string]string `json:"labels" yaml:"labels"`
		Annotations       map[string]string `json:"annotations" yaml:"annotations"`
		CreationTimestamp timestamp         `json:"creationTimestamp" yaml:"creationTimestamp"`
		OwnerReferences   []ownerReference  `json:"ownerReferences" yaml:"ownerReferences"`
	}
	ownerReference struct {
		Kind       string `json:"kind" yaml:"kind"`
		Name       string `json:"name" yaml:"name"`
		Controller *bool  `json:"controller" yaml:"controller"`
	}
	namespaceDoc struct {
		Metadata objectMeta `json:"metadata" yaml:"metadata"`
	}
	nodeDoc struct {
		Metadata objectMeta `json:"metadata" yaml:"metadata"`
	}
	serviceAccountDoc struct {
		Metadata                     objectMeta `json:"metadata" yaml:"metadata"`
		AutomountServiceAccountToken *bool      `json:"automountServiceAccountToken" yaml:"automountServiceAccountToken"`
	}
	roleDoc struct {
		Metadata        objectMeta       `json:"metadata" yaml:"metadata"`
		Rules           []policyRule     `json:"rules" yaml:"rules"`
		AggregationRule *aggregationRule `json:"aggregationRule" yaml:"aggregationRule"`
	}
	policyRule struct {
		Verbs           []string `json:"verbs" yaml:"verbs"`
		APIGroups       []string `json:"apiGroups" yaml:"apiGroups"`
		Resources       []string `json:"resources" yaml:"resources"`
		ResourceNames   []string `json:"resourceNames" yaml:"resourceNames"`
		NonResourceURLs []string `json:"nonResourceURLs" yaml:"nonResourceURLs"`
	}
	aggregationRule struct {
		ClusterRoleSelectors []labelSelector `json:"clusterRoleSelectors" yaml:"clusterRoleSelectors"`
	}
	labelSelector struct {
		MatchLabels      map[string]string `json:"matchLabels" yaml:"matchLabels"`
		MatchExpressions []struct {
			Key      string   `json:"key" yaml:"key"`
			Operator string   `json:"operator" yaml:"operator"`
			Values   []string `json:"values" yaml:"values"`
		} `json:"matchExpressions" yaml:"matchExpressions"`
	}
	bindingDoc struct {
		Metadata objectMeta `json:"metadata" yaml:"metadata"`
		RoleRef  struct {
			APIGroup string `json:"apiGroup" yaml:"apiGroup"`
			Kind     string `json:"kind" yaml:"kind"`
			Name     string `json:"name" yaml:"name"`
		} `json:"roleRef" yaml:"roleRef"`
		Subjects []struct {
			Kind      string `json:"kind" yaml:"kind"`
			APIGroup  string `json:"apiGroup" yaml:"apiGroup"`
			Name      string `json:"name" yaml:"name"`
			Namespace string `json:"namespace" yaml:"namespace"`
		} `json:"subjects" yaml:"subjects"`
	}
	// secretDoc reads a Secret's metadata and type. It has no data or stringData field, so neither is decoded.
	secretDoc struct {
		Metadata objectMeta `json:"metadata" yaml:"metadata"`
		Type     string     `json:"type" yaml:"type"`
	}
	podDoc struct {
		Metadata objectMeta `json:"metadata" yaml:"metadata"`
		Spec     struct {
			ServiceAccountName           string `json:"serviceAccountName" yaml:"serviceAccountName"`
			DeprecatedServiceAccount     string `json:"serviceAccount" yaml:"serviceAccount"`
			AutomountServiceAccountToken *bool  `json:"automountServiceAccountToken" yaml:"automountServiceAccountToken"`
			NodeName                     string `json:"nodeName" yaml:"nodeName"`
		} `json:"spec" yaml:"spec"`
	}
)

func (d *namespaceDoc) build(c *converter, _ graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, false, origin)
	return &graph.Namespace{Meta: m}, err
}

func (d *secretDoc) build(c *converter, _ graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, true, origin)
	// Keep no annotation but the ServiceAccount a token belongs to: last-applied-configuration holds the data in
	// clear, as the live indexer knows too.
	sa := m.Annotations[corev1.ServiceAccountNameKey]
	m.Annotations = nil
	if sa != "" {
		m.Annotations = map[string]string{corev1.ServiceAccountNameKey: sa}
	}
	typ := d.Type
	if typ == "" {
		typ = string(corev1.SecretTypeOpaque)
	}
	return &graph.Secret{Meta: m, Type: typ, ServiceAccount: sa}, err
}

func (d *nodeDoc) build(c *converter, _ graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, false, origin)
	return &graph.Node{Meta: m}, err
}

func (d *serviceAccountDoc) build(c *converter, _ graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, true, origin)
	return &graph.ServiceAccount{Meta: m, AutomountToken: d.AutomountServiceAccountToken}, err
}

func (d *roleDoc) build(c *converter, kind graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, kind == graph.KindRole, origin)
	r := &graph.Role{Kind: kind, Meta: m}
	if d.Rules != nil {
		r.Rules = make([]rbacv1.PolicyRule, len(d.Rules))
		for i, p := range d.Rules {
			r.Rules[i] = rbacv1.PolicyRule{Verbs: p.Verbs, APIGroups: p.APIGroups, Resources: p.Resources,
				ResourceNames: p.ResourceNames, NonResourceURLs: p.NonResourceURLs}
		}
	}
	if a := d.AggregationRule; a != nil {
		r.AggregationRule = &rbacv1.AggregationRule{}
		for _, s := range a.ClusterRoleSelectors {
			sel := metav1.LabelSelector{MatchLabels: s.MatchLabels}
			for _, e := range s.MatchExpressions {
				sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
					Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values})
			}
			r.AggregationRule.ClusterRoleSelectors = append(r.AggregationRule.ClusterRoleSelectors, sel)
		}
	}
	return r, err
}

func (d *bindingDoc) build(c *converter, kind graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, kind == graph.KindRoleBinding, origin)
	b := &graph.Binding{Kind: kind, Meta: m,
		RoleRef: rbacv1.RoleRef{APIGroup: d.RoleRef.APIGroup, Kind: d.RoleRef.Kind, Name: d.RoleRef.Name}}
	if d.Subjects != nil {
		// Kept as written: defaulting a ServiceAccount subject's namespace is the engine's business.
		b.Subjects = make([]rbacv1.Subject, len(d.Subjects))
		for i, s := range d.Subjects {
			b.Subjects[i] = rbacv1.Subject{Kind: s.Kind, APIGroup: s.APIGroup, Name: s.Name, Namespace: s.Namespace}
		}
	}
	return b, err
}

// build converts the pod. The ServiceAccount falls back as the ServiceAccount admission plugin fills it in: the
// deprecated field, then "default".
func (d *podDoc) build(c *converter, _ graph.Kind, origin string) (apiObject, error) {
	m, err := c.meta(&d.Metadata, true, origin)
	p := &graph.Pod{
		Meta:           m,
		ServiceAccount: podServiceAccount(d.Spec.ServiceAccountName, d.Spec.DeprecatedServiceAccount),
		AutomountToken: d.Spec.AutomountServiceAccountToken,
		NodeName:       d.Spec.NodeName,
	}
	for _, o := range d.Metadata.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			p.Owner = &graph.OwnerRef{Kind: o.Kind, Name: o.Name}
			break
		}
	}
	return p, err
}

// podServiceAccount is the ServiceAccount a pod runs as, filled in as the ServiceAccount admission plugin does:
// spec.serviceAccountName, then the deprecated spec.serviceAccount, then "default". Snapshot files and the live
// indexer share it so that a pod converted from either compares equal.
func podServiceAccount(name, deprecated string) string {
	switch {
	case name != "":
		return name
	case deprecated != "":
		return deprecated
	}
	return "default"
}

// meta converts metadata. Namespaced objects without a namespace get the default one, as kubectl apply -n
// does; cluster-scoped objects lose any namespace they carry, as the apiserver ignores it.
func (c *converter) meta(m *objectMeta, namespaced bool, origin string) (graph.Meta, error) {
	if m.Name == "" {
		return graph.Meta{}, errors.New("missing metadata.name")
	}
	ns := ""
	if namespaced {
		ns = m.Namespace
		if ns == "" {
			ns = c.defaultNamespace
		}
	}
	return graph.Meta{
		Namespace:       ns,
		Name:            m.Name,
		UID:             m.UID,
		ResourceVersion: m.ResourceVersion,
		Labels:          m.Labels,
		Annotations:     m.Annotations,
		Created:         m.CreationTimestamp.Time,
		Origin:          origin,
	}, nil
}

// convert builds the object of type t from its decoded doc (nil for kinds kiem does not load).
func (c *converter) convert(t typeMeta, d doc, origin string) (object, error) {
	kind, ok := loadedKind(t)
	if !ok {
		return object{skipped: t.skippedKey()}, nil
	}
	v, err := d.build(c, kind, origin)
	if err != nil {
		return object{}, fmt.Errorf("%s: %w", kind, err)
	}
	if v == nil {
		return object{skipped: t.skippedKey()}, nil // a workload whose owner's template stands for it
	}
	return object{value: v}, nil
}

// timestamp is an RFC 3339 time, as metav1.Time writes it, kept in UTC so that loads compare equal anywhere.
type timestamp struct{ time.Time }

// UnmarshalJSON accepts null and "" as unset, as metav1.Time does.
func (t *timestamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("creationTimestamp: %w", err)
	}
	return t.parse(s)
}

// UnmarshalYAML takes the timestamp as text: go-yaml hands over a plain timestamp scalar as written.
func (t *timestamp) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return fmt.Errorf("creationTimestamp: %w", err)
	}
	return t.parse(s)
}

func (t *timestamp) parse(s string) error {
	if s == "" {
		return nil
	}
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("creationTimestamp: %w", err)
	}
	t.Time = v.UTC()
	return nil
}

// atPath prefixes err with the path of the List item it happened in.
func atPath(at string, err error) error {
	if at == "" {
		return err
	}
	return fmt.Errorf("%s: %w", at, err)
}

// itemPath is the path of item i of the List at path at.
func itemPath(at string, i int) string {
	p := "items[" + strconv.Itoa(i) + "]"
	if at == "" {
		return p
	}
	return at + "." + p
}
