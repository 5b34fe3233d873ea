package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/kiem-io/kiem/queries"
)

// SARIF 2.1.0 (OASIS, errata 01), reduced to what kiem writes. GitHub code scanning reads rules' "security-severity"
// property (a score as a string) to rank alerts, results' partialFingerprints to follow an alert across commits,
// and locations relative to the repository (%SRCROOT%) to annotate pull requests.
const (
	sarifSchema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	sarifVersion = "2.1.0"
	sarifSrcRoot = "%SRCROOT%"
	kiemInfoURI  = "https://github.com/kiem-io/kiem"
	// fingerprintKey names kiem's fingerprint among a result's partialFingerprints; bump the version if
	// queries.Finding.Fingerprint ever changes meaning.
	fingerprintKey = "kiem/v1"
)

type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool               sarifTool                        `json:"tool"`
		OriginalURIBaseIDs map[string]sarifArtifactLocation `json:"originalUriBaseIds,omitempty"`
		Results            []sarifResult                    `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     sarifMessage      `json:"shortDescription"`
		FullDescription      sarifMessage      `json:"fullDescription"`
		Help                 sarifMessage      `json:"help"`
		HelpURI              string            `json:"helpUri,omitempty"`
		DefaultConfiguration sarifRuleConfig   `json:"defaultConfiguration"`
		Properties           sarifRuleProperty `json:"properties"`
	}
	sarifMessage struct {
		Text     string `json:"text"`
		Markdown string `json:"markdown,omitempty"`
	}
	sarifRuleConfig struct {
		Level string `json:"level"`
	}
	sarifRuleProperty struct {
		Tags             []string `json:"tags"`
		SecuritySeverity string   `json:"security-severity"`
	}
	sarifResult struct {
		RuleID              string              `json:"ruleId"`
		RuleIndex           int                 `json:"ruleIndex"`
		Level               string              `json:"level"`
		Message             sarifMessage        `json:"message"`
		Locations           []sarifLocation     `json:"locations,omitempty"`
		RelatedLocations    []sarifLocation     `json:"relatedLocations,omitempty"`
		PartialFingerprints map[string]string   `json:"partialFingerprints"`
		Suppressions        []sarifSuppression  `json:"suppressions,omitempty"`
		Properties          sarifResultProperty `json:"properties"`
	}
	sarifLocation struct {
		// ID numbers related locations from 1; a result's own location has none.
		ID               int                   `json:"id,omitempty"`
		PhysicalLocation sarifPhysicalLocation `json:"physicalLocation"`
		Message          *sarifMessage         `json:"message,omitempty"`
	}
	sarifPhysicalLocation struct {
		ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
		Region           *sarifRegion          `json:"region,omitempty"`
	}
	sarifArtifactLocation struct {
		URI       string `json:"uri"`
		URIBaseID string `json:"uriBaseId,omitempty"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	sarifSuppression struct {
		Kind          string            `json:"kind"`
		Status        string            `json:"status"`
		Justification string            `json:"justification,omitempty"`
		Properties    map[string]string `json:"properties,omitempty"`
	}
	sarifResultProperty struct {
		Status    string `json:"status"`
		Severity  string `json:"severity"`
		Pack      string `json:"pack"`
		Subject   string `json:"subject,omitempty"`
		Object    string `json:"object,omitempty"`
		Namespace string `json:"namespace,omitempty"`
	}
)

// writeSARIF writes findings as one SARIF run whose rules are those of packs. Locations are made relative to the
// working directory, which CI runs at the repository root.
func writeSARIF(w io.Writer, packs []*queries.Pack, findings []queries.Finding) error {
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("sarif: %w", err)
	}
	return writeJSON(w, buildSARIF(packs, findings, cwd))
}

func buildSARIF(packs []*queries.Pack, findings []queries.Finding, cwd string) sarifLog {
	driver := sarifDriver{Name: "kiem", Version: version, InformationURI: kiemInfoURI, Rules: []sarifRule{}}
	index := map[string]int{}
	for _, p := range packs {
		for _, r := range p.Rules {
			index[r.ID] = len(driver.Rules)
			driver.Rules = append(driver.Rules, sarifRuleOf(p, r))
		}
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{},
		OriginalURIBaseIDs: map[string]sarifArtifactLocation{sarifSrcRoot: {URI: fileURI(cwd) + "/"}}}
	for i := range findings {
		run.Results = append(run.Results, sarifResultOf(&findings[i], index, cwd))
	}
	return sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}}
}

func sarifRuleOf(p *queries.Pack, r *queries.Rule) sarifRule {
	tags := []string{"security", p.Name}
	for _, c := range r.References.CIS {
		tags = append(tags, "CIS-"+c)
	}
	for _, m := range r.References.MITRE {
		tags = append(tags, "MITRE-"+m)
	}
	var md strings.Builder
	md.WriteString(unwrap(r.Remediation))
	var refs []string
	for _, c := range r.References.CIS {
		refs = append(refs, "CIS Kubernetes Benchmark "+c)
	}
	for _, m := range r.References.MITRE {
		refs = append(refs, fmt.Sprintf("MITRE ATT&CK [%s](%s)", m, mitreURL(m)))
	}
	for _, u := range r.References.URLs {
		refs = append(refs, "<"+u+">")
	}
	if len(refs) > 0 {
		md.WriteString("\n\n**References**\n\n")
		for _, ref := range refs {
			md.WriteString("- " + ref + "\n")
		}
	}
	rule := sarifRule{
		ID:                   r.ID,
		Name:                 pascalCase(r.Title),
		ShortDescription:     sarifMessage{Text: r.Title},
		FullDescription:      sarifMessage{Text: unwrap(r.Description)},
		Help:                 sarifMessage{Text: unwrap(r.Remediation), Markdown: md.String()},
		DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(r.Severity)},
		Properties:           sarifRuleProperty{Tags: tags, SecuritySeverity: securitySeverity(r.Severity)},
	}
	if len(r.References.URLs) > 0 {
		rule.HelpURI = r.References.URLs[0]
	}
	return rule
}

