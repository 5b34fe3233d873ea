package indexer

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitYAML(t *testing.T) {
	type doc struct {
		Data       string
		Base, Line int
		Items      int
	}
	tests := []struct {
		name string
		in   string
		want []doc
	}{{
		name: "documents and their lines",
		in:   "# head\na: 1\n---\n\n# c\nb: 2\n--- # x\n---\n   \n---\nitems:\n- c\n",
		want: []doc{
			{Data: "# head\na: 1\n", Base: 1, Line: 2, Items: -1},
			{Data: "\n# c\nb: 2\n", Base: 4, Line: 6, Items: -1},
			{Data: "items:\n- c\n", Base: 11, Line: 11, Items: 0},
		},
	}, {
		name: "no trailing newline, CRLF, byte order mark",
		in:   "\ufeffa: 1\r\n---\r\nkind: List\r\nitems:  \r\n- x",
		want: []doc{
			{Data: "a: 1\r\n", Base: 1, Line: 1, Items: -1},
			{Data: "kind: List\r\nitems:  \r\n- x", Base: 3, Line: 3, Items: 12},
		},
	}, {
		name: "items below the top level is no List",
		in:   "spec:\n  items:\n  - x\n",
		want: []doc{{Data: "spec:\n  items:\n  - x\n", Base: 1, Line: 1, Items: -1}},
	}, {
		name: "nothing",
		in:   "---\n# only comments\n---\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []doc
			err := splitYAML("f", []byte(tt.in), func(d yamlDoc) error {
				got = append(got, doc{Data: string(d.data), Base: d.base, Line: d.line, Items: d.items})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("documents (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("emit error stops", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := splitYAML("f", []byte("a: 1\n---\nb: 2\n"), func(yamlDoc) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("splitYAML=%v after %d documents, want stop after 1", err, n)
		}
	})
}

func TestListItems(t *testing.T) {
	type item struct {
		Data string
		Line int
	}
	tests := []struct {
		name     string
		doc      string
		envelope string
		items    []item
		ok       bool
	}{{
		name:     "kubectl layout",
		doc:      "apiVersion: v1\nitems:\n- a: 1\n  b: 2\n-\n  a: 3\n# c\nkind: List\nmetadata: {}\n",
		envelope: "apiVersion: v1\nkind: List\nmetadata: {}\n",
		items:    []item{{"  a: 1\n  b: 2\n", 2}, {" \n  a: 3\n# c\n", 4}},
		ok:       true,
	}, {
		name:     "indented entries running to the end",
		doc:      "kind: List\nitems:\n\n  - a: 1\n\n  - a: 2\n    b: |\n\n      text\n",
		envelope: "kind: List\n",
		items:    []item{{"    a: 1\n\n", 3}, {"    a: 2\n    b: |\n\n      text\n", 5}},
		ok:       true,
	}, {
		name: "flow sequence",
		doc:  "kind: List\nitems: []\n",
	}, {
		name: "null items",
		doc:  "items:\nkind: List\n",
	}, {
		name: "entry at a smaller indentation",
		doc:  "items:\n  - a: 1\n - a: 2\n",
	}, {
		name: "not a sequence entry at the entries' indentation",
		doc:  "items:\n  - a: 1\n  b: 2\n",
	}, {
		// Between the dash and the content: an error in the List, but alone, dash blanked, go-yaml takes it
		// (FuzzLoad, testdata/fuzz/FuzzLoad/7e6814e07fff4489).
		name: "a line between an entry's dash and its content",
		doc:  "kind: List\nitems:\n- 0: \n 00",
	}, {
		name: "the same after a dash alone on its line",
		doc:  "kind: List\nitems:\n-\n   a: 1\n  b: 2\n",
	}, {
		// It would be in no piece, and go-yaml rejects comments that are not UTF-8
		// (FuzzLoad, testdata/fuzz/FuzzLoad/de2b2fb8452202ff).
		name: "a comment before the first entry",
		doc:  "kind: List\nitems:\n# \xeb\n- a: 1\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off := strings.Index(tt.doc, "items:")
			env, items, dash, ok := listItems([]byte(tt.doc), off)
			if ok != tt.ok {
				t.Fatalf("ok=%v, want %v", ok, tt.ok)
			}
			var got []item
			for _, it := range items {
				got = append(got, item{string(blankDash(it.data, dash)), it.line})
			}
			if diff := cmp.Diff(tt.items, got); diff != "" {
				t.Errorf("items (-want +got):\n%s", diff)
			}
			if got := string(env); got != tt.envelope {
				t.Errorf("envelope=%q, want %q", got, tt.envelope)
			}
		})
	}
}

func TestSplitJSON(t *testing.T) {
	in := `{"a": 1}` + "\n\n  " + `{"b":` + "\n" + `"x\ny"}` + "\n" + `null {"c": [1,` + "\n" + `2]}` + "\n\n"
	// Reads of one byte at a time keep the decoder's buffer at its smallest: lines must not depend on it.
	for _, r := range []io.Reader{strings.NewReader(in), &oneByteReader{s: in}} {
		var got []string
		err := splitJSON("f.json", r, func() error { return nil }, func(d jsonDoc) error {
			got = append(got, string(d.data)+"@"+itoa(d.line))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`{"a": 1}@1`, `{"b":` + "\n" + `"x\ny"}@3`, "null@5", `{"c": [1,` + "\n" + `2]}@5`}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("values (-want +got):\n%s", diff)
		}
	}
}

type oneByteReader struct{ s string }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

func TestSplitJSONReadError(t *testing.T) {
	broken := errors.New("disk on fire")
	err := splitJSON("f.json", io.MultiReader(strings.NewReader(`{"a": `), errReader{broken}), func() error { return nil },
		func(jsonDoc) error { return nil })
	var de *DocumentError
	if !errors.Is(err, broken) || errors.As(err, &de) {
		t.Errorf("splitJSON=%v, want the read error, not a DocumentError", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
