package baseline

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/manifests"
)

// TestLoadErrors: a malformed baseline file fails the load with its file and line.
func TestLoadErrors(t *testing.T) {
	const head = "apiVersion: v1\nkind: List\nsource: Acme\nitems:\n"
	const crb = "- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRoleBinding\n"
	tests := []struct {
		name, data string
		line       int
		msg        string
	}{
		{"syntax", head + "- kind: [\n", 5, "did not find expected node content"},
		{"indentation", head + "- a: b\n  c: d\n - e\n- f: g\n", 6, "did not find expected key"},
		{"tab", head + "- a: b\n\tc: d\n", 5, "found a tab character"},
		{"field type", head + "- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRole\n  metadata: {name: x}\n  rules: get\n", 8,
			"cannot unmarshal !!str `get` into []baseline.ruleDoc"},
		{"label type", head + "- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: x\n    namespace: y\n    labels: {a: [b]}\n", 10,
			"cannot unmarshal !!seq into string"},
		{"no source", "apiVersion: v1\nkind: List\nitems: []\n", 1, "no source"},
		{"no source in a later document", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: b}\n---\nsource: Acme\n", 1, "no source"},
		{"empty source", "source: ''\n", 1, "source must be a non-empty string"},
		{"empty file", "# nothing\n", 1, "empty file"},
		{"only other kinds", head + "- {apiVersion: v1, kind: Pod, metadata: {name: p, namespace: n}}\n", 1, "no Role, ClusterRole"},
		{"items not a list", head + "  a: b\n", 5, "items must be a list"},
		{"not a mapping", "source: Acme\n---\n- a\n", 3, "a document must be a mapping"},
		{"missing kind", head + "- apiVersion: v1\n  metadata: {name: x}\n", 5, "missing kind"},
		{"missing apiVersion", head + "- kind: Role\n  metadata: {name: x}\n", 5, "missing apiVersion"},
		{"missing name", head + crb + "  metadata: {}\n", 5, "missing metadata.name"},
		{"missing namespace", head + "- apiVersion: rbac.authorization.k8s.io/v1\n  kind: Role\n  metadata: {name: r}\n", 5,
			"missing metadata.namespace"},
		{"any namespace for a Role", head + "- apiVersion: rbac.authorization.k8s.io/v1\n  kind: Role\n  metadata: {name: r, namespace: '*'}\n", 5,
			`namespace "*" (every namespace) is only for ServiceAccounts`},
		{"aggregationRule on a Role", head + "- apiVersion: rbac.authorization.k8s.io/v1\n  kind: Role\n  metadata: {name: r, namespace: n}\n  aggregationRule: {}\n", 5,
			"aggregationRule is only for ClusterRoles"},
		{"invalid selector", head + "- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRole\n  metadata: {name: r}\n" +
			"  aggregationRule: {clusterRoleSelectors: [{matchExpressions: [{key: a, operator: Near}]}]}\n", 5, "aggregationRule selector 0"},
		{"missing roleRef", head + crb + "  metadata: {name: b}\n", 5, "missing roleRef.name"},
		{"ClusterRoleBinding to a Role", head + crb + "  metadata: {name: b}\n  roleRef: {kind: Role, name: r}\n", 5,
			`roleRef kind "Role" is not one a ClusterRoleBinding can reference`},
		{"subject kind", head + crb + "  metadata: {name: b}\n  roleRef: {kind: ClusterRole, name: r}\n  subjects: [{kind: Robot, name: r2}]\n", 5,
			`subject 0: kind "Robot" is not User, Group or ServiceAccount`},
		{"subject without name", head + crb + "  metadata: {name: b}\n  roleRef: {kind: ClusterRole, name: r}\n  subjects: [{kind: Group}]\n", 5,
			"subject 0: missing name"},
		{"ServiceAccount subject without namespace", head + crb + "  metadata: {name: b}\n  roleRef: {kind: ClusterRole, name: r}\n" +
			"  subjects: [{kind: ServiceAccount, name: sa}]\n", 5, "needs a namespace"},
		{"twice", head + "- {apiVersion: v1, kind: ServiceAccount, metadata: {name: a, namespace: n}}\n" +
			"- {apiVersion: v1, kind: ServiceAccount, metadata: {name: a, namespace: n}}\n", 6, "ServiceAccount/n/a is defined twice (first at line 5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(fstest.MapFS{"vendor/acme.yaml": {Data: []byte(tt.data)}}, "vendor")
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Load()=%v, want a *FileError", err)
			}
			if fe.File != "vendor/acme.yaml" || fe.Line != tt.line || !strings.Contains(fe.Err.Error(), tt.msg) {
				t.Errorf("Load()=%q, want vendor/acme.yaml:%d: …%s…", err, tt.line, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), fe.File+":") {
				t.Errorf("Error()=%q does not start with the file", err)
			}
		})
	}
}

