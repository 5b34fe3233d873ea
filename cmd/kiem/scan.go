package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// riskFlags choose the packs and suppressions a risk command evaluates, and when its findings fail a build.
type riskFlags struct {
	packDirs     []string
	suppressions string
	packs        []string // --pack: keep only these packs
	rules        []string // --rule: keep only these rules
	failOn       string
}

func (f *riskFlags) register(fs *pflag.FlagSet, failOnHelp string) {
	fs.StringArrayVar(&f.packDirs, "packs", nil, "also evaluate the packs (*.yaml) of this directory (repeatable); kiem's own packs always load")
	fs.StringVar(&f.suppressions, "suppressions", "", "YAML file of accepted findings (rule, subject/object/namespace, owner, reason, expires)")
	fs.StringArrayVar(&f.packs, "pack", nil, "evaluate only this pack (repeatable)")
	fs.StringArrayVar(&f.rules, "rule", nil, "evaluate only this rule ID (repeatable)")
	fs.StringVar(&f.failOn, "fail-on", "high", failOnHelp)
}

// failOnName is --fail-on as reports show it: a severity's name, or "none".
func failOnName(threshold queries.Severity, gate bool) string {
	if !gate {
		return "none"
	}
	return threshold.String()
}

// threshold parses --fail-on: ok is false for "none".
func (f *riskFlags) threshold() (sev queries.Severity, ok bool, err error) {
	if strings.EqualFold(f.failOn, "none") {
		return 0, false, nil
	}
	sev, err = queries.ParseSeverity(f.failOn)
	if err != nil {
		return 0, false, fmt.Errorf("--fail-on: %w, or none", err)
	}
	return sev, true, nil
}

// engine loads kiem's packs and those of --packs, keeps what --pack and --rule select, reads --suppressions, and
// returns the engine with the packs it evaluates.
func (f *riskFlags) engine() (*queries.Engine, []*queries.Pack, error) {
	for _, d := range f.packDirs {
		// Checked here because the packs' loader names only the file of a pack, not a directory it cannot read.
		fi, err := os.Stat(d)
		if err != nil {
			return nil, nil, fmt.Errorf("--packs: %w", err)
		}
		if !fi.IsDir() {
			return nil, nil, fmt.Errorf("--packs %s: not a directory", d)
		}
	}
	all, err := queries.LoadPacks(f.packDirs...)
	if err != nil {
		return nil, nil, fmt.Errorf("load packs: %w", err)
	}
	packs, err := selectRules(all, f.packs, f.rules)
	if err != nil {
		return nil, nil, err
	}
	var sup *queries.Suppressions
	if f.suppressions != "" {
		if sup, err = queries.LoadSuppressions(f.suppressions); err != nil {
			return nil, nil, err
		}
	}
	e, err := queries.NewEngine(packs, queries.Options{Baseline: queries.DefaultBaseline(), Suppressions: sup})
	if err != nil {
		return nil, nil, fmt.Errorf("load packs: %w", err)
	}
	return e, packs, nil
}

