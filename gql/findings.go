package gql

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/queries"
)

// FindingsSource is what the API reads risk findings from; *queries.Tracker implements it.
type FindingsSource interface {
	// Current returns the newest revision evaluated and its findings; nil before Ready.
	Current() (graph.Revision, *queries.Result)
	// At returns the findings of a retained revision.
	At(ctx context.Context, rev graph.Revision) (*queries.Result, error)
	// Engine returns the engine the findings are evaluated with: its packs and rules.
	Engine() *queries.Engine
	// Ready is closed once the head has been evaluated.
	Ready() <-chan struct{}
	// Deltas returns the revision deltas recorded for revisions in (from, to], oldest first.
	Deltas(from, to graph.Revision) ([]queries.RevisionDelta, bool)
}

// errFindingsOff and errFindingsNotReady are shown to the caller as they are: they say what the server lacks,
// and the code lets a client tell "never" (NOT_ENABLED) from "soon" (UNAVAILABLE).
var (
	errFindingsOff = &gqlerror.Error{Message: "risk findings are not enabled on this server",
		Extensions: map[string]any{"code": "NOT_ENABLED"}}
	errFindingsNotReady = &gqlerror.Error{Message: "risk findings are not evaluated yet (the first evaluation is running); retry shortly",
		Extensions: map[string]any{"code": "UNAVAILABLE"}}
)

// coded returns a copy of a coded error: the presenter sets the path on the error it is given, and errors of
// concurrent fields must not share one.
func coded(e *gqlerror.Error) error {
	c := *e
	return &c
}

// engine returns the engine of the findings, or the error that says they are off.
func (r *Resolver) engine() (*queries.Engine, error) {
	if r.opts.Findings == nil {
		return nil, coded(errFindingsOff)
	}
	return r.opts.Findings.Engine(), nil
}

// findingSet is the findings of one revision as one answer reads them: every finding of it resolves its nodes at
// the same view and shares the (lazily derived) escalation paths of that view.
type findingSet struct {
	r   *Resolver
	v   *view
	eng *queries.Engine

	adminOnce sync.Once
	toAdmin   map[graph.ObjectRef]graph.AttackPath
	adminErr  error
}

