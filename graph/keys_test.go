package graph

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestObjectKeyRoundTrip(t *testing.T) {
	for _, ref := range []ObjectRef{
		{KindNamespace, "", "kube-system"},
		{KindRoleBinding, "ns", "a|b"},
		{KindClusterRole, "", "system:controller:x/y"},
		{KindPod, "p|q", "ünï"},
	} {
		k, err := objectKey(ref)
		if err != nil {
			t.Fatalf("objectKey(%s): %v", ref, err)
		}
		if got, err := parseObjectKey(k); err != nil || got != ref {
			t.Errorf("parseObjectKey(objectKey(%s))=%v, %v", ref, got, err)
		}
	}
	for _, ref := range []ObjectRef{{KindPod, "a\x00b", "c"}, {KindPod, "a", ""}, {"", "a", "b"}} {
		if _, err := objectKey(ref); err == nil {
			t.Errorf("objectKey(%q): no error", ref)
		}
	}
	// The key prefix of a namespace never matches a longer namespace that starts the same.
	a, _ := objectKey(ObjectRef{KindPod, "a", "x"})
	ab, _ := objectKey(ObjectRef{KindPod, "ab", "x"})
	nsA := a[:len(a)-len("x")-1]
	if !bytes.HasPrefix(a, nsA) || bytes.HasPrefix(ab, nsA) {
		t.Errorf("namespace prefix %q: matches %q=%v, %q=%v", nsA, a, bytes.HasPrefix(a, nsA), ab, bytes.HasPrefix(ab, nsA))
	}
}

func TestKeysSortNumerically(t *testing.T) {
	ordered := func(name string, keys ...[]byte) {
		t.Helper()
		for i := 1; i < len(keys); i++ {
			if bytes.Compare(keys[i-1], keys[i]) >= 0 {
				t.Errorf("%s: key %d %q not below key %d %q", name, i-1, keys[i-1], i, keys[i])
			}
		}
	}
	ordered("change", changeKey(1, 255), changeKey(1, 256), changeKey(2, 0), changeKey(256, 0), changeKey(1<<40, 3))
	ordered("revision", revisionKey(1), revisionKey(255), revisionKey(256), revisionKey(1<<40))
	ordered("time", timeKey(t0, 9), timeKey(t0.Add(time.Nanosecond), 1), timeKey(t0.Add(time.Hour), 0))

	for _, tc := range []struct {
		rev Revision
		seq int
	}{{0, 0}, {1, 2}, {1 << 60, 1<<32 - 1}} {
		if rev, seq, err := parseChangeKey(changeKey(tc.rev, tc.seq)); err != nil || rev != tc.rev || seq != tc.seq {
			t.Errorf("parseChangeKey(changeKey(%d, %d))=%d, %d, %v", tc.rev, tc.seq, rev, seq, err)
		}
	}
	if rev, err := parseRevisionKey(revisionKey(77)); err != nil || rev != 77 {
		t.Errorf("parseRevisionKey=%d, %v", rev, err)
	}
	if nano, rev, err := parseTimeKey(timeKey(t0, 5)); err != nil || rev != 5 || nano != t0.UnixNano() {
		t.Errorf("parseTimeKey=%d, %d, %v", nano, rev, err)
	}
	if _, _, err := parseTimeKey(timeKey(time.Unix(-5, 0), 1)); err != nil {
		t.Errorf("time key before 1970: %v", err)
	}
	for _, k := range [][]byte{nil, []byte("c|"), revisionKey(1), keyHead} {
		if _, _, err := parseChangeKey(k); err == nil {
			t.Errorf("parseChangeKey(%q): no error", k)
		}
	}
}

// TestChangeValueEncoding checks that the hand-built change values are byte for byte what json.Marshal writes,
// strings that need escaping included.
func TestChangeValueEncoding(t *testing.T) {
	odd := "ä\"q\"<&>\n\\"
	for _, tc := range []struct {
		name   string
		before Object
		after  Object
		source string
	}{
		{"add", nil, ns("a", "k", odd), "informer"},
		{"update", sa("ns", "x", "1"), sa("ns", "x", "2"), odd},
		{"delete", &Role{Kind: KindClusterRole, Meta: Meta{Name: "system:" + odd}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewChange(tc.before, tc.after)
			e, err := encodeChange(0, c)
			if err != nil {
				t.Fatal(err)
			}
			wall := t0.Add(1234 * time.Nanosecond)
			tail, _ := json.Marshal(struct {
				Source string    `json:"source"`
				Wall   time.Time `json:"wall"`
			}{tc.source, wall})
			tail[0] = ','
			got := appendChangeValue(nil, e, tail)
			want, err := json.Marshal(changeValue{Op: c.Op, Ref: c.Ref, Before: e.before, After: e.after, Source: tc.source, Wall: wall})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("appendChangeValue:\n got %s\nwant %s", got, want)
			}
			if rec, err := decodeChange(1, 0, got); err != nil || rec.Ref != c.Ref || rec.Source != tc.source || !rec.Time.Equal(wall) {
				t.Errorf("decodeChange: %+v, %v", rec, err)
			}
		})
	}
}
