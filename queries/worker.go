package queries

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/kiem-io/kiem/graph"
)

// worker evaluates items one at a time; each goroutine of an evaluation has its own.
type worker struct {
	ec  *evalContext
	ctx context.Context
	// cur is the subject being evaluated, for subject checks; curRef names it.
	cur    *Subject
	curRef graph.ObjectRef
}

func (ec *evalContext) newWorker() *worker { return &worker{ec: ec} }

// hit is one match before it becomes a Finding.
type hit struct {
	subject   *graph.ObjectRef
	object    *graph.ObjectRef
	namespace string
	message   string
	severity  *Severity // nil: the rule's
	grants    []graph.Permission
	objects   []graph.ObjectRef // object evidence
	// classify is the object whose baseline verdict decides the finding's status; nil lets the grants decide.
	classify graph.Object
	// path is the escalation path of a path finding.
	path []graph.AttackHop
}

// subjectFor builds the model of a principal whose permissions are loaded on first use.
func (w *worker) subjectFor(p graph.ObjectRef, scope string) *Subject {
	id := w.ec.identity(p)
	s := &Subject{Kind: string(p.Kind), Name: p.Name, Namespace: p.Namespace, Groups: nonNil(id.Groups), Exists: true}
	if p.Kind == graph.KindServiceAccount {
		_, sa := w.ec.serviceAccountModel(p.Namespace, p.Name)
		s.Exists = sa != nil
	}
	ev := newEvaluation()
	ev.scope = scope
	ev.probes, ev.answered = w.ec.e.probes, make([]uint8, len(w.ec.e.probes))
	ev.load = func() []graph.Permission {
		perms, err := w.ec.permissions(w.ctx, p, id)
		if err != nil {
			ev.err = err
		}
		return perms
	}
	s.ev = ev
	return s
}

// evaluate runs every rule of the item's group on it.
func (w *worker) evaluate(ctx context.Context, k itemKey) ([]Finding, error) {
	w.ctx = ctx
	var out []Finding
	emit := func(r *Rule, h hit) { out = append(out, w.finish(r, h)) }
	var err error
	switch k.group {
	case groupSubject:
		err = w.evaluateSubject(ctx, k, emit)
	case groupPath:
		for _, r := range w.ec.rulesOf(groupPath) {
			hits, cerr := r.check.run(w, r, k, "")
			if cerr != nil {
				return nil, evalError(r, k, "check", cerr)
			}
			for _, h := range hits {
				emit(r, h)
			}
		}
	default:
		err = w.evaluateObject(ctx, k, emit)
	}
	if err != nil {
		return nil, err
	}
	out = mergeSame(out)
	slices.SortFunc(out, func(a, b Finding) int { return CompareFindings(&a, &b) })
	return out, nil
}

// mergeSame folds findings with one fingerprint (a binding naming one account twice, as a ServiceAccount and as
// its user name) into one: the most severe, with the evidence of all.
func mergeSame(fs []Finding) []Finding {
	at := map[string]int{}
	out := fs[:0]
	for _, f := range fs {
		i, dup := at[f.Fingerprint]
		if !dup {
			at[f.Fingerprint] = len(out)
			out = append(out, f)
			continue
		}
		g := &out[i]
		if f.Severity > g.Severity {
			f.Evidence, g.Evidence = g.Evidence, f.Evidence
			*g, f = f, *g
		}
		for _, e := range f.Evidence {
			if !slices.ContainsFunc(g.Evidence, func(x Evidence) bool { return evidenceKey(&x) == evidenceKey(&e) }) {
				g.Evidence = append(g.Evidence, e)
			}
		}
		slices.SortStableFunc(g.Evidence, func(a, b Evidence) int { return cmp.Compare(evidenceKey(&a), evidenceKey(&b)) })
	}
	return out
}

