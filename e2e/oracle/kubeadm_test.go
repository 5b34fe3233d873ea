package oracle

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kiem-io/kiem/graph"
)

// kubeadmFile is a `kind: List` a real kube-apiserver v1.33.13 served, with the rules
// kube-controller-manager's aggregation controller filled into admin, edit and view.
const kubeadmFile = "../../internal/fixtures/data/kubeadm-v1.33.yaml"

func readKubeadm(t *testing.T) *Policy {
	t.Helper()
	data, err := os.ReadFile(filepath.FromSlash(kubeadmFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ReadList(data)
	if err != nil {
		t.Fatalf("%s: %v", kubeadmFile, err)
	}
	if len(p.ClusterRoles) < 60 || len(p.ClusterRoleBindings) < 40 || len(p.ServiceAccounts) == 0 {
		t.Fatalf("%s: only %d ClusterRoles, %d ClusterRoleBindings, %d ServiceAccounts", kubeadmFile,
			len(p.ClusterRoles), len(p.ClusterRoleBindings), len(p.ServiceAccounts))
	}
	return p
}

// TestAggregateMatchesController checks the oracle's controller simulation against the real controller's output:
// recomputing the aggregated ClusterRoles of the kubeadm policy from empty rules must give exactly the rules the
// live cluster holds, in the same order.
func TestAggregateMatchesController(t *testing.T) {
	p := readKubeadm(t)
	agg, err := Aggregate(p.ClusterRoles)
	if err != nil {
		t.Fatal(err)
	}
	if len(agg.Unordered) > 0 {
		t.Errorf("rule order never settles for %v", agg.Unordered)
	}
	got := agg.ClusterRoles
	n := 0
	for i, cr := range p.ClusterRoles {
		if cr.AggregationRule == nil {
			continue
		}
		n++
		if len(cr.Rules) == 0 || !equality.Semantic.DeepEqual(got[i].Rules, cr.Rules) {
			t.Errorf("ClusterRole %s: simulation gives %d rules %v,\nlive cluster holds %d rules %v",
				cr.Name, len(got[i].Rules), got[i].Rules, len(cr.Rules), cr.Rules)
		}
	}
	if n < 3 {
		t.Errorf("only %d aggregated ClusterRoles in %s", n, kubeadmFile)
	}
}

// TestCanKubeadmPolicy compares Can with the live authorizer's view of a real cluster's policy: the oracle uses
// the rules as the file holds them (the controller's output), kiem recomputes aggregation from the file. Requests
// are built from the policy's own verbs, resources, URLs, namespaces and subjects, every ServiceAccount and bound
// user and group included.
func TestCanKubeadmPolicy(t *testing.T) {
	cfg := loadConfig(t, 1, 30_000)
	p := readKubeadm(t)
	o, err := New(p, Options{Aggregate: false})
	if err != nil {
		t.Fatal(err)
	}
	snap := graph.NewSnapshot(p.GraphObjects())
	for _, seed := range cfg.seeds {
		v := PolicyRequests(p)
		gen := NewQueryGen(NewRand(seed), o.Policy(), v)
		var queries []Query
		// Every ServiceAccount, bound user and bound group asks at least once.
		for _, sa := range v.ServiceAccounts {
			queries = append(queries, Query{ID: graph.ServiceAccountIdentity(sa[0], sa[1]), Action: gen.Action()})
		}
		for _, u := range v.Users {
			queries = append(queries, Query{ID: graph.ImpersonatedIdentity(u, nil), Action: gen.Action()})
		}
		for _, g := range v.Groups {
			queries = append(queries, Query{ID: graph.Identity{User: "kiem-oracle-probe", Groups: []string{g}},
				Action: gen.Action()})
		}
		for len(queries) < cfg.queries {
			queries = append(queries, gen.Next())
		}
		var tl tally
		for _, q := range queries {
			res := compareCan(t.Context(), t, o, q, snap.Can(q.ID, q.Action))
			tl.add(t, res, func() string {
				return "seed " + mustJSON(seed) + " (rerun: ORACLE_SEED=" + mustJSON(seed) +
					" go test -run TestCanKubeadmPolicy)\n" + Repro(p, o.Policy(), q, res.kiem, res.oracle,
					reasonBindings(res.kiem.Reasons))
			})
		}
		t.Logf("kubeadm policy, seed %d: %d ServiceAccounts, %d users, %d groups; %s", seed,
			len(v.ServiceAccounts), len(v.Users), len(v.Groups), &tl)
		if tl.allowed == 0 || tl.denied == 0 {
			t.Errorf("need both allowed and denied answers: %s", &tl)
		}
		if !cfg.custom && tl.queries < 20_000 {
			t.Errorf("only %d queries; the default run must ask at least 20,000", tl.queries)
		}
	}
}
