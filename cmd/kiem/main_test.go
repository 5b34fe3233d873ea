package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type result struct {
	code     int
	out, err string
}

func kiem(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func TestCanI(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		out      string // prefix of stdout
		errHas   string
		outHas   string
		outLacks string
	}{
		{"yes", []string{"can-i", "list", "secrets", "-n", "kube-system", "--as", "system:serviceaccount:kube-system:namespace-controller"}, 0, "yes\n", "", "", ""},
		{"no", []string{"can-i", "list", "secrets", "-n", "kube-system", "--as", "system:serviceaccount:kube-system:coredns"}, 1, "no\n", "", "", ""},
		{"short name and group", []string{"can-i", "list", "deploy", "-n", "argocd", "--as", "system:serviceaccount:argocd:argocd-application-controller"}, 0, "yes\n", "", "", ""},
		{"why names the path", []string{"can-i", "get", "pods", "-n", "kube-system", "--as", "system:serviceaccount:kube-system:namespace-controller", "--why"}, 0, "yes\n", "",
			`ClusterRoleBinding "system:controller:namespace-controller" of ClusterRole "system:controller:namespace-controller" to ServiceAccount "namespace-controller/kube-system"`, ""},
		{"masters", []string{"can-i", "delete", "nodes", "--as", "root", "--as-group", "system:masters", "--why"}, 0, "yes\n", "not namespace scoped", "superuser group system:masters", ""},
		{"non-resource url", []string{"can-i", "get", "/healthz", "--as", "system:anonymous"}, 0, "yes\n", "", "", ""},
		{"quiet", []string{"can-i", "list", "secrets", "--as", "nobody", "-q"}, 1, "", "", "", "no"},
		{"missing as", []string{"can-i", "get", "pods"}, 2, "", "--as USER is required", "", ""},
		{"one argument", []string{"can-i", "get", "--as", "x"}, 2, "", "two arguments", "", ""},
		{"subresource with url", []string{"can-i", "get", "/x", "--subresource", "log", "--as", "x"}, 2, "", "--subresource can not be used", "", ""},
		{"unknown verb warns", []string{"can-i", "frobnicate", "pods", "--as", "x"}, 1, "no\n", "verb 'frobnicate' is not a known verb", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kiem(t, "", append(tt.args, "--demo")...)
			if r.code != tt.code || !strings.HasPrefix(r.out, tt.out) {
				t.Fatalf("code %d, stdout %q, stderr %q; want code %d, stdout starting %q", r.code, r.out, r.err, tt.code, tt.out)
			}
			if tt.errHas != "" && !strings.Contains(r.err, tt.errHas) {
				t.Fatalf("stderr %q lacks %q", r.err, tt.errHas)
			}
			if tt.outHas != "" && !strings.Contains(r.out, tt.outHas) {
				t.Fatalf("stdout %q lacks %q", r.out, tt.outHas)
			}
			if tt.outLacks != "" && strings.Contains(r.out, tt.outLacks) {
				t.Fatalf("stdout %q has %q", r.out, tt.outLacks)
			}
		})
	}
}