// evaluateSubject runs the subject and grant rules on one principal, in every scope where a binding names it
// directly. A finding is kept only when some grant that made it names the principal itself in that scope, so
// that what a group holds is reported once, on the group, and what a ClusterRoleBinding grants once, cluster-wide.
func (w *worker) evaluateSubject(ctx context.Context, k itemKey, emit func(*Rule, hit)) error {
	p := k.ref
	// A principal's scopes are consecutive items: its permissions, and the answers its cluster-wide grants
	// give, are loaded once for all of them.
	if w.cur == nil || w.curRef != p {
		subj := w.subjectFor(p, "")
		ev := subj.ev
		ev.ensure()
		if ev.err != nil {
			return ev.err
		}
		ev.own, ev.ownIn = make([]bool, len(ev.perms)), map[string][]int32{}
		for i := range ev.perms {
			if ev.own[i] = names(&ev.perms[i].GrantPath, p); ev.own[i] {
				ns := ev.perms[i].Namespace
				ev.ownIn[ns] = append(ev.ownIn[ns], int32(i))
			}
		}
		w.cur, w.curRef = subj, p
	}
	subj := w.cur
	ev := subj.ev
	if _, bound := ev.ownIn[k.scope]; !bound {
		return nil // no grant of its own here: nothing to report in this scope
	}
	scopes := []string{k.scope}
	var subjectRules, grantRules []*Rule
	for _, r := range w.ec.rulesOf(groupSubject) {
		if r.Target == TargetGrant {
			grantRules = append(grantRules, r)
		} else {
			subjectRules = append(subjectRules, r)
		}
	}
	owned := func(perms []graph.Permission, scope string) bool {
		for i := range perms {
			if perms[i].Namespace == scope && names(&perms[i].GrantPath, p) {
				return true
			}
		}
		return false
	}
	for _, scope := range scopes {
		ev.setScope(scope)
		vars := map[string]any{"subject": subj, "scope": scope, "namespaceObject": w.ec.namespaceModel(scope)}
		for _, r := range subjectRules {
			if r.check != nil {
				hits, err := r.check.run(w, r, k, scope)
				if err != nil {
					return evalError(r, k, "check", err)
				}
				for _, h := range hits {
					if len(h.grants) == 0 || owned(h.grants, scope) {
						emit(r, h)
					}
				}
				continue
			}
			if !ev.mayMatch(w.ec.e.probeIDs[r], r.probesComplete) {
				continue
			}
			ev.reset()
			ok, err := evalBool(ctx, r.match, vars)
			if err != nil {
				return evalError(r, k, "match", err)
			}
			if !ok {
				continue
			}
			h := hit{subject: &p, namespace: scope}
			if err := w.grade(ctx, r, vars, &h); err != nil {
				return evalError(r, k, "severity", err)
			}
			if h.grants = ev.evidence(); !owned(h.grants, scope) {
				continue
			}
			emit(r, h)
		}
		gv := w.grantVarsFor(vars)
		for _, r := range grantRules {
			h := hit{subject: &p, namespace: scope}
			var worst *Severity
			inScope := ev.cluster
			if scope != "" {
				inScope = ev.byNS[scope]
			}
			for _, i := range inScope {
				perm := &ev.perms[i]
				if !ev.own[i] {
					continue
				}
				gv.set(perm)
				ok, err := evalBool(ctx, r.match, gv.vars)
				if err != nil {
					return evalError(r, k, "match", err)
				}
				if !ok {
					continue
				}
				g := hit{}
				if err := w.grade(ctx, r, gv.vars, &g); err != nil {
					return evalError(r, k, "severity", err)
				}
				if worst == nil || *g.severity > *worst {
					worst, h.message = g.severity, g.message
				}
				h.grants = append(h.grants, *perm)
			}
			if len(h.grants) > 0 {
				h.severity = worst
				emit(r, h)
			}
		}
	}
	return nil
}

// grantVars are the variables of grant rules: a subject's, and those of the grant being evaluated, set in place
// for each grant (evaluation is sequential). The binding and role models are built only when an expression reads
// them, once per evaluation.
type grantVars struct {
	vars map[string]any
	perm *graph.Permission
}