// findingsAt returns the findings of revision at (nil: the newest the tracker has evaluated).
func (r *Resolver) findingsAt(ctx context.Context, at *graph.Revision) (*findingSet, *queries.Result, error) {
	src := r.opts.Findings
	if src == nil {
		return nil, nil, coded(errFindingsOff)
	}
	select {
	case <-src.Ready():
	default:
		return nil, nil, coded(errFindingsNotReady)
	}
	rev, res := src.Current()
	if at != nil {
		if head := r.opts.Graph.Head(); *at > head {
			return nil, nil, userErrorf("revision %d is after the head revision %d", *at, head)
		}
		var err error
		rev = *at
		res, err = src.At(ctx, rev)
		if gone := r.goneError(err, rev); gone != nil {
			return nil, nil, gone
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if res == nil {
		return nil, nil, coded(errFindingsNotReady)
	}
	// The view is the evaluated snapshot itself: nodes and findings are one revision's, whatever the head is now.
	return r.findingSet(src.Engine(), &view{snap: res.Snapshot(), rev: rev, cluster: r.opts.Cluster}), res, nil
}

func (r *Resolver) findingSet(eng *queries.Engine, v *view) *findingSet {
	return &findingSet{r: r, v: v, eng: eng}
}

// pathToAdmin returns the shortest escalation path from subject to cluster-admin at the set's revision.
func (s *findingSet) pathToAdmin(ctx context.Context, subject graph.ObjectRef) (graph.AttackPath, bool, error) {
	s.adminOnce.Do(func() {
		g, err := s.r.attackGraphs().AttackGraph(ctx, s.v.rev, s.v.snap)
		if err != nil {
			s.adminErr = err
			return
		}
		s.toAdmin, s.adminErr = g.ToClusterAdmin(ctx)
	})
	if s.adminErr != nil {
		return graph.AttackPath{}, false, s.adminErr
	}
	p, ok := s.toAdmin[subject]
	return p, ok, nil
}

// findingFilter is the arguments of findings that select.
type findingFilter struct {
	pack, rule string
	severity   *queries.Severity
	statuses   []queries.Status
	subject    *graph.ObjectRef
	namespace  *string
}

// findingFilterOf validates the arguments of findings against the engine and the view.
func findingFilterOf(eng *queries.Engine, v *view, pack *string, rule *string, severity *Severity, status []FindingStatus,
	subject *SubjectInput, namespace *string) (findingFilter, error) {
	f := findingFilter{pack: deref(pack), rule: deref(rule), statuses: statusesOf(status), namespace: namespace}
	if f.pack != "" && !slices.ContainsFunc(eng.Packs(), func(p *queries.Pack) bool { return p.Name == f.pack }) {
		return f, userErrorf("pack: no pack %q is loaded", f.pack)
	}
	if f.rule != "" {
		if _, ok := eng.Rule(f.rule); !ok {
			return f, userErrorf("rule: no rule %q is loaded", f.rule)
		}
	}
	if severity != nil {
		s := severityFrom(*severity)
		f.severity = &s
	}
	if subject != nil {
		ref, err := v.subjectRef(*subject)
		if err != nil {
			return f, err
		}
		f.subject = &ref
	}
	return f, nil
}

func (f *findingFilter) match(x *queries.Finding) bool {
	switch {
	case f.pack != "" && x.Pack != f.pack,
		f.rule != "" && x.Rule != f.rule,
		f.severity != nil && x.Severity < *f.severity,
		!slices.Contains(f.statuses, x.Status),
		f.subject != nil && (x.Subject == nil || *x.Subject != *f.subject),
		f.namespace != nil && x.Namespace != *f.namespace:
		return false
	}
	return true
}

// findingConnection pages the findings of fs that f selects.
func findingConnection(set *findingSet, fs []queries.Finding, f findingFilter, first *int, after *string) (*FindingConnection, error) {
	var all []*queries.Finding
	sum := &FindingsSummary{ByPack: []*PackCount{}, ByNamespace: []*NamespaceCount{}}
	bySeverity := make([]int, len(severities))
	byPack, byNamespace := map[string]int{}, map[string]int{}
	for i := range fs {
		x := &fs[i]
		if !f.match(x) {
			continue
		}
		all = append(all, x)
		sum.Total++
		switch x.Status {
		case queries.StatusRisky:
			sum.Risky++
		case queries.StatusExpected:
			sum.Expected++
		case queries.StatusSuppressed:
			sum.Suppressed++
		}
		if int(x.Severity) < len(bySeverity) {
			bySeverity[x.Severity]++
		}
		byPack[x.Pack]++
		byNamespace[x.Namespace]++
	}
	for _, k := range countOrder(byPack) {
		sum.ByPack = append(sum.ByPack, &PackCount{Pack: k, Count: byPack[k]})
	}
	for _, k := range countOrder(byNamespace) {
		sum.ByNamespace = append(sum.ByNamespace, &NamespaceCount{Namespace: k, Count: byNamespace[k]})
	}
	for i := len(severities) - 1; i >= 0; i-- {
		sum.BySeverity = append(sum.BySeverity, &SeverityCount{Severity: severities[i], Count: bySeverity[i]})
	}
	pg, err := paginate(len(all), first, after)
	if err != nil {
		return nil, err
	}
	c := &FindingConnection{PageInfo: pg.info, TotalCount: len(all), Revision: set.v.rev, Summary: sum,
		Edges: []*FindingEdge{}, Nodes: []*Finding{}}
	for i := pg.start; i < pg.end; i++ {
		n := &Finding{set: set, f: all[i]}
		c.Edges = append(c.Edges, &FindingEdge{Cursor: cursor(i), Node: n})
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// findingsDelta compares the findings of two revisions.
func (r *Resolver) findingsDelta(ctx context.Context, from, to *view, status []FindingStatus) (*FindingsDelta, error) {
	src := r.opts.Findings
	if src == nil {
		return nil, coded(errFindingsOff)
	}
	select {
	case <-src.Ready():
	default:
		return nil, coded(errFindingsNotReady)
	}
	eng := src.Engine()
	before, err := src.At(ctx, from.rev)
	if err != nil {
		return nil, err
	}
	after, err := src.At(ctx, to.rev)
	if err != nil {
		return nil, err
	}
	d := queries.Compare(before.Findings(), after.Findings())
	keep := statusesOf(status)
	list := func(set *findingSet, fs []queries.Finding) []*Finding {
		out := []*Finding{}
		for i := range fs {
			if slices.Contains(keep, fs[i].Status) {
				out = append(out, &Finding{set: set, f: &fs[i]})
			}
		}
		return out
	}
	return &FindingsDelta{New: list(r.findingSet(eng, to), d.New), Resolved: list(r.findingSet(eng, from), d.Resolved)}, nil
}

// Finding is one finding, read at its revision.
type Finding struct {
	set *findingSet
	f   *queries.Finding
}

func (f *Finding) Fingerprint() string      { return f.f.Fingerprint }
func (f *Finding) Pack() string             { return f.f.Pack }
func (f *Finding) Severity() Severity       { return severityOf(f.f.Severity) }
func (f *Finding) Status() FindingStatus    { return statusOf(f.f.Status) }
func (f *Finding) Title() string            { return f.f.Title }
func (f *Finding) Message() string          { return f.f.Message }
func (f *Finding) SubjectRef() *ObjectRef   { return objectRefOf(f.f.Subject) }
func (f *Finding) ObjectRef() *ObjectRef    { return objectRefOf(f.f.Object) }
func (f *Finding) Namespace() *string       { return optional(f.f.Namespace) }
func (f *Finding) Reason() *string          { return optional(f.f.Reason) }
func (f *Finding) Location() *string        { return optional(f.f.Location) }
func (f *Finding) Revision() graph.Revision { return f.set.v.rev }

// Rule returns the finding's rule. A finding evaluated with an engine that has since lost the rule (new packs)
// still names it: what the finding carries stands in for the rest.
func (f *Finding) Rule() *RiskRule {
	if f.set.eng != nil {
		if r, ok := f.set.eng.Rule(f.f.Rule); ok {
			return &RiskRule{r}
		}
	}
	return &RiskRule{&queries.Rule{ID: f.f.Rule, Pack: f.f.Pack, Title: f.f.Title, Severity: f.f.Severity}}
}

func (f *Finding) Subject() SubjectNode {
	if f.f.Subject == nil {
		return nil
	}
	n, _ := f.set.v.subjectNode(*f.f.Subject)
	return n
}

func (f *Finding) Object() Node {
	if f.f.Object == nil {
		return nil
	}
	return f.set.v.knownNode(*f.f.Object)
}

func (f *Finding) Suppression() *Suppression {
	if f.f.Suppression == nil {
		return nil
	}
	return &Suppression{s: *f.f.Suppression}
}

func (f *Finding) Evidence() []*Evidence {
	out := make([]*Evidence, len(f.f.Evidence))
	for i := range f.f.Evidence {
		out[i] = &Evidence{v: f.set.v, e: &f.f.Evidence[i]}
	}
	return out
}

// Path returns the subject's shortest escalation path to cluster-admin, nil when it has none.
func (f *Finding) Path(ctx context.Context) ([]*AttackHop, error) {
	if len(f.f.Path) > 0 {
		return attackHops(f.set.v, f.f.Path), nil // an attack-path finding carries its own
	}
	if f.f.Subject == nil {
		return nil, nil
	}
	p, ok, err := f.set.pathToAdmin(ctx, *f.f.Subject)
	if err != nil || !ok {
		return nil, err
	}
	return attackHops(f.set.v, p.Hops), nil
}

// Evidence is one fact a finding stands on.
type Evidence struct {
	v *view
	e *queries.Evidence
}

func (e *Evidence) Text() string          { return e.e.Describe() }
func (e *Evidence) Namespace() *string    { return optional(e.e.Namespace) }
func (e *Evidence) ObjectRef() *ObjectRef { return objectRefOf(e.e.Object) }
func (e *Evidence) Expected() bool        { return e.e.Expected }
func (e *Evidence) Reason() *string       { return optional(e.e.Reason) }
func (e *Evidence) Location() *string     { return optional(e.e.Location) }
func (e *Evidence) Grant() *GrantPath     { return completeGrant(e.v, e.e.Grant) }

func (e *Evidence) Object() Node {
	if e.e.Object == nil {
		return nil
	}
	return e.v.knownNode(*e.e.Object)
}

// completeGrant returns the GrantPath of p when p names a binding, subject, role and rule (the GraphQL type
// promises all four); nil otherwise.
func completeGrant(v *view, p *graph.GrantPath) *GrantPath {
	if p == nil || p.Binding == nil || p.Subject == nil || p.Role == nil || p.Rule == nil {
		return nil
	}
	return &GrantPath{v: v, p: *p}
}

// knownNode is nodeOf for refs of the graph's own kinds; the attack graph's set and terminal nodes have none.
func (v *view) knownNode(ref graph.ObjectRef) Node {
	if _, ok := kinds[ref.Kind]; !ok {
		return nil
	}
	return v.nodeOf(ref)
}

func objectRefOf(ref *graph.ObjectRef) *ObjectRef {
	if ref == nil {
		return nil
	}
	return &ObjectRef{Kind: string(ref.Kind), Namespace: ref.Namespace, Name: ref.Name}
}

// subjectRef turns a SubjectInput into the subject as bindings name it, the form of findings and of the attack
// graph, validated as identity validates it. A user named system:serviceaccount:NS:NAME is that ServiceAccount,
// as the authorizer matches it.
func (v *view) subjectRef(in SubjectInput) (graph.ObjectRef, error) {
	if in.Groups != nil {
		return graph.ObjectRef{}, userErrorf("subject: groups do not apply here (a subject is matched as bindings name it; a user's declared groups are known)")
	}
	if _, err := v.identity(in); err != nil {
		return graph.ObjectRef{}, err
	}
	switch in.Kind {
	case SubjectKindUser:
		if ns, name, ok := graph.SplitServiceAccountUsername(in.Name); ok {
			return graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: name}, nil
		}
		return graph.ObjectRef{Kind: graph.KindUser, Name: in.Name}, nil
	case SubjectKindGroup:
		return graph.ObjectRef{Kind: graph.KindGroup, Name: in.Name}, nil
	}
	return graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: deref(in.Namespace), Name: in.Name}, nil
}

// severities are the GraphQL severities, indexed by queries.Severity.
var severities = [...]Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

func severityOf(s queries.Severity) Severity {
	if s < 0 || int(s) >= len(severities) {
		return SeverityInfo
	}
	return severities[s]
}

func severityFrom(s Severity) queries.Severity {
	return queries.Severity(slices.Index(severities[:], s))
}

func statusOf(s queries.Status) FindingStatus {
	switch s {
	case queries.StatusExpected:
		return FindingStatusExpected
	case queries.StatusSuppressed:
		return FindingStatusSuppressed
	}
	return FindingStatusRisky
}

// statusesOf returns the statuses a status argument selects: RISKY when it names none.
func statusesOf(in []FindingStatus) []queries.Status {
	if len(in) == 0 {
		return []queries.Status{queries.StatusRisky}
	}
	out := make([]queries.Status, 0, len(in))
	for _, s := range in {
		switch s {
		case FindingStatusRisky:
			out = append(out, queries.StatusRisky)
		case FindingStatusExpected:
			out = append(out, queries.StatusExpected)
		case FindingStatusSuppressed:
			out = append(out, queries.StatusSuppressed)
		}
	}
	return out
}

// countOrder returns the keys of counts, most counted first, then by key.
func countOrder(counts map[string]int) []string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return keys
}

// maxTrend bounds findingsTrend's points.
const maxTrend = 1000

// findingsTrend walks the tracker's revision deltas back from its current result: the risky counts of a point
// are those of the next point minus what appeared at the next point plus what it resolved.
func (r *Resolver) findingsTrend(ctx context.Context, last *int) ([]*FindingsTrendPoint, error) {
	if r.opts.Findings == nil {
		return nil, coded(errFindingsOff)
	}
	n := 100
	if last != nil {
		n = *last
	}
	if n < 1 || n > maxTrend {
		return nil, userErrorf("last: %d: must be between 1 and %d", n, maxTrend)
	}
	rev, cur := r.opts.Findings.Current()
	if cur == nil {
		return nil, coded(errFindingsNotReady)
	}
	deltas, _ := r.opts.Findings.Deltas(0, rev)
	// A refresh of attack paths records a delta within one revision: fold it into that revision's point.
	type step struct {
		rev           graph.Revision
		new, resolved []queries.Finding
	}
	var steps []step
	for _, d := range deltas {
		if k := len(steps); k > 0 && steps[k-1].rev == d.Revision {
			steps[k-1].new = append(steps[k-1].new, d.New...)
			steps[k-1].resolved = append(steps[k-1].resolved, d.Resolved...)
			continue
		}
		steps = append(steps, step{rev: d.Revision, new: d.New, resolved: d.Resolved})
	}
	if len(steps) == 0 || steps[len(steps)-1].rev != rev {
		steps = append(steps, step{rev: rev})
	}
	counts := make([]int, len(severities))
	fs := cur.Findings()
	for i := range fs {
		if fs[i].Status == queries.StatusRisky && int(fs[i].Severity) < len(counts) {
			counts[fs[i].Severity]++
		}
	}
	tally := func(list []queries.Finding, by int) int {
		n := 0
		for i := range list {
			if list[i].Status == queries.StatusRisky && int(list[i].Severity) < len(counts) {
				counts[list[i].Severity] += by
				n++
			}
		}
		return n
	}
	horizon := r.opts.Graph.Store().Horizon()
	var points []*FindingsTrendPoint
	for i := len(steps) - 1; i >= 0 && len(points) < n; i-- {
		st := steps[i]
		if st.rev < horizon || st.rev == 0 {
			break
		}
		p := &FindingsTrendPoint{Revision: st.rev}
		for j := len(severities) - 1; j >= 0; j-- {
			p.BySeverity = append(p.BySeverity, &SeverityCount{Severity: severities[j], Count: counts[j]})
			p.Risky += counts[j]
		}
		// Step back over this point's delta to the counts of the point before it.
		p.New = tally(st.new, -1)
		p.Resolved = tally(st.resolved, +1)
		points = append(points, p)
	}
	slices.Reverse(points)
	if len(points) > 0 {
		times := map[graph.Revision]*FindingsTrendPoint{}
		for _, p := range points {
			times[p.Revision] = p
		}
		err := r.opts.Graph.Store().Revisions(ctx, points[0].Revision-1, points[len(points)-1].Revision, func(info graph.RevisionInfo) bool {
			if p, ok := times[info.Revision]; ok {
				p.Time = info.Time
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return points, nil
}
