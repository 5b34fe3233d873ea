package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/queries"
)

type diffFlags struct {
	oldPaths, newPaths []string
	cluster            bool
	kubeconfig         string
	kubeContext        string
	timeout            time.Duration
	defaultNamespace   string
	groupsFile         string
	risk               riskFlags
	format             string
}

func newDiffCmd(s streams) *cobra.Command {
	var f diffFlags
	cmd := &cobra.Command{
		Use:   "diff OLD NEW | --old PATH... --new PATH... | --kubeconfig FILE [--context C] MANIFESTS...",
		Short: "What-if: the permissions and risk findings a change of manifests adds and removes",
		Long: `Compare two sets of objects and report what the change grants: for every subject (User, Group,
ServiceAccount, as bindings name them) the permissions it gains and loses, each with the binding, role and rule
that make it, and the risk findings the change adds, resolves or changes (kiem's packs and --packs, as 'kiem
scan' evaluates them).

Forms:
  kiem diff OLD NEW                  two snapshots, each a file or directory of YAML/JSON (a checkout of the base
                                     branch and of the pull request, say)
  kiem diff --old P... --new P...    each side from several files or directories (--old and --new repeat)
  kiem diff --kubeconfig FILE [--context C] MANIFESTS...
                                     the live cluster, read once (list only), against the cluster with the
                                     manifests laid over it: an object of the same kind, namespace and name
                                     replaces the cluster's, a new one is added; nothing is deleted.
                                     --cluster uses $KUBECONFIG, ~/.kube/config or the in-cluster config.

Aggregated ClusterRoles are recomputed on both sides, as kube-controller-manager will, so a manifest that adds a
ClusterRole labelled for aggregation shows the grants it adds to admin, edit or view.

A finding counts for --fail-on when the change makes it risky at or above the threshold: new, or more severe,
or no longer expected or suppressed. Findings that stay as they were never fail the build; resolved ones are
listed. Expired suppressions are reported on stderr.

Formats: table (readable) and json: {"objects": [{op, ref, location}], "subjects": [{subject, gained, lost}],
"findings": {"new", "resolved", "changed": [{before, after}]}, "summary", "skipped", "expiredSuppressions"};
see docs/cli.md.

Exit codes: 0 the change adds no risky finding at or above --fail-on; 1 it adds at least one; 2 an error (a
malformed manifest, named by file and line; a bad pack; a cluster that cannot be read).`,
		Example: `  kiem diff base/deploy/ pr/deploy/
  kiem diff --old base/rbac.yaml --old base/apps/ --new pr/rbac.yaml --new pr/apps/ --format json
  kiem diff --kubeconfig ~/.kube/config --context prod deploy/ --fail-on critical`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runDiff(cmd.Context(), s, &f, args) },
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.oldPaths, "old", nil, "file or directory of the objects before the change (repeatable)")
	fl.StringArrayVar(&f.newPaths, "new", nil, "file or directory of the objects after the change (repeatable)")
	fl.BoolVar(&f.cluster, "cluster", false, "compare against the live cluster of $KUBECONFIG, ~/.kube/config or the in-cluster config")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "compare against the live cluster of this kubeconfig (implies --cluster)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context to use (implies --cluster)")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "longest the cluster may take to list its objects")
	fl.StringVar(&f.defaultNamespace, "default-namespace", "default",
		"namespace of namespaced objects in files that carry none, as 'kubectl apply -n' would give them")
	fl.StringVar(&f.groupsFile, "groups-file", "", "YAML/JSON map of user name to groups: the groups declared users are evaluated in")
	f.risk.register(fl, "exit 1 when the change makes a finding risky at or above this severity: info, low, medium, high, critical, or none")
	fl.StringVar(&f.format, "format", "table", "output format: table or json")
	return cmd
}

// diffReport is the JSON form of `kiem diff`.
type diffReport struct {
	Objects             []diffObject          `json:"objects"`
	Subjects            []graph.GrantDelta    `json:"subjects"`
	Findings            diffFindings          `json:"findings"`
	Summary             diffSummary           `json:"summary"`
	Skipped             []queries.SkippedRule `json:"skipped"`
	ExpiredSuppressions []queries.Suppression `json:"expiredSuppressions"`

	// The snapshots the grant paths point into: lost grants into before's, gained ones into after's.
	before, after *graph.Snapshot
}

