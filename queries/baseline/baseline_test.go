package baseline

import (
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// TestBuiltin checks the embedded data: every file loads, each names its source, and each source holds the
// objects it should (counts per kind, checked by hand against the apiserver's policy and kubeadm's code).
func TestBuiltin(t *testing.T) {
	b, err := Load(embedded, "data")
	if err != nil {
		t.Fatalf("embedded data: %v", err)
	}
	files, err := fs.Glob(embedded, "data/*")
	if err != nil || len(files) != 5 {
		t.Fatalf("data files %v (%v), want 5", files, err)
	}
	for _, f := range files {
		if path.Ext(f) != ".yaml" {
			t.Errorf("%s: not a .yaml file, so Builtin would skip it", f)
		}
	}
	if got, want := b.Sources(), []string{srcCoreDNS, srcProxy, srcKCM, srcKubeadm, srcKubernetes}; !slices.Equal(got, want) {
		t.Errorf("Sources()=%q, want %q", got, want)
	}
	if got, want := Builtin().Sources(), b.Sources(); !slices.Equal(got, want) {
		t.Errorf("Builtin().Sources()=%q, want %q", got, want)
	}
	tests := []struct {
		source string
		counts map[graph.Kind]int
	}{
		{srcKubernetes, map[graph.Kind]int{graph.KindClusterRole: 66, graph.KindClusterRoleBinding: 47, graph.KindRole: 7, graph.KindRoleBinding: 7}},
		{srcKCM, map[graph.Kind]int{graph.KindServiceAccount: 40}},
		{srcKubeadm, map[graph.Kind]int{graph.KindClusterRole: 1, graph.KindClusterRoleBinding: 6, graph.KindRole: 4, graph.KindRoleBinding: 4}},
		{srcProxy, map[graph.Kind]int{graph.KindClusterRoleBinding: 1, graph.KindRole: 1, graph.KindRoleBinding: 1, graph.KindServiceAccount: 1}},
		{srcCoreDNS, map[graph.Kind]int{graph.KindClusterRole: 1, graph.KindClusterRoleBinding: 1, graph.KindServiceAccount: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			got := map[graph.Kind]int{}
			for _, r := range b.Refs(tt.source) {
				got[r.Kind]++
			}
			for _, k := range []graph.Kind{graph.KindClusterRole, graph.KindClusterRoleBinding, graph.KindRole, graph.KindRoleBinding, graph.KindServiceAccount} {
				if got[k] != tt.counts[k] {
					t.Errorf("%d %ss, want %d", got[k], k, tt.counts[k])
				}
			}
		})
	}
	// The embedded objects are Default themselves, and from their own source.
	for _, e := range b.entries {
		if v := b.Object(e.obj); v.Status != Default || v.Source != e.source {
			t.Errorf("%s: %s from %q %v, want default from %q", e.obj.Ref(), v.Status, v.Source, v.Differences, e.source)
		}
	}
	// The default aggregated roles carry what the live controller wrote into the fixture cluster, minus what
	// metrics-server (no platform default) adds.
	live := loadFixture(t, fixtures.KubeadmV133, "")
	for _, name := range []string{"admin", "edit", "view"} {
		ad := b.agg[name]
		if ad == nil {
			t.Fatalf("no default aggregated content for %s", name)
		}
		i := slices.IndexFunc(live.ClusterRoles, func(r graph.Role) bool { return r.Name == name })
		var want []string
		for _, r := range live.ClusterRoles[i].Rules {
			if !slices.Contains(r.APIGroups, "metrics.k8s.io") {
				want = append(want, ruleKey(&r))
			}
		}
		var got []string
		for _, r := range ad.rules {
			got = append(got, ruleKey(&r))
		}
		if !slices.Equal(got, want) || len(got) < 10 {
			t.Errorf("%s: default aggregated rules %v,\nlive controller (without metrics-server) %v", name, got, want)
		}
	}
}

// wantSource says which source created an object of the kubeadm fixtures, from what the objects are (the
// bootstrap policy's are labelled and reconciled; the rest by name, checked against kubeadm's code); "" for
// metrics-server, which a cluster operator installs: neither the apiserver nor kubeadm creates it.
func wantSource(o graph.Object) string {
	ref := o.Ref()
	switch {
	case strings.Contains(ref.Name, "metrics"):
		return ""
	case ref.Kind == graph.KindServiceAccount && ref.Name == "default":
		return srcKCM
	case ref.Name == "kube-proxy", ref.Name == "kubeadm:node-proxier":
		return srcProxy
	case ref.Name == "coredns", ref.Name == "system:coredns":
		return srcCoreDNS
	case strings.HasPrefix(ref.Name, "kubeadm:"):
		return srcKubeadm
	}
	var meta graph.Meta
	switch v := o.(type) {
	case *graph.Role:
		meta = v.Meta
	case *graph.Binding:
		meta = v.Meta
	}
	if meta.Labels["kubernetes.io/bootstrapping"] == "rbac-defaults" && meta.Annotations[autoUpdateAnnotation] == "true" {
		return srcKubernetes
	}
	return "?"
}

var rbacKinds = []graph.Kind{graph.KindClusterRole, graph.KindClusterRoleBinding, graph.KindRole, graph.KindRoleBinding, graph.KindServiceAccount}

// TestFixtureObjects: every RBAC object and ServiceAccount of the kubeadm fixtures that the platform created is
// Default, from the right source; metrics-server's are not; other kinds are NotDefault.
func TestFixtureObjects(t *testing.T) {
	b := Builtin()
	for file, wantDefaults := range map[string]int{fixtures.KubeadmV133: 150, fixtures.KubeadmAddons: 19} {
		t.Run(path.Base(file), func(t *testing.T) {
			snap := graph.NewSnapshot(loadFixture(t, file, ""))
			defaults, others := 0, 0
			for _, k := range rbacKinds {
				snap.Each(k, "", func(o graph.Object) bool {
					want := wantSource(o)
					if want == "?" {
						t.Fatalf("%s: the test does not know its source", o.Ref())
					}
					wantStatus := Default
					if want == "" {
						wantStatus = NotDefault
						others++
					} else {
						defaults++
					}
					if v := b.Object(o); v.Status != wantStatus || v.Source != want || len(v.Differences) > 0 {
						t.Errorf("%s: %s from %q %v, want %s from %q", o.Ref(), v.Status, v.Source, v.Differences, wantStatus, want)
					}
					return true
				})
			}
			if others != 6 || defaults != wantDefaults {
				t.Errorf("%d defaults and %d others, want %d and 6 (metrics-server)", defaults, others, wantDefaults)
			}
			for _, k := range []graph.Kind{graph.KindNamespace, graph.KindPod} {
				snap.Each(k, "", func(o graph.Object) bool {
					if v := b.Object(o); v.Status != NotDefault {
						t.Errorf("%s: %s, want not default", o.Ref(), v.Status)
					}
					return true
				})
			}
		})
	}
}

// TestRealWorldNotDefault: applications are not platform, whatever their names (metrics-server's
// system:aggregated-metrics-reader, kube-prometheus's RoleBindings in kube-system).
func TestRealWorldNotDefault(t *testing.T) {
	b := Builtin()
	entries, err := fs.ReadDir(fixtures.FS, fixtures.RealWorldDir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range entries {
		if path.Ext(e.Name()) != ".yaml" {
			continue
		}
		files++
		t.Run(e.Name(), func(t *testing.T) {
			objs := loadFixture(t, path.Join(fixtures.RealWorldDir, e.Name()), fixtures.InstallNamespace(e.Name()))
			snap := graph.NewSnapshot(objs)
			n := 0
			for _, k := range rbacKinds {
				snap.Each(k, "", func(o graph.Object) bool {
					n++
					if v := b.Object(o); v.Status != NotDefault {
						t.Errorf("%s: %s from %q %v, want not default", o.Ref(), v.Status, v.Source, v.Differences)
					}
					return true
				})
			}
			if n == 0 {
				t.Fatal("no RBAC objects")
			}
		})
	}
	if files != 15 {
		t.Errorf("%d real-world files, want 15", files)
	}
}

// TestConcurrentUse runs Builtin, Object and Path from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	snap := graph.NewSnapshot(loadFixture(t, fixtures.KubeadmV133, ""))
	objs := snap.Objects()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			b := Builtin()
			for i := range objs.ClusterRoleBindings {
				b.Object(&objs.ClusterRoleBindings[i])
			}
			perms, err := snap.EffectivePermissions(t.Context(), graph.Identity{User: "kiem:probe", Groups: []string{"system:nodes"}})
			if err != nil || len(perms) == 0 {
				t.Errorf("EffectivePermissions: %d, %v", len(perms), err)
			}
			for _, p := range perms {
				b.Path(p.GrantPath)
			}
			b.Merge(b).Sources()
		})
	}
	wg.Wait()
}
