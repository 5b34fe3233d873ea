package gql

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSuppressions(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	future := time.Now().UTC().AddDate(0, 1, 0).Format(time.DateOnly)
	malloryFinding := map[string]any{"rule": "KIEM-CIS-5.1.4", "subject": map[string]any{"kind": "USER", "name": "mallory"},
		"status": allStatuses}
	before := a.findings(malloryFinding)
	if before.Findings.TotalCount != 1 || before.Findings.Nodes[0].Status != "RISKY" {
		t.Fatalf("mallory's finding = %+v, want one, risky", before.Findings.Nodes)
	}
	fingerprint := before.Findings.Nodes[0].Fingerprint

	const add = `mutation($in: SuppressionInput!) { addSuppression(input: $in) {
		id rule subject { kind namespace name } namespace object { kind namespace name } owner reason expires expired source } }`
	input := map[string]any{"rule": "KIEM-CIS-5.1.4", "subject": map[string]any{"kind": "USER", "name": "mallory"},
		"namespace": "ops", "reason": "break-glass account, reviewed weekly", "expires": future}

	// A viewer may not.
	if msg, code := a.errorCode(viewerToken, add, map[string]any{"in": input}); code != "FORBIDDEN" {
		t.Fatalf("viewer addSuppression: %q (%s), want FORBIDDEN", msg, code)
	}
	if msg, code := a.errorCode(viewerToken, `mutation { removeSuppression(id: "x") }`, nil); code != "FORBIDDEN" {
		t.Fatalf("viewer removeSuppression: %q (%s), want FORBIDDEN", msg, code)
	}

	updated := a.tracker.Updated()
	status, resp := a.do(adminToken, add, map[string]any{"in": input})
	if status != 200 || len(resp.Errors) > 0 {
		t.Fatalf("addSuppression: %d %+v", status, resp.Errors)
	}
	var added struct {
		AddSuppression struct {
			ID, Rule, Owner, Reason, Expires string
			Namespace, Source                *string
			Subject, Object                  *gqlRef
			Expired                          bool
		}
	}
	decode(t, resp.Data, &added)
	s := added.AddSuppression
	if s.ID == "" || s.Rule != "KIEM-CIS-5.1.4" || s.Owner != "ada" || s.Reason != input["reason"] || s.Expires != future ||
		s.Expired || s.Namespace == nil || *s.Namespace != "ops" || s.Subject.String() != "User//mallory" || s.Object != nil {
		t.Errorf("added %+v (subject %s)", s, s.Subject)
	}
	waitClosed(t, updated)

	// The finding is suppressed: gone from the default list, listed as suppressed with its suppression.
	if p := a.findings(map[string]any{"rule": "KIEM-CIS-5.1.4", "subject": map[string]any{"kind": "USER", "name": "mallory"}}); p.Findings.TotalCount != 0 {
		t.Errorf("the suppressed finding is still listed as risky: %+v", p.Findings.Nodes)
	}
	after := a.findings(malloryFinding)
	if after.Findings.TotalCount != 1 {
		t.Fatalf("mallory's finding = %+v", after.Findings.Nodes)
	}
	f := after.Findings.Nodes[0]
	if f.Fingerprint != fingerprint || f.Status != "SUPPRESSED" || f.Suppression == nil || f.Suppression.ID != s.ID ||
		f.Suppression.Reason != input["reason"] || f.Reason == nil || *f.Reason == "" {
		t.Errorf("suppressed finding = %+v", f)
	}
	if p := a.findings(map[string]any{"status": []string{"SUPPRESSED"}, "first": 0}); p.Findings.Summary.Suppressed != 1 {
		t.Errorf("summary %+v, want one suppressed", p.Findings.Summary)
	}
	var list struct {
		Suppressions []struct {
			ID      string
			Expired bool
		}
	}
	a.query(`{ suppressions { id expired } }`, nil, &list)
	if len(list.Suppressions) != 1 || list.Suppressions[0].ID != s.ID || list.Suppressions[0].Expired {
		t.Errorf("suppressions = %+v", list.Suppressions)
	}
	if data, err := os.ReadFile(a.supp.Path()); err != nil || !strings.Contains(string(data), "break-glass account") {
		t.Errorf("the suppressions file holds %q (%v), want the new suppression", data, err)
	}

	// The same again is refused.
	if msg, code := a.errorCode(adminToken, add, map[string]any{"in": input}); code != "BAD_USER_INPUT" || !strings.Contains(msg, "repeats") {
		t.Errorf("duplicate: %q (%s)", msg, code)
	}

	// Removed, the finding is risky again.
	updated = a.tracker.Updated()
	var removed struct{ RemoveSuppression bool }
	status, resp = a.do(adminToken, `mutation($id: ID!) { removeSuppression(id: $id) }`, map[string]any{"id": s.ID})
	if status != 200 || len(resp.Errors) > 0 {
		t.Fatalf("removeSuppression: %d %+v", status, resp.Errors)
	}
	if decode(t, resp.Data, &removed); !removed.RemoveSuppression {
		t.Fatal("removeSuppression = false for a suppression that exists")
	}
	waitClosed(t, updated)
	if f := a.findings(malloryFinding).Findings.Nodes; len(f) != 1 || f[0].Status != "RISKY" || f[0].Suppression != nil {
		t.Errorf("after removal: %+v, want the finding risky", f)
	}
	_, resp = a.do(adminToken, `mutation($id: ID!) { removeSuppression(id: $id) }`, map[string]any{"id": s.ID})
	if decode(t, resp.Data, &removed); removed.RemoveSuppression || len(resp.Errors) > 0 {
		t.Errorf("removing it again: %v %+v, want false", removed.RemoveSuppression, resp.Errors)
	}
}

