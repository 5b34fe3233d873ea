package indexer

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// summary lists loaded objects as "Kind/ns/name@origin", in the order of graph.Objects' fields.
func summary(objs *graph.Objects) []string {
	var out []string
	add := func(ref graph.ObjectRef, origin string) { out = append(out, ref.String()+"@"+origin) }
	for _, o := range objs.Namespaces {
		add(o.Ref(), o.Origin)
	}
	for _, o := range objs.ServiceAccounts {
		add(o.Ref(), o.Origin)
	}
	for _, o := range slices.Concat(objs.Roles, objs.ClusterRoles) {
		add(o.Ref(), o.Origin)
	}
	for _, o := range slices.Concat(objs.RoleBindings, objs.ClusterRoleBindings) {
		add(o.Ref(), o.Origin)
	}
	for _, o := range objs.Pods {
		add(o.Ref(), o.Origin)
	}
	return out
}

// mapFS builds an in-memory file system from name → content.
func mapFS(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return fsys
}

func TestLoadKubeadm(t *testing.T) {
	objs, stats, err := LoadFS(t.Context(), fixtures.FS, []string{fixtures.KubeadmV133}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Counted in the file: grep -c '^  kind: <Kind>$' kubeadm-v1.33.yaml (each item's own kind, two spaces in).
	want := map[graph.Kind]int{
		graph.KindNamespace: 4, graph.KindServiceAccount: 7, graph.KindPod: 4, graph.KindRole: 11,
		graph.KindClusterRole: 70, graph.KindRoleBinding: 12, graph.KindClusterRoleBinding: 56,
	}
	if diff := cmp.Diff(want, stats.Objects); diff != "" {
		t.Errorf("Stats.Objects (-want +got):\n%s", diff)
	}
	if got, want := objs.Count(), 164; got != want {
		t.Errorf("Count()=%d, want %d", got, want)
	}
	if stats.Files != 1 || stats.Documents != 1 || len(stats.Skipped) != 0 || len(stats.Duplicates) != 0 {
		t.Errorf("Stats=%+v, want 1 file, 1 document (the List), nothing skipped or duplicated", stats)
	}
	// The List starts at line 6, after the header comment; every item carries the List's position.
	for _, o := range objs.ClusterRoles {
		if o.Origin != fixtures.KubeadmV133+":6" {
			t.Fatalf("ClusterRole %s Origin=%q, want %q", o.Name, o.Origin, fixtures.KubeadmV133+":6")
		}
	}
	admin := findRole(t, objs.ClusterRoles, "admin")
	if admin.AggregationRule == nil || len(admin.AggregationRule.ClusterRoleSelectors) != 1 || len(admin.Rules) == 0 {
		t.Errorf("ClusterRole admin: AggregationRule=%+v, %d rules; want the aggregation rule and the filled rules",
			admin.AggregationRule, len(admin.Rules))
	}
	if got, want := admin.Created.String(), "2026-11-22 12:15:46 +0000 UTC"; got != want {
		t.Errorf("ClusterRole admin Created=%s, want %s", got, want)
	}
}

func findRole(t *testing.T, roles []graph.Role, name string) graph.Role {
	t.Helper()
	for _, r := range roles {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("role %s not loaded", name)
	return graph.Role{}
}

func TestLoadRealWorld(t *testing.T) {
	// From internal/fixtures/data/real-world/README.md: NS, SA, Role, CR, RB, CRB, Deploy, DS, STS.
	table := map[string][9]int{
		"argo-cd.yaml":                 {0, 7, 6, 3, 6, 3, 6, 0, 1},
		"ingress-nginx.yaml":           {1, 2, 2, 2, 2, 2, 1, 0, 0},
		"kube-prometheus.yaml":         {1, 8, 4, 8, 5, 7, 5, 1, 0},
		"metrics-server.yaml":          {0, 1, 0, 2, 1, 2, 1, 0, 0},
		"kyverno.yaml":                 {1, 4, 4, 16, 4, 7, 4, 0, 0},
		"flux2.yaml":                   {1, 7, 0, 3, 0, 2, 0, 0, 0},
		"kube-state-metrics.yaml":      {0, 1, 0, 1, 0, 1, 1, 0, 0},
		"gatekeeper.yaml":              {1, 1, 1, 1, 1, 1, 2, 0, 0},
		"kubernetes-dashboard.yaml":    {1, 1, 1, 1, 1, 1, 2, 0, 0},
		"tekton-pipelines.yaml":        {2, 4, 6, 7, 8, 5, 4, 0, 0},
		"external-dns.yaml":            {0, 1, 0, 1, 0, 1, 1, 0, 0},
		"calico.yaml":                  {0, 3, 0, 4, 0, 4, 1, 1, 0},
		"calico-tigera-operator.yaml":  {1, 1, 0, 2, 1, 1, 1, 0, 0},
		"cluster-autoscaler-aws.yaml":  {0, 1, 1, 1, 1, 1, 1, 0, 0},
		"vertical-pod-autoscaler.yaml": {0, 3, 2, 9, 2, 9, 3, 0, 0},
	}
	entries, err := fs.ReadDir(fixtures.FS, fixtures.RealWorldDir)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		if path.Ext(e.Name()) != ".yaml" {
			continue
		}
		seen++
		t.Run(e.Name(), func(t *testing.T) {
			c, ok := table[e.Name()]
			if !ok {
				t.Fatalf("no expected counts for %s", e.Name())
			}
			ns := fixtures.InstallNamespace(e.Name())
			objs, stats, err := LoadFS(t.Context(), fixtures.FS, []string{path.Join(fixtures.RealWorldDir, e.Name())},
				LoadOptions{DefaultNamespace: ns})
			if err != nil {
				t.Fatal(err)
			}
			want := map[graph.Kind]int{}
			for i, k := range []graph.Kind{graph.KindNamespace, graph.KindServiceAccount, graph.KindRole,
				graph.KindClusterRole, graph.KindRoleBinding, graph.KindClusterRoleBinding} {
				if c[i] > 0 {
					want[k] = c[i]
				}
			}
			// Each workload loads as the pod of its template (workload.go).
			if pods := c[6] + c[7] + c[8]; pods > 0 {
				want[graph.KindPod] = pods
			}
			if diff := cmp.Diff(want, stats.Objects); diff != "" {
				t.Errorf("Stats.Objects (-want +got):\n%s", diff)
			}
			if len(stats.Skipped) != 0 {
				t.Errorf("Stats.Skipped=%v, want nothing skipped", stats.Skipped)
			}
			if len(stats.Duplicates) != 0 {
				t.Errorf("Duplicates=%q, want none", stats.Duplicates)
			}
			for _, sa := range objs.ServiceAccounts {
				if sa.Namespace == "" || (ns != "" && sa.Namespace != ns) {
					t.Errorf("ServiceAccount %s in namespace %q, want %q", sa.Name, sa.Namespace, cmpOr(ns, "its own"))
				}
			}
		})
	}
	if seen != len(table) {
		t.Errorf("found %d real-world files, want %d", seen, len(table))
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestLoadFormatsAgree loads the kubeadm fixture as YAML (its items cut apart), as one JSON List, and as
// multi-document YAML, and checks that every way gives the same objects.
func TestLoadFormatsAgree(t *testing.T) {
	data, err := fs.ReadFile(fixtures.FS, fixtures.KubeadmV133)
	if err != nil {
		t.Fatal(err)
	}
	jsonList, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []any `json:"items"`
	}
	if err := yaml.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	var multi strings.Builder
	for _, item := range list.Items {
		y, err := yaml.Marshal(item)
		if err != nil {
			t.Fatal(err)
		}
		multi.WriteString("---\n")
		multi.Write(y)
	}
	fsys := mapFS(map[string]string{"list.yaml": string(data), "list.json": string(jsonList), "multi.yaml": multi.String()})
	load := func(name string) *graph.Objects {
		objs, _, err := LoadFS(t.Context(), fsys, []string{name}, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Origins differ by construction: drop them.
		for _, m := range metas(objs) {
			m.Origin = ""
		}
		return objs
	}
	want := load("list.yaml")
	for _, name := range []string{"list.json", "multi.yaml"} {
		if diff := cmp.Diff(want, load(name)); diff != "" {
			t.Errorf("%s differs from list.yaml (-yaml +%s):\n%s", name, name, diff)
		}
	}
}

// metas returns the Meta of every object, to be edited in place.
func metas(objs *graph.Objects) []*graph.Meta {
	var out []*graph.Meta
	for i := range objs.Namespaces {
		out = append(out, &objs.Namespaces[i].Meta)
	}
	for i := range objs.ServiceAccounts {
		out = append(out, &objs.ServiceAccounts[i].Meta)
	}
	for _, roles := range [][]graph.Role{objs.Roles, objs.ClusterRoles} {
		for i := range roles {
			out = append(out, &roles[i].Meta)
		}
	}
	for _, bindings := range [][]graph.Binding{objs.RoleBindings, objs.ClusterRoleBindings} {
		for i := range bindings {
			out = append(out, &bindings[i].Meta)
		}
	}
	for i := range objs.Pods {
		out = append(out, &objs.Pods[i].Meta)
	}
	return out
}

func TestLoadWalk(t *testing.T) {
	sa := func(name string) string {
		return "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: " + name + ", namespace: ns}\n"
	}
	dir := t.TempDir()
	files := map[string]string{
		"b.yaml":           sa("b"),
		"a/z.yml":          sa("az"),
		"a/y.json":         `{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "ay", "namespace": "ns"}}`,
		"a/notes.txt":      sa("txt"),
		"a/README.md":      "# not yaml: ---",
		".git/x.yaml":      sa("hidden"),
		"a/.cache/x.yaml":  sa("hidden2"),
		"c.yaml.orig":      sa("orig"),
		"explicit.txt":     sa("explicit"),
		"0-first.yaml":     sa("first"),
		"a/b/deeper.yaml":  sa("deeper"),
		"a/b/deeper2.yaml": "",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A link to a file is read; a link to a directory is not followed.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "x.yaml"), []byte(sa("linked")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x.yaml"), filepath.Join(dir, "l.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "ldir")); err != nil {
		t.Fatal(err)
	}
	t.Run("os", func(t *testing.T) {
		objs, stats, err := Load(t.Context(), []string{dir, filepath.Join(dir, "explicit.txt")}, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Lexical order within each directory, as filepath.WalkDir gives it.
		want := []string{
			"ServiceAccount/ns/first@" + filepath.Join(dir, "0-first.yaml") + ":1",
			"ServiceAccount/ns/deeper@" + filepath.Join(dir, "a", "b", "deeper.yaml") + ":1",
			"ServiceAccount/ns/ay@" + filepath.Join(dir, "a", "y.json") + ":1",
			"ServiceAccount/ns/az@" + filepath.Join(dir, "a", "z.yml") + ":1",
			"ServiceAccount/ns/b@" + filepath.Join(dir, "b.yaml") + ":1",
			"ServiceAccount/ns/linked@" + filepath.Join(dir, "l.yaml") + ":1",
			"ServiceAccount/ns/explicit@" + filepath.Join(dir, "explicit.txt") + ":1",
		}
		if diff := cmp.Diff(want, summary(objs)); diff != "" {
			t.Errorf("objects (-want +got):\n%s", diff)
		}
		if got, want := stats.Files, 8; got != want {
			t.Errorf("Stats.Files=%d, want %d (the empty deeper2.yaml counts)", got, want)
		}
	})
	t.Run("fs", func(t *testing.T) {
		objs, _, err := LoadFS(t.Context(), os.DirFS(dir), []string{"a"}, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"ServiceAccount/ns/deeper@a/b/deeper.yaml:1", "ServiceAccount/ns/ay@a/y.json:1",
			"ServiceAccount/ns/az@a/z.yml:1"}
		if diff := cmp.Diff(want, summary(objs)); diff != "" {
			t.Errorf("objects (-want +got):\n%s", diff)
		}
	})
	t.Run("missing", func(t *testing.T) {
		objs, _, err := Load(t.Context(), []string{dir, filepath.Join(dir, "nope.yaml")}, LoadOptions{})
		if !errors.Is(err, fs.ErrNotExist) || objs != nil {
			t.Errorf("Load(missing)=%v, %v; want nil, an fs.ErrNotExist", objs != nil, err)
		}
	})
}

func TestLoadDuplicates(t *testing.T) {
	role := func(verb string) string {
		return "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: ns}\n" +
			"rules: [{apiGroups: [''], resources: [pods], verbs: [" + verb + "]}]\n"
	}
	fsys := mapFS(map[string]string{
		"1.yaml": role("get") + "---\n" + role("list"),
		"2.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: other, namespace: ns}\n---\n" + role("watch"),
	})
	objs, stats, err := LoadFS(t.Context(), fsys, []string{"1.yaml", "2.yaml"}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Roles) != 1 || objs.Roles[0].Rules[0].Verbs[0] != "watch" || objs.Roles[0].Origin != "2.yaml:5" {
		t.Errorf("Roles=%+v, want the one from 2.yaml:5 (verb watch)", objs.Roles)
	}
	want := []string{"Role/ns/r at 1.yaml:6 replaces 1.yaml:1", "Role/ns/r at 2.yaml:5 replaces 1.yaml:6"}
	if diff := cmp.Diff(want, stats.Duplicates); diff != "" {
		t.Errorf("Duplicates (-want +got):\n%s", diff)
	}
	if got, want := stats.Objects, (map[graph.Kind]int{graph.KindRole: 1, graph.KindServiceAccount: 1}); !cmp.Equal(got, want) {
		t.Errorf("Objects=%v, want %v", got, want)
	}
}

func TestLoadCancel(t *testing.T) {
	sa := []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n")
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		objs, _, err := LoadFS(ctx, fstest.MapFS{"a.yaml": {Data: sa}}, []string{"a.yaml"}, LoadOptions{})
		if !errors.Is(err, context.Canceled) || objs != nil {
			t.Errorf("LoadFS=%v, %v; want nil, context.Canceled", objs != nil, err)
		}
	})
	t.Run("during", func(t *testing.T) {
		// The load is cancelled when the third of five files is opened, while earlier ones are in flight.
		ctx, cancel := context.WithCancel(t.Context())
		fsys := cancelFS{FS: fstest.MapFS{}, at: "c.yaml", cancel: cancel}
		for _, name := range []string{"a.yaml", "b.yaml", "c.yaml", "d.yaml", "e.yaml"} {
			fsys.FS.(fstest.MapFS)[name] = &fstest.MapFile{Data: sa}
		}
		objs, _, err := LoadFS(ctx, fsys, []string{"."}, LoadOptions{})
		if !errors.Is(err, context.Canceled) || objs != nil {
			t.Errorf("LoadFS=%v, %v; want nil, context.Canceled", objs != nil, err)
		}
	})
}

// cancelFS calls cancel when the file named at is opened.
type cancelFS struct {
	fs.FS
	at     string
	cancel func()
}

func (c cancelFS) Open(name string) (fs.File, error) {
	if name == c.at {
		c.cancel()
	}
	return c.FS.Open(name)
}

func TestLoadNodes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "nodes.yaml")
	doc := "apiVersion: v1\nkind: Node\nmetadata: {name: worker-1, labels: {kubernetes.io/os: linux}}\nstatus: {capacity: {cpu: \"4\"}}\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, stats, err := Load(context.Background(), []string{file}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Nodes) != 1 || objs.Nodes[0].Name != "worker-1" || objs.Nodes[0].Labels["kubernetes.io/os"] != "linux" || stats.Objects[graph.KindNode] != 1 {
		t.Fatalf("Load = %+v, stats %+v; want node worker-1 with its labels", objs.Nodes, stats.Objects)
	}
}