func sarifResultOf(fd *queries.Finding, index map[string]int, cwd string) sarifResult {
	res := sarifResult{
		RuleID: fd.Rule, RuleIndex: index[fd.Rule], Level: sarifLevel(fd.Severity), Message: sarifMessage{Text: fd.Message},
		PartialFingerprints: map[string]string{fingerprintKey: fd.Fingerprint},
		Properties: sarifResultProperty{Status: string(fd.Status), Severity: fd.Severity.String(), Pack: fd.Pack,
			Namespace: fd.Namespace},
	}
	if fd.Subject != nil {
		res.Properties.Subject = refText(*fd.Subject)
	}
	if fd.Object != nil {
		res.Properties.Object = refText(*fd.Object)
	}
	if loc, ok := sarifPhysical(fd.Location, cwd); ok {
		res.Locations = []sarifLocation{{PhysicalLocation: loc}}
	}
	for _, ev := range fd.Evidence {
		if loc, ok := sarifPhysical(ev.Location, cwd); ok {
			res.RelatedLocations = append(res.RelatedLocations, sarifLocation{ID: len(res.RelatedLocations) + 1,
				PhysicalLocation: loc, Message: &sarifMessage{Text: ev.Describe()}})
		}
	}
	switch fd.Status {
	case queries.StatusExpected:
		res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: fd.Reason,
			Properties: map[string]string{"status": string(queries.StatusExpected)}}}
	case queries.StatusSuppressed:
		sup := sarifSuppression{Kind: "external", Status: "accepted", Justification: fd.Reason,
			Properties: map[string]string{"status": string(queries.StatusSuppressed)}}
		if s := fd.Suppression; s != nil {
			sup.Properties["id"], sup.Properties["owner"], sup.Properties["expires"] = s.ID, s.Owner, s.Expires
			if s.Source != "" {
				sup.Properties["source"] = s.Source
			}
		}
		res.Suppressions = []sarifSuppression{sup}
	}
	return res
}

// sarifPhysical turns a "file:line" origin into a location: the file relative to cwd with forward slashes under
// %SRCROOT%, or an absolute file URI for a file outside cwd. ok is false for an empty or unreadable origin.
func sarifPhysical(origin, cwd string) (sarifPhysicalLocation, bool) {
	i := strings.LastIndexByte(origin, ':')
	if i <= 0 {
		return sarifPhysicalLocation{}, false
	}
	line, err := strconv.Atoi(origin[i+1:])
	if err != nil || line < 1 {
		return sarifPhysicalLocation{}, false
	}
	file := origin[:i]
	abs := file
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(cwd, file)
	}
	loc := sarifPhysicalLocation{Region: &sarifRegion{StartLine: line}}
	rel, err := filepath.Rel(cwd, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		loc.ArtifactLocation = sarifArtifactLocation{URI: fileURI(abs)}
		return loc, true
	}
	loc.ArtifactLocation = sarifArtifactLocation{URI: (&url.URL{Path: filepath.ToSlash(rel)}).String(), URIBaseID: sarifSrcRoot}
	return loc, true
}

// fileURI is the file: URI of an absolute path.
func fileURI(abs string) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive: file:///C:/...
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}

// sarifLevel maps a severity to a SARIF level: critical and high are errors, medium warnings, the rest notes.
func sarifLevel(s queries.Severity) string {
	switch {
	case s >= queries.SeverityHigh:
		return "error"
	case s == queries.SeverityMedium:
		return "warning"
	}
	return "note"
}

// securitySeverity is the score GitHub code scanning ranks by: above 9.0 critical, 7.0 high, 4.0 medium, 0.1 low.
func securitySeverity(s queries.Severity) string {
	switch s {
	case queries.SeverityCritical:
		return "9.5"
	case queries.SeverityHigh:
		return "8.0"
	case queries.SeverityMedium:
		return "5.5"
	case queries.SeverityLow:
		return "3.0"
	}
	return "0.0"
}

// mitreURL links an ATT&CK technique: T1098.006 is https://attack.mitre.org/techniques/T1098/006/.
func mitreURL(id string) string {
	return "https://attack.mitre.org/techniques/" + strings.ReplaceAll(id, ".", "/") + "/"
}

// unwrap joins the lines a pack's YAML block wrapped, keeping paragraphs: viewers wrap text themselves.
func unwrap(s string) string {
	paras := strings.Split(strings.TrimSpace(s), "\n\n")
	for i, p := range paras {
		paras[i] = strings.Join(strings.Fields(p), " ")
	}
	return strings.Join(paras, "\n\n")
}

// pascalCase turns a rule title into a SARIF rule name: "Pod creation" is "PodCreation".
func pascalCase(title string) string {
	var b strings.Builder
	upper := true
	for _, r := range title {
		if r == '\'' || r == '\u2019' {
			continue // "a role's rules" is RoleSRules otherwise
		}
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}