func TestSuppressionInputErrors(t *testing.T) {
	a := newRiskAPI(t, ServeOptions{}, nil)
	future := time.Now().UTC().AddDate(0, 1, 0).Format(time.DateOnly)
	const add = `mutation($in: SuppressionInput!) { addSuppression(input: $in) { id } }`
	valid := func(edit func(map[string]any)) map[string]any {
		in := map[string]any{"rule": "KIEM-CIS-5.1.4", "subject": map[string]any{"kind": "USER", "name": "mallory"},
			"reason": "accepted", "expires": future}
		edit(in)
		return map[string]any{"in": in}
	}
	tests := []struct {
		name      string
		vars      map[string]any
		code, msg string
	}{
		{"reason missing", valid(func(in map[string]any) { delete(in, "reason") }), "GRAPHQL_VALIDATION_FAILED", "must be defined"},
		{"expires missing", valid(func(in map[string]any) { delete(in, "expires") }), "GRAPHQL_VALIDATION_FAILED", "must be defined"},
		{"reason empty", valid(func(in map[string]any) { in["reason"] = "" }), "BAD_USER_INPUT", "missing reason"},
		{"expires empty", valid(func(in map[string]any) { in["expires"] = "" }), "BAD_USER_INPUT", "missing expires"},
		{"expires not a date", valid(func(in map[string]any) { in["expires"] = "next week" }), "BAD_USER_INPUT", "YYYY-MM-DD"},
		{"expires past", valid(func(in map[string]any) { in["expires"] = "2020-01-01" }), "BAD_USER_INPUT", "not after today"},
		{"unknown rule", valid(func(in map[string]any) { in["rule"] = "KIEM-NOPE" }), "BAD_USER_INPUT", "KIEM-NOPE"},
		{"ServiceAccount without namespace", valid(func(in map[string]any) {
			in["subject"] = map[string]any{"kind": "SERVICE_ACCOUNT", "name": "x"}
		}), "BAD_USER_INPUT", "namespace"},
		{"namespaced object without namespace", valid(func(in map[string]any) {
			in["object"] = map[string]any{"kind": "ROLE_BINDING", "name": "x"}
		}), "BAD_USER_INPUT", "namespace"},
		{"unknown subject kind", valid(func(in map[string]any) {
			in["subject"] = map[string]any{"kind": "ROBOT", "name": "x"}
		}), "GRAPHQL_VALIDATION_FAILED", "ROBOT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, code := a.errorCode(adminToken, add, tt.vars)
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q (%s), want %q (%s)", msg, code, tt.msg, tt.code)
			}
		})
	}
	if items := a.supp.Current().Items(); len(items) != 0 {
		t.Errorf("refused input was saved: %+v", items)
	}
	if logs := a.logs.String(); strings.Contains(logs, "graphql resolver failed") {
		t.Errorf("a refusal was logged as a failure:\n%s", logs)
	}
}

// waitClosed waits for the tracker's Updated channel taken before a change: the change's re-evaluation.
func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatal("the tracker did not re-evaluate")
	}
}

func decode(t *testing.T, data []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}
