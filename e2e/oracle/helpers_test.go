package oracle

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kiem-io/kiem/graph"
)

// runConfig says which worlds a test draws. Environment variables override the defaults:
//
//	ORACLE_SEED=n       run only the world of seed n (what a failure prints)
//	ORACLE_BASE_SEED=n  first seed of the default run (default 1)
//	ORACLE_WORLDS=n     number of worlds
//	ORACLE_QUERIES=n    queries per world (scales every test's sampling)
type runConfig struct {
	seeds   []uint64
	queries int
	// custom is true when any variable changed the run, which lifts the minimum-count assertions.
	custom bool
}

func loadConfig(t *testing.T, worlds, queries int) runConfig {
	t.Helper()
	cfg := runConfig{queries: queries}
	env := func(name string, def uint64) uint64 {
		s, ok := os.LookupEnv(name)
		if !ok {
			return def
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, s, err)
		}
		cfg.custom = true
		return n
	}
	if s, ok := os.LookupEnv("ORACLE_SEED"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ORACLE_SEED=%q: %v", s, err)
		}
		cfg.seeds, cfg.custom = []uint64{n}, true
	} else {
		base, n := env("ORACLE_BASE_SEED", 1), env("ORACLE_WORLDS", uint64(worlds))
		for i := range n {
			cfg.seeds = append(cfg.seeds, base+i)
		}
	}
	cfg.queries = int(env("ORACLE_QUERIES", uint64(queries)))
	return cfg
}

// world is one random policy with both sides built from it.
type world struct {
	seed   uint64
	policy *Policy // as written: aggregated ClusterRoles without their rules
	oracle *Oracle
	snap   *graph.Snapshot
}

func newWorld(t *testing.T, seed uint64) *world {
	t.Helper()
	p := RandomWorld(seed)
	o, err := New(p, Options{Aggregate: true})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	return &world{seed: seed, policy: p, oracle: o, snap: graph.NewSnapshot(p.GraphObjects())}
}

// queryGen returns a generator for the world, seeded apart from the world itself so that a test can draw more
// queries without changing the world.
func (w *world) queryGen(salt uint64) *QueryGen {
	return NewQueryGen(NewRand(w.seed*1_000_003+salt), w.oracle.Policy(), WorldRequests())
}

func (w *world) rerun(test string) string {
	return fmt.Sprintf("seed %d (rerun: ORACLE_SEED=%d go test -run '%s$')", w.seed, w.seed, test)
}

// canResult is the outcome of comparing one query.
type canResult struct {
	allowed, superuser bool
	// problems names each disagreement; empty when kiem agrees with the oracle.
	problems []string
	kiem     graph.Decision
	oracle   oracleAnswer
	// grants are the oracle's grants (none for system:masters members).
	grants []Grant
}

// oracleAnswer is what a repro prints of the oracle's side.
type oracleAnswer struct {
	Allowed bool     `json:"allowed"`
	Reason  string   `json:"reason,omitempty"`
	Grants  []string `json:"grants,omitempty"`
}

// compareCan compares a decision of kiem (already computed, by the library or the CLI) with the oracle: Allowed,
// Superuser, and for identities outside system:masters the exact set of (source, rule index) grants and the rules
// themselves.
func compareCan(ctx context.Context, t *testing.T, o *Oracle, q Query, got graph.Decision) canResult {
	t.Helper()
	want, err := o.Authorize(ctx, q.ID, q.Action)
	if err != nil {
		t.Fatal(err)
	}
	res := canResult{allowed: want.Allowed, superuser: q.ID.InGroup(graph.GroupMasters), kiem: got,
		oracle: oracleAnswer{Allowed: want.Allowed, Reason: want.Reason}}
	if got.Allowed != want.Allowed {
		res.problems = append(res.problems, "allowed")
	}
	if got.Superuser != res.superuser {
		res.problems = append(res.problems, "superuser")
	}
	if res.superuser {
		return res
	}
	grants, err := o.Grants(ctx, q.ID, q.Action)
	if err != nil {
		t.Fatal(err)
	}
	if want.Allowed != (len(grants) > 0) {
		t.Fatalf("oracle disagrees with itself on %s: authorizer %+v, %d grants", mustJSON(q), want, len(grants))
	}
	res.grants = grants
	res.oracle.Grants = GrantKeys(grants)
	if !slices.Equal(o.PathKeys(got.Reasons), res.oracle.Grants) {
		res.problems = append(res.problems, "reasons")
		return res
	}
	byKey := make(map[string]Grant, len(grants))
	for _, g := range grants {
		byKey[g.Key()] = g
	}
	for _, p := range got.Reasons {
		g := byKey[o.pathGrant(p).Key()]
		if p.Rule == nil || !equality.Semantic.DeepEqual(*p.Rule, g.Rule) {
			res.problems = append(res.problems, "rule")
			break
		}
	}
	return res
}

// reasonBindings returns the bindings kiem's reasons cite, for repros.
func reasonBindings(paths []graph.GrantPath) []graph.ObjectRef {
	var refs []graph.ObjectRef
	for _, p := range paths {
		if p.Binding != nil {
			refs = append(refs, *p.Binding)
		}
	}
	return refs
}

// tally counts answers and reports disagreements, printing the first few in full.
type tally struct {
	queries, allowed, superuser, denied, mismatches int
	byProblem                                       map[string]int
}

const maxReported = 3

func (tl *tally) add(t *testing.T, res canResult, repro func() string) {
	t.Helper()
	tl.queries++
	switch {
	case res.superuser:
		tl.superuser++
	case res.allowed:
		tl.allowed++
	default:
		tl.denied++
	}
	if len(res.problems) == 0 {
		return
	}
	tl.mismatches++
	if tl.byProblem == nil {
		tl.byProblem = map[string]int{}
	}
	for _, p := range res.problems {
		tl.byProblem[p]++
	}
	if tl.mismatches <= maxReported {
		t.Errorf("mismatch %v:\n%s", res.problems, repro())
	}
}

func (tl *tally) merge(o tally) {
	tl.queries += o.queries
	tl.allowed += o.allowed
	tl.superuser += o.superuser
	tl.denied += o.denied
	tl.mismatches += o.mismatches
	for k, v := range o.byProblem {
		if tl.byProblem == nil {
			tl.byProblem = map[string]int{}
		}
		tl.byProblem[k] += v
	}
}

func (tl *tally) String() string {
	return fmt.Sprintf("%d queries: %d allowed by RBAC, %d superuser, %d denied; %d mismatches %v",
		tl.queries, tl.allowed, tl.superuser, tl.denied, tl.mismatches, tl.byProblem)
}