func (w *worker) grantVarsFor(base map[string]any) *grantVars {
	gv := &grantVars{vars: make(map[string]any, len(base)+4)}
	for k, v := range base {
		gv.vars[k] = v
	}
	gv.vars["binding"] = func() any { return w.ec.bindingModel(*gv.perm.Binding) }
	gv.vars["role"] = func() any {
		role, _ := w.ec.roleModel(*gv.perm.Role)
		return role
	}
	return gv
}

func (gv *grantVars) set(perm *graph.Permission) {
	gv.perm = perm
	gv.vars["rule"] = modelRule(perm.Rule)
	from := ""
	if perm.AggregatedFrom != nil {
		from = perm.AggregatedFrom.Name
	}
	gv.vars["aggregatedFrom"] = from
}

// grade sets the hit's severity (the first graded severity whose condition holds, else the rule's) and, when the
// rule has one, its message.
func (w *worker) grade(ctx context.Context, r *Rule, vars map[string]any, h *hit) error {
	sev := r.Severity
	for i, prg := range r.severities {
		ok, err := evalBool(ctx, prg, vars)
		if err != nil {
			return err
		}
		if ok {
			sev = r.Severities[i].Severity
			break
		}
	}
	h.severity = &sev
	if r.message != nil {
		msg, err := evalString(ctx, r.message, vars)
		if err != nil {
			return err
		}
		h.message = msg
	}
	return nil
}

// evaluateObject runs the rules of an object target on one object.
func (w *worker) evaluateObject(ctx context.Context, k itemKey, emit func(*Rule, hit)) error {
	obj, ok := w.ec.snap.Object(k.ref)
	if !ok && k.group != groupNamespace {
		return nil // gone: no findings
	}
	for _, r := range w.ec.rulesOf(k.group) {
		if r.check != nil {
			hits, err := r.check.run(w, r, k, "")
			if err != nil {
				return evalError(r, k, "check", err)
			}
			for _, h := range hits {
				emit(r, h)
			}
			continue
		}
		hits, err := w.matchObject(ctx, r, k, obj)
		if err != nil {
			return err
		}
		for _, h := range hits {
			emit(r, h)
		}
	}
	return nil
}