// selectRules returns the packs reduced to the rules of the named packs and rule IDs (all when none are named).
// Naming a pack or rule that does not exist is an error, so that a typo never passes a build silently.
func selectRules(all []*queries.Pack, packNames, ruleIDs []string) ([]*queries.Pack, error) {
	var packsKnown, rulesKnown []string
	for _, p := range all {
		packsKnown = append(packsKnown, p.Name)
		for _, r := range p.Rules {
			rulesKnown = append(rulesKnown, r.ID)
		}
	}
	for _, n := range packNames {
		if !slices.Contains(packsKnown, n) {
			return nil, fmt.Errorf("--pack: no pack %q (packs: %s)", n, strings.Join(packsKnown, ", "))
		}
	}
	for _, id := range ruleIDs {
		if !slices.Contains(rulesKnown, id) {
			return nil, fmt.Errorf("--rule: no rule %q in the packs loaded (see --packs)", id)
		}
	}
	var out []*queries.Pack
	for _, p := range all {
		if len(packNames) > 0 && !slices.Contains(packNames, p.Name) {
			continue
		}
		sel := *p
		sel.Rules = nil
		for _, r := range p.Rules {
			if len(ruleIDs) == 0 || slices.Contains(ruleIDs, r.ID) {
				sel.Rules = append(sel.Rules, r)
			}
		}
		if len(sel.Rules) > 0 {
			out = append(out, &sel)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--pack and --rule select no rule together")
	}
	return out, nil
}

// warnExpired reports suppressions past their date: they suppress nothing any more, so a finding they hid is back.
func warnExpired(w io.Writer, expired []queries.Suppression) {
	for _, s := range expired {
		fmt.Fprintf(w, "Warning: suppression %s (%s) of %s expired on %s and suppresses nothing; renew or remove it\n",
			s.ID, s.Source, s.Rule, s.Expires)
	}
}

type scanFlags struct {
	src          sourceFlags
	risk         riskFlags
	format       string
	out          string
	minSeverity  string
	showExpected bool
	explain      bool
}

func newScanCmd(s streams) *cobra.Command {
	var f scanFlags
	cmd := &cobra.Command{
		Use:   "scan PATH...",
		Short: "Scan manifests for RBAC risks, offline, and fail the build on risky findings",
		Long: `Evaluate kiem's risk packs (CIS 5.1 and more; --packs adds your own) over manifests: files and
directories of YAML or JSON, multi-document YAML and kind: List, as every --snapshot flag reads them. No cluster
is needed. Workloads (Deployments, DaemonSets, StatefulSets, ReplicaSets, ReplicationControllers, Jobs and
CronJobs) stand for their pods, named "deployment/NAME", so the rules about pods see which ServiceAccount each
runs as and whether it mounts the token.

Every finding has a status: risky (act on it), expected (every grant behind it is a platform default whose
content matches the known default) or suppressed (accepted in --suppressions, until it expires). The table lists
risky findings and counts the others in its summary; --show-expected lists them too. JSON and SARIF always hold
every finding, with its status. Suppressions past their date suppress nothing and are reported on stderr. Rules
that need data the manifests lack (Secret metadata, nodes) are skipped and named in the summary.

Formats:
  table   one row per finding: severity, rule, status, subject or object, scope ('*' is cluster-wide), file:line
          and message; with -v each finding is a block with its evidence (binding -> role -> rule, file:line)
  json    {"findings": [...], "summary": {"bySeverity", "risky", "expected", "suppressed", "failOn", "failing"},
          "skipped": [{"rule", "reason"}], "expiredSuppressions": [...]}; see docs/cli.md
  sarif   SARIF 2.1.0 for GitHub code scanning and other SARIF viewers: one run, the rules of the packs
          evaluated, one result per finding at its file and line; expected and suppressed findings carry a
          suppression with the reason

Exit codes: 0 no risky finding at or above --fail-on; 1 at least one (expected and suppressed findings never
fail a build); 2 an error: a malformed manifest (named by file and line), a bad pack or suppressions file, a bad
flag.`,
		Example: `  kiem scan deploy/
  kiem scan deploy/ charts/rendered.yaml --fail-on critical
  kiem scan deploy/ --format sarif -o kiem.sarif
  kiem scan deploy/ --packs ./policy/packs --suppressions .kiem-suppressions.yaml -v
  kiem scan deploy/ --rule KIEM-CIS-5.1.4 --rule KIEM-CIS-5.1.2 --format json`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runScan(cmd.Context(), s, &f, args) },
	}
	fl := cmd.Flags()
	f.src.register(fl)
	f.risk.register(fl, "exit 1 when a risky finding is at or above this severity: info, low, medium, high, critical, or none")
	fl.StringVar(&f.format, "format", "table", "output format: table, json or sarif")
	fl.StringVarP(&f.out, "output-file", "o", "-", "file to write ('-' for stdout)")
	fl.StringVar(&f.minSeverity, "min-severity", "info", "report only findings at or above this severity (they alone count for --fail-on)")
	fl.BoolVar(&f.showExpected, "show-expected", false, "table: list expected and suppressed findings too")
	fl.BoolVarP(&f.explain, "explain", "v", false, "table: print each finding as a block with its message, reason and evidence (binding -> role -> rule, file:line)")
	return cmd
}

// scanReport is the JSON form of `kiem scan`.
type scanReport struct {
	Findings            []queries.Finding     `json:"findings"`
	Summary             scanSummary           `json:"summary"`
	Skipped             []queries.SkippedRule `json:"skipped"`
	ExpiredSuppressions []queries.Suppression `json:"expiredSuppressions"`
}