// origin returns where the binding of a gained (or lost) grant was read, "" when unknown.
func (r *diffReport) origin(gained bool, binding graph.ObjectRef) string {
	snap := r.before
	if gained {
		snap = r.after
	}
	if o, ok := snap.Object(binding); ok {
		return objectOrigin(o)
	}
	return ""
}

// diffObject is one object the change adds, updates or deletes; Location is where the new (or, for a deletion,
// the old) object was read.
type diffObject struct {
	Op       graph.Op        `json:"op"`
	Ref      graph.ObjectRef `json:"ref"`
	Location string          `json:"location,omitempty"`
}

// diffFindings are the findings the change adds (New, as evaluated after it), removes (Resolved, as before it)
// and changes (the same finding with another severity or status).
type diffFindings struct {
	New      []queries.Finding `json:"new"`
	Resolved []queries.Finding `json:"resolved"`
	Changed  []findingChange   `json:"changed"`
}

type findingChange struct {
	Before queries.Finding `json:"before"`
	After  queries.Finding `json:"after"`
}

// diffSummary counts the delta. Failing counts the findings the change makes risky at or above FailOn.
type diffSummary struct {
	Subjects int    `json:"subjects"`
	Gained   int    `json:"gained"`
	Lost     int    `json:"lost"`
	New      int    `json:"new"`
	Resolved int    `json:"resolved"`
	Changed  int    `json:"changed"`
	FailOn   string `json:"failOn"`
	Failing  int    `json:"failing"`
}

func runDiff(ctx context.Context, s streams, f *diffFlags, args []string) error {
	if f.format != "table" && f.format != "json" {
		return fmt.Errorf("unknown format %q: use table or json", f.format)
	}
	threshold, gate, err := f.risk.threshold()
	if err != nil {
		return err
	}
	clusterMode := f.cluster || f.kubeconfig != "" || f.kubeContext != ""
	sides := len(f.oldPaths) > 0 || len(f.newPaths) > 0
	switch {
	case clusterMode && sides:
		return errors.New("--old and --new exclude the cluster form (--kubeconfig, --context, --cluster)")
	case clusterMode && len(args) == 0:
		return errors.New("give the manifests to lay over the cluster (kiem diff --kubeconfig FILE MANIFESTS...)")
	case sides && len(args) > 0:
		return errors.New("give OLD NEW as arguments or with --old and --new, not both")
	case sides && (len(f.oldPaths) == 0 || len(f.newPaths) == 0):
		return errors.New("--old and --new go together")
	case !clusterMode && !sides && len(args) != 2:
		return errors.New("give two snapshots, OLD NEW (files or directories), or --old and --new, or --kubeconfig FILE and the manifests")
	}
	e, _, err := f.risk.engine()
	if err != nil {
		return err
	}
	var oldObjs, newObjs *graph.Objects
	if clusterMode {
		oldObjs, newObjs, err = f.overlay(ctx, s, args)
	} else {
		oldPaths, newPaths := f.oldPaths, f.newPaths
		if !sides {
			oldPaths, newPaths = args[:1], args[1:]
		}
		oldObjs, newObjs, err = f.snapshots(ctx, oldPaths, newPaths)
	}
	if err != nil {
		return err
	}
	rep, err := whatIf(ctx, e, oldObjs, newObjs, failOnName(threshold, gate), threshold, gate)
	if err != nil {
		return err
	}
	warnExpired(s.err, rep.ExpiredSuppressions)
	if f.format == "json" {
		err = writeJSON(s.out, rep)
	} else {
		err = writeDiffTable(s.out, rep)
	}
	if err != nil {
		return err
	}
	if rep.Summary.Failing > 0 {
		fmt.Fprintf(s.err, "kiem diff: the change makes %d finding(s) risky at or above %s (--fail-on)\n", rep.Summary.Failing, threshold)
		return exitCode(exitNo)
	}
	return nil
}

// files reads paths as every --snapshot flag does.
func (f *diffFlags) files(ctx context.Context, paths []string) (*graph.Objects, error) {
	src := sourceFlags{snapshots: paths, defaultNamespace: f.defaultNamespace, groupsFile: f.groupsFile}
	return src.objects(ctx)
}