// matchObject evaluates one CEL rule on one object.
func (w *worker) matchObject(ctx context.Context, r *Rule, k itemKey, obj graph.Object) ([]hit, error) {
	ref := k.ref
	try := func(vars map[string]any, h hit, ev *evaluation) ([]hit, error) {
		if ev != nil {
			ev.reset()
		}
		ok, err := evalBool(ctx, r.match, vars)
		if err != nil {
			return nil, evalError(r, k, "match", err)
		}
		if !ok {
			return nil, nil
		}
		if err := w.grade(ctx, r, vars, &h); err != nil {
			return nil, evalError(r, k, "severity", err)
		}
		if ev != nil {
			h.grants = ev.evidence()
		}
		if len(h.grants) == 0 && len(h.objects) == 0 && h.object != nil {
			// A rule that asked no permission question stands on the object itself (and, for a pod, its
			// ServiceAccount).
			h.objects = []graph.ObjectRef{*h.object}
			if k.group == groupPod && h.subject != nil {
				h.objects = append(h.objects, *h.subject)
			}
		}
		return []hit{h}, nil
	}
	switch k.group {
	case groupBinding:
		b := obj.(*graph.Binding)
		roleRef, _ := b.RoleRefObject()
		role, _ := w.ec.roleModel(roleRef)
		bm := modelBinding(b)
		var out []hit
		for i := range b.Subjects {
			s := &b.Subjects[i]
			p, ok := principalOf(s, b.Namespace)
			var subj *Subject
			if ok {
				subj = w.subjectFor(p, b.Namespace)
			} else {
				// A subject that matches nobody (a ServiceAccount without a namespace in a ClusterRoleBinding)
				// holds no permissions.
				ev := newEvaluation()
				ev.loaded = true
				subj = &Subject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace, Groups: []string{}, ev: ev}
				p = graph.ObjectRef{Kind: graph.Kind(s.Kind), Namespace: s.Namespace, Name: s.Name}
			}
			vars := map[string]any{"binding": bm, "subject": subj, "role": role, "scope": b.Namespace,
				"namespaceObject": w.ec.namespaceModel(b.Namespace)}
			hs, err := try(vars, hit{subject: &p, object: &ref, namespace: b.Namespace, classify: b}, subj.ev)
			if err != nil {
				return nil, err
			}
			out = append(out, hs...)
		}
		return out, nil
	case groupRole:
		role := obj.(*graph.Role)
		if role.Kind == graph.KindClusterRole {
			if r, ok := w.ec.snap.ClusterRole(role.Name); ok {
				role = r // with aggregated rules
			}
		}
		vars := map[string]any{"role": modelRole(role), "namespaceObject": w.ec.namespaceModel(role.Namespace),
			"bound": func() any { return len(w.ec.snap.BindingsOfRole(ref)) > 0 },
			"boundClusterWide": func() any {
				return slices.ContainsFunc(w.ec.snap.BindingsOfRole(ref), func(b graph.ObjectRef) bool {
					return b.Kind == graph.KindClusterRoleBinding
				})
			},
			"aggregatedInto": func() any {
				return role.Kind == graph.KindClusterRole && len(w.ec.snap.AggregatedInto(role.Name)) > 0
			}}
		return try(vars, hit{object: &ref, namespace: role.Namespace, classify: obj}, nil)
	case groupServiceAccount:
		sam, _ := w.ec.serviceAccountModel(ref.Namespace, ref.Name)
		subj := w.subjectFor(ref, ref.Namespace)
		vars := map[string]any{"serviceAccount": sam, "subject": subj, "scope": ref.Namespace,
			"namespaceObject": w.ec.namespaceModel(ref.Namespace),
			"pods":            func() any { return int64(len(w.ec.snap.PodsOf(ref.Namespace, ref.Name))) },
			"bound":           func() any { return len(w.ec.snap.BindingsOf(ref)) > 0 }}
		return try(vars, hit{subject: &ref, object: &ref, namespace: ref.Namespace}, subj.ev)
	case groupPod:
		pod := obj.(*graph.Pod)
		sam, _ := w.ec.serviceAccountModel(pod.Namespace, pod.ServiceAccount)
		saRef := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: pod.Namespace, Name: pod.ServiceAccount}
		subj := w.subjectFor(saRef, pod.Namespace)
		pm := &Pod{Namespace: pod.Namespace, Name: pod.Name, Labels: nonNilMap(pod.Labels),
			ServiceAccount: pod.ServiceAccount, Node: pod.NodeName, TokenMounted: sam.AutomountToken}
		if pod.AutomountToken != nil {
			pm.TokenMounted = *pod.AutomountToken
		}
		if pod.Owner != nil {
			pm.OwnerKind, pm.OwnerName = pod.Owner.Kind, pod.Owner.Name
		}
		vars := map[string]any{"pod": pm, "serviceAccount": sam, "subject": subj, "scope": pod.Namespace,
			"namespaceObject": w.ec.namespaceModel(pod.Namespace),
			"serviceAccountBound": func() any {
				return w.ec.isBound(saRef) ||
					w.ec.isBound(graph.ObjectRef{Kind: graph.KindGroup, Name: graph.GroupServiceAccounts}) ||
					w.ec.isBound(graph.ObjectRef{Kind: graph.KindGroup, Name: "system:serviceaccounts:" + pod.Namespace})
			}}
		return try(vars, hit{subject: &saRef, object: &ref, namespace: pod.Namespace}, subj.ev)
	case groupNamespace:
		vars := map[string]any{"namespaceObject": w.ec.namespaceModel(ref.Name)}
		return try(vars, hit{object: &ref}, nil)
	case groupNode:
		node := obj.(*graph.Node)
		vars := map[string]any{"node": &Node{Name: node.Name, Labels: nonNilMap(node.Labels)},
			"pods": func() any { return int64(len(w.ec.podsOnNode(node.Name))) }}
		return try(vars, hit{object: &ref}, nil)
	case groupSecret:
		s := obj.(*graph.Secret)
		vars := map[string]any{"secret": &Secret{Namespace: s.Namespace, Name: s.Name, Type: s.Type,
			ServiceAccount: s.ServiceAccount, Labels: nonNilMap(s.Labels)}, "namespaceObject": w.ec.namespaceModel(s.Namespace)}
		return try(vars, hit{object: &ref, namespace: s.Namespace}, nil)
	}
	return nil, fmt.Errorf("no object rules for %s", k.group)
}