// scanSummary counts the findings reported. BySeverity counts the risky ones, which alone can fail a build.
type scanSummary struct {
	BySeverity map[string]int `json:"bySeverity"`
	Risky      int            `json:"risky"`
	Expected   int            `json:"expected"`
	Suppressed int            `json:"suppressed"`
	// FailOn is --fail-on; Failing counts the risky findings at or above it.
	FailOn  string `json:"failOn"`
	Failing int    `json:"failing"`
}

func runScan(ctx context.Context, s streams, f *scanFlags, args []string) error {
	if !slices.Contains([]string{"table", "json", "sarif"}, f.format) {
		return fmt.Errorf("unknown format %q: use table, json or sarif", f.format)
	}
	threshold, gate, err := f.risk.threshold()
	if err != nil {
		return err
	}
	minSev, err := queries.ParseSeverity(f.minSeverity)
	if err != nil {
		return fmt.Errorf("--min-severity: %w", err)
	}
	if len(args) == 0 && len(f.src.snapshots) == 0 && !f.src.demo {
		return errors.New("give the manifests to scan: kiem scan PATH... (files or directories of YAML/JSON)")
	}
	f.src.snapshots = append(slices.Clone(args), f.src.snapshots...)
	e, packs, err := f.risk.engine()
	if err != nil {
		return err
	}
	objs, err := f.src.objects(ctx)
	if err != nil {
		return err
	}
	res, err := e.Evaluate(ctx, graph.NewSnapshot(objs))
	if err != nil {
		return err
	}
	warnExpired(s.err, res.Expired)

	var findings []queries.Finding
	below := 0
	for _, fd := range res.Findings() {
		if fd.Severity < minSev {
			below++
			continue
		}
		findings = append(findings, fd)
	}
	rep := scanReport{Findings: findings, Skipped: res.Skipped, ExpiredSuppressions: res.Expired,
		Summary: summarize(findings, failOnName(threshold, gate), threshold, gate)}
	if rep.Findings == nil {
		rep.Findings = []queries.Finding{}
	}
	if rep.Skipped == nil {
		rep.Skipped = []queries.SkippedRule{}
	}
	if rep.ExpiredSuppressions == nil {
		rep.ExpiredSuppressions = []queries.Suppression{}
	}
	err = writeTo(f.out, s.out, func(w io.Writer) error {
		switch f.format {
		case "json":
			return writeJSON(w, rep)
		case "sarif":
			return writeSARIF(w, packs, rep.Findings)
		}
		return writeScanTable(w, f, &rep, objs.Count(), below)
	})
	if err != nil {
		return err
	}
	if rep.Summary.Failing > 0 {
		fmt.Fprintf(s.err, "kiem scan: %d risky finding(s) at or above %s (--fail-on)\n", rep.Summary.Failing, threshold)
		return exitCode(exitNo)
	}
	return nil
}

// summarize counts findings by status, and the risky ones by severity and against the --fail-on threshold.
func summarize(findings []queries.Finding, failOn string, threshold queries.Severity, gate bool) scanSummary {
	sum := scanSummary{BySeverity: map[string]int{}, FailOn: failOn}
	for _, sev := range queries.Severities() {
		sum.BySeverity[sev.String()] = 0
	}
	for i := range findings {
		switch findings[i].Status {
		case queries.StatusExpected:
			sum.Expected++
		case queries.StatusSuppressed:
			sum.Suppressed++
		default:
			sum.Risky++
			sum.BySeverity[findings[i].Severity.String()]++
			if gate && findings[i].Severity >= threshold {
				sum.Failing++
			}
		}
	}
	return sum
}

