package indexer

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goyaml "go.yaml.in/yaml/v2"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
)

// decodeBoth decodes the YAML document doc, and its JSON rendering, and checks that both decoders agree.
func decodeBoth(t *testing.T, c *converter, doc string) []object {
	t.Helper()
	fromYAML, _, parseErr, err := c.decodeYAML([]byte(doc), 1, "f:1", typeMeta{}, "")
	if parseErr != nil || err != nil {
		t.Fatalf("decodeYAML: %v %v", parseErr, err)
	}
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := c.decodeJSON(j, "f:1", typeMeta{}, "", nil)
	if err != nil {
		t.Fatalf("decodeJSON: %v", err)
	}
	if diff := cmp.Diff(fromYAML, fromJSON, cmp.AllowUnexported(object{})); diff != "" {
		t.Fatalf("YAML and JSON decoders disagree (-yaml +json):\n%s", diff)
	}
	return fromYAML
}

func ptr[T any](v T) *T { return &v }

func TestConvertPod(t *testing.T) {
	const head = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
	tests := []struct {
		name string
		doc  string
		want graph.Pod
	}{{
		name: "serviceAccountName",
		doc:  head + "spec: {serviceAccountName: sa, serviceAccount: old, nodeName: n1}\n",
		want: graph.Pod{ServiceAccount: "sa", NodeName: "n1"},
	}, {
		name: "deprecated serviceAccount",
		doc:  head + "spec: {serviceAccount: old}\n",
		want: graph.Pod{ServiceAccount: "old"},
	}, {
		name: "neither: default",
		doc:  head + "spec: {containers: [{name: c, image: i}]}\n",
		want: graph.Pod{ServiceAccount: "default"},
	}, {
		name: "no spec",
		doc:  head,
		want: graph.Pod{ServiceAccount: "default"},
	}, {
		name: "automount false",
		doc:  head + "spec: {automountServiceAccountToken: false}\n",
		want: graph.Pod{ServiceAccount: "default", AutomountToken: ptr(false)},
	}, {
		name: "automount true",
		doc:  head + "spec: {automountServiceAccountToken: true}\n",
		want: graph.Pod{ServiceAccount: "default", AutomountToken: ptr(true)},
	}, {
		name: "controlling owner among several",
		doc: head + "  ownerReferences:\n  - {kind: Node, name: node1}\n  - {kind: ConfigMap, name: c, controller: false}\n" +
			"  - {apiVersion: apps/v1, kind: ReplicaSet, name: rs, controller: true, uid: u}\n",
		want: graph.Pod{ServiceAccount: "default", Owner: &graph.OwnerRef{Kind: "ReplicaSet", Name: "rs"}},
	}, {
		name: "no controlling owner",
		doc:  head + "  ownerReferences:\n  - {kind: ReplicaSet, name: rs}\n",
		want: graph.Pod{ServiceAccount: "default"},
	}}
	c := &converter{defaultNamespace: "dflt"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := decodeBoth(t, c, tt.doc)
			if len(objs) != 1 {
				t.Fatalf("got %d objects, want 1", len(objs))
			}
			tt.want.Meta = graph.Meta{Namespace: "dflt", Name: "p", Origin: "f:1"}
			if diff := cmp.Diff(&tt.want, objs[0].value); diff != "" {
				t.Errorf("pod (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertMeta(t *testing.T) {
	doc := `apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
  namespace: ns
  uid: 5e1f
  resourceVersion: "42"
  creationTimestamp: "2025-03-01T11:00:00+01:00"
  labels: {app: web}
  annotations: {note: "a: b"}
  managedFields: [{manager: kubectl}]
automountServiceAccountToken: false
secrets: [{name: s}]
`
	objs := decodeBoth(t, &converter{defaultNamespace: "default"}, doc)
	want := &graph.ServiceAccount{
		Meta: graph.Meta{Namespace: "ns", Name: "sa", UID: "5e1f", ResourceVersion: "42",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "a: b"},
			Created: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC), Origin: "f:1"},
		AutomountToken: ptr(false),
	}
	if diff := cmp.Diff(want, objs[0].value); diff != "" {
		t.Errorf("ServiceAccount (-want +got):\n%s", diff)
	}
}

func TestConvertRBAC(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want apiObject
	}{{
		name: "Role",
		doc: `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r}
rules:
- apiGroups: [""]
  resources: [pods, pods/exec]
  verbs: [get, create]
- apiGroups: [apps]
  resources: [deployments]
  resourceNames: [web]
  verbs: ["*"]
`,
		want: &graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: "default", Name: "r", Origin: "f:1"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods", "pods/exec"}, Verbs: []string{"get", "create"}},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}, Verbs: []string{"*"}},
			}},
	}, {
		name: "aggregated ClusterRole",
		doc: `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring, namespace: ignored}
aggregationRule:
  clusterRoleSelectors:
  - matchLabels: {rbac.example.com/aggregate-to-monitoring: "true"}
  - matchExpressions: [{key: tier, operator: In, values: [a, b]}]
rules:
- nonResourceURLs: [/metrics, /healthz/*]
  verbs: [get]
`,
		want: &graph.Role{Kind: graph.KindClusterRole, Meta: graph.Meta{Name: "monitoring", Origin: "f:1"},
			Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics", "/healthz/*"}, Verbs: []string{"get"}}},
			AggregationRule: &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
				{MatchLabels: map[string]string{"rbac.example.com/aggregate-to-monitoring": "true"}},
				{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
			}}},
	}, {
		name: "RoleBinding subjects kept as written",
		doc: `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: b, namespace: ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects:
- {kind: ServiceAccount, name: sa}
- {kind: User, apiGroup: rbac.authorization.k8s.io, name: "alice@example.com"}
- {kind: Group, apiGroup: rbac.authorization.k8s.io, name: "system:serviceaccounts:ns"}
`,
		want: &graph.Binding{Kind: graph.KindRoleBinding, Meta: graph.Meta{Namespace: "ns", Name: "b", Origin: "f:1"},
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "edit"},
			Subjects: []rbacv1.Subject{
				{Kind: "ServiceAccount", Name: "sa"},
				{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "alice@example.com"},
				{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "system:serviceaccounts:ns"},
			}},
	}, {
		name: "ClusterRoleBinding without subjects",
		doc: `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
`,
		want: &graph.Binding{Kind: graph.KindClusterRoleBinding, Meta: graph.Meta{Name: "b", Origin: "f:1"},
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"}},
	}, {
		name: "Namespace",
		doc:  "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns1\n  labels: {pod-security.kubernetes.io/enforce: restricted}\nspec: {finalizers: [kubernetes]}\n",
		want: &graph.Namespace{Meta: graph.Meta{Name: "ns1", Origin: "f:1",
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}},
	}}
	c := &converter{defaultNamespace: "default"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := decodeBoth(t, c, tt.doc)
			if len(objs) != 1 {
				t.Fatalf("got %d objects, want 1", len(objs))
			}
			if diff := cmp.Diff(tt.want, objs[0].value); diff != "" {
				t.Errorf("object (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConvertFieldNames checks that field names match case-sensitively, as the apiserver matches them: a
// misspelt "Subjects" grants nothing, in YAML and in JSON alike.
func TestConvertFieldNames(t *testing.T) {
	doc := "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n" +
		"roleRef: {kind: ClusterRole, name: cluster-admin}\nSubjects: [{kind: Group, name: everyone}]\n"
	objs := decodeBoth(t, &converter{}, doc)
	if b := objs[0].value.(*graph.Binding); b.Subjects != nil {
		t.Errorf("Subjects=%v, want none: the key is misspelt", b.Subjects)
	}
}

// TestConvertScalars pins the documented difference between the decoders: YAML takes a number or boolean written
// where a string belongs as written, JSON rejects it as the apiserver does.
func TestConvertScalars(t *testing.T) {
	c := &converter{defaultNamespace: "default"}
	doc := "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: 0123, labels: {enabled: yes}}\n"
	objs, _, parseErr, err := c.decodeYAML([]byte(doc), 1, "f:1", typeMeta{}, "")
	if parseErr != nil || err != nil {
		t.Fatal(parseErr, err)
	}
	sa := objs[0].value.(*graph.ServiceAccount)
	if sa.Name != "0123" || sa.Labels["enabled"] != "yes" {
		t.Errorf("YAML: name %q, label %q; want 0123 and yes, as written", sa.Name, sa.Labels["enabled"])
	}
	_, err = c.decodeJSON([]byte(`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":123}}`), "f:1", typeMeta{}, "", nil)
	if err == nil {
		t.Errorf("JSON: a number as the name decoded, want an error")
	}
}

func TestLoadedKind(t *testing.T) {
	tests := []struct {
		t    typeMeta
		want graph.Kind
	}{
		{typeMeta{"v1", "Namespace"}, graph.KindNamespace},
		{typeMeta{"v1", "ServiceAccount"}, graph.KindServiceAccount},
		{typeMeta{"v1", "Pod"}, graph.KindPod},
		{typeMeta{"rbac.authorization.k8s.io/v1", "Role"}, graph.KindRole},
		{typeMeta{"rbac.authorization.k8s.io/v1beta1", "ClusterRole"}, graph.KindClusterRole},
		{typeMeta{"rbac.authorization.k8s.io/v1alpha1", "RoleBinding"}, graph.KindRoleBinding},
		{typeMeta{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"}, graph.KindClusterRoleBinding},
		{typeMeta{"rbac.authorization.k8s.io/v2", "Role"}, ""},
		{typeMeta{"apps/v1", "Pod"}, ""},
		{typeMeta{"v1", "Role"}, ""},
		{typeMeta{"v1", "Secret"}, graph.KindSecret},
		{typeMeta{"v1", "User"}, ""},
	}
	for _, tt := range tests {
		got, ok := loadedKind(tt.t)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("loadedKind(%v)=%q, %v; want %q", tt.t, got, ok, tt.want)
		}
	}
}

func TestJSONHeader(t *testing.T) {
	tests := []struct {
		in    string
		t     typeMeta
		items string
		err   bool
	}{
		{in: `{"apiVersion":"v1","kind":"Pod","spec":{"kind":"x","items":[]}}`, t: typeMeta{"v1", "Pod"}},
		{in: ` { "kind" : "List" , "items" : [ {"a":"}]"} ] , "apiVersion" : "v1" } `, t: typeMeta{"v1", "List"}, items: `[ {"a":"}]"} ]`},
		{in: `{"kind":"A","kind":"B","apiVersion":null}`, t: typeMeta{"", "B"}},
		{in: `{"k\u0069nd":"Role","apiVersion":"v\u0031"}`, t: typeMeta{"v1", "Role"}},
		{in: `{"Kind":"Role","APIVERSION":"v1"}`},
		{in: `{"kind":"Ro\"le"}`, t: typeMeta{"", `Ro"le`}},
		{in: `{"kind":["Role"]}`, err: true},
	}
	for _, tt := range tests {
		got, items, err := jsonHeader([]byte(tt.in))
		if (err != nil) != tt.err || got != tt.t || string(items) != tt.items {
			t.Errorf("jsonHeader(%s)=%v, %q, %v; want %v, %q, error %v", tt.in, got, items, err, tt.t, tt.items, tt.err)
		}
	}
}

func TestJSONListItems(t *testing.T) {
	tests := []struct {
		in    string
		def   typeMeta
		items []string
		ok    bool
	}{
		{in: `{"apiVersion":"v1","items":[{"a":1}, {"b":"]"} ,3],"kind":"List"}`, items: []string{`{"a":1}`, `{"b":"]"}`, "3"}, ok: true},
		{in: `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleList","items":[ ]}`, def: typeMeta{"rbac.authorization.k8s.io/v1", "Role"}, ok: true},
		{in: `{"apiVersion":"v1","kind":"List","items":{}}`},
		{in: `{"apiVersion":"v1","kind":"Pod","items":[{}]}`},
		{in: `{"kind":"List","items":[{}]}`},
		{in: `[{"kind":"List"}]`},
	}
	for _, tt := range tests {
		def, items, ok := jsonListItems([]byte(tt.in))
		var got []string
		for _, it := range items {
			got = append(got, string(it))
		}
		if ok != tt.ok || def != tt.def || !cmp.Equal(got, tt.items) {
			t.Errorf("jsonListItems(%s)=%v, %q, %v; want %v, %q, %v", tt.in, def, got, ok, tt.def, tt.items, tt.ok)
		}
	}
}

func TestSkipValue(t *testing.T) {
	for _, v := range []string{`"a\"b\\"`, `{"a":["}",{"b":"\\"}]}`, `[1,[2,[3]]]`, `-1.5e3`, `true`, `null`} {
		in := v + ` , "rest"`
		if end := skipValue([]byte(in), 0); in[:end] != v {
			t.Errorf("skipValue(%s) stops after %q, want %q", in, in[:end], v)
		}
	}
}

// TestYAMLErrorLine checks the line translation against go-yaml's own errors: scanner errors count lines from 1,
// parser errors from 0.
func TestYAMLErrorLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		msg  string
	}{
		{"scanner", "a: 1\nb: c: d\n", 2, "yaml: mapping values are not allowed in this context"},
		{"parser", "a:\n  b:\n    c: 1\n   d: 2\n", 4, "yaml: did not find expected key"},
		{"parser in flow", "a: 1\nb: [1,\n\n  2 : : ]\n", 4, "yaml: did not find expected node content"},
		{"unterminated quote", "a: 1\nb: \"x\nc: 2\n", 4, "yaml: found unexpected end of stream"},
		// go-yaml places an error at the end of the stream on the line after the last line break: a text without
		// a final line break has no such line (found by FuzzLoad, testdata/fuzz/FuzzLoad/4aec980c9ea7efe3).
		{"end of a text without a final line break", "0: \n0", 2, "yaml: could not find expected ':'"},
		{"CRLF", "a: 1\r\nb: c: d\r\n", 2, "yaml: mapping values are not allowed in this context"},
		// go-yaml breaks lines at CR, NEL, LS and PS too; a file's lines end at LF.
		{"CR alone", "a: 1\rb: 2\nc: d: e\n", 2, "yaml: mapping values are not allowed in this context"},
		{"NEL, LS and PS", "a: 1\u0085b: 2\u2028c: 3\u2029\nd: e: f\n", 2, "yaml: mapping values are not allowed in this context"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := goyaml.Unmarshal([]byte(tt.in), &v)
			if err == nil {
				t.Fatal("no error")
			}
			line, msg, ok := yamlErrorLine(err, yamlLines{data: []byte(tt.in), base: 10})
			if !ok || line != 10+tt.line-1 || msg != tt.msg {
				t.Errorf("yamlErrorLine(%q)=%d, %q, %v; want %d, %q", err, line, msg, ok, 10+tt.line-1, tt.msg)
			}
		})
	}
	if _, _, ok := yamlErrorLine(errors.New("yaml: unknown anchor 'x' referenced"), yamlLines{base: 1}); ok {
		t.Errorf("yamlErrorLine found a line in an error that has none")
	}
}

func TestRelineYAML(t *testing.T) {
	var v struct{ A []string }
	err := goyaml.Unmarshal([]byte("\n\na: x\n"), &v)
	if got, want := relineYAML(err, yamlLines{data: []byte("\n\na: x\n"), base: 5}).Error(), "line 7: cannot unmarshal !!str `x` into []string"; got != want {
		t.Errorf("relineYAML(base 5)=%q, want %q", got, want)
	}
	if got, want := relineYAML(err, yamlLines{}).Error(), "cannot unmarshal !!str `x` into []string"; got != want {
		t.Errorf("relineYAML(base 0)=%q, want %q", got, want)
	}
	plain := errors.New("plain")
	if got := relineYAML(plain, yamlLines{base: 3}); got != plain {
		t.Errorf("relineYAML(plain)=%v, want it unchanged", got)
	}
}
