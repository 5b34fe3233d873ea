package baseline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/graph"
)

// AnyNamespace, as the namespace of a ServiceAccount in a baseline file, means every namespace: the platform
// creates a ServiceAccount "default" in each.
const AnyNamespace = "*"

// FileError is a malformed baseline file. Line is 1-based: the line the YAML decoder names for a syntax or type
// error (for a syntax error, where the construct it was reading starts), else the line where the object starts.
type FileError struct {
	File string
	Line int
	Err  error
}

// Error renders the error as "file:line: message", the form editors and CI annotations recognise.
func (e *FileError) Error() string { return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FileError) Unwrap() error { return e.Err }

// sourceFile is what one baseline file holds: the source its header names and its objects (*graph.Role,
// *graph.Binding, *graph.ServiceAccount), each with Origin "file:line".
type sourceFile struct {
	source  string
	objects []graph.Object
}

// parseFile reads one baseline file: YAML or JSON, one document or several, each an object or a List (kind: List
// as `kiem export` and `kubectl get -o yaml` write it, typed lists such as RoleList, nested Lists). The first
// document names the source in a top-level "source" field, either beside the List's items or alone in a header
// document. Roles, ClusterRoles, RoleBindings, ClusterRoleBindings and ServiceAccounts are read; other kinds (the
// Namespaces and Pods of an export) are skipped.
func parseFile(name string, data []byte) (*sourceFile, error) {
	p := &fileParser{name: name, out: &sourceFile{}, seen: map[graph.ObjectRef]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	first := true
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, p.decodeError(err, 1)
		}
		root := &doc
		if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
			root = doc.Content[0]
		}
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document
		}
		if root.Kind != yaml.MappingNode {
			return nil, p.errorf(root.Line, "a document must be a mapping (an object or a List)")
		}
		if first {
			first = false
			headerOnly, err := p.header(root)
			if err != nil {
				return nil, err
			}
			if headerOnly {
				continue
			}
		}
		if err := p.node(root, typeMeta{}); err != nil {
			return nil, err
		}
	}
	if first {
		return nil, p.errorf(1, "empty file: a baseline file names its source and holds objects")
	}
	if len(p.out.objects) == 0 {
		return nil, p.errorf(1, "no Role, ClusterRole, RoleBinding, ClusterRoleBinding or ServiceAccount")
	}
	return p.out, nil
}

type fileParser struct {
	name string
	out  *sourceFile
	seen map[graph.ObjectRef]int // line of each object read so far
}

func (p *fileParser) errorf(line int, format string, args ...any) error {
	return &FileError{File: p.name, Line: line, Err: fmt.Errorf(format, args...)}
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// decodeError turns a YAML error into a FileError on the line the decoder names (else fallback), with the
// decoder's "yaml: " and "line N: " prefixes dropped because the FileError says both.
func (p *fileParser) decodeError(err error, fallback int) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = strings.Join(te.Errors, "; ")
	}
	line := fallback
	if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
		line, _ = strconv.Atoi(msg[m[2]:m[3]])
		msg = msg[:m[0]] + msg[m[1]:]
	}
	return &FileError{File: p.name, Line: line, Err: errors.New(strings.TrimPrefix(msg, "yaml: "))}
}

// header reads the source from the first document; headerOnly is true when the document holds nothing else.
func (p *fileParser) header(root *yaml.Node) (headerOnly bool, err error) {
	v := mapValue(root, "source")
	if v == nil {
		return false, p.errorf(root.Line, `no source: the first document of a baseline file names what created its objects in a top-level "source" field`)
	}
	if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
		return false, p.errorf(v.Line, "source must be a non-empty string")
	}
	p.out.source = strings.TrimSpace(v.Value)
	return len(root.Content) == 2, nil
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// typeMeta is the type of a document; the items of a typed List inherit what they leave out.
type typeMeta struct{ apiVersion, kind string }

