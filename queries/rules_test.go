package queries

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/manifests"
)

// TestRuleFixtures runs every rule of the embedded packs on its own fixtures, testdata/rules/<RULE-ID>/:
//
//   - positive.yaml must give at least one risky finding of the rule, and one for every "# expect: REF" line
//     (REF as graph.ObjectRef.String() prints it, matched against the finding's subject or object); an
//     "# expect-severity: S" line pins the severity of those;
//   - negative.yaml must give no risky finding of the rule; it holds the near misses and the traps RISKS.md
//     lists for the rule (each explained in a comment).
//
// A "# with: kubeadm" line lays the fixture over the kubeadm v1.33 objects (the bootstrap policy), for rules that
// need the built-in roles.
func TestRuleFixtures(t *testing.T) {
	packs, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(packs, Options{Baseline: DefaultBaseline()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		for _, r := range p.Rules {
			t.Run(r.ID, func(t *testing.T) {
				dir := filepath.Join("testdata", "rules", r.ID)
				for _, kind := range []string{"positive", "negative"} {
					file := filepath.Join(dir, kind+".yaml")
					hdr := readHeader(t, file)
					fs := evaluateFixture(t, e, file, hdr)
					var mine []Finding
					for _, f := range fs {
						if f.Rule == r.ID && f.Status == StatusRisky {
							mine = append(mine, f)
						}
					}
					if kind == "negative" {
						for _, f := range mine {
							t.Errorf("%s: unexpected finding: %s", file, f.Message)
						}
						continue
					}
					if len(mine) == 0 {
						t.Errorf("%s: no risky %s finding", file, r.ID)
					}
					for _, want := range hdr["expect"] {
						i := slices.IndexFunc(mine, func(f Finding) bool {
							return (f.Subject != nil && f.Subject.String() == want) || (f.Object != nil && f.Object.String() == want)
						})
						if i < 0 {
							t.Errorf("%s: no finding about %s; got %s", file, want, messages(mine))
							continue
						}
						if sev := hdr["expect-severity"]; len(sev) > 0 && mine[i].Severity.String() != sev[0] {
							t.Errorf("%s: finding about %s has severity %s, want %s", file, want, mine[i].Severity, sev[0])
						}
						if len(mine[i].Evidence) == 0 && r.Target != TargetBinding && r.Target != TargetRole {
							t.Errorf("%s: finding about %s has no evidence", file, want)
						}
					}
				}
			})
		}
	}
}

func messages(fs []Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Message)
	}
	return "[" + strings.Join(out, "; ") + "]"
}

// readHeader reads the "# key: value" lines at the top of a fixture.
func readHeader(t *testing.T, file string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("every rule needs %s: %v", file, err)
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "#") {
			if line == "" || line == "---" {
				continue
			}
			break
		}
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), ":")
		if ok && (k == "expect" || k == "expect-severity" || k == "with") {
			out[k] = append(out[k], strings.TrimSpace(v))
		}
	}
	return out
}

func evaluateFixture(t *testing.T, e *Engine, file string, hdr map[string][]string) []Finding {
	t.Helper()
	ctx := context.Background()
	objs, err := manifests.Load(ctx, nil, []string{file}, "")
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if slices.Contains(hdr["with"], "kubeadm") {
		base, err := manifests.Load(ctx, fixtures.FS, []string{fixtures.KubeadmV133, fixtures.KubeadmAddons}, "")
		if err != nil {
			t.Fatal(err)
		}
		base.Append(objs)
		objs = base
	}
	res, err := e.Evaluate(ctx, graph.NewSnapshot(objs))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return res.Findings()
}