func writeScanTable(w io.Writer, f *scanFlags, rep *scanReport, objects, below int) error {
	shown := func(fd *queries.Finding) bool { return fd.Status == queries.StatusRisky || f.showExpected }
	rows := 0
	if f.explain {
		// One block per finding: the row's fields, then its message, reason and evidence, each on its own line.
		for i := range rep.Findings {
			if fd := &rep.Findings[i]; shown(fd) {
				rows++
				explainFinding(w, fd)
			}
		}
	} else {
		t := newTable(w, "SEVERITY", "RULE", "STATUS", "SUBJECT/OBJECT", "SCOPE", "LOCATION", "MESSAGE")
		for i := range rep.Findings {
			if fd := &rep.Findings[i]; shown(fd) {
				rows++
				t.row(fd.Severity.String(), fd.Rule, string(fd.Status), findingTarget(fd), scopeText(fd.Namespace), fd.Location, fd.Message)
			}
		}
		if rows > 0 {
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(w)
		}
	}
	for _, line := range scanSummaryLines(rep, f.showExpected, objects, below, f.minSeverity) {
		fmt.Fprintln(w, line)
	}
	return nil
}

// explainFinding writes a finding as a block: severity, rule, status, what, scope and location on the first
// line; the message, the reason of an expected or suppressed finding, and every piece of evidence below.
func explainFinding(w io.Writer, fd *queries.Finding) {
	head := []string{fd.Severity.String(), fd.Rule, string(fd.Status), findingTarget(fd), scopeText(fd.Namespace)}
	if fd.Location != "" {
		head = append(head, fd.Location)
	}
	fmt.Fprintln(w, oneLine(strings.Join(head, "  ")))
	fmt.Fprintln(w, "    "+oneLine(fd.Message))
	if fd.Reason != "" {
		fmt.Fprintln(w, "    "+oneLine(string(fd.Status)+": "+fd.Reason))
	}
	for _, ev := range fd.Evidence {
		text := ev.Describe()
		if ev.Location != "" {
			text += " (" + ev.Location + ")"
		}
		if ev.Expected {
			text += " [expected: " + ev.Reason + "]"
		}
		fmt.Fprintln(w, "    evidence: "+oneLine(text))
	}
	fmt.Fprintln(w)
}

// oneLine keeps names with line breaks from breaking the layout, as table cells do.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func scanSummaryLines(rep *scanReport, showExpected bool, objects, below int, minSeverity string) []string {
	sum := rep.Summary
	var lines []string
	if sum.Risky == 0 {
		lines = append(lines, fmt.Sprintf("no risky findings in %d objects", objects))
	} else {
		var parts []string
		sevs := queries.Severities()
		for i := len(sevs) - 1; i >= 0; i-- {
			if n := sum.BySeverity[sevs[i].String()]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, sevs[i]))
			}
		}
		lines = append(lines, fmt.Sprintf("%d risky finding(s) in %d objects: %s", sum.Risky, objects, strings.Join(parts, ", ")))
	}
	if sum.Expected+sum.Suppressed > 0 {
		verb := "not shown; --show-expected lists them"
		if showExpected {
			verb = "listed above"
		}
		lines = append(lines, fmt.Sprintf("%d expected (platform defaults) and %d suppressed %s", sum.Expected, sum.Suppressed, verb))
	}
	if below > 0 {
		lines = append(lines, fmt.Sprintf("%d finding(s) below --min-severity %s not shown", below, minSeverity))
	}
	for _, sk := range rep.Skipped {
		lines = append(lines, fmt.Sprintf("skipped %s: %s", sk.Rule, sk.Reason))
	}
	if len(rep.ExpiredSuppressions) > 0 {
		lines = append(lines, fmt.Sprintf("%d suppression(s) expired (see the warnings on stderr)", len(rep.ExpiredSuppressions)))
	}
	return lines
}

// findingTarget names what a finding is about: its object, with the subject when that is another.
func findingTarget(fd *queries.Finding) string {
	switch {
	case fd.Object != nil && fd.Subject != nil && *fd.Object != *fd.Subject:
		return refText(*fd.Object) + " (" + refText(*fd.Subject) + ")"
	case fd.Object != nil:
		return refText(*fd.Object)
	case fd.Subject != nil:
		return refText(*fd.Subject)
	}
	return ""
}

// refText names an object as people write it: "RoleBinding prod/deployers", "ClusterRole edit".
func refText(r graph.ObjectRef) string {
	if r.Namespace == "" {
		return string(r.Kind) + " " + r.Name
	}
	return string(r.Kind) + " " + r.Namespace + "/" + r.Name
}

func scopeText(ns string) string {
	if ns == "" {
		return "*"
	}
	return ns
}
