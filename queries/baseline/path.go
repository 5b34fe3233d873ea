package baseline

import (
	"fmt"

	"github.com/kiem-io/kiem/graph"
)

// Path classifies one grant path, as graph.Snapshot's Can, WhoCan and EffectivePermissions return it. The path is
// expected when the platform would make that very grant: its binding is a baseline binding with the path's
// roleRef and the path's subject among its default subjects, and its rule is a rule of the default content of the
// path's role. For an aggregated ClusterRole (admin, edit, view, …) that content is what the default
// aggregationRule collects from the baseline's ClusterRoles, so a rule another ClusterRole brings in through an
// aggregate-to-* label is not expected: when the snapshot recomputed aggregation, GrantPath.AggregatedFrom names
// where the rule came from and must be a ClusterRole the default aggregation selects; on a live cluster, where
// the controller filled the rules, the rule's content decides.
//
// Path judges the one grant it is given and sees nothing else of the objects. A default binding with a subject
// added makes the path of that subject unexpected, while the paths of its default subjects stay expected; a
// default role with a rule added makes only that rule's paths unexpected. Object reports the modification of the
// binding or role itself.
//
// When expected, reason names the sources that make it so, e.g. "platform default: ClusterRoleBinding/
// kubeadm:cluster-admins (kubeadm v1.33) → ClusterRole/cluster-admin (Kubernetes v1.33 bootstrap policy)". When
// not expected, reason is empty if the path's binding is no default, else it says what departs from the default.
func (b *Baseline) Path(p graph.GrantPath) (expected bool, reason string) {
	if p.Binding == nil || p.Subject == nil || p.Role == nil || p.Rule == nil {
		return false, ""
	}
	bes := b.byRef[*p.Binding]
	if len(bes) == 0 {
		return false, ""
	}
	subject := normSubject(*p.Subject, p.Binding.Namespace)
	var be *entry
	for _, e := range bes {
		if e.roleRef == *p.Role && e.subjectSet[subject] {
			be = e
			break
		}
	}
	if be == nil {
		e := bes[0]
		if e.roleRef != *p.Role {
			return false, fmt.Sprintf("%s is a default of %s with roleRef %s, not %s", p.Binding, e.source, e.roleRef, p.Role)
		}
		return false, fmt.Sprintf("%s is a default of %s, but %s is not one of its default subjects", p.Binding,
			e.source, subject)
	}
	res := b.byRef[*p.Role]
	if len(res) == 0 {
		return false, fmt.Sprintf("%s is a default of %s, but no baseline holds %s", p.Binding, be.source, p.Role)
	}
	key := ruleKey(p.Rule)
	rule := fmt.Sprintf("rule %d (%s)", p.RuleIndex, formatRule(p.Rule))
	var why string
	for _, re := range res {
		grant := fmt.Sprintf("platform default: %s (%s) → %s (%s)", p.Binding, be.source, p.Role, re.source)
		if !re.aggregated {
			if re.ruleKeys[key] {
				return true, grant
			}
			why = fmt.Sprintf("%s is not a rule of the default %s (%s)", rule, p.Role, re.source)
			continue
		}
		ad := b.agg[p.Role.Name]
		if ad == nil {
			continue
		}
		origin, ok := ad.origin[key]
		switch {
		case !ok && p.AggregatedFrom != nil:
			why = fmt.Sprintf("%s is aggregated from %s and is not among the rules the default aggregationRule of %s (%s) collects",
				rule, p.AggregatedFrom, p.Role, re.source)
		case !ok:
			why = fmt.Sprintf("%s is not among the rules the default aggregationRule of %s (%s) collects", rule, p.Role, re.source)
		case p.AggregatedFrom != nil && !ad.from[p.AggregatedFrom.Name]:
			why = fmt.Sprintf("%s is aggregated from %s, which the default aggregationRule of %s (%s) does not select",
				rule, p.AggregatedFrom, p.Role, re.source)
		default:
			return true, fmt.Sprintf("%s, rule from %s (%s)", grant, origin.obj.Ref(), origin.source)
		}
	}
	return false, why
}
