package baseline

import (
	"fmt"
	"slices"

	"github.com/kiem-io/kiem/graph"
)

// Object classifies a RoleBinding, ClusterRoleBinding, Role, ClusterRole or ServiceAccount; every other object is
// NotDefault.
//
// A binding is Default when a baseline binding of the same kind, namespace and name has the same roleRef and the
// same set of subjects (a ServiceAccount subject without a namespace in a RoleBinding means the binding's
// namespace; apiGroups as the API defaults them). A role is Default when a baseline role of the same kind,
// namespace and name has the same rules as a set (each rule's fields compared as sets) and the same
// aggregationRule. The rules of an aggregated ClusterRole are the aggregation controller's output, not content
// anybody wrote (the controller overwrites edits), so only its aggregationRule is compared; what other
// ClusterRoles add to it through aggregation is judged per grant by Path. Pass the role as the snapshot holds it
// (graph.Snapshot.Object or ClusterRole): either works. A ServiceAccount carries no grants and is Default by
// namespace and name.
//
// Labels and annotations never make an object Default. An otherwise default object annotated
// rbac.authorization.kubernetes.io/autoupdate: "false" is Modified: the kube-apiserver no longer restores it.
func (b *Baseline) Object(o graph.Object) Verdict {
	switch v := o.(type) {
	case *graph.ServiceAccount:
		if v != nil {
			return b.serviceAccount(v)
		}
	case *graph.Role:
		if v != nil {
			return b.compare(v.Ref(), v.Annotations, func(e *entry) []string { return b.roleDiff(e, v) })
		}
	case *graph.Binding:
		if v != nil {
			return b.compare(v.Ref(), v.Annotations, func(e *entry) []string { return bindingDiff(e, v) })
		}
	}
	return Verdict{}
}

func (b *Baseline) serviceAccount(sa *graph.ServiceAccount) Verdict {
	for _, ref := range []graph.ObjectRef{sa.Ref(), {Kind: graph.KindServiceAccount, Namespace: AnyNamespace, Name: sa.Name}} {
		if es := b.byRef[ref]; len(es) > 0 {
			return Verdict{Status: Default, Source: es[0].source}
		}
	}
	return Verdict{}
}

// compare returns Default with the source of the first baseline object of ref that diff finds no difference
// from, else Modified with the differences from the first one; autoupdate=false adds a difference either way.
func (b *Baseline) compare(ref graph.ObjectRef, annotations map[string]string, diff func(*entry) []string) Verdict {
	es := b.byRef[ref]
	if len(es) == 0 {
		return Verdict{}
	}
	match, diffs := es[0], diff(es[0])
	for _, e := range es[1:] {
		if len(diffs) == 0 {
			break
		}
		if d := diff(e); len(d) == 0 {
			match, diffs = e, nil
		}
	}
	if annotations[autoUpdateAnnotation] == "false" {
		why := "auto-reconciliation disabled"
		if !match.reconciled {
			why = "not on the default, whose source does not reconcile it"
		}
		diffs = append(diffs, fmt.Sprintf("annotation %s=false (%s)", autoUpdateAnnotation, why))
	}
	if len(diffs) > 0 {
		return Verdict{Status: Modified, Source: match.source, Differences: diffs}
	}
	return Verdict{Status: Default, Source: match.source}
}

func bindingDiff(e *entry, v *graph.Binding) []string {
	var d []string
	ref, group := roleRefOf(v)
	if ref != e.roleRef || group != e.roleRefGroup {
		d = append(d, fmt.Sprintf("roleRef changed from %s to %s", formatRoleRef(e.roleRef, e.roleRefGroup),
			formatRoleRef(ref, group)))
	}
	have, haveSet := subjectsOf(v)
	for _, s := range have {
		if !e.subjectSet[s] {
			d = append(d, fmt.Sprintf("subject %s added", s))
		}
	}
	for _, s := range e.subjects {
		if !haveSet[s] {
			d = append(d, fmt.Sprintf("subject %s removed", s))
		}
	}
	return d
}

func (b *Baseline) roleDiff(e *entry, v *graph.Role) []string {
	var d []string
	aggregated, selectors := v.AggregationRule != nil, selectorKeys(v.AggregationRule)
	if aggregated != e.aggregated || !slices.Equal(selectors, e.selectors) {
		d = append(d, fmt.Sprintf("aggregationRule changed from %s to %s", formatSelectors(e.selectors, e.aggregated),
			formatSelectors(selectors, aggregated)))
	}
	if aggregated && e.aggregated {
		return d
	}
	// The rules are content: compare them with the default's, which for a default aggregated role that lost its
	// aggregationRule are the rules aggregation gave it.
	want, wantKeys := e.obj.(*graph.Role).Rules, e.ruleKeys
	if e.aggregated {
		want, wantKeys = nil, map[string]bool{}
		if ad := b.agg[v.Name]; ad != nil {
			want = ad.rules
			for k := range ad.origin {
				wantKeys[k] = true
			}
		}
	}
	have := make(map[string]bool, len(v.Rules))
	for i := range v.Rules {
		k := ruleKey(&v.Rules[i])
		if !wantKeys[k] && !have[k] {
			d = append(d, fmt.Sprintf("rule %d added: %s", i, formatRule(&v.Rules[i])))
		}
		have[k] = true
	}
	reported := map[string]bool{}
	for i := range want {
		if k := ruleKey(&want[i]); !have[k] && !reported[k] {
			reported[k] = true
			d = append(d, fmt.Sprintf("default rule %d removed: %s", i, formatRule(&want[i])))
		}
	}
	return d
}
