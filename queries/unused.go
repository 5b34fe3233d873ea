package queries

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kiem-io/kiem/graph"
)

// Unused permissions (RISKS.md KIEM-HYG-009) are judged on audit usage, which moves with every request rather
// than with revisions: they are computed on demand from a LeastPrivilegeReport, not by the engine.
const (
	UnusedRule  = "KIEM-HYG-009"
	unusedPack  = "hygiene"
	unusedTitle = "Granted but unused"
)

// UnusedFinding is the KIEM-HYG-009 finding of subject (a ServiceAccount or User) from its least-privilege
// report: the held permissions audit events never showed it exercise within the window, each an evidence item
// naming its binding, role and rule. Grants to the groups every caller holds (system:authenticated, the
// ServiceAccount groups) are left out: no one account's grant to remove. ok is false when nothing else held is
// unused, or when the subject is in
// system:masters (RBAC does not bound it). Severity is Low, Medium when an unused permission is powerful
// (wildcards, secrets, escalate, bind, impersonate, nodes/proxy, pods/exec).
func UnusedFinding(subject graph.ObjectRef, rep *LeastPrivilegeReport) (Finding, bool) {
	if rep == nil || rep.Superuser || len(rep.Unused) == 0 {
		return Finding{}, false
	}
	f := Finding{
		Rule: UnusedRule, Pack: unusedPack, Title: unusedTitle, Severity: SeverityLow, Subject: &subject,
		Status: StatusRisky,
	}
	bindings := map[graph.ObjectRef]bool{}
	n := 0
	for i := range rep.Unused {
		h := &rep.Unused[i]
		if implicitGroup(h) {
			continue // every caller holds it (discovery, self reviews): no one account's grant to remove
		}
		n++
		if powerful(h) {
			f.Severity = SeverityMedium
		}
		bindings[h.Binding] = true
		b := h.Binding
		f.Evidence = append(f.Evidence, Evidence{Object: &b, Namespace: h.Namespace, Text: describeHeld(h)})
	}
	if n == 0 {
		return Finding{}, false
	}
	f.Message = fmt.Sprintf("%s holds %d permission(s) through %d binding(s) that audit events never showed it use %s",
		refName(subject), n, len(bindings), strings.TrimSuffix(rep.Window.Evidence, "."))
	f.Evidence = append(f.Evidence, Evidence{Text: rep.Window.Evidence})
	f.Fingerprint = fingerprint(f.Rule, f.Subject, nil, "")
	return f, true
}

// implicitGroup reports whether a permission is held through a group the apiserver gives every caller of a kind.
func implicitGroup(h *HeldPermission) bool {
	if h.Subject.Kind != "Group" {
		return false
	}
	g := h.Subject.Name
	return g == graph.GroupAuthenticated || g == graph.GroupUnauthenticated || g == graph.GroupServiceAccounts ||
		strings.HasPrefix(g, "system:serviceaccounts:")
}

// describeHeld renders a held permission and its last use in one line.
func describeHeld(h *HeldPermission) string {
	what := h.Verb + " "
	switch {
	case h.NonResourceURL != "":
		what += h.NonResourceURL
	case h.APIGroup == "":
		what += h.Resource
	default:
		what += h.Resource + "." + h.APIGroup
	}
	if len(h.ResourceNames) > 0 {
		what += " " + strings.Join(h.ResourceNames, ",")
	}
	where := "cluster-wide"
	if h.Namespace != "" {
		where = "in " + h.Namespace
	}
	last := "never used"
	if h.LastUsed != nil {
		last = "last used " + h.LastUsed.UTC().Format("2006-01-02T15:04:05Z")
	}
	return fmt.Sprintf("%s %s via %s → %s rule %d: %s", what, where, h.Binding, h.Role, h.RuleIndex, last)
}

// powerful reports whether an unused permission is one whose removal matters most.
func powerful(h *HeldPermission) bool {
	if h.Verb == "*" || h.Resource == "*" || h.APIGroup == "*" && h.NonResourceURL == "" {
		return true
	}
	if slices.Contains([]string{"escalate", "bind", "impersonate"}, h.Verb) {
		return true
	}
	return h.Resource == "secrets" || h.Resource == "nodes/proxy" || h.Resource == "pods/exec" ||
		h.Resource == "serviceaccounts/token"
}
