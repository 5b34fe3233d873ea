package queries

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestRulesDoc keeps docs/rules.md, the reference of the embedded rules, generated from the pack files: it
// fails when the file is stale; KIEM_UPDATE_DOCS=1 (make docs) rewrites it.
func TestRulesDoc(t *testing.T) {
	packs, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# Rules kiem ships\n\n<!-- Generated from queries/packs/*.yaml by `make docs`; do not edit. -->\n\n")
	b.WriteString("How packs work, and how to write your own: [packs.md](packs.md).\n")
	for _, p := range packs {
		fmt.Fprintf(&b, "\n## %s — %s\n\n%s\n", p.Name, p.Title, strings.TrimSpace(p.Description))
		b.WriteString("\n| id | title | severity | target | CIS | MITRE ATT&CK |\n|---|---|---|---|---|---|\n")
		for _, r := range p.Rules {
			sev := r.Severity.String()
			for _, g := range r.Severities {
				sev += ", " + g.Severity.String() + " when " + "`" + strings.ReplaceAll(g.When, "|", "\\|") + "`"
			}
			target := string(r.Target)
			if r.Check != "" {
				target += " (check `" + r.Check + "`)"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.ID, r.Title, sev, target,
				strings.Join(r.References.CIS, ", "), strings.Join(r.References.MITRE, ", "))
		}
		for _, r := range p.Rules {
			fmt.Fprintf(&b, "\n### %s %s\n\n%s\n\n**Remediation.** %s\n", r.ID, r.Title,
				strings.TrimSpace(r.Description), strings.TrimSpace(r.Remediation))
			if r.Match != "" {
				fmt.Fprintf(&b, "\n```cel\n%s\n```\n", strings.TrimSpace(r.Match))
			}
			if len(r.Requires) > 0 {
				fmt.Fprintf(&b, "\nRuns when the graph holds: %s.\n", strings.Join(r.Requires, ", "))
			}
		}
	}
	const path = "../docs/rules.md"
	if os.Getenv("KIEM_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != b.String() {
		t.Fatalf("docs/rules.md is stale: run `make docs` and commit it (%v)", err)
	}
}
