package indexer

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
)

// FuzzLoad feeds the snapshot loader arbitrary files, read as YAML or as JSON (the seed corpus in
// testdata/fuzz/FuzzLoad holds real manifests: fixtures, the demo's timeline, kubectl Lists, and malformed
// documents). Whatever the input:
//   - loading never panics, and ends with objects or a *DocumentError naming the file and a line of it, never
//     both (nothing is half-loaded);
//   - cutting YAML Lists into items to decode them in parallel gives exactly what decoding them whole gives,
//     objects or error;
//   - what loads round-trips: written as a kind: List (what `kiem export` writes), YAML and JSON, it loads back
//     to the same objects.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, namespace: ns}\n"), false)
	f.Add([]byte(`{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}`), true)
	f.Fuzz(checkLoad)
}

// checkLoad is FuzzLoad's property, on one input.
func checkLoad(t *testing.T, data []byte, asJSON bool) {
	name := "in.yaml"
	if asJSON {
		name = "in.json"
	}
	fsys := fstest.MapFS{name: &fstest.MapFile{Data: data}}
	ctx := context.Background()
	objs, _, err := LoadFS(ctx, fsys, []string{name}, LoadOptions{})
	whole, wholeErr := loadWhole(ctx, fsys, name)
	switch {
	case (err == nil) != (wholeErr == nil) || (err != nil && err.Error() != wholeErr.Error()):
		t.Fatalf("Lists cut apart: %v; decoded whole: %v", err, wholeErr)
	case err == nil:
		if diff := cmp.Diff(whole, objs); diff != "" {
			t.Fatalf("Lists cut apart and decoded whole differ (-whole +cut):\n%s", diff)
		}
	}
	if err != nil {
		checkDocumentError(t, err, name, data)
		if objs != nil {
			t.Fatalf("objects returned with the error %v", err)
		}
		return
	}
	for _, format := range []string{"yaml", "json"} {
		var buf bytes.Buffer
		if err := workload.Write(&buf, objs, format); err != nil {
			t.Fatalf("write as %s: %v", format, err)
		}
		out := "out." + format
		back, _, err := LoadFS(ctx, fstest.MapFS{out: &fstest.MapFile{Data: buf.Bytes()}}, []string{out}, LoadOptions{})
		if err != nil {
			t.Fatalf("what loaded does not load back from %s: %v\n%s", format, err, buf.Bytes())
		}
		if diff := cmp.Diff(written(objs), written(back), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip through %s (-loaded +read back):\n%s\n%s", format, diff, buf.Bytes())
		}
	}
}

// loadWhole loads a file without cutting YAML Lists apart.
func loadWhole(ctx context.Context, fsys fstest.MapFS, name string) (*graph.Objects, error) {
	stats := Stats{Objects: map[graph.Kind]int{}, Skipped: map[string]int{}}
	conv := &converter{defaultNamespace: "default"}
	m := &merger{conv: conv, stats: &stats, seen: map[graph.ObjectRef]slot{}}
	if _, err := decodeFiles(ctx, ioFS{fsys}, []string{name}, conv, m, false); err != nil {
		return nil, err
	}
	return &m.objs, nil
}

// checkDocumentError fails unless err is a *DocumentError on file name at a line data has, rendered
// "name:line: message".
func checkDocumentError(t *testing.T, err error, name string, data []byte) {
	t.Helper()
	var de *DocumentError
	if !errors.As(err, &de) {
		t.Fatalf("error %q (%T) is not a *DocumentError", err, err)
	}
	lines := bytes.Count(data, []byte("\n")) + 1
	if de.File != name || de.Line < 1 || de.Line > lines {
		t.Fatalf("error %q names %s line %d; the input is %s, %d lines", err, de.File, de.Line, name, lines)
	}
	if prefix := name + ":" + strconv.Itoa(de.Line) + ": "; !strings.HasPrefix(err.Error(), prefix) || len(err.Error()) == len(prefix) {
		t.Fatalf("error %q does not read %q followed by a message", err, prefix)
	}
}

// written is what a kind: List holds of loaded objects: every kind but nodes, users and secrets, without the
// origins (file:line), which differ by construction.
func written(objs *graph.Objects) *graph.Objects {
	out := *objs
	out.Nodes, out.Users, out.Secrets = nil, nil, nil
	out.Namespaces = clearOrigins(out.Namespaces, func(o *graph.Namespace) *graph.Meta { return &o.Meta })
	out.ServiceAccounts = clearOrigins(out.ServiceAccounts, func(o *graph.ServiceAccount) *graph.Meta { return &o.Meta })
	out.Roles = clearOrigins(out.Roles, func(o *graph.Role) *graph.Meta { return &o.Meta })
	out.ClusterRoles = clearOrigins(out.ClusterRoles, func(o *graph.Role) *graph.Meta { return &o.Meta })
	out.RoleBindings = clearOrigins(out.RoleBindings, func(o *graph.Binding) *graph.Meta { return &o.Meta })
	out.ClusterRoleBindings = clearOrigins(out.ClusterRoleBindings, func(o *graph.Binding) *graph.Meta { return &o.Meta })
	out.Pods = clearOrigins(out.Pods, func(o *graph.Pod) *graph.Meta { return &o.Meta })
	return &out
}

func clearOrigins[T any](objs []T, meta func(*T) *graph.Meta) []T {
	out := make([]T, len(objs))
	copy(out, objs)
	for i := range out {
		meta(&out[i]).Origin = ""
	}
	return out
}