// finish turns a hit into a Finding: evidence, classification, suppression, fingerprint.
func (w *worker) finish(r *Rule, h hit) Finding {
	f := Finding{Rule: r.ID, Pack: r.Pack, Title: r.Title, Severity: r.Severity, Subject: h.subject,
		Object: h.object, Namespace: h.namespace, Message: h.message, Evidence: []Evidence{}, Path: h.path}
	if h.severity != nil {
		f.Severity = *h.severity
	}
	if f.Message == "" {
		f.Message = defaultMessage(r, &h)
	}
	base := w.ec.e.opts.Baseline
	allExpected := len(h.grants) > 0
	var reasons []string
	for i := range h.grants {
		perm := &h.grants[i]
		e := Evidence{Grant: &perm.GrantPath, Namespace: perm.Namespace}
		if o, ok := w.ec.snap.Object(*perm.Binding); ok {
			e.Location = graph.MetaOf(o).Origin
		}
		if base != nil {
			e.Expected, e.Reason = base.Path(perm.GrantPath)
		}
		if e.Expected {
			reasons = append(reasons, e.Reason)
		} else {
			allExpected = false
		}
		f.Evidence = append(f.Evidence, e)
	}
	for _, ref := range h.objects {
		e := Evidence{Object: &ref, Text: refName(ref)}
		if o, ok := w.ec.snap.Object(ref); ok {
			e.Location = graph.MetaOf(o).Origin
		}
		f.Evidence = append(f.Evidence, e)
	}
	f.Status = StatusRisky
	switch {
	case h.classify != nil && base != nil:
		st, modified, reason := base.Classify(h.classify)
		f.Status = st
		if st == StatusExpected || modified {
			f.Reason = reason
		}
	case allExpected && base != nil:
		f.Status, f.Reason = StatusExpected, joinReasons(reasons)
	}
	switch {
	case h.object != nil:
		if o, ok := w.ec.snap.Object(*h.object); ok {
			f.Location = graph.MetaOf(o).Origin
		}
	}
	if f.Location == "" {
		for _, e := range f.Evidence {
			if e.Location != "" {
				f.Location = e.Location
				break
			}
		}
	}
	f.Fingerprint = fingerprint(f.Rule, f.Subject, f.Object, f.Namespace)
	if f.Status == StatusRisky {
		if s := w.ec.e.opts.Suppressions.match(&f, w.ec.e.opts.Now()); s != nil {
			f.Status, f.Suppression = StatusSuppressed, s
			f.Reason = fmt.Sprintf("suppressed by %s until %s: %s", s.Owner, s.expiresText(), s.Reason)
		}
	}
	slices.SortStableFunc(f.Evidence, func(a, b Evidence) int {
		return cmp.Compare(evidenceKey(&a), evidenceKey(&b))
	})
	return f
}

func defaultMessage(r *Rule, h *hit) string {
	switch {
	case h.subject != nil && h.object != nil && *h.subject != *h.object:
		return fmt.Sprintf("%s: %s (%s)", refName(*h.object), r.Title, refName(*h.subject))
	case h.object != nil:
		return fmt.Sprintf("%s: %s", refName(*h.object), r.Title)
	case h.subject != nil:
		return fmt.Sprintf("%s: %s %s", refName(*h.subject), r.Title, where(h.namespace))
	}
	return r.Title
}