func (p *fileParser) typeOf(n *yaml.Node, def typeMeta) (typeMeta, error) {
	t := def
	for _, f := range []struct {
		key string
		dst *string
	}{{"apiVersion", &t.apiVersion}, {"kind", &t.kind}} {
		v := mapValue(n, f.key)
		if v == nil {
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return t, p.errorf(v.Line, "%s must be a string", f.key)
		}
		*f.dst = v.Value
	}
	switch {
	case t.kind == "":
		return t, p.errorf(n.Line, "missing kind")
	case t.apiVersion == "":
		return t, p.errorf(n.Line, "missing apiVersion")
	}
	return t, nil
}

// node reads one document or List item.
func (p *fileParser) node(n *yaml.Node, def typeMeta) error {
	if n.Kind != yaml.MappingNode {
		return p.errorf(n.Line, "an object must be a mapping")
	}
	t, err := p.typeOf(n, def)
	if err != nil {
		return err
	}
	items := mapValue(n, "items")
	if t.kind == "List" || (items != nil && strings.HasSuffix(t.kind, "List")) {
		if items == nil || items.Tag == "!!null" {
			return nil
		}
		if items.Kind != yaml.SequenceNode {
			return p.errorf(items.Line, "items must be a list")
		}
		itemDef := typeMeta{}
		if t.kind != "List" {
			itemDef = typeMeta{apiVersion: t.apiVersion, kind: strings.TrimSuffix(t.kind, "List")}
		}
		for _, it := range items.Content {
			if err := p.node(it, itemDef); err != nil {
				return err
			}
		}
		return nil
	}
	kind, ok := readKind(t)
	if !ok {
		return nil
	}
	var d objectDoc
	if err := n.Decode(&d); err != nil {
		return p.decodeError(err, n.Line)
	}
	o, err := d.build(kind)
	if err != nil {
		return p.errorf(n.Line, "%s %q: %w", kind, d.Metadata.Name, err)
	}
	ref := o.Ref()
	if prev, dup := p.seen[ref]; dup {
		return p.errorf(n.Line, "%s is defined twice (first at line %d)", ref, prev)
	}
	p.seen[ref] = n.Line
	setOrigin(o, p.name+":"+strconv.Itoa(n.Line))
	p.out.objects = append(p.out.objects, o)
	return nil
}

// readKind maps a document type to the kind a baseline holds; ok is false for kinds it skips. The RBAC beta and
// alpha versions share v1's schema for every field read here.
func readKind(t typeMeta) (graph.Kind, bool) {
	switch t.kind {
	case "ServiceAccount":
		return graph.KindServiceAccount, t.apiVersion == "v1"
	case "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
		switch t.apiVersion {
		case rbacv1.SchemeGroupVersion.String(), "rbac.authorization.k8s.io/v1beta1", "rbac.authorization.k8s.io/v1alpha1":
			return graph.Kind(t.kind), true
		}
	}
	return "", false
}

func setOrigin(o graph.Object, origin string) {
	switch v := o.(type) {
	case *graph.Role:
		v.Origin = origin
	case *graph.Binding:
		v.Origin = origin
	case *graph.ServiceAccount:
		v.Origin = origin
	}
}

// objectDoc holds the fields a baseline reads of any of its kinds. The types mirror the API's field names; YAML
// is decoded straight into them so that type errors name their line.
type objectDoc struct {
	Metadata struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Rules           []ruleDoc `yaml:"rules"`
	AggregationRule *struct {
		ClusterRoleSelectors []selectorDoc `yaml:"clusterRoleSelectors"`
	} `yaml:"aggregationRule"`
	RoleRef  *roleRefDoc  `yaml:"roleRef"`
	Subjects []subjectDoc `yaml:"subjects"`
}

type ruleDoc struct {
	Verbs           []string `yaml:"verbs"`
	APIGroups       []string `yaml:"apiGroups"`
	Resources       []string `yaml:"resources"`
	ResourceNames   []string `yaml:"resourceNames"`
	NonResourceURLs []string `yaml:"nonResourceURLs"`
}

