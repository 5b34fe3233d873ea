package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
)

func TestWriteRoundTrip(t *testing.T) {
	base := kubeadm(t)
	inputs := []struct {
		name string
		objs *graph.Objects
	}{
		{"kubeadm", base},
		{"S on kubeadm", Generate(base, S(), 1)},
		{"no base", Generate(nil, Spec{
			Namespaces: 20, ServiceAccounts: 200, Roles: 100, RoleBindings: 400, ClusterRoles: 40,
			ClusterRoleBindings: 40, Users: 60, Groups: 15, Pods: 600,
		}, 2)},
	}
	for _, in := range inputs {
		for _, format := range []string{"yaml", "json"} {
			t.Run(in.name+"/"+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := Write(&buf, in.objs, format); err != nil {
					t.Fatalf("Write() = %v", err)
				}
				if diff := cmp.Diff(in.objs, readList(t, buf.Bytes()), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("read back mismatch (-written +read):\n%s", diff)
				}
			})
		}
	}
}

// TestWriteList reads the output as untyped data, as kubectl and other tools do, and checks the List's shape.
func TestWriteList(t *testing.T) {
	objs := Generate(kubeadm(t), S(), 4)
	wantKinds := []string{"Namespace", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Role", "RoleBinding", "Pod"}
	var docs []map[string]any
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, objs, format); err != nil {
				t.Fatalf("Write() = %v", err)
			}
			var doc map[string]any
			if err := yaml.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			docs = append(docs, doc)
			if doc["apiVersion"] != "v1" || doc["kind"] != "List" {
				t.Errorf("document is %v %v, want v1 List", doc["apiVersion"], doc["kind"])
			}
			items, _ := doc["items"].([]any)
			if got, want := len(items), objs.Count(); got != want {
				t.Fatalf("%d items, want %d", got, want)
			}
			kind := 0
			for i, it := range items {
				m, _ := it.(map[string]any)
				meta, _ := m["metadata"].(map[string]any)
				for kind < len(wantKinds) && m["kind"] != wantKinds[kind] {
					kind++
				}
				if kind == len(wantKinds) || m["apiVersion"] == "" || meta["name"] == "" {
					t.Fatalf("item %d out of order or incomplete: %v %v %v", i, m["apiVersion"], m["kind"], meta["name"])
				}
				if s, ok := m["spec"].(map[string]any); ok && m["kind"] == "Pod" && s["containers"] != nil {
					t.Errorf("pod %v has containers", meta["name"])
				}
			}
		})
	}
	if len(docs) == 2 {
		if diff := cmp.Diff(docs[0], docs[1]); diff != "" {
			t.Errorf("yaml and json documents differ (-yaml +json):\n%s", diff)
		}
	}
}

func TestWriteEmpty(t *testing.T) {
	for _, objs := range []*graph.Objects{nil, {}} {
		for _, format := range []string{"yaml", "json"} {
			var buf bytes.Buffer
			if err := Write(&buf, objs, format); err != nil {
				t.Fatalf("Write(%v, %s) = %v", objs, format, err)
			}
			if got := readList(t, buf.Bytes()).Count(); got != 0 {
				t.Errorf("Write(%v, %s) has %d items, want 0", objs, format, got)
			}
		}
	}
}

func TestWriteErrors(t *testing.T) {
	objs := Generate(nil, mid(), 3)
	if err := Write(&bytes.Buffer{}, objs, "xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("Write(xml) = %v, want an unknown format error", err)
	}
	errFull := errors.New("disk full")
	for _, after := range []int{0, 10, 100_000} {
		for _, format := range []string{"yaml", "json"} {
			w := &failingWriter{left: after, err: errFull}
			if err := Write(w, objs, format); !errors.Is(err, errFull) {
				t.Errorf("Write(%s) to a writer failing after %d bytes = %v, want %v", format, after, err, errFull)
			}
		}
	}
}

// failingWriter accepts left bytes, then fails.
type failingWriter struct {
	left int
	err  error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		return 0, w.err
	}
	w.left -= len(p)
	return len(p), nil
}