func TestCanINamespaceQuirkAndAggregation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "objs.yaml")
	doc := `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: nodes-reader}
rules: [{verbs: [get], apiGroups: [""], resources: [nodes]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: quirk, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nodes-reader}
subjects: [{kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view}
aggregationRule: {clusterRoleSelectors: [{matchLabels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: widgets-view, labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}}
rules: [{verbs: [get, list], apiGroups: [example.com], resources: [widgets]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewers, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: Group, name: devs}]
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		has  string
	}{
		{"namespace default reaches a RoleBinding for nodes", []string{"get", "nodes", "--as", "alice"}, 0, "not namespace scoped"},
		{"-A sends no namespace", []string{"get", "nodes", "--as", "alice", "-A"}, 1, ""},
		{"aggregated from files", []string{"list", "widgets.example.com", "-n", "team", "--as", "bob", "--as-group", "devs", "--why"}, 0, "aggregated from ClusterRole/widgets-view"},
		{"custom resource group from rules", []string{"list", "widgets", "-n", "team", "--as", "bob", "--as-group", "devs"}, 0, "only in API group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kiem(t, "", append([]string{"can-i"}, append(tt.args, "--snapshot", file)...)...)
			if r.code != tt.code || !strings.Contains(r.out+r.err, tt.has) {
				t.Fatalf("code %d stdout %q stderr %q; want code %d and %q", r.code, r.out, r.err, tt.code, tt.has)
			}
		})
	}
}

func TestCanIBatch(t *testing.T) {
	in := strings.Join([]string{
		`{"user":"system:serviceaccount:kube-system:namespace-controller","groups":[],"verb":"list","resource":"secrets","namespace":"kube-system","extra":1}`,
		`{"user":"alice","groups":["system:masters"],"verb":"delete","resource":"nodes"}`,
		`not json`,
		`{"user":"system:serviceaccount:kube-system:coredns","verb":"list","resource":"secrets","namespace":"kube-system"}`,
		`{"user":"x","groups":["system:unauthenticated"],"verb":"get","nonResourceURL":"/healthz"}`,
		`{"verb":"get","resource":"pods"}`,
	}, "\n") + "\n"
	r := kiem(t, in, "can-i", "--batch", "-", "--demo")
	if r.code != 2 {
		t.Fatalf("code = %d, want 2 for a malformed line; stderr %q", r.code, r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d output lines, want 6:\n%s", len(lines), r.out)
	}
	var got []string
	for _, l := range lines {
		var a struct {
			Allowed   bool              `json:"allowed"`
			Superuser bool              `json:"superuser"`
			Reasons   []json.RawMessage `json:"reasons"`
			Error     string            `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		s := "no"
		switch {
		case a.Error != "":
			s = "error"
		case a.Superuser:
			s = "superuser"
		case a.Allowed:
			s = "yes"
		}
		if a.Reasons == nil {
			t.Fatalf("line %q: reasons must be a list", l)
		}
		got = append(got, s)
	}
	if diff := cmp.Diff([]string{"yes", "superuser", "error", "no", "yes", "error"}, got); diff != "" {
		t.Fatalf("answers (-want +got):\n%s", diff)
	}
}

func TestResolveResource(t *testing.T) {
	none := func(string) []string { return nil }
	one := func(r string) []string {
		if r == "widgets" {
			return []string{"example.com"}
		}
		return nil
	}
	tests := []struct {
		arg             string
		groupsOf        func(string) []string
		group, resource string
		known, ns, note bool
	}{
		{"pods", none, "", "pods", true, true, false},
		{"po", none, "", "pods", true, true, false},
		{"Pod", none, "", "pods", true, true, false},
		{"deploy", none, "apps", "deployments", true, true, false},
		{"deployments.apps", none, "apps", "deployments", true, true, false},
		{"deployments.v1.apps", none, "apps", "deployments", true, true, false},
		{"sa", none, "", "serviceaccounts", true, true, false},
		{"rb", none, "rbac.authorization.k8s.io", "rolebindings", true, true, false},
		{"nodes", none, "", "nodes", true, false, false},
		{"ev", none, "", "events", true, true, false},
		{"*", none, "", "*", false, false, false},
		{"widgets.example.com", none, "example.com", "widgets", false, false, false},
		{"widgets", one, "example.com", "widgets", false, false, true},
		{"widgets", none, "", "widgets", false, false, true},
	}
	for _, tt := range tests {
		r := resolveResource(tt.arg, tt.groupsOf)
		if r.group != tt.group || r.resource != tt.resource || r.known != tt.known || r.namespaced != tt.ns || (r.note != "") != tt.note {
			t.Errorf("resolveResource(%q) = %+v, want group %q resource %q known %v namespaced %v note %v",
				tt.arg, r, tt.group, tt.resource, tt.known, tt.ns, tt.note)
		}
	}
}