func (f *diffFlags) snapshots(ctx context.Context, oldPaths, newPaths []string) (*graph.Objects, *graph.Objects, error) {
	oldObjs, err := f.files(ctx, oldPaths)
	if err != nil {
		return nil, nil, fmt.Errorf("old: %w", err)
	}
	newObjs, err := f.files(ctx, newPaths)
	if err != nil {
		return nil, nil, fmt.Errorf("new: %w", err)
	}
	return oldObjs, newObjs, nil
}

// overlay reads the cluster once and lays the manifests over it: the later of two equal refs wins when a
// snapshot is built, as a later kubectl apply would.
func (f *diffFlags) overlay(ctx context.Context, s streams, manifests []string) (*graph.Objects, *graph.Objects, error) {
	over, err := f.files(ctx, manifests)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	live, err := readCluster(ctx, log, f.kubeconfig, f.kubeContext, f.timeout)
	if err != nil {
		return nil, nil, err
	}
	var oldObjs, newObjs graph.Objects
	oldObjs.Append(live)
	oldObjs.Users = over.Users // the groups file speaks for both sides
	newObjs.Append(live)
	newObjs.Append(over)
	return &oldObjs, &newObjs, nil
}

// readCluster lists the cluster's objects once, through the live indexer's initial list into a graph kept in
// memory, and returns them.
func readCluster(ctx context.Context, log *slog.Logger, kubeconfig, kubeContext string, timeout time.Duration) (*graph.Objects, error) {
	cfg, err := restConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	g := &listedGraph{}
	ix, err := indexer.NewLive(indexer.LiveOptions{Client: cs, Graph: g, Logger: log.With("component", "indexer"), Source: "cluster"})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ix.Ready():
		cancel()
		if err := <-done; err != nil {
			return nil, fmt.Errorf("read cluster: %w", err)
		}
		return g.Current().Objects(), nil
	case err := <-done:
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("read cluster: %w", err)
	case <-timer.C:
		cancel()
		<-done
		var failing []string
		for kind, c := range ix.Stats().Events {
			if c.WatchErrors > 0 {
				failing = append(failing, string(kind))
			}
		}
		sort.Strings(failing)
		msg := fmt.Sprintf("read cluster: not listed within %v", timeout)
		if len(failing) > 0 {
			msg += "; listing failed for " + strings.Join(failing, ", ") +
				" (kiem needs list on namespaces, serviceaccounts, pods, nodes, roles, clusterroles, rolebindings and clusterrolebindings)"
		}
		return nil, errors.New(msg)
	}
}

// listedGraph is the in-memory graph the live indexer commits a cluster's initial list to: what `kiem diff`
// needs of indexer.LiveGraph, without a store.
type listedGraph struct {
	mu   sync.Mutex
	snap *graph.Snapshot
	rev  graph.Revision
}

var _ indexer.LiveGraph = (*listedGraph)(nil)

// Current implements indexer.LiveGraph. A live cluster's aggregated ClusterRoles are kept as the API holds them.
func (g *listedGraph) Current() *graph.Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.snap == nil {
		g.snap = graph.NewSnapshotWith(&graph.Objects{}, graph.SnapshotOptions{APIAggregation: true})
	}
	return g.snap
}

// Commit implements indexer.LiveGraph.
func (g *listedGraph) Commit(_ context.Context, _ string, changes []graph.Change) (graph.Revision, error) {
	next := g.Current().Apply(changes)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.snap = next
	g.rev++
	return g.rev, nil
}