// trickyStrings are values that YAML readers take for something else when written plain.
func trickyStrings() []string {
	return []string{
		"", "y", "Y", "yes", "No", "on", "OFF", "true", "False", "null", "NULL", "~", "0", "123", "-1", "1e3", "0x1F",
		"0o17", "017", "1_000", "1:20", "190:20:30", ".inf", "-.inf", ".NaN", ".5", "+1", "2001-12-14",
		"2001-12-14t21:59:43.10-05:00", "-", "-a", "- a", "? a", ":a", "a:", "a: b", "a:b", "a #b", "#a", "a#b",
		"[a]", "{a}", "a,b", "*a", "&a", "!a", "!!str", "|", ">", "'q'", `"q"`, `\`, "%a", "@a", "`a", "=",
		"<<", " lead", "trail ", "two\nlines", "tab\there", "crlf\r\n", "\x00nul", "\x7fdel", "\u0085nel",
		"\u00a0nbsp", "\u2028ls", "\ufeffbom", "\uffff", "üñíçødé", "日本語", "😀", "system:serviceaccount:a:b",
		"https://idp.example.com#alice", "arn:aws:iam::123:role/x", "cn=a,ou=b", "a b", "a\u00e9", "<a&b>",
		strings.Repeat("k", 1100), strings.Repeat("é", 600), strings.Repeat("\x01", 200),
	}
}

func TestWriteTrickyStrings(t *testing.T) {
	ann := map[string]string{}
	for i, s := range trickyStrings() {
		ann[s] = trickyStrings()[len(trickyStrings())-1-i]
	}
	objs := &graph.Objects{Namespaces: []graph.Namespace{{Meta: graph.Meta{
		Name:        "tricky",
		Labels:      map[string]string{"true": "yes", "a:b": "1.0"},
		Annotations: ann,
		Created:     time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}}}}
	for _, format := range []string{"yaml", "json"} {
		var buf bytes.Buffer
		if err := Write(&buf, objs, format); err != nil {
			t.Fatalf("Write(%s) = %v", format, err)
		}
		if diff := cmp.Diff(objs, readList(t, buf.Bytes())); diff != "" {
			t.Errorf("%s read back mismatch (-written +read):\n%s", format, diff)
		}
	}
}

// FuzzTranscode checks that the YAML transcoder keeps any JSON value: strings as keys, values and list entries,
// nested maps and lists, numbers, booleans and nulls.
func FuzzTranscode(f *testing.F) {
	for _, s := range trickyStrings() {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		in := map[string]any{
			a: []any{b, map[string]any{b: a, "n": nil}, []any{}, []any{[]any{a, 1.5}, true}},
			b: map[string]any{"m": map[string]any{}, a: []any{map[string]any{"k": b, b: []any{a}}}},
		}
		src, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		y, err := appendYAMLItem(nil, src)
		if err != nil {
			t.Fatalf("appendYAMLItem(%s) = %v", src, err)
		}
		var want any
		if err := json.Unmarshal(src, &want); err != nil {
			t.Fatal(err)
		}
		var got []any
		if err := yaml.Unmarshal(y, &got); err != nil {
			t.Fatalf("decode %q: %v", y, err)
		}
		if len(got) != 1 {
			t.Fatalf("decode %q: %d entries, want 1", y, len(got))
		}
		if diff := cmp.Diff(want, got[0]); diff != "" {
			t.Errorf("transcoded %s to %q; read back mismatch (-want +got):\n%s", src, y, diff)
		}
	})
}

// BenchmarkWriteL measures writing the L workload as a YAML and a JSON List.
func BenchmarkWriteL(b *testing.B) {
	objs := Generate(kubeadm(b), L(), 1)
	for _, format := range []string{"yaml", "json"} {
		b.Run(format, func(b *testing.B) {
			var w countingWriter
			for b.Loop() {
				w.n = 0
				if err := Write(&w, objs, format); err != nil {
					b.Fatal(err)
				}
			}
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(objs.Count())*float64(b.N)/secs, "objects/s")
			b.ReportMetric(float64(w.n)*float64(b.N)/secs/1e6, "MB/s")
			b.ReportMetric(float64(w.n)/1e6, "MB")
		})
	}
}

// countingWriter discards what it is given and counts the bytes.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