func TestWhoCanAndPermissions(t *testing.T) {
	r := kiem(t, "", "who-can", "get", "secrets", "-n", "kube-system", "--demo", "-o", "json")
	if r.code != 0 {
		t.Fatalf("who-can: code %d, stderr %q", r.code, r.err)
	}
	var rows []whoCanRow
	if err := json.Unmarshal([]byte(r.out), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 2 || rows[0].Subject.Name != "system:masters" || !rows[0].Superuser {
		t.Fatalf("who-can rows = %+v, want system:masters first", rows)
	}
	found := false
	for _, row := range rows {
		found = found || row.Subject.Kind == "ServiceAccount" && row.Subject.Name == "namespace-controller"
	}
	if !found {
		t.Fatal("who-can get secrets in kube-system lacks the namespace-controller ServiceAccount")
	}

	r = kiem(t, "", "who-can", "create", "pods", "--subresource", "exec", "-A", "--demo")
	if r.code != 0 || !strings.Contains(r.out, "WHERE") {
		t.Fatalf("who-can -A: code %d, stdout %q, stderr %q", r.code, r.out, r.err)
	}

	r = kiem(t, "", "permissions", "--sa", "kube-system/coredns", "--demo", "-o", "json")
	if r.code != 0 {
		t.Fatalf("permissions: code %d, stderr %q", r.code, r.err)
	}
	var ans permissionsAnswer
	if err := json.Unmarshal([]byte(r.out), &ans); err != nil {
		t.Fatal(err)
	}
	if len(ans.Permissions) == 0 || ans.Identity.User != "system:serviceaccount:kube-system:coredns" {
		t.Fatalf("permissions = %+v, want coredns' grants", ans)
	}
	for _, bad := range [][]string{
		{"permissions", "--demo"},
		{"permissions", "--sa", "nons", "--demo"},
		{"permissions", "--as-group", "g", "--demo"},
		{"permissions", "--sa", "a/b", "--as", "x", "--demo"},
		{"who-can", "get", "pods", "-o", "xml", "--demo"},
	} {
		if r := kiem(t, "", bad...); r.code != 2 || r.err == "" {
			t.Errorf("%v: code %d stderr %q, want 2 with a message", bad, r.code, r.err)
		}
	}
}

func TestSnapshotSourceErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	doc := "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: b}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: b}\nrules: [{verbs: [get], resources: pods\n"
	if err := os.WriteFile(bad, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kiem(t, "", "can-i", "get", "pods", "--as", "x", "--snapshot", bad)
	if r.code != 2 || !strings.Contains(r.err, bad+":") {
		t.Fatalf("code %d stderr %q, want 2 naming %s and a line", r.code, r.err, bad)
	}
	if r := kiem(t, "", "can-i", "get", "pods", "--as", "x"); r.code != 2 || !strings.Contains(r.err, "--snapshot") {
		t.Fatalf("no source: code %d stderr %q", r.code, r.err)
	}
	if r := kiem(t, "", "can-i", "get", "pods", "--as", "x", "--demo", "--snapshot", bad); r.code != 2 {
		t.Fatalf("--demo with --snapshot: code %d", r.code)
	}
}

func TestGenerateRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.yaml")
	if r := kiem(t, "", "generate", "--size", "S", "-o", file); r.code != 0 {
		t.Fatalf("generate: code %d stderr %q", r.code, r.err)
	}
	r := kiem(t, "", "can-i", "list", "secrets", "-n", "kube-system", "--as", "system:serviceaccount:kube-system:namespace-controller", "--snapshot", file)
	if r.code != 0 || r.out != "yes\n" {
		t.Fatalf("can-i on generated S: code %d stdout %q stderr %q", r.code, r.out, r.err)
	}
	if r := kiem(t, "", "generate", "--size", "M"); r.code != 2 {
		t.Fatalf("generate --size M: code %d, want 2", r.code)
	}
}

func TestGroupsFile(t *testing.T) {
	groups := filepath.Join(t.TempDir(), "groups.yaml")
	if err := os.WriteFile(groups, []byte("frank@example.com: [\"oidc:contractors\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exec := []string{"can-i", "create", "pods", "--subresource", "exec", "-n", "payments", "--as", "frank@example.com"}
	if r := kiem(t, "", append(exec, "--demo")...); r.code != 1 {
		t.Fatalf("without the groups file: code %d %q, want no", r.code, r.out)
	}
	if r := kiem(t, "", append(exec, "--demo", "--groups-file", groups)...); r.code != 0 {
		t.Fatalf("with the groups file: code %d %q %q, want yes through oidc:contractors", r.code, r.out, r.err)
	}
	// --as-group overrides the declaration, as an explicit identity should.
	if r := kiem(t, "", append(exec, "--demo", "--groups-file", groups, "--as-group", "nobody")...); r.code != 1 {
		t.Fatalf("with --as-group: code %d, want no", r.code)
	}
	r := kiem(t, "", "permissions", "--as", "frank@example.com", "--demo", "--groups-file", groups, "-o", "json")
	var ans permissionsAnswer
	if r.code != 0 || json.Unmarshal([]byte(r.out), &ans) != nil || !slices.Contains(ans.Identity.Groups, "oidc:contractors") {
		t.Fatalf("permissions: code %d, identity %+v, stderr %q", r.code, ans.Identity, r.err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("- not a map\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := kiem(t, "", append(exec, "--demo", "--groups-file", bad)...); r.code != 2 || !strings.Contains(r.err, bad) {
		t.Fatalf("bad groups file: code %d stderr %q, want 2 naming the file", r.code, r.err)
	}
}