// whatIf compares the objects before and after a change: objects, grants and findings.
func whatIf(ctx context.Context, e *queries.Engine, oldObjs, newObjs *graph.Objects, failOn string, threshold queries.Severity, gate bool) (*diffReport, error) {
	oldSnap, newSnap := graph.NewSnapshot(oldObjs), graph.NewSnapshot(newObjs)
	objects := contentChanges(graph.CondenseChanges(graph.ReconcileChanges(oldSnap, newObjs)))
	d, err := graph.DiffSnapshots(ctx, oldSnap, newSnap, objects)
	if err != nil {
		return nil, err
	}
	before, err := e.Evaluate(ctx, oldSnap)
	if err != nil {
		return nil, fmt.Errorf("old: %w", err)
	}
	after, err := e.Evaluate(ctx, newSnap)
	if err != nil {
		return nil, fmt.Errorf("new: %w", err)
	}
	delta := queries.Compare(before.Findings(), after.Findings())
	rep := &diffReport{Objects: []diffObject{}, Subjects: d.Subjects, Skipped: after.Skipped, ExpiredSuppressions: after.Expired,
		Findings: diffFindings{New: delta.New, Resolved: delta.Resolved, Changed: []findingChange{}},
		Summary:  diffSummary{FailOn: failOn}}
	for _, o := range objects {
		obj := o.After
		if obj == nil {
			obj = o.Before
		}
		rep.Objects = append(rep.Objects, diffObject{Op: o.Op, Ref: o.Ref, Location: objectOrigin(obj)})
	}
	old := map[string]*queries.Finding{}
	for i, fd := range before.Findings() {
		old[fd.Fingerprint] = &before.Findings()[i]
	}
	counts := func(b *queries.Finding, a *queries.Finding) bool {
		if !gate || a.Status != queries.StatusRisky || a.Severity < threshold {
			return false
		}
		return b == nil || b.Status != queries.StatusRisky || b.Severity < threshold
	}
	for i := range rep.Findings.New {
		if counts(nil, &rep.Findings.New[i]) {
			rep.Summary.Failing++
		}
	}
	for _, a := range after.Findings() {
		b, ok := old[a.Fingerprint]
		if !ok || (b.Severity == a.Severity && b.Status == a.Status) {
			continue
		}
		rep.Findings.Changed = append(rep.Findings.Changed, findingChange{Before: *b, After: a})
		if counts(b, &a) {
			rep.Summary.Failing++
		}
	}
	for _, sd := range rep.Subjects {
		rep.Summary.Gained += len(sd.Gained)
		rep.Summary.Lost += len(sd.Lost)
	}
	rep.Summary.Subjects = len(rep.Subjects)
	rep.Summary.New, rep.Summary.Resolved, rep.Summary.Changed = len(rep.Findings.New), len(rep.Findings.Resolved), len(rep.Findings.Changed)
	if rep.Skipped == nil {
		rep.Skipped = []queries.SkippedRule{}
	}
	if rep.ExpiredSuppressions == nil {
		rep.ExpiredSuppressions = []queries.Suppression{}
	}
	rep.before, rep.after = oldSnap, newSnap
	return rep, nil
}

// contentChanges drops the updates that change nothing but where an object was read: the same binding read
// from base/rbac.yaml and from pr/rbac.yaml is the same binding.
func contentChanges(diffs []graph.ObjectDiff) []graph.ObjectDiff {
	return slices.DeleteFunc(diffs, func(d graph.ObjectDiff) bool {
		if d.Op != graph.OpUpdate {
			return false
		}
		a, errA := graph.MarshalObject(withoutOrigin(d.Before))
		b, errB := graph.MarshalObject(withoutOrigin(d.After))
		return errA == nil && errB == nil && string(a) == string(b)
	})
}

// withoutOrigin returns a copy of o with no Meta.Origin.
func withoutOrigin(o graph.Object) graph.Object {
	switch v := o.(type) {
	case *graph.Namespace:
		c := *v
		c.Origin = ""
		return &c
	case *graph.ServiceAccount:
		c := *v
		c.Origin = ""
		return &c
	case *graph.Role:
		c := *v
		c.Origin = ""
		return &c
	case *graph.Binding:
		c := *v
		c.Origin = ""
		return &c
	case *graph.Pod:
		c := *v
		c.Origin = ""
		return &c
	case *graph.Node:
		c := *v
		c.Origin = ""
		return &c
	case *graph.Secret:
		c := *v
		c.Origin = ""
		return &c
	case *graph.User:
		c := *v
		c.Origin = ""
		return &c
	}
	return o
}

