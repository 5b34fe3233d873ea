package queries

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	"github.com/kiem-io/kiem/graph"
)

// Status says how a finding is to be read.
type Status string

const (
	// StatusRisky is a finding to act on.
	StatusRisky Status = "risky"
	// StatusExpected is a finding every grant of which comes from a platform default whose content matches the
	// known default: shown with its reason, never dropped.
	StatusExpected Status = "expected"
	// StatusSuppressed is a finding an operator accepted with a suppression that has not expired.
	StatusSuppressed Status = "suppressed"
)

// Finding is one rule matched on one target.
type Finding struct {
	Rule     string   `json:"rule"`
	Pack     string   `json:"pack"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	// Subject is the User, Group or ServiceAccount the finding is about, as bindings name it.
	Subject *graph.ObjectRef `json:"subject,omitempty"`
	// Object is the object the finding is about (a binding, role, pod, ServiceAccount, namespace or node); for a
	// finding about a subject, absent.
	Object *graph.ObjectRef `json:"object,omitempty"`
	// Namespace is where the finding applies: the namespace of a RoleBinding's grants or of a namespaced object;
	// empty for cluster-wide grants and cluster-scoped objects.
	Namespace string `json:"namespace,omitempty"`
	// Message says in one sentence what was found.
	Message  string     `json:"message"`
	Evidence []Evidence `json:"evidence"`
	// Path is the escalation path of an attack-path finding, hop by hop.
	Path   []graph.AttackHop `json:"path,omitempty"`
	Status Status            `json:"status"`
	// Reason says why an expected finding is expected, or which suppression hides it.
	Reason      string       `json:"reason,omitempty"`
	Suppression *Suppression `json:"suppression,omitempty"`
	// Fingerprint identifies the finding across revisions: the rule, subject, object and namespace, not the
	// evidence or the severity, which may change while the finding stays the same.
	Fingerprint string `json:"fingerprint"`
	// Location is the file and line of the finding's main object when it was read from a file ("deploy/rbac.yaml:12").
	Location string `json:"location,omitempty"`
}

// Evidence is one fact a finding stands on: a grant (binding → subject → role → rule, in a namespace) or an
// object.
type Evidence struct {
	// Grant is set for a permission: the path that grants it.
	Grant *graph.GrantPath `json:"grant,omitempty"`
	// Namespace is where Grant applies; empty for cluster-wide grants.
	Namespace string `json:"namespace,omitempty"`
	// Object is set for evidence that is an object (the role with a wildcard, the pod running as the account).
	Object *graph.ObjectRef `json:"object,omitempty"`
	// Text is the evidence in words for object evidence; for a grant it is left empty and Describe renders it
	// from the grant when asked (a large cluster has millions of grants in its findings, and few are read).
	Text string `json:"-"`
	// Expected and Reason say whether the grant is a platform default (see queries/baseline).
	Expected bool   `json:"expected,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Location is the file and line of the binding or object when it was read from a file.
	Location string `json:"location,omitempty"`
}

// fingerprint computes Finding.Fingerprint.
func fingerprint(rule string, subject, object *graph.ObjectRef, namespace string) string {
	h := sha256.New()
	part := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	part(rule)
	for _, r := range []*graph.ObjectRef{subject, object} {
		if r == nil {
			part("-")
			continue
		}
		part(string(r.Kind))
		part(r.Namespace)
		part(r.Name)
	}
	part(namespace)
	return hex.EncodeToString(h.Sum(nil)[:10])
}

// CompareFindings orders findings most severe first, then by rule, subject, object and namespace.
func CompareFindings(a, b *Finding) int {
	if c := cmp.Compare(b.Severity, a.Severity); c != 0 {
		return c
	}
	if c := strings.Compare(a.Rule, b.Rule); c != 0 {
		return c
	}
	if c := compareRefPtr(a.Subject, b.Subject); c != 0 {
		return c
	}
	if c := compareRefPtr(a.Object, b.Object); c != 0 {
		return c
	}
	return strings.Compare(a.Namespace, b.Namespace)
}

func compareRefPtr(a, b *graph.ObjectRef) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return compareRefs(*a, *b)
}

func compareRefs(a, b graph.ObjectRef) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// SortFindings sorts findings with CompareFindings.
func SortFindings(fs []Finding) {
	slices.SortFunc(fs, func(a, b Finding) int { return CompareFindings(&a, &b) })
}

// Delta is how the findings changed between two evaluations, matched by fingerprint.
type Delta struct {
	New      []Finding `json:"new"`
	Resolved []Finding `json:"resolved"`
}

// Compare returns the findings of after that before lacks (new) and those of before that after lacks (resolved).
func Compare(before, after []Finding) Delta {
	seen := make(map[string]struct{}, len(before))
	for i := range before {
		seen[before[i].Fingerprint] = struct{}{}
	}
	now := make(map[string]struct{}, len(after))
	d := Delta{New: []Finding{}, Resolved: []Finding{}}
	for i := range after {
		now[after[i].Fingerprint] = struct{}{}
		if _, ok := seen[after[i].Fingerprint]; !ok {
			d.New = append(d.New, after[i])
		}
	}
	for i := range before {
		if _, ok := now[before[i].Fingerprint]; !ok {
			d.Resolved = append(d.Resolved, before[i])
		}
	}
	return d
}

// Describe returns the evidence in words: for a grant, as the authorizer says it ("RoleBinding \"x/ns\" of
// ClusterRole \"edit\" to User \"alice\": rule 3 {…}").
func (e *Evidence) Describe() string {
	if e.Text == "" && e.Grant != nil {
		return e.Grant.Explain()
	}
	return e.Text
}

// MarshalJSON writes the evidence with its text.
func (e Evidence) MarshalJSON() ([]byte, error) {
	type plain Evidence
	return json.Marshal(struct {
		plain
		Text string `json:"text"`
	}{plain(e), e.Describe()})
}

// compareEvidence orders evidence: grants first, by namespace, binding, subject, role and rule; then objects by
// their text.
func compareEvidence(a, b *Evidence) int {
	switch {
	case a.Grant != nil && b.Grant == nil:
		return -1
	case a.Grant == nil && b.Grant != nil:
		return 1
	case a.Grant == nil:
		return strings.Compare(a.Text, b.Text)
	}
	ga, gb := a.Grant, b.Grant
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), compareRefs(*ga.Binding, *gb.Binding),
		strings.Compare(ga.Subject.Kind, gb.Subject.Kind), strings.Compare(ga.Subject.Name, gb.Subject.Name),
		compareRefs(*ga.Role, *gb.Role), cmp.Compare(ga.RuleIndex, gb.RuleIndex))
}
