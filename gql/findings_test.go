package gql

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/demo"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/testutil"
	"github.com/kiem-io/kiem/queries"
)

var (
	_ FindingsSource   = (*queries.Tracker)(nil)
	_ SuppressionStore = (*queries.SuppressionFile)(nil)
)

// riskAPI is the API with risk findings: a real Badger store holding the kubeadm fixture (revision base) and the
// planted risks (revision planted), a tracker following it, and a suppressions file wired as serve wires it.
type riskAPI struct {
	*testAPI
	tracker       *queries.Tracker
	supp          *queries.SuppressionFile
	base, planted graph.Revision
}

// The planted risks. team-a: the ServiceAccount deployer may create pods (KIEM-CIS-5.1.4). ops: the user mallory
// may create pods where the ServiceAccount admin-sa is bound to cluster-admin, an escalation path to
// cluster-admin.
func plantedRisks() []graph.Object {
	podCreator := func(ns string) *graph.Role {
		return &graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: ns, Name: "pod-creator"},
			Rules: []rbacv1.PolicyRule{{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
	}
	binding := func(kind graph.Kind, ns, name, roleKind, role string, subject rbacv1.Subject) *graph.Binding {
		return &graph.Binding{Kind: kind, Meta: graph.Meta{Namespace: ns, Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: role},
			Subjects: []rbacv1.Subject{subject}}
	}
	return []graph.Object{
		&graph.Namespace{Meta: graph.Meta{Name: "team-a"}},
		&graph.ServiceAccount{Meta: graph.Meta{Namespace: "team-a", Name: "deployer"}},
		podCreator("team-a"),
		binding(graph.KindRoleBinding, "team-a", "deployer-pods", "Role", "pod-creator",
			rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: "deployer"}),
		&graph.Namespace{Meta: graph.Meta{Name: "ops"}},
		&graph.ServiceAccount{Meta: graph.Meta{Namespace: "ops", Name: "admin-sa"}},
		podCreator("ops"),
		binding(graph.KindRoleBinding, "ops", "mallory-pods", "Role", "pod-creator",
			rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}),
		binding(graph.KindClusterRoleBinding, "", "ops-admin", "ClusterRole", "cluster-admin",
			rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: "ops", Name: "admin-sa"}),
	}
}

// kubeadmChanges returns the changes that add the kubeadm fixture's objects: the demo's first step, less the
// apps and users it adds.
func kubeadmChanges(t testing.TB) []graph.Change {
	t.Helper()
	demoOnce.Do(func() { demoOnce.steps, demoOnce.err = demo.Timeline(context.Background()) })
	if demoOnce.err != nil {
		t.Fatal(demoOnce.err)
	}
	var out []graph.Change
	for _, c := range demoOnce.steps[0].Changes {
		var origin string
		switch o := c.After.(type) {
		case *graph.Role:
			origin = o.Origin
		case *graph.Binding:
			origin = o.Origin
		case *graph.ServiceAccount:
			origin = o.Origin
		case *graph.Namespace:
			origin = o.Origin
		}
		if strings.HasPrefix(origin, fixtures.KubeadmV133+":") {
			out = append(out, c)
		}
	}
	if len(out) < 100 {
		t.Fatalf("the kubeadm fixture gave %d objects", len(out))
	}
	return out
}

