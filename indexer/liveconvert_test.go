package indexer

import (
	"io/fs"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// TestConvertLiveMatchesLoad converts the objects of the kubeadm fixture twice, as the snapshot loader reads the
// file and as the live indexer gets them (decoded by client-go, slimmed, converted), and expects the same graph
// objects: a graph loaded from `kubectl get -o yaml` output and then reconciled against the same cluster must
// record no changes. The one intended difference: live pods carry no annotations (slim drops them).
func TestConvertLiveMatchesLoad(t *testing.T) {
	data, err := fs.ReadFile(fixtures.FS, fixtures.KubeadmV133)
	if err != nil {
		t.Fatal(err)
	}
	loaded, _, err := LoadFS(t.Context(), mapFS(map[string]string{"f.yaml": string(data)}), []string{"f.yaml"}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[graph.ObjectRef]graph.Object)
	loaded.Each(func(o graph.Object) bool {
		want[o.Ref()] = o
		return true
	})
	for _, m := range metas(loaded) {
		m.Origin = ""
	}
	for i := range loaded.Pods {
		loaded.Pods[i].Annotations = nil
	}

	var list struct {
		Items []any `json:"items"`
	}
	if err := yaml.Unmarshal(data, &list); err != nil {
		t.Fatal(err)
	}
	decoder := scheme.Codecs.UniversalDeserializer()
	seen := 0
	for i, item := range list.Items {
		j, err := yaml.Marshal(item)
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := decoder.Decode(j, nil, nil)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		got, err := convertLive(slimmed(obj))
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		w, ok := want[got.Ref()]
		if !ok {
			t.Errorf("%s: not loaded from the file", got.Ref())
			continue
		}
		seen++
		if !sameObject(got, w) {
			t.Errorf("%s: live and file conversions differ (-file +live):\n%s", got.Ref(), cmp.Diff(w, got))
		}
	}
	if seen != len(want) || seen < 150 {
		t.Errorf("compared %d objects of %d loaded", seen, len(want))
	}
}

func TestSameObject(t *testing.T) {
	base := func() *graph.Role {
		o, _ := convertLive(apiRole("team", "r", "get"))
		return o.(*graph.Role)
	}
	with := func(f func(r *graph.Role)) *graph.Role {
		r := base()
		f(r)
		return r
	}
	tests := []struct {
		name string
		a, b graph.Object
		want bool
	}{
		{"both absent", nil, nil, true},
		{"one absent", base(), nil, false},
		{"equal", base(), base(), true},
		{"resourceVersion only", base(), with(func(r *graph.Role) { r.ResourceVersion = "99" }), true},
		{"nil and empty labels", base(), with(func(r *graph.Role) { r.Labels = map[string]string{} }), true},
		{"local and UTC creation time", base(),
			with(func(r *graph.Role) { r.Created = r.Created.In(time.FixedZone("X", 3600)) }), true},
		{"annotation", base(), with(func(r *graph.Role) { r.Annotations = map[string]string{"a": "b"} }), false},
		{"label", base(), with(func(r *graph.Role) { r.Labels = map[string]string{"a": "b"} }), false},
		{"rules", base(), with(func(r *graph.Role) { r.Rules = nil }), false},
		{"uid (recreated)", base(), with(func(r *graph.Role) { r.UID = "other" }), false},
		{"other object", base(), with(func(r *graph.Role) { r.Name = "other" }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameObject(tt.a, tt.b); got != tt.want {
				t.Errorf("sameObject() = %v, want %v", got, tt.want)
			}
			if got := sameObject(tt.b, tt.a); got != tt.want {
				t.Errorf("sameObject(swapped) = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConvertLiveCreationTime(t *testing.T) {
	local := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 7200))
	o, err := convertLive(&metav1.PartialObjectMetadata{})
	if err == nil {
		t.Errorf("convertLive(%T) = %v, want an error", o, o)
	}
	r := apiRole("team", "r")
	r.CreationTimestamp = metav1.NewTime(local)
	got, _ := convertLive(r)
	if c := got.(*graph.Role).Created; !c.Equal(local.Truncate(time.Second)) || c.Location() != time.UTC {
		t.Errorf("Created = %v, want %v in UTC", c, local.Truncate(time.Second))
	}
}
