package oracle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// realWorldDir holds the RBAC of widely used projects' install manifests, one multi-document file per project.
const realWorldDir = "../../internal/fixtures/data/real-world"

// TestCanRealWorldPolicies installs each real-world project over the kubeadm cluster's policy and compares Can
// with the oracle. The installs add aggregated ClusterRoles of their own (kyverno) and roles labelled
// aggregate-to-view/edit/admin that widen the built-in ones (flux, tekton, kyverno, metrics-server), so both
// sides recompute aggregation: the oracle with the controller simulation, which TestAggregateMatchesController
// checks against the live controller's output.
func TestCanRealWorldPolicies(t *testing.T) {
	cfg := loadConfig(t, 1, 3_000)
	files, err := filepath.Glob(filepath.Join(filepath.FromSlash(realWorldDir), "*.yaml"))
	if err != nil || len(files) < 10 {
		t.Fatalf("real-world fixtures: %d files, %v", len(files), err)
	}
	var total tally
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			install, err := ReadDocuments(data, fixtures.InstallNamespace(name))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			p := readKubeadm(t)
			p.Merge(install)
			o, err := New(p, Options{Aggregate: true})
			if err != nil {
				t.Fatal(err)
			}
			snap := graph.NewSnapshot(p.GraphObjects())
			for _, seed := range cfg.seeds {
				v := PolicyRequests(install)
				v.Verbs = append(v.Verbs, "get", "list", "watch") // the built-in roles' verbs, to reach view/edit
				gen := NewQueryGen(NewRand(seed), o.Policy(), v)
				var tl tally
				for i := range cfg.queries {
					q := gen.Next()
					if i < len(v.ServiceAccounts) { // every ServiceAccount of the install asks at least once
						sa := v.ServiceAccounts[i]
						q.ID = graph.ServiceAccountIdentity(sa[0], sa[1])
					}
					res := compareCan(t.Context(), t, o, q, snap.Can(q.ID, q.Action))
					tl.add(t, res, func() string {
						return name + " over kubeadm-v1.33.yaml, seed " + mustJSON(seed) + "\n" +
							Repro(p, o.Policy(), q, res.kiem, res.oracle, reasonBindings(res.kiem.Reasons))
					})
				}
				if tl.allowed == 0 || tl.denied == 0 {
					t.Errorf("need both allowed and denied answers: %s", &tl)
				}
				total.merge(tl)
			}
		})
	}
	t.Logf("%d real-world installs: %s", len(files), &total)
}
