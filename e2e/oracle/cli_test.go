package oracle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiem-io/kiem/graph"
)

// batchRequest is one input line of `kiem can-i --batch`: the attributes of a SubjectAccessReview.
type batchRequest struct {
	User           string   `json:"user"`
	Groups         []string `json:"groups"`
	Verb           string   `json:"verb"`
	APIGroup       string   `json:"apiGroup"`
	Resource       string   `json:"resource"`
	Subresource    string   `json:"subresource"`
	Namespace      string   `json:"namespace"`
	Name           string   `json:"name"`
	NonResourceURL string   `json:"nonResourceURL"`
}

// batchAnswer is one output line.
type batchAnswer struct {
	Allowed   *bool             `json:"allowed"`
	Superuser bool              `json:"superuser"`
	Reasons   []graph.GrantPath `json:"reasons"`
}

// buildKiem builds cmd/kiem from the main module (two directories up) into a temporary directory.
func buildKiem(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kiem")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/kiem")
	cmd.Dir = filepath.FromSlash("../..")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kiem in the main module: %v\n%s", err, out)
	}
	t.Logf("built kiem in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// TestCLIBatch feeds `kiem can-i --batch - --snapshot FILE` one random world, written as a `kind: List` file, and
// more than 10,000 requests, and compares every answer line with the oracle: allowed and superuser, and for
// callers outside system:masters the grant paths.
func TestCLIBatch(t *testing.T) {
	cfg := loadConfig(t, 1, 12_000)
	bin := buildKiem(t)
	for _, seed := range cfg.seeds {
		w := newWorld(t, seed)
		list, err := w.policy.WriteList()
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "world.yaml")
		if err := os.WriteFile(file, list, 0o600); err != nil {
			t.Fatal(err)
		}
		gen := w.queryGen(3)
		queries := make([]Query, cfg.queries)
		var in bytes.Buffer
		enc := json.NewEncoder(&in)
		for i := range queries {
			q := gen.Next()
			queries[i] = q
			a := q.Action
			if err := enc.Encode(batchRequest{User: q.ID.User, Groups: q.ID.Groups, Verb: a.Verb,
				APIGroup: a.APIGroup, Resource: a.Resource, Subresource: a.Subresource, Namespace: a.Namespace,
				Name: a.Name, NonResourceURL: a.NonResourceURL}); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.CommandContext(t.Context(), bin, "can-i", "--batch", "-", "--snapshot", file)
		cmd.Stdin = &in
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err = cmd.Run()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
			t.Fatalf("kiem can-i --batch: %v\nstderr:\n%s", err, stderr.String())
		}
		elapsed := time.Since(start)

		var tl tally
		sc := bufio.NewScanner(&stdout)
		sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
		for i := 0; sc.Scan(); i++ {
			if i >= len(queries) {
				t.Fatalf("more output lines than the %d requests; line %d: %s", len(queries), i+1, sc.Text())
			}
			var ans batchAnswer
			if err := json.Unmarshal(sc.Bytes(), &ans); err != nil || ans.Allowed == nil {
				t.Fatalf("output line %d is not an answer (%v): %s", i+1, err, sc.Text())
			}
			q := queries[i]
			got := graph.Decision{Allowed: *ans.Allowed, Superuser: ans.Superuser, Reasons: ans.Reasons}
			res := compareCan(t.Context(), t, w.oracle, q, got)
			tl.add(t, res, func() string {
				return w.rerun(t.Name()) + "\nrequest line " + mustJSON(i+1) + "\n" +
					Repro(w.policy, w.oracle.Policy(), q, res.kiem, res.oracle, reasonBindings(res.kiem.Reasons))
			})
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if tl.queries != len(queries) {
			t.Fatalf("%d answers for %d requests; stderr:\n%s", tl.queries, len(queries), stderr.String())
		}
		t.Logf("%s: kiem can-i --batch answered in %v: %s", w.rerun(t.Name()), elapsed.Round(time.Millisecond), &tl)
		if tl.allowed == 0 || tl.denied == 0 {
			t.Errorf("need both allowed and denied answers: %s", &tl)
		}
		if !cfg.custom && tl.queries < 10_000 {
			t.Errorf("only %d requests; the default run must send at least 10,000", tl.queries)
		}
	}
}
