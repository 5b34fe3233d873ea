package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

const (
	diffBase = "testdata/scan/diff/base"
	diffPR   = "testdata/scan/diff/pr"
)

// diffJSON runs kiem diff with --format json and decodes its report.
func diffJSON(t *testing.T, args ...string) (diffReport, result) {
	t.Helper()
	r := kiem(t, "", append([]string{"diff", "--format", "json"}, args...)...)
	if r.code == 2 {
		t.Fatalf("diff %v: code 2, stderr %q", args, r.err)
	}
	var rep diffReport
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatalf("diff %v: %v\n%s", args, err, r.out)
	}
	return rep, r
}

// grants lists a subject's gained or lost permissions as "verbs resources ns binding role".
func grants(rep diffReport, subject graph.ObjectRef, gained bool) []string {
	var out []string
	for _, sd := range rep.Subjects {
		if sd.Subject != subject {
			continue
		}
		perms := sd.Lost
		if gained {
			perms = sd.Gained
		}
		for _, p := range perms {
			out = append(out, strings.Join(p.Rule.Verbs, ",")+" "+strings.Join(p.Rule.Resources, ",")+" "+p.Namespace+" "+
				p.Binding.String()+" "+p.Role.String())
		}
	}
	return out
}

// TestDiffAddsBinding diffs a base branch against a pull request that binds the deployer to pod creation in
// prod, both ways: adding the binding is a gained grant and a new risky finding; removing it a lost grant and a
// resolved finding.
func TestDiffAddsBinding(t *testing.T) {
	deployer := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "ci", Name: "deployer"}
	grant := "create pods prod RoleBinding/prod/deployers ClusterRole/pod-launcher"

	rep, r := diffJSON(t, diffBase, diffPR)
	if r.code != 1 || !strings.Contains(r.err, "risky at or above high") {
		t.Fatalf("adding the binding: code %d, stderr %q; want 1", r.code, r.err)
	}
	// The files differ in path only for everything but the new binding: only the binding changed.
	if len(rep.Objects) != 1 || rep.Objects[0].Op != graph.OpAdd || rep.Objects[0].Ref.String() != "RoleBinding/prod/deployers" ||
		rep.Objects[0].Location != diffPR+"/rbac.yaml:45" {
		t.Fatalf("objects %+v, want the RoleBinding added at %s/rbac.yaml:45", rep.Objects, diffPR)
	}
	if got := grants(rep, deployer, true); !slices.Equal(got, []string{grant}) {
		t.Errorf("deployer gains %q, want %q", got, grant)
	}
	if len(rep.Subjects) != 1 || rep.Summary.Gained != 1 || rep.Summary.Lost != 0 {
		t.Errorf("subjects %+v summary %+v, want only the deployer's one grant", rep.Subjects, rep.Summary)
	}
	fd := findFinding(rep.Findings.New, "KIEM-CIS-5.1.4", &deployer, nil)
	if fd == nil || fd.Status != queries.StatusRisky || fd.Severity != queries.SeverityCritical || fd.Namespace != "prod" {
		t.Fatalf("new findings %+v lack the deployer's critical pod creation in prod", rep.Findings.New)
	}
	if findFinding(rep.Findings.Resolved, "KIEM-CIS-5.1.4", nil, nil) != nil || rep.Summary.Failing == 0 || rep.Summary.FailOn != "high" {
		t.Errorf("resolved %+v summary %+v", rep.Findings.Resolved, rep.Summary)
	}

	rep, r = diffJSON(t, diffPR, diffBase)
	if r.code != 0 {
		t.Fatalf("removing the binding: code %d, stderr %q; want 0", r.code, r.err)
	}
	if len(rep.Objects) != 1 || rep.Objects[0].Op != graph.OpDelete || rep.Objects[0].Location != diffPR+"/rbac.yaml:45" {
		t.Errorf("objects %+v, want the RoleBinding deleted (where it was read)", rep.Objects)
	}
	if got := grants(rep, deployer, false); !slices.Equal(got, []string{grant}) {
		t.Errorf("deployer loses %q, want %q", got, grant)
	}
	if got := grants(rep, deployer, true); len(got) != 0 {
		t.Errorf("deployer gains %q, want nothing", got)
	}
	if fd := findFinding(rep.Findings.Resolved, "KIEM-CIS-5.1.4", &deployer, nil); fd == nil {
		t.Errorf("resolved findings %+v lack the deployer's pod creation", rep.Findings.Resolved)
	}
	if findFinding(rep.Findings.New, "KIEM-CIS-5.1.4", nil, nil) != nil || rep.Summary.Failing != 0 {
		t.Errorf("new %+v summary %+v", rep.Findings.New, rep.Summary)
	}
}