func TestLoadPaths(t *testing.T) {
	if _, err := Load(fstest.MapFS{}, "missing.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := Load(fstest.MapFS{"d/README.md": {}}, "d"); err == nil || !strings.Contains(err.Error(), "no .yaml, .yml or .json file in d") {
		t.Errorf("directory without baselines: %v", err)
	}
	if _, err := Load(fstest.MapFS{}); err == nil {
		t.Error("no paths: no error")
	}
	sa := func(src, ns, name string) string {
		return "source: " + src + "\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: " + name + ", namespace: " + ns + "}\n"
	}
	fsys := fstest.MapFS{
		"d/b.yaml":           {Data: []byte(sa("B", "n", "b"))},
		"d/a.yml":            {Data: []byte(sa("A", "n", "a"))},
		"d/sub/c.json":       {Data: []byte(`{"source": "C", "apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "c", "namespace": "n"}}]}`)},
		"d/.hidden/x.yaml":   {Data: []byte("not: [valid")},
		"d/notes.txt":        {Data: []byte("not: [valid")},
		"other/as-file.data": {Data: []byte(sa("D", "n", "d"))},
	}
	b, err := Load(fsys, "d", "other/as-file.data")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Sources(), []string{"A", "B", "C", "D"}; !slices.Equal(got, want) {
		t.Errorf("Sources()=%q, want %q", got, want)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if v := b.Object(&graph.ServiceAccount{Meta: graph.Meta{Namespace: "n", Name: name}}); v.Status != Default ||
			v.Source != strings.ToUpper(name) {
			t.Errorf("ServiceAccount n/%s: %+v", name, v)
		}
	}
}