// newRiskAPI starts the API; edit, when given, changes the Options before the handler is built.
func newRiskAPI(t testing.TB, so ServeOptions, edit func(*Options)) *riskAPI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	live, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &riskAPI{testAPI: &testAPI{t: t, live: live, logs: &testutil.Buffer{}}}
	if a.base, err = live.Commit(ctx, "kubeadm", kubeadmChanges(t)); err != nil {
		t.Fatal(err)
	}
	var plant []graph.Change
	for _, o := range plantedRisks() {
		plant = append(plant, graph.NewChange(nil, o))
	}
	if a.planted, err = live.Commit(ctx, "planted", plant); err != nil {
		t.Fatal(err)
	}

	packs, err := queries.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	engine := func(s *queries.Suppressions) *queries.Engine {
		e, err := queries.NewEngine(packs, queries.Options{Baseline: queries.DefaultBaseline(), Suppressions: s})
		if err != nil {
			t.Error(err)
		}
		return e
	}
	if a.supp, err = queries.OpenSuppressionFile(filepath.Join(t.TempDir(), "suppressions.yaml")); err != nil {
		t.Fatal(err)
	}
	a.tracker = queries.NewTracker(engine(a.supp.Current()), live, queries.TrackerOptions{})
	// As serve wires it: a change of the suppressions rebuilds the engine and re-evaluates the head.
	a.supp.OnChange(func(s *queries.Suppressions) {
		if err := a.tracker.SetEngine(ctx, engine(s)); err != nil {
			t.Error(err)
		}
	})
	done := make(chan error, 1)
	go func() { done <- a.tracker.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	a.waitTracker(live.Head())

	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokens, []byte(viewerToken+",vera,viewer\n"+adminToken+",ada,admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(a.logs, nil))
	if so.Auth == nil {
		if so.Auth, err = auth.LoadTokenFile(tokens, log); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Graph: live, Cluster: "test", Source: "snapshot", Version: "test", Logger: log,
		Findings: a.tracker, Suppressions: a.supp}
	if edit != nil {
		edit(&opts)
	}
	h, err := NewHandler(opts, so)
	if err != nil {
		t.Fatal(err)
	}
	a.srv = httptest.NewServer(h)
	t.Cleanup(a.srv.Close)
	return a
}

// waitTracker waits until the tracker has evaluated rev, woken by its channels.
func (a *riskAPI) waitTracker(rev graph.Revision) {
	a.t.Helper()
	deadline := time.After(time.Minute)
	select {
	case <-a.tracker.Ready():
	case <-deadline:
		a.t.Fatal("the tracker never became ready")
	}
	for {
		updated := a.tracker.Updated()
		if got, _ := a.tracker.Current(); got >= rev {
			return
		}
		select {
		case <-updated:
		case <-deadline:
			got, _ := a.tracker.Current()
			a.t.Fatalf("tracker stuck at revision %d, want %d", got, rev)
		}
	}
}

// commit commits changes and waits for the tracker to evaluate them.
func (a *riskAPI) commit(changes ...graph.Change) graph.Revision {
	a.t.Helper()
	rev, err := a.live.Commit(context.Background(), "test", changes)
	if err != nil {
		a.t.Fatal(err)
	}
	a.waitTracker(rev)
	return rev
}

// current returns the tracker's findings, to check answers against.
func (a *riskAPI) current() (graph.Revision, []queries.Finding) {
	rev, res := a.tracker.Current()
	return rev, res.Findings()
}

// errorCode runs a query as token and returns its first error's message and code; the status must not be 5xx.
func (a *testAPI) errorCode(token, query string, vars map[string]any) (msg, code string) {
	a.t.Helper()
	status, resp := a.do(token, query, vars)
	if status >= 500 {
		a.t.Fatalf("status %d for %s", status, query)
	}
	if len(resp.Errors) == 0 {
		a.t.Fatalf("query succeeded, want an error: %s\n%s", resp.Data, query)
	}
	code, _ = resp.Errors[0].Extensions["code"].(string)
	return resp.Errors[0].Message, code
}

type gqlRef struct{ Kind, Namespace, Name string }

func (r *gqlRef) String() string {
	if r == nil {
		return "<nil>"
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

type gqlGrant struct {
	Text    string
	Binding struct{ Kind, Name, Namespace string }
	Role    struct{ Kind, Name string }
	Rule    struct{ Verbs, Resources []string }
}

type gqlFinding struct {
	Fingerprint, Pack, Severity, Status, Title, Message string
	Namespace, Reason                                   *string
	Revision                                            uint64
	Rule                                                struct {
		ID         string
		References struct{ Cis []string }
	}
	SubjectRef *gqlRef
	Subject    *struct{ Kind, Namespace, Name string }
	Evidence   []struct {
		Text     string
		Expected bool
		Grant    *gqlGrant
	}
	Suppression *struct{ ID, Reason string }
}

const findingFields = `fingerprint pack severity status title message namespace reason revision
	rule { id references { cis } }
	subjectRef { kind namespace name }
	subject { kind namespace name }
	evidence { text expected grant { text binding { kind name namespace } role { kind name } rule { verbs resources } } }
	suppression { id reason }`

type findingPage struct {
	Findings struct {
		TotalCount int
		Revision   uint64
		PageInfo   struct {
			HasNextPage bool
			EndCursor   string
		}
		Summary struct {
			Total, Risky, Expected, Suppressed int
			BySeverity                         []struct {
				Severity string
				Count    int
			}
			ByPack, ByNamespace []countOf
		}
		Nodes []gqlFinding
	}
}

const findingsQuery = `query($at: Revision, $pack: String, $rule: ID, $severity: Severity, $status: [FindingStatus!], $subject: SubjectInput, $namespace: String, $first: Int, $after: String) {
	findings(at: $at, pack: $pack, rule: $rule, severity: $severity, status: $status, subject: $subject, namespace: $namespace, first: $first, after: $after) {
		totalCount revision pageInfo { hasNextPage endCursor }
		summary { total risky expected suppressed bySeverity { severity count } byPack { pack count } byNamespace { namespace count } }
		nodes { ` + findingFields + ` }
	}
}`

func (a *riskAPI) findings(vars map[string]any) findingPage {
	a.t.Helper()
	var p findingPage
	a.query(findingsQuery, vars, &p)
	return p
}

var deployer = map[string]any{"kind": "SERVICE_ACCOUNT", "namespace": "team-a", "name": "deployer"}

var allStatuses = []string{"RISKY", "EXPECTED", "SUPPRESSED"}

func TestPacksAndRules(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	var got struct {
		Packs []struct {
			Name, Title, Source string
			Rules               []struct{ ID, Pack string }
		}
		Rules []struct {
			ID, Pack, Title, Severity, Description, Remediation, Target, Source string
			Match, Check                                                        *string
			Requires                                                            []string
			References                                                          struct{ Cis, Mitre, Urls []string }
			Severities                                                          []struct{ When, Severity string }
		}
	}
	a.query(`{ packs { name title source rules { id pack } }
		rules(pack: "cis-5.1") { id pack title severity description remediation target source match check requires references { cis mitre urls } severities { when severity } } }`, nil, &got)
	eng := a.tracker.Engine()
	if len(got.Packs) != len(eng.Packs()) {
		t.Fatalf("%d packs, the engine has %d", len(got.Packs), len(eng.Packs()))
	}
	for i, p := range got.Packs {
		want := eng.Packs()[i]
		if p.Name != want.Name || p.Title != want.Title || p.Source != want.Source || len(p.Rules) != len(want.Rules) {
			t.Errorf("pack %d = %s %q %s with %d rules, want %s %q %s with %d", i, p.Name, p.Title, p.Source, len(p.Rules),
				want.Name, want.Title, want.Source, len(want.Rules))
		}
		for _, r := range p.Rules {
			if r.Pack != p.Name {
				t.Errorf("pack %s lists rule %s of pack %s", p.Name, r.ID, r.Pack)
			}
		}
	}
	i := slices.IndexFunc(got.Rules, func(r struct {
		ID, Pack, Title, Severity, Description, Remediation, Target, Source string
		Match, Check                                                        *string
		Requires                                                            []string
		References                                                          struct{ Cis, Mitre, Urls []string }
		Severities                                                          []struct{ When, Severity string }
	}) bool {
		return r.ID == "KIEM-CIS-5.1.4"
	})
	if i < 0 {
		t.Fatalf("rules(pack: cis-5.1) lacks KIEM-CIS-5.1.4: %+v", got.Rules)
	}
	r := got.Rules[i]
	if r.Pack != "cis-5.1" || r.Severity != "HIGH" || r.Target != "subject" || r.Check != nil || r.Match == nil ||
		!strings.Contains(*r.Match, "subject.can('create', 'pods')") || r.Title != "Pod creation" ||
		r.Description == "" || r.Remediation == "" || !strings.HasPrefix(r.Source, "embedded:packs/cis-5.1.yaml:") {
		t.Errorf("KIEM-CIS-5.1.4 = %+v", r)
	}
	if !slices.Equal(r.References.Cis, []string{"5.1.4"}) || !slices.Equal(r.References.Mitre, []string{"T1610", "T1611", "T1528"}) ||
		r.References.Urls == nil {
		t.Errorf("KIEM-CIS-5.1.4 references = %+v", r.References)
	}
	if len(r.Severities) != 1 || r.Severities[0].Severity != "CRITICAL" || !strings.Contains(r.Severities[0].When, "pod-security.kubernetes.io/enforce") {
		t.Errorf("KIEM-CIS-5.1.4 severities = %+v", r.Severities)
	}
	for _, r := range got.Rules {
		if r.Pack != "cis-5.1" {
			t.Errorf("rules(pack: cis-5.1) lists %s of pack %s", r.ID, r.Pack)
		}
	}

	var check struct {
		Rules []struct {
			ID           string
			Match, Check *string
		}
	}
	a.query(`{ rules(pack: "escalation") { id match check } }`, nil, &check)
	bind := slices.IndexFunc(check.Rules, func(r struct {
		ID           string
		Match, Check *string
	}) bool {
		return r.ID == "KIEM-ESC-007"
	})
	if bind < 0 || check.Rules[bind].Check == nil || *check.Rules[bind].Check != "bind-escalation" || check.Rules[bind].Match != nil {
		t.Errorf("escalation rules = %+v, want KIEM-ESC-007 with check bind-escalation and no match", check.Rules)
	}

	var all struct{ Rules []struct{ ID string } }
	a.query(`{ rules { id } }`, nil, &all)
	n := 0
	for _, p := range eng.Packs() {
		n += len(p.Rules)
	}
	if len(all.Rules) != n {
		t.Errorf("rules lists %d rules, the packs hold %d", len(all.Rules), n)
	}
	if msg, code := a.errorCode(viewerToken, `{ rules(pack: "nope") { id } }`, nil); code != "BAD_USER_INPUT" || !strings.Contains(msg, `"nope"`) {
		t.Errorf("rules(pack: nope): %q %s", msg, code)
	}
}

func TestFindingsPlantedRisk(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	p := a.findings(map[string]any{"rule": "KIEM-CIS-5.1.4", "subject": deployer})
	if p.Findings.TotalCount != 1 || len(p.Findings.Nodes) != 1 {
		t.Fatalf("findings of deployer = %+v, want one", p.Findings)
	}
	if p.Findings.Revision != uint64(a.planted) {
		t.Errorf("revision %d, want %d", p.Findings.Revision, a.planted)
	}
	f := p.Findings.Nodes[0]
	if f.Rule.ID != "KIEM-CIS-5.1.4" || f.Pack != "cis-5.1" || f.Status != "RISKY" || f.Severity != "CRITICAL" ||
		f.Namespace == nil || *f.Namespace != "team-a" || f.Revision != uint64(a.planted) || f.Reason != nil ||
		!slices.Equal(f.Rule.References.Cis, []string{"5.1.4"}) || f.Message == "" || f.Fingerprint == "" {
		t.Errorf("finding = %+v", f)
	}
	if f.Subject == nil || f.Subject.Kind != "SERVICE_ACCOUNT" || f.Subject.Namespace != "team-a" || f.Subject.Name != "deployer" ||
		f.SubjectRef.String() != "ServiceAccount/team-a/deployer" {
		t.Errorf("subject = %+v, ref %s", f.Subject, f.SubjectRef)
	}
	found := false
	for _, e := range f.Evidence {
		g := e.Grant
		if g != nil && g.Binding.Kind == "ROLE_BINDING" && g.Binding.Name == "deployer-pods" && g.Binding.Namespace == "team-a" &&
			g.Role.Name == "pod-creator" && slices.Contains(g.Rule.Verbs, "create") && slices.Contains(g.Rule.Resources, "pods") &&
			strings.Contains(g.Text, "deployer-pods") && e.Text != "" && !e.Expected {
			found = true
		}
	}
	if !found {
		t.Errorf("evidence %+v lacks the grant of RoleBinding team-a/deployer-pods", f.Evidence)
	}
	// The same finding, as the tracker holds it.
	_, fs := a.current()
	i := slices.IndexFunc(fs, func(x queries.Finding) bool { return x.Fingerprint == f.Fingerprint })
	if i < 0 || fs[i].Rule != "KIEM-CIS-5.1.4" || fs[i].Subject == nil || fs[i].Subject.Name != "deployer" {
		t.Errorf("the tracker has no finding %s of deployer", f.Fingerprint)
	}
}

func TestFindingsFilters(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	_, fs := a.current()
	critical := queries.SeverityCritical
	tests := []struct {
		name string
		vars map[string]any
		want func(f *queries.Finding) bool
	}{
		{"default is risky", map[string]any{}, func(f *queries.Finding) bool { return f.Status == queries.StatusRisky }},
		{"pack", map[string]any{"pack": "cis-5.1", "status": allStatuses},
			func(f *queries.Finding) bool { return f.Pack == "cis-5.1" }},
		{"rule", map[string]any{"rule": "KIEM-CIS-5.1.4", "status": allStatuses},
			func(f *queries.Finding) bool { return f.Rule == "KIEM-CIS-5.1.4" }},
		{"severity is a minimum", map[string]any{"severity": "CRITICAL", "status": allStatuses},
			func(f *queries.Finding) bool { return f.Severity >= critical }},
		{"expected only", map[string]any{"status": []string{"EXPECTED"}},
			func(f *queries.Finding) bool { return f.Status == queries.StatusExpected }},
		{"subject", map[string]any{"subject": deployer, "status": allStatuses},
			func(f *queries.Finding) bool {
				return f.Subject != nil && *f.Subject == graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "team-a", Name: "deployer"}
			}},
		{"user subject", map[string]any{"subject": map[string]any{"kind": "USER", "name": "mallory"}},
			func(f *queries.Finding) bool {
				return f.Status == queries.StatusRisky && f.Subject != nil && *f.Subject == graph.ObjectRef{Kind: graph.KindUser, Name: "mallory"}
			}},
		{"namespace", map[string]any{"namespace": "team-a", "status": allStatuses},
			func(f *queries.Finding) bool { return f.Namespace == "team-a" }},
		{"cluster-wide", map[string]any{"namespace": "", "status": allStatuses},
			func(f *queries.Finding) bool { return f.Namespace == "" }},
		{"together", map[string]any{"pack": "cis-5.1", "namespace": "ops", "severity": "HIGH"},
			func(f *queries.Finding) bool {
				return f.Pack == "cis-5.1" && f.Namespace == "ops" && f.Severity >= queries.SeverityHigh && f.Status == queries.StatusRisky
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for i := range fs {
				if tt.want(&fs[i]) {
					want = append(want, fs[i].Fingerprint)
				}
			}
			if len(want) == 0 {
				t.Fatal("the filter selects nothing here: the test would prove nothing")
			}
			tt.vars["first"] = 1000
			p := a.findings(tt.vars)
			var got []string
			for _, f := range p.Findings.Nodes {
				got = append(got, f.Fingerprint)
			}
			if !slices.Equal(got, want) {
				t.Errorf("findings(%v) = %d findings %v,\nwant %d %v", tt.vars, len(got), got, len(want), want)
			}
			s := p.Findings.Summary
			if p.Findings.TotalCount != len(want) || s.Total != len(want) || s.Risky+s.Expected+s.Suppressed != s.Total {
				t.Errorf("totalCount %d, summary %+v; want %d", p.Findings.TotalCount, s, len(want))
			}
		})
	}
}

func TestFindingsSummaryAndPages(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	_, fs := a.current()
	wantStatus := map[queries.Status]int{}
	wantSeverity := map[string]int{}
	for _, f := range fs {
		wantStatus[f.Status]++
		wantSeverity[strings.ToUpper(f.Severity.String())]++
	}
	all := a.findings(map[string]any{"status": allStatuses, "first": 1000})
	s := all.Findings.Summary
	if s.Total != len(fs) || s.Risky != wantStatus[queries.StatusRisky] || s.Expected != wantStatus[queries.StatusExpected] ||
		s.Suppressed != 0 || all.Findings.TotalCount != len(fs) {
		t.Errorf("summary %+v, total %d; the tracker has %d findings, %v", s, all.Findings.TotalCount, len(fs), wantStatus)
	}
	if s.Risky == 0 || s.Expected == 0 {
		t.Fatalf("summary %+v: the fixture should give both risky and expected findings", s)
	}
	var order []string
	for _, c := range s.BySeverity {
		order = append(order, c.Severity)
		if c.Count != wantSeverity[c.Severity] {
			t.Errorf("%s: %d, want %d", c.Severity, c.Count, wantSeverity[c.Severity])
		}
	}
	if !slices.Equal(order, []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"}) {
		t.Errorf("bySeverity order %v", order)
	}
	wantPack, wantNS := map[string]int{}, map[string]int{}
	for _, f := range fs {
		wantPack[f.Pack]++
		wantNS[f.Namespace]++
	}
	checkCounts := func(what string, got []countOf, want map[string]int) {
		t.Helper()
		seen := map[string]int{}
		for i, c := range got {
			seen[c.key()] = c.Count
			if i > 0 && (got[i-1].Count < c.Count || got[i-1].Count == c.Count && got[i-1].key() > c.key()) {
				t.Errorf("%s not most first then by name: %+v", what, got)
			}
		}
		if !maps.Equal(seen, want) {
			t.Errorf("%s %v, want %v", what, seen, want)
		}
	}
	checkCounts("byPack", s.ByPack, wantPack)
	checkCounts("byNamespace", s.ByNamespace, wantNS)
	// The default status counts the risky ones only.
	risky := a.findings(map[string]any{"first": 0})
	if r := risky.Findings.Summary; r.Total != wantStatus[queries.StatusRisky] || r.Expected != 0 || len(risky.Findings.Nodes) != 0 {
		t.Errorf("default summary %+v with %d nodes, want %d risky and no nodes", r, len(risky.Findings.Nodes), wantStatus[queries.StatusRisky])
	}
	// Expected findings say why.
	for _, f := range all.Findings.Nodes {
		if (f.Status == "EXPECTED") != (f.Reason != nil && *f.Reason != "") {
			t.Errorf("finding %s %s: status %s, reason %v", f.Rule.ID, f.SubjectRef, f.Status, f.Reason)
		}
	}

	// Pages of 7 at one revision give the one list, in its order.
	var paged []string
	var after any
	for range len(fs) {
		p := a.findings(map[string]any{"status": allStatuses, "first": 7, "after": after, "at": all.Findings.Revision})
		for _, f := range p.Findings.Nodes {
			paged = append(paged, f.Fingerprint)
		}
		if !p.Findings.PageInfo.HasNextPage {
			break
		}
		after = p.Findings.PageInfo.EndCursor
	}
	var want []string
	for _, f := range all.Findings.Nodes {
		want = append(want, f.Fingerprint)
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged %d findings, in one page %d; the orders differ", len(paged), len(want))
	}
	// Most severe first.
	for i := 1; i < len(fs); i++ {
		if fs[i].Severity > fs[i-1].Severity {
			t.Fatalf("finding %d is more severe than %d", i, i-1)
		}
	}
}

// countOf is an entry of FindingsSummary.byPack or byNamespace.
type countOf struct {
	Pack, Namespace *string
	Count           int
}

func (c countOf) key() string {
	if c.Pack != nil {
		return *c.Pack
	}
	return *c.Namespace
}

func TestFindingsTrend(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	_, snap := a.live.HeadSnapshot()
	rb, ok := snap.Object(graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: "team-a", Name: "deployer-pods"})
	if !ok {
		t.Fatal("the planted binding is missing")
	}
	removed := a.commit(graph.NewChange(rb, nil))
	back := a.commit(graph.NewChange(nil, rb))
	type point struct {
		Revision             uint64
		Time                 time.Time
		Risky, New, Resolved int
		BySeverity           []struct {
			Severity string
			Count    int
		}
	}
	var got struct{ FindingsTrend []point }
	a.query(`{ findingsTrend { revision time risky new resolved bySeverity { severity count } } }`, nil, &got)
	tr := got.FindingsTrend
	if len(tr) < 3 {
		t.Fatalf("trend %+v, want at least the planted, removed and restored revisions", tr)
	}
	last, prev := tr[len(tr)-1], tr[len(tr)-2]
	if last.Revision != uint64(back) || prev.Revision != uint64(removed) {
		t.Fatalf("trend ends at %d, %d; want %d, %d", prev.Revision, last.Revision, removed, back)
	}
	now := a.findings(map[string]any{"first": 0})
	if last.Risky != now.Findings.Summary.Risky {
		t.Errorf("last point %d risky, findings say %d", last.Risky, now.Findings.Summary.Risky)
	}
	if prev.Resolved == 0 || last.New != prev.Resolved || last.Risky != prev.Risky+last.New-last.Resolved {
		t.Errorf("removing and restoring the binding: %+v then %+v", prev, last)
	}
	for i, p := range tr {
		sum := 0
		for _, c := range p.BySeverity {
			sum += c.Count
		}
		if sum != p.Risky || p.Time.IsZero() || i > 0 && (p.Revision <= tr[i-1].Revision || p.Time.Before(tr[i-1].Time)) {
			t.Errorf("point %d %+v: severities sum to %d, or out of order", i, p, sum)
		}
		if i > 0 && p.Risky != tr[i-1].Risky+p.New-p.Resolved {
			t.Errorf("point %d (%d risky, +%d -%d) does not follow from %d risky before", i, p.Risky, p.New, p.Resolved, tr[i-1].Risky)
		}
	}
	// One finding by its fingerprint, at the head and at a revision where it did not exist.
	all := a.findings(map[string]any{"first": 1})
	if len(all.Findings.Nodes) != 1 {
		t.Fatalf("no finding to look up: %+v", all.Findings)
	}
	fp := all.Findings.Nodes[0].Fingerprint
	var byFP struct {
		Finding *struct{ Fingerprint, Status string }
	}
	a.query(`query($fp: ID!) { finding(fingerprint: $fp) { fingerprint status } }`, map[string]any{"fp": fp}, &byFP)
	if byFP.Finding == nil || byFP.Finding.Fingerprint != fp || byFP.Finding.Status != "RISKY" {
		t.Errorf("finding(%q) = %+v", fp, byFP.Finding)
	}
	a.query(`query($fp: ID!, $at: Revision) { finding(fingerprint: $fp, at: $at) { fingerprint } }`, map[string]any{"fp": "nope", "at": removed}, &byFP)
	if byFP.Finding != nil {
		t.Errorf("finding(nope) = %+v, want null", byFP.Finding)
	}
	var one struct{ FindingsTrend []point }
	a.query(`{ findingsTrend(last: 1) { revision } }`, nil, &one)
	if len(one.FindingsTrend) != 1 || one.FindingsTrend[0].Revision != uint64(back) {
		t.Errorf("last: 1 gave %+v", one.FindingsTrend)
	}
	if msg, _ := a.errorCode(viewerToken, `{ findingsTrend(last: 0) { revision } }`, nil); !strings.Contains(msg, "between 1 and") {
		t.Errorf("last: 0: %q", msg)
	}
}

func TestFindingsAtPastRevisionAndDiff(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	_, snap := a.live.HeadSnapshot()
	rb, ok := snap.Object(graph.ObjectRef{Kind: graph.KindRoleBinding, Namespace: "team-a", Name: "deployer-pods"})
	if !ok {
		t.Fatal("the planted binding is missing")
	}
	head := a.commit(graph.NewChange(rb, nil))

	vars := func(at any) map[string]any {
		return map[string]any{"rule": "KIEM-CIS-5.1.4", "subject": deployer, "at": at}
	}
	then := a.findings(vars(a.planted))
	now := a.findings(vars(nil))
	if then.Findings.TotalCount != 1 || then.Findings.Revision != uint64(a.planted) {
		t.Fatalf("at %d: %+v, want the deployer's finding", a.planted, then.Findings)
	}
	if now.Findings.TotalCount != 0 || now.Findings.Revision != uint64(head) {
		t.Fatalf("at the head: %+v, want no finding at revision %d", now.Findings, head)
	}

	var d struct {
		Diff struct {
			From, To uint64
			Findings struct {
				New      []gqlFinding
				Resolved []gqlFinding
			}
		}
	}
	a.query(`query($f: Revision!, $t: Revision) { diff(from: $f, to: $t) { from to findings {
		new { `+findingFields+` } resolved { `+findingFields+` } } } }`, map[string]any{"f": a.planted, "t": head}, &d)
	var added []string
	for _, f := range d.Diff.Findings.New {
		added = append(added, f.Fingerprint)
		if f.Status != "RISKY" || f.Revision != uint64(head) {
			t.Errorf("new finding %s: status %s, revision %d (want RISKY at %d)", f.Rule.ID, f.Status, f.Revision, head)
		}
	}
	// Without its binding the Role is unused.
	if !slices.ContainsFunc(d.Diff.Findings.New, func(f gqlFinding) bool {
		return f.Rule.ID == "KIEM-HYG-003" && strings.Contains(f.Message, "team-a/pod-creator")
	}) {
		t.Errorf("new findings %+v lack the unused Role team-a/pod-creator", d.Diff.Findings.New)
	}
	var resolved []string
	for _, f := range d.Diff.Findings.Resolved {
		resolved = append(resolved, f.Fingerprint)
		if f.Status != "RISKY" || f.Revision != uint64(a.planted) {
			t.Errorf("resolved finding %s: status %s, revision %d (want RISKY at %d)", f.Rule.ID, f.Status, f.Revision, a.planted)
		}
	}
	gone := then.Findings.Nodes[0]
	i := slices.Index(resolved, gone.Fingerprint)
	if i < 0 {
		t.Fatalf("resolved %v lacks the deployer's finding %s", resolved, gone.Fingerprint)
	}
	// The resolved finding reads its evidence at from, where the deleted binding still exists.
	if ev := d.Diff.Findings.Resolved[i].Evidence; len(ev) == 0 || ev[0].Grant == nil || ev[0].Grant.Binding.Name != "deployer-pods" {
		t.Errorf("resolved evidence %+v, want the grant of deployer-pods", ev)
	}
	// The same as comparing the tracker's evaluations.
	before, err := a.tracker.At(context.Background(), a.planted)
	if err != nil {
		t.Fatal(err)
	}
	after, err := a.tracker.At(context.Background(), head)
	if err != nil {
		t.Fatal(err)
	}
	risky := func(fs []queries.Finding) []string {
		var out []string
		for _, f := range fs {
			if f.Status == queries.StatusRisky {
				out = append(out, f.Fingerprint)
			}
		}
		return out
	}
	delta := queries.Compare(before.Findings(), after.Findings())
	if want := risky(delta.Resolved); !slices.Equal(resolved, want) {
		t.Errorf("diff resolved %v, the tracker's evaluations %v", resolved, want)
	}
	if want := risky(delta.New); !slices.Equal(added, want) {
		t.Errorf("diff new %v, the tracker's evaluations %v", added, want)
	}

	// Back to where it was: the finding is new again; every status widens the answer.
	a.commit(graph.NewChange(nil, rb))
	var back struct {
		Diff struct {
			Findings struct {
				New []struct{ Fingerprint, Status string }
			}
		}
	}
	a.query(`query($f: Revision!) { diff(from: $f) { findings(status: [RISKY, EXPECTED, SUPPRESSED]) { new { fingerprint status } } } }`,
		map[string]any{"f": head}, &back)
	if !slices.ContainsFunc(back.Diff.Findings.New, func(f struct{ Fingerprint, Status string }) bool { return f.Fingerprint == gone.Fingerprint }) {
		t.Errorf("new findings %+v lack %s", back.Diff.Findings.New, gone.Fingerprint)
	}
}

// notReady is a FindingsSource whose first evaluation never ends.
type notReady struct{ engine *queries.Engine }

func (n notReady) Current() (graph.Revision, *queries.Result) { return 0, nil }
func (n notReady) At(context.Context, graph.Revision) (*queries.Result, error) {
	return nil, context.DeadlineExceeded
}
func (n notReady) Engine() *queries.Engine { return n.engine }
func (n notReady) Ready() <-chan struct{}  { return make(chan struct{}) }
func (n notReady) Deltas(graph.Revision, graph.Revision) ([]queries.RevisionDelta, bool) {
	return nil, false
}

func TestFindingsUnavailable(t *testing.T) {
	off := newRiskAPI(t, ServeOptions{}, func(o *Options) { o.Findings, o.Suppressions = nil, nil })
	waiting := newRiskAPI(t, ServeOptions{}, func(o *Options) { o.Findings = notReady{o.Findings.Engine()} })

	const offMsg = "risk findings are not enabled on this server"
	tests := []struct {
		name      string
		api       *riskAPI
		query     string
		code, msg string
	}{
		{"findings off", off, `{ findings { totalCount } }`, "NOT_ENABLED", offMsg},
		{"packs off", off, `{ packs { name } }`, "NOT_ENABLED", offMsg},
		{"rules off", off, `{ rules { id } }`, "NOT_ENABLED", offMsg},
		{"diff off", off, `{ diff(from: 1) { findings { new { fingerprint } } } }`, "NOT_ENABLED", offMsg},
		{"suppressions off", off, `{ suppressions { id } }`, "NOT_ENABLED", "suppressions are not enabled"},
		{"not ready", waiting, `{ findings { totalCount } }`, "UNAVAILABLE", "not evaluated yet"},
		{"not ready at", waiting, `{ findings(at: 1) { totalCount } }`, "UNAVAILABLE", "not evaluated yet"},
		{"diff not ready", waiting, `{ diff(from: 1) { findings { new { fingerprint } } } }`, "UNAVAILABLE", "not evaluated yet"},
		{"trend off", off, `{ findingsTrend { revision } }`, "NOT_ENABLED", offMsg},
		{"trend not ready", waiting, `{ findingsTrend { revision } }`, "UNAVAILABLE", "not evaluated yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, code := tt.api.errorCode(viewerToken, tt.query, nil)
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q (%s), want %q (%s)", msg, code, tt.msg, tt.code)
			}
		})
	}
	// What needs no findings still answers.
	var ok struct{ Packs []struct{ Name string } }
	waiting.query(`{ packs { name } }`, nil, &ok)
	if len(ok.Packs) == 0 {
		t.Error("packs is empty while the first evaluation runs")
	}
	var paths struct{ AttackPaths []struct{ Text string } }
	off.query(`{ attackPaths(subject: {kind: USER, name: "mallory"}) { text } }`, nil, &paths)
	if len(paths.AttackPaths) == 0 {
		t.Error("attackPaths needs no findings, yet answers nothing without them")
	}
	if logs := off.logs.String() + waiting.logs.String(); strings.Contains(logs, "graphql resolver failed") {
		t.Errorf("an expected refusal was logged as a failure:\n%s", logs)
	}
}