type selectorDoc struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

type roleRefDoc struct {
	APIGroup string `yaml:"apiGroup"`
	Kind     string `yaml:"kind"`
	Name     string `yaml:"name"`
}

type subjectDoc struct {
	Kind      string `yaml:"kind"`
	APIGroup  string `yaml:"apiGroup"`
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

// build converts and checks the document: what the apiserver would refuse, and what a baseline must state
// (every namespaced object names its namespace; only ServiceAccounts may use AnyNamespace).
func (d *objectDoc) build(kind graph.Kind) (graph.Object, error) {
	m := graph.Meta{Name: d.Metadata.Name, Namespace: d.Metadata.Namespace, Labels: d.Metadata.Labels,
		Annotations: d.Metadata.Annotations}
	if m.Name == "" {
		return nil, errors.New("missing metadata.name")
	}
	switch kind {
	case graph.KindClusterRole, graph.KindClusterRoleBinding:
		m.Namespace = "" // cluster-scoped: the apiserver ignores a namespace
	default:
		if m.Namespace == "" {
			return nil, errors.New("missing metadata.namespace: a baseline names the namespace of every namespaced object")
		}
		if m.Namespace == AnyNamespace && kind != graph.KindServiceAccount {
			return nil, fmt.Errorf("namespace %q (every namespace) is only for ServiceAccounts", AnyNamespace)
		}
	}
	switch kind {
	case graph.KindServiceAccount:
		return &graph.ServiceAccount{Meta: m}, nil
	case graph.KindRole, graph.KindClusterRole:
		r := &graph.Role{Kind: kind, Meta: m}
		for _, rd := range d.Rules {
			r.Rules = append(r.Rules, rbacv1.PolicyRule(rd))
		}
		if d.AggregationRule != nil {
			if kind != graph.KindClusterRole {
				return nil, errors.New("aggregationRule is only for ClusterRoles")
			}
			r.AggregationRule = &rbacv1.AggregationRule{}
			for i, sd := range d.AggregationRule.ClusterRoleSelectors {
				sel := metav1.LabelSelector{MatchLabels: sd.MatchLabels}
				for _, e := range sd.MatchExpressions {
					sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
						Key: e.Key, Operator: metav1.LabelSelectorOperator(e.Operator), Values: e.Values})
				}
				if _, err := metav1.LabelSelectorAsSelector(&sel); err != nil {
					return nil, fmt.Errorf("aggregationRule selector %d: %w", i, err)
				}
				r.AggregationRule.ClusterRoleSelectors = append(r.AggregationRule.ClusterRoleSelectors, sel)
			}
		}
		return r, nil
	}
	b := &graph.Binding{Kind: kind, Meta: m}
	if d.RoleRef == nil || d.RoleRef.Name == "" {
		return nil, errors.New("missing roleRef.name")
	}
	switch {
	case d.RoleRef.Kind == "ClusterRole", d.RoleRef.Kind == "Role" && kind == graph.KindRoleBinding:
	default:
		return nil, fmt.Errorf("roleRef kind %q is not one a %s can reference", d.RoleRef.Kind, kind)
	}
	b.RoleRef = rbacv1.RoleRef(*d.RoleRef)
	for i, s := range d.Subjects {
		switch {
		case s.Kind != rbacv1.UserKind && s.Kind != rbacv1.GroupKind && s.Kind != rbacv1.ServiceAccountKind:
			return nil, fmt.Errorf("subject %d: kind %q is not User, Group or ServiceAccount", i, s.Kind)
		case s.Name == "":
			return nil, fmt.Errorf("subject %d: missing name", i)
		case s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" && kind == graph.KindClusterRoleBinding:
			return nil, fmt.Errorf("subject %d: a ServiceAccount subject of a ClusterRoleBinding needs a namespace", i)
		}
		b.Subjects = append(b.Subjects, rbacv1.Subject(s))
	}
	return b, nil
}
