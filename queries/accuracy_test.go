package queries

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// TestDefaultClusterQuiet: on a default kubeadm v1.33 cluster (the real apiserver's RBAC plus kubeadm's and its
// add-ons' objects) no finding of severity medium or above is risky; those that match are expected, each with
// the reason, and none is dropped.
func TestDefaultClusterQuiet(t *testing.T) {
	e := embeddedEngine(t, Options{Baseline: DefaultBaseline()})
	res, err := e.Evaluate(context.Background(), graph.NewSnapshot(kubeadmObjects(t)))
	if err != nil {
		t.Fatal(err)
	}
	expected := 0
	for _, f := range res.Findings() {
		switch {
		case f.Status == StatusRisky && f.Severity >= SeverityMedium:
			t.Errorf("risky on a default cluster: %s %s: %s", f.Severity, f.Rule, f.Message)
		case f.Status == StatusExpected:
			expected++
			if f.Reason == "" {
				t.Errorf("expected finding without a reason: %s %s", f.Rule, f.Message)
			}
		}
	}
	// The defaults are powerful: cluster-admin to system:masters, controllers that create pods and read secrets.
	if expected < 50 {
		t.Errorf("%d expected findings; the defaults' grants must be shown as expected, not dropped", expected)
	}
}

// TestModifiedDefaultIsReported: adding a subject to the cluster-admin ClusterRoleBinding makes the binding a
// modified default, and the grant to the added subject risky, while system:masters' stays expected.
func TestModifiedDefaultIsReported(t *testing.T) {
	objs := kubeadmObjects(t)
	for i := range objs.ClusterRoleBindings {
		b := &objs.ClusterRoleBindings[i]
		if b.Name == "cluster-admin" {
			b.Subjects = append(b.Subjects, rbacv1.Subject{Kind: "User", APIGroup: rbacv1.GroupName, Name: "mallory"})
		}
	}
	e := embeddedEngine(t, Options{Baseline: DefaultBaseline()})
	res, err := e.Evaluate(context.Background(), graph.NewSnapshot(objs))
	if err != nil {
		t.Fatal(err)
	}
	crb := graph.ObjectRef{Kind: graph.KindClusterRoleBinding, Name: "cluster-admin"}
	find := func(rule string, subject *graph.ObjectRef, object *graph.ObjectRef) *Finding {
		for _, f := range res.Findings() {
			if f.Rule == rule && (subject == nil || (f.Subject != nil && *f.Subject == *subject)) &&
				(object == nil || (f.Object != nil && *f.Object == *object)) {
				return &f
			}
		}
		return nil
	}
	if f := find("KIEM-BASE-001", nil, &crb); f == nil || f.Status != StatusRisky {
		t.Fatalf("modified cluster-admin binding not reported: %+v", f)
	}
	mallory := graph.ObjectRef{Kind: graph.KindUser, Name: "mallory"}
	if f := find("KIEM-CIS-5.1.2", &mallory, nil); f == nil || f.Status != StatusRisky {
		t.Fatalf("secrets read of the added subject: %+v, want a risky finding", f)
	}
	masters := graph.ObjectRef{Kind: graph.KindGroup, Name: graph.GroupMasters}
	if f := find("KIEM-CIS-5.1.2", &masters, nil); f == nil || f.Status != StatusExpected {
		t.Fatalf("secrets read of system:masters: %+v, want expected", f)
	}
}

// TestSuppressions: a matching suppression hides a finding until it expires; then the finding is risky again
// and the suppression is reported as expired.
func TestSuppressions(t *testing.T) {
	objs := kubeadmObjects(t)
	objs.ClusterRoleBindings = append(objs.ClusterRoleBindings, graph.Binding{Kind: graph.KindClusterRoleBinding,
		Meta:     graph.Meta{Name: "ci-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: "ci"}}})
	snap := graph.NewSnapshot(objs)
	sa := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: "ci", Name: "deployer"}
	supp, err := ParseSuppressions("s.yaml", []byte(`suppressions:
- rule: KIEM-CIS-5.1.1
  subject: {kind: ServiceAccount, namespace: ci, name: deployer}
  owner: platform-team
  reason: the CI deployer installs CRDs; tracked in PLAT-123
  expires: "2027-01-31"
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		now     string
		want    Status
		expired int
	}{{"2026-12-01", StatusSuppressed, 0}, {"2027-01-31", StatusRisky, 1}} {
		now := mustDate(t, tt.now)
		e := embeddedEngine(t, Options{Baseline: DefaultBaseline(), Suppressions: supp, Now: func() time.Time { return now }})
		res, err := e.Evaluate(context.Background(), snap)
		if err != nil {
			t.Fatal(err)
		}
		var got *Finding
		for _, f := range res.Findings() {
			if f.Rule == "KIEM-CIS-5.1.1" && f.Subject != nil && *f.Subject == sa {
				got = &f
			}
		}
		if got == nil || got.Status != tt.want {
			t.Fatalf("at %s: finding %+v, want status %s", tt.now, got, tt.want)
		}
		if tt.want == StatusSuppressed && (got.Suppression == nil || got.Suppression.Owner != "platform-team") {
			t.Fatalf("suppressed finding does not name its suppression: %+v", got)
		}
		if len(res.Expired) != tt.expired {
			t.Fatalf("at %s: %d expired suppressions reported, want %d", tt.now, len(res.Expired), tt.expired)
		}
		// Other findings of the subject are not hidden.
		for _, f := range res.Findings() {
			if f.Rule != "KIEM-CIS-5.1.1" && f.Status == StatusSuppressed {
				t.Fatalf("suppression hid another rule's finding: %s", f.Message)
			}
		}
	}
	for _, bad := range []string{
		"suppressions:\n- rule: R\n  owner: o\n  reason: r\n",
		"suppressions:\n- rule: R\n  owner: o\n  reason: r\n  expires: tomorrow\n",
		"suppressions:\n- rule: R\n  owner: o\n  reason: r\n  expires: \"2027-01-01\"\n  colour: red\n",
	} {
		if _, err := ParseSuppressions("s.yaml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "s.yaml:") {
			t.Errorf("ParseSuppressions(%q) error = %v, want one naming the file and line", bad, err)
		}
	}
}

func mustDate(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSuppressionFile: changes are saved, survive a reopen, and reach the listeners.
func TestSuppressionFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "suppressions.yaml")
	f, err := OpenSuppressionFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	f.OnChange(func(s *Suppressions) { seen = append(seen, len(s.Items())) })
	added, err := f.Add(Suppression{Rule: "KIEM-CIS-5.1.4", Namespace: "ci", Owner: "ci-team", Reason: "builds run pods", Expires: "2027-06-30"})
	if err != nil {
		t.Fatal(err)
	}
	if added.ID == "" {
		t.Fatal("added suppression has no ID")
	}
	if _, err := f.Add(Suppression{Rule: "KIEM-CIS-5.1.4", Owner: "x"}); err == nil {
		t.Fatal("a suppression without reason and expiry was accepted")
	}
	g, err := OpenSuppressionFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if items := g.Current().Items(); len(items) != 1 || items[0].ID != added.ID || items[0].Owner != "ci-team" {
		t.Fatalf("reopened file holds %+v", items)
	}
	if ok, err := f.Remove(added.ID); err != nil || !ok {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if ok, _ := f.Remove(added.ID); ok {
		t.Fatal("removing twice succeeded")
	}
	if !slices.Equal(seen, []int{1, 0}) {
		t.Fatalf("listeners saw %v, want [1 0]", seen)
	}
}