// TestLoadForms: the forms a baseline file may take, as kiem export, kubectl get -o yaml|json and manifests
// write them; other kinds are skipped.
func TestLoadForms(t *testing.T) {
	tests := []struct {
		name, data string
		want       []graph.ObjectRef
	}{
		{"export (List)", `apiVersion: v1
kind: List
source: S
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: n}}
- {apiVersion: v1, kind: ServiceAccount, metadata: {name: a, namespace: n}}
- {apiVersion: v1, kind: Pod, metadata: {name: p, namespace: n}}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: r, namespace: ignored}
`, []graph.ObjectRef{{Kind: graph.KindClusterRole, Name: "r"}, {Kind: graph.KindServiceAccount, Namespace: "n", Name: "a"}}},
		{"header document and manifests", `# vendor defaults
source: S
---
apiVersion: rbac.authorization.k8s.io/v1beta1
kind: RoleBinding
metadata: {name: b, namespace: n}
roleRef: {kind: Role, name: r}
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
`, []graph.ObjectRef{{Kind: graph.KindRoleBinding, Namespace: "n", Name: "b"}}},
		{"typed and nested lists", `source: S
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleList
  items:
  - metadata: {name: r1, namespace: n}
  - {kind: Role, metadata: {name: r2, namespace: n}}
- apiVersion: v1
  kind: List
  items: null
`, []graph.ObjectRef{{Kind: graph.KindRole, Namespace: "n", Name: "r1"}, {Kind: graph.KindRole, Namespace: "n", Name: "r2"}}},
		{"JSON", `{"apiVersion": "v1", "kind": "List", "source": "S", "items": [
  {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"},
   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
   "subjects": [{"kind": "Group", "name": "g"}]}]}
`, []graph.ObjectRef{{Kind: graph.KindClusterRoleBinding, Name: "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustLoad(t, map[string]string{"f.yaml": tt.data})
			if got := b.Refs("S"); !slices.Equal(got, tt.want) {
				t.Errorf("Refs()=%v, want %v", got, tt.want)
			}
			for _, e := range b.entries {
				if !strings.HasPrefix(origin(e.obj), "f.yaml:") {
					t.Errorf("%s: origin %q", e.obj.Ref(), origin(e.obj))
				}
			}
		})
	}
}

func origin(o graph.Object) string {
	switch v := o.(type) {
	case *graph.Role:
		return v.Origin
	case *graph.Binding:
		return v.Origin
	case *graph.ServiceAccount:
		return v.Origin
	}
	return ""
}

// TestBuiltinIsSnapshot: the embedded files are kiem snapshot files too (kiem can-i --snapshot reads them).
func TestBuiltinIsSnapshot(t *testing.T) {
	objs, err := manifests.Load(t.Context(), embedded, []string{"data"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := objs.Count(), len(Builtin().entries); got != want {
		t.Errorf("indexer reads %d objects, the baseline holds %d", got, want)
	}
}

// TestMerge: an operator's baseline is honoured, merged with the embedded one; neither input changes.
func TestMerge(t *testing.T) {
	eks := mustLoad(t, map[string]string{"eks.yaml": `apiVersion: v1
kind: List
source: Amazon EKS 1.33
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata:
    name: eks:addon-manager-view
    labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
  rules: [{apiGroups: [vpcresources.k8s.aws], resources: [cninodes], verbs: [get, list, watch]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: eks:viewers}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
  subjects: [{kind: Group, name: "eks:viewers"}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: cluster-admin}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
  subjects: [{kind: Group, name: "system:masters"}, {kind: Group, name: "eks:cluster-admins"}]
`})
	builtin := Builtin()
	b := builtin.Merge(eks, nil)
	if got, want := len(b.Sources()), 6; got != want || b.Sources()[5] != "Amazon EKS 1.33" {
		t.Errorf("Sources()=%q", b.Sources())
	}
	if got := len(builtin.Sources()); got != 5 {
		t.Errorf("Builtin changed: %d sources", got)
	}
	viewers := binding("", "eks:viewers", "ClusterRole/view", "Group:eks:viewers")
	if v := b.Object(viewers); v.Status != Default || v.Source != "Amazon EKS 1.33" {
		t.Errorf("merged: %+v", v)
	}
	if v := builtin.Object(viewers); v.Status != NotDefault {
		t.Errorf("builtin alone: %+v", v)
	}
	// Two sources know cluster-admin: either content is Default, each with its source.
	for _, tt := range []struct {
		subjects []string
		source   string
	}{
		{[]string{"Group:system:masters"}, srcKubernetes},
		{[]string{"Group:eks:cluster-admins", "Group:system:masters"}, "Amazon EKS 1.33"},
	} {
		if v := b.Object(binding("", "cluster-admin", "ClusterRole/cluster-admin", tt.subjects...)); v.Status != Default || v.Source != tt.source {
			t.Errorf("cluster-admin to %v: %+v, want default from %q", tt.subjects, v, tt.source)
		}
	}
	// The vendor's aggregated view rule is default content of view once merged, and only then.
	objs := builtinObjects()
	objs.Append(&graph.Objects{ClusterRoles: []graph.Role{*eks.byRef[crRef("eks:addon-manager-view")][0].obj.(*graph.Role)},
		ClusterRoleBindings: []graph.Binding{*viewers}})
	perms, err := graph.NewSnapshot(objs).EffectivePermissions(t.Context(), graph.Identity{User: "u", Groups: []string{"eks:viewers"}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range perms {
		expected, reason := b.Path(p.GrantPath)
		if !expected {
			t.Errorf("%s: not expected: %s", p.Explain(), reason)
		}
		if p.AggregatedFrom.Name == "eks:addon-manager-view" {
			found = true
			if !strings.HasSuffix(reason, "rule from ClusterRole/eks:addon-manager-view (Amazon EKS 1.33)") {
				t.Errorf("vendor rule: reason %q", reason)
			}
		}
	}
	if !found || len(perms) < 10 {
		t.Errorf("%d paths, vendor rule found: %v", len(perms), found)
	}
}
