package main

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/queries"
)

const (
	planted      = "testdata/scan/planted"
	plantedRBAC  = planted + "/rbac.yaml"
	plantedApps  = planted + "/apps.yaml"
	suppressions = "testdata/scan/suppressions.yaml"
)

// scanJSON runs kiem scan with --format json and decodes its report.
func scanJSON(t *testing.T, args ...string) (scanReport, result) {
	t.Helper()
	r := kiem(t, "", append([]string{"scan", "--format", "json"}, args...)...)
	var rep scanReport
	if r.code == 2 {
		t.Fatalf("scan %v: code 2, stderr %q", args, r.err)
	}
	if err := json.Unmarshal([]byte(r.out), &rep); err != nil {
		t.Fatalf("scan %v: %v\n%s", args, err, r.out)
	}
	return rep, r
}

// docAt returns the YAML document of file that starts at line (1-based), up to the next separator.
func docAt(t *testing.T, file string, line int) string {
	t.Helper()
	return docReader(t)(file, line)
}

// docReader returns docAt reading each file once.
func docReader(t *testing.T) func(file string, line int) string {
	files := map[string][]string{}
	return func(file string, line int) string {
		t.Helper()
		lines, ok := files[file]
		if !ok {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			lines = strings.Split(string(data), "\n")
			files[file] = lines
		}
		if line < 1 || line > len(lines) {
			t.Fatalf("%s has no line %d", file, line)
		}
		var doc []string
		for _, l := range lines[line-1:] {
			if strings.HasPrefix(l, "---") {
				break
			}
			doc = append(doc, l)
		}
		return strings.Join(doc, "\n") + "\n"
	}
}

