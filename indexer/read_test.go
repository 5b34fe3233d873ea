package indexer

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	saA  = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  namespace: ns\n"
	saB  = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n  namespace: ns\n"
	role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: r\n  namespace: ns\n" +
		"rules:\n- apiGroups: [\"\"]\n  resources: [pods]\n  verbs: [get]\n"
)

func TestLoadInputs(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		opts    LoadOptions
		want    []string // summary()
		docs    int
		skipped map[string]int
	}{{
		name: "multi-document with comments and empty documents",
		file: "a.yaml",
		content: "# leading comment\n\n---\n" + saA + "---\n---\n# only a comment\n---\n" +
			"--- # separator with a comment\n" + saB + "...\n---\nnull\n---\n~\n",
		want: []string{"ServiceAccount/ns/a@a.yaml:4", "ServiceAccount/ns/b@a.yaml:14"},
		docs: 2,
	}, {
		name:    "CRLF line endings and a byte order mark",
		file:    "a.yaml",
		content: "\ufeff" + strings.ReplaceAll(saA+"---\n"+saB, "\n", "\r\n"),
		want:    []string{"ServiceAccount/ns/a@a.yaml:1", "ServiceAccount/ns/b@a.yaml:7"},
		docs:    2,
	}, {
		name: "List as kubectl get -o yaml writes it",
		file: "list.yaml",
		content: "apiVersion: v1\nitems:\n" + indentItem(saA, 0) + indentItem(role, 0) +
			"- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: d\n" +
			"kind: List\nmetadata:\n  resourceVersion: \"\"\n",
		want: []string{"ServiceAccount/ns/a@list.yaml:1", "Role/ns/r@list.yaml:1", "Pod/default/deployment/d@list.yaml:1"},
		docs: 1,
	}, {
		name:    "List with indented items and comments between them",
		file:    "list.yaml",
		content: "# snapshot\nkind: List\napiVersion: v1\nitems:\n" + indentItem(saA, 2) + "# between\n\n" + indentItem(saB, 2),
		want:    []string{"ServiceAccount/ns/a@list.yaml:2", "ServiceAccount/ns/b@list.yaml:2"},
		docs:    1,
	}, {
		name:    "List in flow style",
		file:    "list.yaml",
		content: "{apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: Namespace, metadata: {name: n}}]}\n",
		want:    []string{"Namespace/n@list.yaml:1"},
		docs:    1,
	}, {
		name:    "empty List",
		file:    "list.yaml",
		content: "apiVersion: v1\nitems: []\nkind: List\n",
		docs:    1,
	}, {
		name: "typed List whose items leave out their type",
		file: "roles.yaml",
		content: "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleList\nitems:\n" +
			"- metadata: {name: r1, namespace: ns}\n  rules: []\n" +
			"- apiVersion: rbac.authorization.k8s.io/v1\n  kind: Role\n  metadata: {name: r2, namespace: ns}\n",
		want: []string{"Role/ns/r1@roles.yaml:1", "Role/ns/r2@roles.yaml:1"},
		docs: 1,
	}, {
		name: "nested Lists",
		file: "nested.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n" +
			"- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRoleBindingList\n  items:\n" +
			"  - metadata: {name: crb}\n    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\n" +
			"- apiVersion: v1\n  kind: List\n  items:\n  - {apiVersion: v1, kind: Namespace, metadata: {name: n}}\n",
		want: []string{"Namespace/n@nested.yaml:1", "ClusterRoleBinding/crb@nested.yaml:1"},
		docs: 1,
	}, {
		name: "an item aliasing another item's anchor is decoded with the whole List",
		file: "alias.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: &m {name: a, namespace: ns}\n" +
			"- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    <<: *m\n    name: b\n",
		want: []string{"ServiceAccount/ns/a@alias.yaml:1", "ServiceAccount/ns/b@alias.yaml:1"},
		docs: 1,
	}, {
		name: "a List with two items keys is decoded whole, the last one winning as go-yaml has it",
		file: "list.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n" +
			"items:\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n",
		want: []string{"Namespace/b@list.yaml:1"},
		docs: 1,
	}, {
		name:    "a kind ending in List without items is an object",
		file:    "a.yaml",
		content: "apiVersion: example.com/v1\nkind: AllowList\nmetadata: {name: x}\nspec: {items: 3}\n",
		docs:    1,
		skipped: map[string]int{"example.com/v1/AllowList": 1},
	}, {
		name:    "JSON object",
		file:    "a.json",
		content: `{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": "ns"}}`,
		want:    []string{"ServiceAccount/ns/a@a.json:1"},
		docs:    1,
	}, {
		name: "JSON List as kubectl get -o json writes it",
		file: "list.json",
		content: "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n" +
			`        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": "ns"}},` + "\n" +
			`        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}}` + "\n" +
			"    ],\n    \"kind\": \"List\",\n    \"metadata\": {\"resourceVersion\": \"\"}\n}\n",
		want:    []string{"ServiceAccount/ns/a@list.json:1"},
		docs:    1,
		skipped: map[string]int{"v1/ConfigMap": 1},
	}, {
		name: "concatenated JSON values, a typed List and escapes",
		file: "stream.json",
		content: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}` + "\n\n" +
			`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleList","items":[{"metadata":{"name":"r","namespace":"ns"}}]}` +
			"null\n" + `  {"apiVersion": "v1", "kind": "Serv\u0069ceAccount", "metadata": {"name": "a\"b", "namespace": "ns"}}`,
		want: []string{"Namespace/n@stream.json:1", `ServiceAccount/ns/a"b@stream.json:4`, "Role/ns/r@stream.json:3"},
		docs: 3,
	}, {
		name:    "JSON file with a List nested in a List",
		file:    "nested.json",
		content: `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"}}]}]}`,
		want:    []string{"Namespace/n@nested.json:1"},
		docs:    1,
	}, {
		name:    "default namespace",
		file:    "a.yaml",
		content: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n" + saB,
		opts:    LoadOptions{DefaultNamespace: "team"},
		want:    []string{"ServiceAccount/team/a@a.yaml:1", "ServiceAccount/ns/b@a.yaml:5"},
		docs:    2,
	}, {
		name: "default namespace is default, cluster-scoped objects drop theirs",
		file: "a.yaml",
		content: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n" +
			"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: c, namespace: ns}\n",
		want: []string{"ServiceAccount/default/a@a.yaml:1", "ClusterRole/c@a.yaml:5"},
		docs: 2,
	}, {
		name: "RBAC beta versions load, other groups' Roles do not",
		file: "a.yaml",
		content: "apiVersion: rbac.authorization.k8s.io/v1beta1\nkind: ClusterRole\nmetadata: {name: c}\n---\n" +
			"apiVersion: rbac.authorization.k8s.io/v1alpha1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n---\n" +
			"apiVersion: example.com/v1\nkind: Role\nmetadata: {name: r}\n---\napiVersion: v2\nkind: Pod\nmetadata: {name: p}\n",
		want:    []string{"ClusterRole/c@a.yaml:1", "ClusterRoleBinding/b@a.yaml:5"},
		docs:    4,
		skipped: map[string]int{"example.com/v1/Role": 1, "v2/Pod": 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, stats, err := LoadFS(t.Context(), mapFS(map[string]string{tt.file: tt.content}), []string{tt.file}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summary(objs)); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			if got := stats.Documents; got != tt.docs {
				t.Errorf("Stats.Documents=%d, want %d", got, tt.docs)
			}
			if tt.skipped == nil {
				tt.skipped = map[string]int{}
			}
			if diff := cmp.Diff(tt.skipped, stats.Skipped); diff != "" {
				t.Errorf("Stats.Skipped (-want +got):\n%s", diff)
			}
		})
	}
}