func writeDiffTable(w io.Writer, rep *diffReport) error {
	sum := rep.Summary
	if len(rep.Objects) == 0 {
		fmt.Fprintln(w, "no object changes")
	} else {
		fmt.Fprintf(w, "objects (%d changed):\n", len(rep.Objects))
		for _, o := range rep.Objects {
			line := "  " + opSign(o.Op) + " " + refText(o.Ref)
			if o.Location != "" {
				line += " (" + o.Location + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprintln(w)
	if sum.Gained+sum.Lost == 0 {
		fmt.Fprintln(w, "no permission changes")
	} else {
		fmt.Fprintf(w, "permissions (%d gained, %d lost, by %d subject(s)):\n", sum.Gained, sum.Lost, sum.Subjects)
		for _, sd := range rep.Subjects {
			for _, p := range sd.Gained {
				fmt.Fprintln(w, "  + "+grantLine(sd.Subject, "gains", p, rep.origin(true, *p.Binding)))
			}
			for _, p := range sd.Lost {
				fmt.Fprintln(w, "  - "+grantLine(sd.Subject, "loses", p, rep.origin(false, *p.Binding)))
			}
		}
	}
	sections := []struct {
		title    string
		findings []queries.Finding
	}{{"new findings", rep.Findings.New}, {"resolved findings", rep.Findings.Resolved}}
	for _, sec := range sections {
		fmt.Fprintln(w)
		if len(sec.findings) == 0 {
			fmt.Fprintf(w, "%s: none\n", sec.title)
			continue
		}
		fmt.Fprintf(w, "%s:\n", sec.title)
		t := newTable(w, "  SEVERITY", "RULE", "STATUS", "SUBJECT/OBJECT", "SCOPE", "LOCATION", "MESSAGE")
		for _, fd := range sec.findings {
			t.row("  "+fd.Severity.String(), fd.Rule, string(fd.Status), findingTarget(&fd), scopeText(fd.Namespace), fd.Location, fd.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(rep.Findings.Changed) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "changed findings:")
		t := newTable(w, "  BEFORE", "AFTER", "RULE", "SUBJECT/OBJECT", "SCOPE", "LOCATION", "MESSAGE")
		for _, c := range rep.Findings.Changed {
			a := c.After
			t.row("  "+c.Before.Severity.String()+" "+string(c.Before.Status), a.Severity.String()+" "+string(a.Status), a.Rule,
				findingTarget(&a), scopeText(a.Namespace), a.Location, a.Message)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	newRisky := 0
	for _, fd := range rep.Findings.New {
		if fd.Status == queries.StatusRisky {
			newRisky++
		}
	}
	line := fmt.Sprintf("%d new finding(s) (%d risky), %d resolved, %d changed", sum.New, newRisky, sum.Resolved, sum.Changed)
	if sum.FailOn != "none" {
		line += fmt.Sprintf("; %d risky at or above %s", sum.Failing, sum.FailOn)
	}
	fmt.Fprintln(w, line)
	for _, sk := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", sk.Rule, sk.Reason)
	}
	return nil
}

func opSign(op graph.Op) string {
	switch op {
	case graph.OpAdd:
		return "+"
	case graph.OpDelete:
		return "-"
	}
	return "~"
}

// grantLine says what a permission grants a subject, and through what:
// "ServiceAccount ci/deployer gains create pods in namespace prod via RoleBinding prod/deployers → ClusterRole edit rule 3".
func grantLine(subject graph.ObjectRef, verb string, p graph.Permission, location string) string {
	where := "cluster-wide"
	if p.Namespace != "" {
		where = "in namespace " + p.Namespace
	}
	s := fmt.Sprintf("%s %s %s %s via %s → %s rule %d", refText(subject), verb, ruleText(p.Rule), where,
		refText(*p.Binding), refText(*p.Role), p.RuleIndex)
	if p.AggregatedFrom != nil {
		s += " (aggregated from " + refText(*p.AggregatedFrom) + ")"
	}
	if location != "" {
		s += " (" + location + ")"
	}
	return s
}

// ruleText renders a rule's verbs and what they apply to, resources qualified by their API group as kubectl
// writes them: "create,delete deployments.apps", "get secrets named app-tls", "get /metrics".
func ruleText(r *rbacv1.PolicyRule) string {
	var what []string
	for _, res := range r.Resources {
		for _, g := range r.APIGroups {
			if g == "" {
				what = append(what, res)
			} else {
				what = append(what, res+"."+g)
			}
		}
	}
	what = append(what, r.NonResourceURLs...)
	s := strings.Join(r.Verbs, ",") + " " + strings.Join(what, ",")
	if len(r.ResourceNames) > 0 {
		s += " named " + strings.Join(r.ResourceNames, ",")
	}
	return s
}

// objectOrigin returns where an object was read ("file:line"), "" for objects of a live cluster or none.
func objectOrigin(o graph.Object) string {
	if m := graph.MetaOf(o); m != nil {
		return m.Origin
	}
	return ""
}