// splitOrigin splits "file:line".
func splitOrigin(t *testing.T, origin string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(origin, ':')
	n, err := strconv.Atoi(origin[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("location %q is not file:line", origin)
	}
	return origin[:i], n
}

func ref(kind graph.Kind, ns, name string) *graph.ObjectRef {
	return &graph.ObjectRef{Kind: kind, Namespace: ns, Name: name}
}

func sameRef(a, b *graph.ObjectRef) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// findFinding returns the finding of rule about subject and object (nil: any).
func findFinding(findings []queries.Finding, rule string, subject, object *graph.ObjectRef) *queries.Finding {
	for i := range findings {
		fd := &findings[i]
		if fd.Rule == rule && (subject == nil || sameRef(fd.Subject, subject)) && (object == nil || sameRef(fd.Object, object)) {
			return fd
		}
	}
	return nil
}

// TestScanPlanted scans manifests with planted risks: each is found, about the right subject or object, in the
// right namespace, with its severity, at the file and line of the object that makes it.
func TestScanPlanted(t *testing.T) {
	rep, r := scanJSON(t, planted, "--fail-on", "none")
	if r.code != 0 {
		t.Fatalf("--fail-on none: code %d, stderr %q", r.code, r.err)
	}
	tests := []struct {
		rule            string
		subject, object *graph.ObjectRef
		namespace       string
		severity        queries.Severity
		file            string
		doc             []string // what the document at the finding's location holds
	}{
		{"KIEM-CIS-5.1.4", ref(graph.KindServiceAccount, "ci", "deployer"), nil, "prod", queries.SeverityCritical, plantedRBAC,
			[]string{"kind: RoleBinding\n", "  name: deployers\n"}},
		{"KIEM-CIS-5.1.2", ref(graph.KindGroup, "", "auditors"), nil, "", queries.SeverityHigh, plantedRBAC,
			[]string{"kind: ClusterRoleBinding\n", "  name: auditors-list-secrets\n"}},
		{"KIEM-CIS-5.1.1", ref(graph.KindUser, "", "ci-bot@example.com"), ref(graph.KindClusterRoleBinding, "", "ci-bot-admin"), "",
			queries.SeverityCritical, plantedRBAC, []string{"kind: ClusterRoleBinding\n", "  name: ci-bot-admin\n", "  name: cluster-admin\n"}},
		{"KIEM-HYG-005", ref(graph.KindUser, "", "system:anonymous"), ref(graph.KindClusterRoleBinding, "", "anonymous-namespace-reader"), "",
			queries.SeverityHigh, plantedRBAC, []string{"  name: anonymous-namespace-reader\n"}},
		{"KIEM-CIS-5.1.5c", ref(graph.KindServiceAccount, "prod", "default"), ref(graph.KindPod, "prod", "deployment/web"), "prod",
			queries.SeverityLow, plantedApps, []string{"kind: Deployment\n", "  name: web\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			fd := findFinding(rep.Findings, tt.rule, tt.subject, tt.object)
			if fd == nil {
				t.Fatalf("no %s finding about %v / %v among %d findings", tt.rule, tt.subject, tt.object, len(rep.Findings))
			}
			if fd.Namespace != tt.namespace || fd.Severity != tt.severity || fd.Status != queries.StatusRisky {
				t.Errorf("namespace %q severity %s status %s, want %q %s risky", fd.Namespace, fd.Severity, fd.Status, tt.namespace, tt.severity)
			}
			file, line := splitOrigin(t, fd.Location)
			if file != tt.file {
				t.Fatalf("location %s, want in %s", fd.Location, tt.file)
			}
			doc := docAt(t, file, line)
			if !strings.HasPrefix(doc, "apiVersion: ") {
				t.Errorf("line %d of %s does not start a document:\n%s", line, file, doc)
			}
			for _, want := range tt.doc {
				if !strings.Contains(doc, want) {
					t.Errorf("the document at %s lacks %q:\n%s", fd.Location, want, doc)
				}
			}
		})
	}
	// Platform defaults among the objects (the ClusterRole cluster-admin) give expected findings.
	if rep.Summary.Risky+rep.Summary.Expected != len(rep.Findings) || rep.Summary.Suppressed != 0 || rep.Summary.FailOn != "none" || rep.Summary.Failing != 0 {
		t.Errorf("summary %+v for %d findings, none suppressed, --fail-on none", rep.Summary, len(rep.Findings))
	}
	n := 0
	for _, c := range rep.Summary.BySeverity {
		n += c
	}
	if n != rep.Summary.Risky || len(rep.Summary.BySeverity) != 5 {
		t.Errorf("bySeverity %v does not count the %d risky findings", rep.Summary.BySeverity, rep.Summary.Risky)
	}
}

func TestScanFailOn(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"default is high", []string{"--rule", "KIEM-CIS-5.1.2"}, 1},
		{"critical above the high findings", []string{"--rule", "KIEM-CIS-5.1.2", "--fail-on", "critical"}, 0},
		{"none", []string{"--fail-on", "none"}, 0},
		{"low findings pass the default", []string{"--rule", "KIEM-CIS-5.1.5c"}, 0},
		{"low findings fail at low", []string{"--rule", "KIEM-CIS-5.1.5c", "--fail-on", "low"}, 1},
		{"case does not matter", []string{"--rule", "KIEM-CIS-5.1.5c", "--fail-on", "LOW"}, 1},
		{"min-severity hides what would fail", []string{"--rule", "KIEM-CIS-5.1.2", "--min-severity", "critical"}, 0},
		{"suppressed never fails", []string{"--rule", "KIEM-CIS-5.1.4", "--suppressions", suppressions, "--fail-on", "info"}, 0},
		{"expired suppression suppresses nothing", []string{"--rule", "KIEM-CIS-5.1.2", "--suppressions", suppressions}, 1},
		{"sarif follows --fail-on too", []string{"--rule", "KIEM-CIS-5.1.2", "--format", "sarif"}, 1},
		{"bad severity", []string{"--fail-on", "urgent"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kiem(t, "", append([]string{"scan", planted}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("code %d, want %d; stderr %q", r.code, tt.code, r.err)
			}
			if tt.code == 1 && !strings.Contains(r.err, "at or above") {
				t.Errorf("stderr %q does not say why the build fails", r.err)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		errs []string
	}{
		{"malformed manifest", []string{"testdata/scan/malformed"}, []string{"testdata/scan/malformed/rbac.yaml:15:", "did not find expected"}},
		{"bad pack", []string{planted, "--packs", "testdata/scan/badpacks"}, []string{"testdata/scan/badpacks/team.yaml:10:", "rule TEAM-001: match"}},
		{"missing pack dir", []string{planted, "--packs", "testdata/scan/nopacks"}, []string{"--packs", "testdata/scan/nopacks"}},
		{"missing path", []string{"testdata/scan/nothing"}, []string{"testdata/scan/nothing"}},
		{"no path", nil, []string{"kiem scan PATH"}},
		{"unknown rule", []string{planted, "--rule", "KIEM-NOPE"}, []string{`no rule "KIEM-NOPE"`}},
		{"unknown pack", []string{planted, "--pack", "nope"}, []string{`no pack "nope"`, "cis-5.1"}},
		{"rule outside the pack", []string{planted, "--pack", "cis-5.1", "--rule", "KIEM-HYG-005"}, []string{"select no rule"}},
		{"bad format", []string{planted, "--format", "xml"}, []string{`unknown format "xml"`}},
		{"bad min-severity", []string{planted, "--min-severity", "huge"}, []string{"--min-severity"}},
		{"missing suppressions", []string{planted, "--suppressions", "testdata/scan/none.yaml"}, []string{"none.yaml"}},
		{"malformed suppressions", []string{planted, "--suppressions", plantedApps}, []string{plantedApps}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kiem(t, "", append([]string{"scan"}, tt.args...)...)
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

func TestScanSuppressions(t *testing.T) {
	rep, r := scanJSON(t, planted, "--suppressions", suppressions, "--fail-on", "none")
	deployer := findFinding(rep.Findings, "KIEM-CIS-5.1.4", ref(graph.KindServiceAccount, "ci", "deployer"), nil)
	if deployer == nil || deployer.Status != queries.StatusSuppressed || deployer.Suppression == nil ||
		deployer.Suppression.Owner != "platform-team@example.com" || !strings.Contains(deployer.Reason, "Argo CD migration") {
		t.Fatalf("deployer's pod creation: %+v, want suppressed by the platform team", deployer)
	}
	auditors := findFinding(rep.Findings, "KIEM-CIS-5.1.2", ref(graph.KindGroup, "", "auditors"), nil)
	if auditors == nil || auditors.Status != queries.StatusRisky {
		t.Fatalf("auditors' secrets: %+v, want risky: their suppression expired", auditors)
	}
	if len(rep.ExpiredSuppressions) != 1 || rep.ExpiredSuppressions[0].Rule != "KIEM-CIS-5.1.2" {
		t.Errorf("expiredSuppressions %+v, want the auditors' one", rep.ExpiredSuppressions)
	}
	if !strings.Contains(r.err, "Warning: suppression") || !strings.Contains(r.err, "expired on 2001-01-01") ||
		!strings.Contains(r.err, suppressions+":14") {
		t.Errorf("stderr %q lacks the expiry warning naming the suppression's file and line", r.err)
	}
	if rep.Summary.Suppressed != 2 {
		t.Errorf("summary.suppressed=%d, want 2", rep.Summary.Suppressed)
	}

	// The table hides suppressed findings but counts them; --show-expected lists them.
	args := []string{"scan", planted, "--suppressions", suppressions, "--rule", "KIEM-CIS-5.1.4"}
	r = kiem(t, "", args...)
	if r.code != 0 || strings.Contains(r.out, "ci/deployer") || strings.Contains(r.out, "SEVERITY") ||
		!strings.Contains(r.out, "0 expected (platform defaults) and 2 suppressed not shown; --show-expected lists them") {
		t.Fatalf("table: code %d\n%s", r.code, r.out)
	}
	r = kiem(t, "", append(args, "--show-expected")...)
	if r.code != 0 || !strings.Contains(r.out, "suppressed") || !strings.Contains(r.out, "ServiceAccount ci/deployer") ||
		!strings.Contains(r.out, "listed above") {
		t.Fatalf("--show-expected: code %d\n%s", r.code, r.out)
	}
	r = kiem(t, "", append(args, "--show-expected", "-v")...)
	if !strings.Contains(r.out, "suppressed: suppressed by platform-team@example.com until 2999-12-31") {
		t.Errorf("-v does not give the suppression's reason:\n%s", r.out)
	}
}

func TestScanTable(t *testing.T) {
	r := kiem(t, "", "scan", planted, "--rule", "KIEM-CIS-5.1.4", "--rule", "KIEM-CIS-5.1.5c", "--rule", "KIEM-WL-002")
	if r.code != 1 {
		t.Fatalf("code %d, stderr %q", r.code, r.err)
	}
	lines := strings.Split(r.out, "\n")
	header := strings.Fields(lines[0])
	if strings.Join(header, " ") != "SEVERITY RULE STATUS SUBJECT/OBJECT SCOPE LOCATION MESSAGE" {
		t.Fatalf("header %q", lines[0])
	}
	for _, want := range []string{
		"critical  KIEM-CIS-5.1.4   risky   ServiceAccount ci/deployer",
		"prod   " + plantedRBAC + ":23",
		"low       KIEM-CIS-5.1.5c  risky   Pod prod/deployment/web (ServiceAccount prod/default)",
		"3 risky finding(s) in 12 objects: 2 critical, 1 low",
		"skipped KIEM-WL-002: needs nodes",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("table lacks %q:\n%s", want, r.out)
		}
	}
	r = kiem(t, "", "scan", planted, "--rule", "KIEM-CIS-5.1.4", "--explain")
	if !strings.Contains(r.out, "critical  KIEM-CIS-5.1.4  risky  ServiceAccount ci/deployer  prod  "+plantedRBAC+":23\n"+
		"    ServiceAccount ci/deployer: Pod creation in namespace prod\n"+
		`    evidence: RoleBinding "deployers/prod" of ClusterRole "pod-launcher" to ServiceAccount "deployer/ci": rule 0`) {
		t.Errorf("--explain:\n%s", r.out)
	}
	r = kiem(t, "", "scan", planted, "--rule", "KIEM-CIS-5.1.5c", "--min-severity", "medium")
	if r.code != 0 || !strings.HasPrefix(r.out, "no risky findings in 12 objects\n") || !strings.Contains(r.out, "1 finding(s) below --min-severity medium not shown") {
		t.Errorf("min-severity: code %d\n%s", r.code, r.out)
	}
}

func TestScanPacksAndFilters(t *testing.T) {
	rep, _ := scanJSON(t, planted, "--packs", "testdata/scan/packs", "--pack", "team")
	if len(rep.Findings) != 1 || rep.Findings[0].Rule != "TEAM-001" || !sameRef(rep.Findings[0].Subject, ref(graph.KindUser, "", "system:anonymous")) {
		t.Fatalf("--pack team: %+v, want the one binding to a User outside example.com", rep.Findings)
	}
	rep, _ = scanJSON(t, planted, "--rule", "KIEM-CIS-5.1.1", "--rule", "KIEM-CIS-5.1.2")
	for _, fd := range rep.Findings {
		if fd.Rule != "KIEM-CIS-5.1.1" && fd.Rule != "KIEM-CIS-5.1.2" {
			t.Errorf("--rule kept %s", fd.Rule)
		}
	}
	if len(rep.Findings) < 2 {
		t.Errorf("--rule: %d findings, want 5.1.1 and 5.1.2's", len(rep.Findings))
	}
}

func TestScanOutputFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "kiem.sarif")
	r := kiem(t, "", "scan", planted, "--format", "sarif", "-o", out)
	if r.code != 1 || r.out != "" {
		t.Fatalf("code %d, stdout %q", r.code, r.out)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	validateSARIF(t, data)
}

// TestScanFixtures scans every real-world fixture and the kubeadm cluster: JSON decodes, SARIF validates, the
// exit code follows --fail-on, and every location names the document of the object behind the finding.
func TestScanFixtures(t *testing.T) {
	root := filepath.Join("..", "..", "internal", "fixtures")
	entries, err := os.ReadDir(filepath.Join(root, fixtures.RealWorldDir))
	if err != nil {
		t.Fatal(err)
	}
	type input struct {
		name  string
		paths []string
		ns    string
	}
	inputs := []input{{"kubeadm", []string{filepath.Join(root, fixtures.KubeadmV133), filepath.Join(root, fixtures.KubeadmAddons)}, ""}}
	for _, e := range entries {
		if path.Ext(e.Name()) == ".yaml" {
			inputs = append(inputs, input{e.Name(), []string{filepath.Join(root, fixtures.RealWorldDir, e.Name())}, fixtures.InstallNamespace(e.Name())})
		}
	}
	if len(inputs) != 16 {
		t.Fatalf("%d inputs, want kubeadm and the 15 real-world files", len(inputs))
	}
	var anyFailing atomic.Bool
	// The inputs are scanned in parallel; the group returns once all have finished.
	t.Run("inputs", func(t *testing.T) {
		for _, in := range inputs {
			t.Run(in.name, func(t *testing.T) {
				t.Parallel()
				scanFixture(t, in.paths, in.ns, &anyFailing)
			})
		}
	})
	if !anyFailing.Load() {
		t.Error("no fixture has a risky finding at or above high: the exit code of a failing build was never checked")
	}
}

// scanFixture scans the files of one fixture in every format (see TestScanFixtures).
func scanFixture(t *testing.T, paths []string, ns string, anyFailing *atomic.Bool) {
	args := paths
	if ns != "" {
		args = append([]string{"--default-namespace", ns}, paths...)
	}
	// wantCode is the exit code --fail-on threshold must give: 1 when a risky finding is at or above it.
	wantCode := func(findings []queries.Finding, threshold queries.Severity) int {
		for _, fd := range findings {
			if fd.Status == queries.StatusRisky && fd.Severity >= threshold {
				return 1
			}
		}
		return 0
	}
	rep, r := scanJSON(t, append([]string{"--fail-on", "critical"}, args...)...)
	if want := wantCode(rep.Findings, queries.SeverityCritical); r.code != want {
		t.Errorf("json --fail-on critical: code %d, want %d", r.code, want)
	}
	docs := docReader(t)
	for _, fd := range rep.Findings {
		checkLocation(t, &fd, docs)
	}
	r = kiem(t, "", append([]string{"scan", "--format", "sarif"}, args...)...)
	want := wantCode(rep.Findings, queries.SeverityHigh)
	if r.code != want {
		t.Fatalf("sarif with the default --fail-on high: code %d, want %d; stderr %q", r.code, want, r.err)
	}
	if want == 1 {
		anyFailing.Store(true)
	}
	log := validateSARIF(t, []byte(r.out))
	if got := len(log.Runs[0].Results); got != len(rep.Findings) {
		t.Errorf("SARIF has %d results, JSON %d findings", got, len(rep.Findings))
	}
}

// checkLocation checks that a finding's location is the document of the object it is about (for a finding about
// a subject, of a binding). The items of a List all carry the List's line: so do those of the kubeadm fixture.
func checkLocation(t *testing.T, fd *queries.Finding, docAt func(file string, line int) string) {
	t.Helper()
	if fd.Location == "" {
		if fd.Object != nil && fd.Object.Kind != graph.KindNamespace {
			t.Errorf("%s on %v: no location", fd.Rule, fd.Object)
		}
		return
	}
	file, line := splitOrigin(t, fd.Location)
	doc := "\n" + docAt(file, line)
	if strings.HasSuffix(file, path.Base(fixtures.KubeadmV133)) {
		if !strings.Contains(doc, "\nkind: List\n") {
			t.Errorf("%s: %s is not the List's line", fd.Rule, fd.Location)
		}
		return
	}
	var want []string
	switch {
	case fd.Object != nil && fd.Object.Kind == graph.KindPod:
		// A workload's template pod, "deployment/web": the document is the Deployment web.
		kind, name, _ := strings.Cut(fd.Object.Name, "/")
		head, _, _ := strings.Cut(doc, "metadata:")
		if !strings.Contains(strings.ToLower(head), "\nkind: "+kind+"\n") {
			t.Errorf("%s about %v at %s: the document is no %s:\n%s", fd.Rule, fd.Object, fd.Location, kind, doc)
		}
		want = []string{"name: " + name}
	case fd.Object != nil:
		want = []string{"\nkind: " + string(fd.Object.Kind), "name: " + fd.Object.Name}
	default:
		want = []string{"Binding"} // the first grant's: kind RoleBinding or ClusterRoleBinding
	}
	for _, w := range want {
		// "name: x" ends its line in block style and is followed by ',' or '}' in flow style; x may be quoted.
		k, v, _ := strings.Cut(w, ": ")
		found := false
		for _, form := range []string{w, k + `: "` + v + `"`, k + ": '" + v + "'"} {
			found = found || strings.Contains(doc, form+"\n") || strings.Contains(doc, form+",") || strings.Contains(doc, form+"}")
		}
		if !found {
			t.Errorf("%s about %v / %v at %s: the document lacks %q:\n%s", fd.Rule, fd.Subject, fd.Object, fd.Location, w, doc)
			return
		}
	}
}