// indentItem writes doc as an item of a block sequence at column col.
func indentItem(doc string, col int) string {
	pad := strings.Repeat(" ", col)
	lines := strings.Split(strings.TrimSuffix(doc, "\n"), "\n")
	for i := range lines {
		if i == 0 {
			lines[i] = pad + "- " + lines[i]
		} else {
			lines[i] = pad + "  " + lines[i]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		line    int
		msg     string // the message after "file:line: "
	}{{
		name:    "YAML syntax error on line 7 of the 2nd document",
		file:    "a.yaml",
		content: saA + "---\n# second\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: b\n  labels: {a: b}\n  x: y: z\n",
		line:    6 + 7,
		msg:     "yaml: mapping values are not allowed in this context",
	}, {
		name:    "tab indentation",
		file:    "a.yaml",
		content: saA + "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n\tname: b\n",
		line:    10,
		msg:     "yaml: found character that cannot start any token",
	}, {
		name:    "invalid document separator",
		file:    "a.yaml",
		content: saA + "--- {a: b}\n" + saB,
		line:    6,
		msg:     `invalid document separator "--- {a: b}"`,
	}, {
		name:    "field of the wrong type",
		file:    "a.yaml",
		content: saA + "---\n" + strings.Replace(role, "rules:\n- apiGroups: [\"\"]\n  resources: [pods]\n  verbs: [get]", `rules: "x"`, 1),
		line:    7,
		msg:     "Role: line 12: cannot unmarshal !!str `x` into []indexer.policyRule",
	}, {
		name:    "missing kind",
		file:    "a.yaml",
		content: saA + "---\n\napiVersion: v1\nmetadata: {name: b}\n",
		line:    8,
		msg:     "missing kind",
	}, {
		name:    "missing apiVersion",
		file:    "a.yaml",
		content: "kind: ServiceAccount\nmetadata: {name: b}\n",
		line:    1,
		msg:     "missing apiVersion",
	}, {
		name:    "missing name",
		file:    "a.yaml",
		content: "apiVersion: v1\nkind: Namespace\nmetadata: {generateName: x-}\n",
		line:    1,
		msg:     "Namespace: missing metadata.name",
	}, {
		name:    "bad creationTimestamp",
		file:    "a.yaml",
		content: "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, creationTimestamp: yesterday}\n",
		line:    1,
		msg:     `Namespace: creationTimestamp: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`,
	}, {
		name:    "document that is not an object",
		file:    "a.yaml",
		content: saA + "---\n- a\n- b\n",
		line:    7,
		msg:     "expected an object, got array",
	}, {
		name:    "bad item in a List",
		file:    "list.yaml",
		content: "# snapshot\napiVersion: v1\nitems:\n" + indentItem(saA, 0) + indentItem(saB, 0) + "- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec: {automountServiceAccountToken: maybe}\nkind: List\n",
		line:    2,
		msg:     "items[2]: Pod: line 17: cannot unmarshal !!str `maybe` into bool",
	}, {
		name:    "item without kind in a List",
		file:    "list.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n" + indentItem(saA, 0) + "- metadata: {name: x}\n",
		line:    1,
		msg:     "items[1]: missing kind",
	}, {
		name:    "null item in a List",
		file:    "list.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n" + indentItem(saA, 0) + "-\n",
		line:    1,
		msg:     "items[1]: expected an object, got null",
	}, {
		name:    "syntax error inside a List item",
		file:    "list.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n" + indentItem(saA, 0) + "- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: [}\n",
		line:    11,
		msg:     "yaml: did not find expected node content",
	}, {
		// The List does not parse: its syntax error is reported, not the earlier null item, although that item
		// parses alone (FuzzLoad, testdata/fuzz/FuzzLoad/4111520d9e43dabd).
		name:    "syntax error in a List after a bad item",
		file:    "list.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n-\n- \"",
		line:    5,
		msg:     "yaml: found unexpected end of stream",
	}, {
		// go-yaml's reader names no line: the line of the first character it refuses is found.
		name:    "a byte that is not UTF-8",
		file:    "a.yaml",
		content: saA + "---\napiVersion: v1\n# caf\xe9\nkind: ServiceAccount\n",
		line:    8,
		msg:     "yaml: invalid trailing UTF-8 octet",
	}, {
		name:    "a control character",
		file:    "a.yaml",
		content: "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\x07\n",
		line:    4,
		msg:     "yaml: control characters are not allowed",
	}, {
		name:    "bad item in a nested List",
		file:    "list.yaml",
		content: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: Namespace\n",
		line:    1,
		msg:     "items[0].items[0]: Namespace: missing metadata.name",
	}, {
		name:    "the first error in input order wins",
		file:    "a.yaml",
		content: saA + "---\nkind: ServiceAccount\nmetadata: {name: b}\n---\napiVersion: v1\nmetadata: {name: c}\n",
		line:    7,
		msg:     "missing apiVersion",
	}, {
		name:    "JSON syntax error",
		file:    "a.json",
		content: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}` + "\n{\n  \"apiVersion\": \"v1\",\n  \"kind\": Namespace\n}\n",
		line:    4,
		msg:     "invalid character 'N' looking for beginning of value",
	}, {
		name:    "JSON value cut short",
		file:    "a.json",
		content: "\n\n  {\"apiVersion\": \"v1\",\n \"kind\": \"Namespace\"\n",
		line:    3,
		msg:     "unexpected EOF",
	}, {
		name:    "JSON field of the wrong type",
		file:    "a.json",
		content: "\n{\"apiVersion\": \"v1\", \"kind\": \"ServiceAccount\", \"metadata\": {\"name\": 5}}",
		line:    2,
		msg:     "ServiceAccount: json: cannot unmarshal number into Go struct field objectMeta.metadata.name of type string",
	}, {
		name:    "JSON type that is not a string",
		file:    "a.json",
		content: `{"apiVersion": "v1", "kind": 5}`,
		line:    1,
		msg:     "json: cannot unmarshal number into Go struct field header.kind of type string",
	}, {
		name:    "JSON bad item in a List",
		file:    "a.json",
		content: `{"apiVersion": "v1", "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}, {"apiVersion": "v1"}], "kind": "List"}`,
		line:    1,
		msg:     "items[1]: missing kind",
	}, {
		name:    "JSON array",
		file:    "a.json",
		content: `[{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}]`,
		line:    1,
		msg:     "expected an object, got array",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, _, err := LoadFS(t.Context(), mapFS(map[string]string{tt.file: tt.content}), []string{tt.file}, LoadOptions{})
			var de *DocumentError
			if !errors.As(err, &de) {
				t.Fatalf("LoadFS error=%v, want a *DocumentError", err)
			}
			if objs != nil {
				t.Errorf("LoadFS returned objects with an error")
			}
			if de.File != tt.file || de.Line != tt.line || de.Err.Error() != tt.msg {
				t.Errorf("error = %q at %s:%d\nwant  %q at %s:%d", de.Err, de.File, de.Line, tt.msg, tt.file, tt.line)
			}
			if got, want := err.Error(), tt.file+":"+itoa(tt.line)+": "+tt.msg; got != want {
				t.Errorf("Error()=%q, want %q", got, want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
