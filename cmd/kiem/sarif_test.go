package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/kiem-io/kiem/queries"
)

// sarifSchemaFile is the official SARIF 2.1.0 schema (OASIS, errata 01); testdata/README.md says where it came from.
const sarifSchemaFile = "testdata/sarif-schema-2.1.0.json"

var compiledSARIFSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	data, err := os.ReadFile(sarifSchemaFile)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat() // uri, uri-reference, date-time: checked, not just annotated
	if err := c.AddResource(sarifSchema, doc); err != nil {
		return nil, err
	}
	return c.Compile(sarifSchema)
})

// validateSARIF validates data against the SARIF 2.1.0 schema and decodes it.
func validateSARIF(t *testing.T, data []byte) sarifLog {
	t.Helper()
	sch, err := compiledSARIFSchema()
	if err != nil {
		t.Fatalf("SARIF schema: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("SARIF output is not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("SARIF output does not validate against %s: %v", sarifSchemaFile, err)
	}
	var log sarifLog
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatal(err)
	}
	if len(log.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(log.Runs))
	}
	return log
}

// TestSARIFSchemaRejects makes sure the validation can fail: a result without a message and a bad level are
// caught.
func TestSARIFSchemaRejects(t *testing.T) {
	sch, err := compiledSARIFSchema()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "kiem"}}, "results": [{"ruleId": "X"}]}]}`,
		`{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "kiem"}}, "results": [{"ruleId": "X", "level": "fatal", "message": {"text": "m"}}]}]}`,
		`{"version": "2.0.0", "runs": []}`,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if sch.Validate(inst) == nil {
			t.Errorf("the schema accepts %s", bad)
		}
	}
}

func TestScanSARIF(t *testing.T) {
	r := kiem(t, "", "scan", planted, "--format", "sarif", "--suppressions", suppressions, "--packs", "testdata/scan/packs", "--fail-on", "none")
	if r.code != 0 {
		t.Fatalf("code %d, stderr %q", r.code, r.err)
	}
	log := validateSARIF(t, []byte(r.out))
	run := log.Runs[0]
	d := run.Tool.Driver
	if d.Name != "kiem" || d.Version != version || d.InformationURI != kiemInfoURI {
		t.Errorf("driver %q %q %q", d.Name, d.Version, d.InformationURI)
	}
	rules := map[string]sarifRule{}
	for i, rule := range d.Rules {
		if _, dup := rules[rule.ID]; dup {
			t.Errorf("rule %s listed twice", rule.ID)
		}
		rules[rule.ID] = d.Rules[i]
	}
	podCreation := rules["KIEM-CIS-5.1.4"]
	if podCreation.Name != "PodCreation" || podCreation.ShortDescription.Text != "Pod creation" ||
		!strings.HasPrefix(podCreation.FullDescription.Text, "The subject can create pods. A pod may run as any ServiceAccount") ||
		strings.Contains(podCreation.FullDescription.Text, "\n") || podCreation.Help.Text == "" ||
		!strings.Contains(podCreation.Help.Markdown, "[T1610](https://attack.mitre.org/techniques/T1610/)") ||
		podCreation.Properties.SecuritySeverity != "8.0" || podCreation.DefaultConfiguration.Level != "error" {
		t.Errorf("rule KIEM-CIS-5.1.4: %+v", podCreation)
	}
	if got, want := strings.Join(podCreation.Properties.Tags, " "), "security cis-5.1 CIS-5.1.4 MITRE-T1610 MITRE-T1611 MITRE-T1528"; got != want {
		t.Errorf("rule KIEM-CIS-5.1.4 tags %q, want %q", got, want)
	}
	team := rules["TEAM-001"]
	if team.HelpURI != "https://wiki.example.com/rbac#users" || team.Properties.SecuritySeverity != "3.0" || team.DefaultConfiguration.Level != "note" {
		t.Errorf("rule TEAM-001 from --packs: %+v", team)
	}
	if rules["KIEM-CIS-5.1.2"].Properties.SecuritySeverity != "5.5" || rules["KIEM-CIS-5.1.1"].Properties.SecuritySeverity != "9.5" {
		t.Errorf("security-severity of 5.1.2 %q and 5.1.1 %q", rules["KIEM-CIS-5.1.2"].Properties.SecuritySeverity, rules["KIEM-CIS-5.1.1"].Properties.SecuritySeverity)
	}
	if root := run.OriginalURIBaseIDs[sarifSrcRoot].URI; !strings.HasPrefix(root, "file:///") || !strings.HasSuffix(root, "/cmd/kiem/") {
		t.Errorf("%%SRCROOT%% is %q, want the working directory", root)
	}

	var deployer, auditors, pod *sarifResult
	for i := range run.Results {
		res := &run.Results[i]
		if d.Rules[res.RuleIndex].ID != res.RuleID {
			t.Fatalf("result %s points at rule %d, %s", res.RuleID, res.RuleIndex, d.Rules[res.RuleIndex].ID)
		}
		if res.PartialFingerprints[fingerprintKey] == "" {
			t.Errorf("result %s has no %s fingerprint", res.RuleID, fingerprintKey)
		}
		switch {
		case res.RuleID == "KIEM-CIS-5.1.4" && res.Properties.Subject == "ServiceAccount ci/deployer":
			deployer = res
		case res.RuleID == "KIEM-CIS-5.1.2" && res.Properties.Subject == "Group auditors":
			auditors = res
		case res.RuleID == "KIEM-CIS-5.1.5c" && res.Properties.Object == "Pod prod/deployment/web":
			pod = res
		}
	}
	if deployer == nil || auditors == nil || pod == nil {
		t.Fatalf("results lack the planted findings: deployer %v, auditors %v, pod %v", deployer, auditors, pod)
	}
	// Locations are relative to the working directory, under %SRCROOT%, at the document's first line.
	for _, c := range []struct {
		res  *sarifResult
		uri  string
		line int
	}{{deployer, plantedRBAC, 23}, {auditors, plantedRBAC, 47}, {pod, plantedApps, 2}} {
		if len(c.res.Locations) != 1 {
			t.Fatalf("%s: %d locations", c.res.RuleID, len(c.res.Locations))
		}
		loc := c.res.Locations[0].PhysicalLocation
		if loc.ArtifactLocation.URI != c.uri || loc.ArtifactLocation.URIBaseID != sarifSrcRoot || loc.Region == nil || loc.Region.StartLine != c.line {
			t.Errorf("%s: location %+v %+v, want %s:%d under %%SRCROOT%%", c.res.RuleID, loc.ArtifactLocation, loc.Region, c.uri, c.line)
		}
		if doc := docAt(t, c.uri, c.line); !strings.HasPrefix(doc, "apiVersion: ") {
			t.Errorf("%s: line %d of %s starts no document", c.res.RuleID, c.line, c.uri)
		}
	}
	if rl := deployer.RelatedLocations; len(rl) != 1 || rl[0].ID != 1 || rl[0].Message == nil ||
		!strings.HasPrefix(rl[0].Message.Text, `RoleBinding "deployers/prod"`) || rl[0].PhysicalLocation.Region.StartLine != 23 {
		t.Errorf("deployer's related locations: %+v", rl)
	}
	// A suppressed finding carries its suppression; the one whose suppression expired carries none.
	if s := deployer.Suppressions; len(s) != 1 || s[0].Kind != "external" || s[0].Status != "accepted" ||
		s[0].Properties["status"] != "suppressed" || s[0].Properties["owner"] != "platform-team@example.com" ||
		!strings.Contains(s[0].Justification, "Argo CD migration") {
		t.Errorf("deployer's suppressions: %+v", s)
	}
	if len(auditors.Suppressions) != 0 || auditors.Properties.Status != "risky" || auditors.Level != "error" {
		t.Errorf("auditors: status %s level %s suppressions %+v, want a risky error", auditors.Properties.Status, auditors.Level, auditors.Suppressions)
	}
	if pod.Level != "note" || pod.Properties.Namespace != "prod" || pod.Properties.Severity != "low" {
		t.Errorf("pod: level %s properties %+v", pod.Level, pod.Properties)
	}
}

func TestSARIFMapping(t *testing.T) {
	for _, tt := range []struct {
		sev          queries.Severity
		level, score string
	}{
		{queries.SeverityCritical, "error", "9.5"},
		{queries.SeverityHigh, "error", "8.0"},
		{queries.SeverityMedium, "warning", "5.5"},
		{queries.SeverityLow, "note", "3.0"},
		{queries.SeverityInfo, "note", "0.0"},
	} {
		if got := sarifLevel(tt.sev); got != tt.level {
			t.Errorf("sarifLevel(%s)=%s, want %s", tt.sev, got, tt.level)
		}
		if got := securitySeverity(tt.sev); got != tt.score {
			t.Errorf("securitySeverity(%s)=%s, want %s", tt.sev, got, tt.score)
		}
	}
	for _, tt := range []struct{ origin, uri, base string }{
		{"deploy/rbac.yaml:12", "deploy/rbac.yaml", sarifSrcRoot},
		{"/repo/deploy/a b.yaml:3", "deploy/a%20b.yaml", sarifSrcRoot},
		{"/repo/./deploy/../x.yaml:3", "x.yaml", sarifSrcRoot},
		{"../other/x.yaml:4", "file:///other/x.yaml", ""},
		{"/elsewhere/x.yaml:5", "file:///elsewhere/x.yaml", ""},
	} {
		loc, ok := sarifPhysical(tt.origin, "/repo")
		if !ok || loc.ArtifactLocation.URI != tt.uri || loc.ArtifactLocation.URIBaseID != tt.base {
			t.Errorf("sarifPhysical(%q)=%+v %v, want %q under %q", tt.origin, loc.ArtifactLocation, ok, tt.uri, tt.base)
		}
	}
	for _, bad := range []string{"", "x.yaml", "x.yaml:", "x.yaml:0", ":3"} {
		if _, ok := sarifPhysical(bad, "/repo"); ok {
			t.Errorf("sarifPhysical(%q) gave a location", bad)
		}
	}
	for title, want := range map[string]string{
		"Pod creation":                  "PodCreation",
		"Wildcard in a role's rules":    "WildcardInARolesRules",
		"bind, escalate or impersonate": "BindEscalateOrImpersonate",
		"Access to nodes/proxy":         "AccessToNodesProxy",
	} {
		if got := pascalCase(title); got != want {
			t.Errorf("pascalCase(%q)=%q, want %q", title, got, want)
		}
	}
}