func TestFindingsArguments(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	costly := `{ findings(first: 1000, status: [RISKY, EXPECTED]) { nodes { fingerprint evidence { text grant { text binding { name } role { name } rule { verbs } } }
		path { edge evidence { text binding { name } } } } } }`
	tests := []struct {
		name, query, code, msg string
	}{
		{"unknown severity", `{ findings(severity: EXTREME) { totalCount } }`, "GRAPHQL_VALIDATION_FAILED", "EXTREME"},
		{"unknown status", `{ findings(status: [FINE]) { totalCount } }`, "GRAPHQL_VALIDATION_FAILED", "FINE"},
		{"unknown pack", `{ findings(pack: "nope") { totalCount } }`, "BAD_USER_INPUT", `"nope"`},
		{"unknown rule", `{ findings(rule: "KIEM-NOPE") { totalCount } }`, "BAD_USER_INPUT", "KIEM-NOPE"},
		{"ServiceAccount without namespace", `{ findings(subject: {kind: SERVICE_ACCOUNT, name: "x"}) { totalCount } }`, "BAD_USER_INPUT", "namespace"},
		{"subject with groups", `{ findings(subject: {kind: USER, name: "x", groups: ["g"]}) { totalCount } }`, "BAD_USER_INPUT", "groups"},
		{"future revision", `{ findings(at: 999999) { totalCount } }`, "BAD_USER_INPUT", "after the head"},
		{"page too big", `{ findings(first: 1001) { totalCount } }`, "BAD_USER_INPUT", "first"},
		{"bad cursor", `{ findings(after: "nope") { totalCount } }`, "BAD_USER_INPUT", "cursor"},
		{"too costly", costly, "QUERY_TOO_COMPLEX", "query cost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, code := a.errorCode(viewerToken, tt.query, nil)
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q (%s), want %q (%s)", msg, code, tt.msg, tt.code)
			}
		})
	}
	// The same selection on a small page is within the limits.
	var small json.RawMessage
	a.query(strings.Replace(costly, "first: 1000", "first: 5", 1), nil, &small)
}