func TestDiffTable(t *testing.T) {
	r := kiem(t, "", "diff", diffBase, diffPR)
	for _, want := range []string{
		"objects (1 changed):\n  + RoleBinding prod/deployers (" + diffPR + "/rbac.yaml:45)\n",
		"permissions (1 gained, 0 lost, by 1 subject(s)):\n" +
			"  + ServiceAccount ci/deployer gains create pods in namespace prod via RoleBinding prod/deployers → ClusterRole pod-launcher rule 0 (" + diffPR + "/rbac.yaml:45)\n",
		"new findings:\n  SEVERITY",
		"  critical  KIEM-CIS-5.1.4",
		"resolved findings:",
		"risky at or above high",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("table lacks %q:\n%s", want, r.out)
		}
	}
	r = kiem(t, "", "diff", diffPR, diffBase)
	if !strings.Contains(r.out, "  - ServiceAccount ci/deployer loses create pods in namespace prod via RoleBinding prod/deployers → ClusterRole pod-launcher rule 0") {
		t.Errorf("reverse table:\n%s", r.out)
	}
	r = kiem(t, "", "diff", diffBase+"/apps.yaml", diffPR+"/apps.yaml")
	if r.code != 0 || !strings.HasPrefix(r.out, "no object changes\n\nno permission changes\n") || !strings.Contains(r.out, "new findings: none\n") {
		t.Errorf("identical files: code %d\n%s", r.code, r.out)
	}
}

func TestDiffFailOn(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"default high", nil, 1},
		{"critical", []string{"--fail-on", "critical"}, 1},
		{"none", []string{"--fail-on", "none"}, 0},
		{"only a medium finding", []string{"--rule", "KIEM-HYG-017"}, 0},
		{"only a medium finding, failing at medium", []string{"--rule", "KIEM-HYG-017", "--fail-on", "medium"}, 1},
		{"suppressed findings never fail", []string{"--rule", "KIEM-CIS-5.1.4", "--suppressions", suppressions}, 0},
		{"removing adds no risky finding above info", []string{"--fail-on", "low", "--old", diffPR, "--new", diffBase}, 0},
		{"removing leaves an unused role and ServiceAccount (info)", []string{"--fail-on", "info", "--old", diffPR, "--new", diffBase}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, "--old") {
				args = append([]string{diffBase, diffPR}, args...)
			}
			if r := kiem(t, "", append([]string{"diff"}, args...)...); r.code != tt.code {
				t.Fatalf("code %d, want %d; stderr %q", r.code, tt.code, r.err)
			}
		})
	}
}

// TestDiffChangedSeverity lifts and lowers Pod Security on prod: the deployer's pod creation stays the same
// finding but changes severity, which fails the build only when it rises to the threshold.
func TestDiffChangedSeverity(t *testing.T) {
	enforced := filepath.Join(t.TempDir(), "prod-enforced.yaml")
	doc := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n  labels: {pod-security.kubernetes.io/enforce: restricted}\n"
	if err := os.WriteFile(enforced, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	deployer := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "ci", Name: "deployer"}
	changed := func(rep diffReport) *findingChange {
		for i, c := range rep.Findings.Changed {
			if c.After.Rule == "KIEM-CIS-5.1.4" && sameRef(c.After.Subject, &deployer) {
				return &rep.Findings.Changed[i]
			}
		}
		return nil
	}
	// Enforcing: critical becomes high; nothing new is risky at critical.
	rep, r := diffJSON(t, "--old", diffPR, "--new", diffPR, "--new", enforced, "--fail-on", "critical")
	c := changed(rep)
	if r.code != 0 || c == nil || c.Before.Severity != queries.SeverityCritical || c.After.Severity != queries.SeverityHigh {
		t.Fatalf("enforcing: code %d, change %+v; want critical -> high and code 0", r.code, c)
	}
	if len(rep.Objects) != 1 || rep.Objects[0].Op != graph.OpUpdate || rep.Objects[0].Ref.String() != "Namespace/prod" {
		t.Errorf("objects %+v, want Namespace prod updated", rep.Objects)
	}
	// Lifting it: high becomes critical, which fails at critical.
	rep, r = diffJSON(t, "--old", diffPR, "--old", enforced, "--new", diffPR, "--fail-on", "critical")
	c = changed(rep)
	if r.code != 1 || c == nil || c.After.Severity != queries.SeverityCritical || rep.Summary.Failing != 1 {
		t.Fatalf("lifting: code %d, change %+v, summary %+v; want high -> critical failing the build", r.code, c, rep.Summary)
	}
	r = kiem(t, "", "diff", "--old", diffPR, "--old", enforced, "--new", diffPR)
	_, section, _ := strings.Cut(r.out, "changed findings:\n")
	row := ""
	for _, line := range strings.Split(section, "\n") {
		if strings.Contains(line, "KIEM-CIS-5.1.4") {
			row = strings.Join(strings.Fields(line)[:7], " ")
		}
	}
	if !strings.HasPrefix(section, "  BEFORE") || row != "high risky critical risky KIEM-CIS-5.1.4 ServiceAccount ci/deployer" {
		t.Errorf("table of a changed finding (row %q):\n%s", row, r.out)
	}
}

func TestDiffErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		errs []string
	}{
		{"one snapshot", []string{diffBase}, []string{"give two snapshots"}},
		{"three snapshots", []string{diffBase, diffPR, diffPR}, []string{"give two snapshots"}},
		{"old without new", []string{"--old", diffBase}, []string{"--old and --new go together"}},
		{"arguments and --old", []string{"--old", diffBase, "--new", diffPR, diffPR}, []string{"not both"}},
		{"cluster and --old", []string{"--kubeconfig", "x", "--old", diffBase, "--new", diffPR}, []string{"exclude the cluster form"}},
		{"cluster without manifests", []string{"--kubeconfig", "x"}, []string{"MANIFESTS"}},
		{"unreadable kubeconfig", []string{"--kubeconfig", "testdata/scan/no-kubeconfig", diffPR}, []string{"kubeconfig"}},
		{"malformed new", []string{diffBase, "testdata/scan/malformed"}, []string{"new: load snapshot: testdata/scan/malformed/rbac.yaml:15:"}},
		{"malformed old", []string{"testdata/scan/malformed", diffPR}, []string{"old: load snapshot: testdata/scan/malformed/rbac.yaml:15:"}},
		{"bad pack", []string{diffBase, diffPR, "--packs", "testdata/scan/badpacks"}, []string{"testdata/scan/badpacks/team.yaml:10:"}},
		{"bad format", []string{diffBase, diffPR, "--format", "sarif"}, []string{`unknown format "sarif"`}},
		{"bad fail-on", []string{diffBase, diffPR, "--fail-on", "always"}, []string{"--fail-on"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kiem(t, "", append([]string{"diff"}, tt.args...)...)
			if r.code != 2 || r.out != "" {
				t.Fatalf("code %d stdout %q, want 2 and nothing written; stderr %q", r.code, r.out, r.err)
			}
			for _, want := range tt.errs {
				if !strings.Contains(r.err, want) {
					t.Errorf("stderr %q lacks %q", r.err, want)
				}
			}
		})
	}
}

// TestHelpIsComplete checks that the help of scan and diff documents every flag, the exit codes and examples.
func TestHelpIsComplete(t *testing.T) {
	for _, cmd := range []string{"scan", "diff"} {
		r := kiem(t, "", cmd, "--help")
		if r.code != 0 {
			t.Fatalf("%s --help: code %d", cmd, r.code)
		}
		for _, want := range []string{"Exit codes: 0", "1 ", "2 an error", "Examples:", "--fail-on", "--packs", "--suppressions", "--pack ",
			"--rule", "--format", "--groups-file", "--default-namespace"} {
			if !strings.Contains(r.out, want) {
				t.Errorf("%s --help lacks %q", cmd, want)
			}
		}
	}
	r := kiem(t, "", "diff", "--help")
	for _, want := range []string{"--kubeconfig", "--context", "--cluster", "--old", "--new", "--timeout"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("diff --help lacks %q", want)
		}
	}
	r = kiem(t, "", "scan", "--help")
	for _, want := range []string{"--min-severity", "--show-expected", "-v, --explain", "-o, --output-file", "sarif"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("scan --help lacks %q", want)
		}
	}
}
