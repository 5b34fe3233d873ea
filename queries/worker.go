package queries

import (
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
	// memo and grantMemo keep what native expressions and grant rules computed once per scope or per rule.
	memo map[scopeMemoKey]bool
	// out collects an item's findings; it is reused from item to item. spare is the evidence buffer of the
	// evaluations the worker runs (see evaluation.spare).
	out   []Finding
	spare []graph.Permission
	// paths holds the grant paths of the item's evidence: its findings share them (one grant answers many rules).
	paths     map[pathKey]*graph.GrantPath
	grantMemo map[*graph.Role][]uint8
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

// subjectFor builds the model of a principal whose bindings are looked up on first use.
func (w *worker) subjectFor(p graph.ObjectRef, scope string) *Subject {
	id := w.ec.identity(p)
	s := &Subject{Kind: string(p.Kind), Name: p.Name, Namespace: p.Namespace, Groups: nonNil(id.Groups), Exists: true}
	if p.Kind == graph.KindServiceAccount {
		_, sa := w.ec.serviceAccountModel(p.Namespace, p.Name)
		s.Exists = sa != nil
	}
	s.ec, s.ref, s.id, s.scope, s.spare = w.ec, p, id, scope, &w.spare
	return s
}

// evaluate runs every rule of the item's group on it.
func (w *worker) evaluate(ctx context.Context, k itemKey) ([]Finding, error) {
	w.ctx = ctx
	clear(w.paths)
	out := w.out[:0]
	defer func() { w.out = out[:0] }()
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
	if len(out) == 0 {
		return nil, nil
	}
	slices.SortFunc(out, func(a, b Finding) int { return CompareFindings(&a, &b) })
	// out is the worker's buffer, reused by its next item; the item keeps a copy of the right size.
	return slices.Clone(out), nil
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
			if !slices.ContainsFunc(g.Evidence, func(x Evidence) bool { return compareEvidence(&x, &e) == 0 }) {
				g.Evidence = append(g.Evidence, e)
			}
		}
		slices.SortStableFunc(g.Evidence, func(a, b Evidence) int { return compareEvidence(&a, &b) })
	}
	return out
}

// evaluateSubject runs the subject and grant rules on one principal in one scope where a binding names it
// directly. A finding is kept only when some grant that made it names the principal itself in that scope, so
// that what a group holds is reported once, on the group, and what a ClusterRoleBinding grants once, cluster-wide.
func (w *worker) evaluateSubject(ctx context.Context, k itemKey, emit func(*Rule, hit)) error {
	p, scope := k.ref, k.scope
	// A principal's scopes are consecutive items: its ClusterRoleBindings, and their answers, are looked up once
	// for all of them.
	if w.cur == nil || w.curRef != p {
		w.cur, w.curRef = w.subjectFor(p, scope), p
	}
	subj := w.cur
	ev := subj.evaluation()
	ev.setScope(scope)
	ev.reset()
	if !ev.ownsAnything() {
		return nil // no grant of its own here: nothing to report in this scope
	}
	var vars map[string]any
	varsFor := func() map[string]any {
		if vars == nil {
			vars = map[string]any{"subject": subj, "scope": scope, "namespaceObject": w.ec.namespaceModel(scope)}
		}
		return vars
	}
	st := &nstate{ctx: ctx, ev: ev, scope: scope, memo: w.scopeMemo(), scopeVars: func() map[string]any {
		return map[string]any{"scope": scope, "namespaceObject": w.ec.namespaceModel(scope)}
	}}
	var grantRules []*Rule
	for _, r := range w.ec.rulesOf(groupSubject) {
		if r.Target == TargetGrant {
			grantRules = append(grantRules, r)
			continue
		}
		ev.reset()
		switch nr := w.ec.e.native[r]; {
		case r.check != nil:
			hits, err := r.check.run(w, r, k, scope)
			if err != nil {
				return evalError(r, k, "check", err)
			}
			for _, h := range hits {
				if len(h.grants) == 0 || ownsAny(h.grants, p, scope) {
					emit(r, h)
				}
			}
			continue
		case nr != nil:
			if !ev.ownsSomeOf(nr.probes) {
				continue
			}
			ok, err := nr.match.eval(st)
			if err != nil {
				return evalError(r, k, "match", err)
			}
			if !ok {
				continue
			}
			sev := r.Severity
			for i, s := range nr.severities {
				ok, err := s.eval(st)
				if err != nil {
					return evalError(r, k, "severity", err)
				}
				if ok {
					sev = r.Severities[i].Severity
					break
				}
			}
			if !ev.ownsAsked() {
				continue
			}
			h := hit{subject: &p, namespace: scope, severity: &sev}
			if r.message != nil {
				msg, err := evalString(ctx, r.message, varsFor())
				if err != nil {
					return evalError(r, k, "message", err)
				}
				h.message = msg
			}
			h.grants = ev.evidence()
			emit(r, h)
			ev.recycle(h.grants) // finish copied what it keeps
		default:
			if probes, ok := w.ec.e.ruleProbes[r]; ok && !ev.ownsSomeOf(probes) {
				continue
			}
			ok, err := evalBool(ctx, r.match, varsFor())
			if err != nil {
				return evalError(r, k, "match", err)
			}
			if !ok {
				continue
			}
			h := hit{subject: &p, namespace: scope}
			if err := w.grade(ctx, r, varsFor(), &h); err != nil {
				return evalError(r, k, "severity", err)
			}
			if !ev.ownsAsked() {
				continue
			}
			h.grants = ev.evidence()
			emit(r, h)
			ev.recycle(h.grants) // finish copied what it keeps
		}
	}
	if len(grantRules) == 0 {
		return nil
	}
	gv := w.grantVarsFor(varsFor())
	own := ev.ownBounds()
	for j, r := range grantRules {
		h := hit{subject: &p, namespace: scope}
		var worst *Severity
		for _, b := range own {
			rules := b.Role().Rules
			memo := w.grantMemoFor(b.Role(), len(grantRules))
			for i := range rules {
				ok, err := w.matchGrant(ctx, r, gv, b.Bound, i, memo[i*len(grantRules)+j:])
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
				h.grants = append(h.grants, *gv.perm)
			}
		}
		if len(h.grants) > 0 {
			h.severity = worst
			emit(r, h)
		}
	}
	return nil
}

// matchGrant evaluates a grant rule's match on rule i of a binding's role; when it holds, the grant variables are
// set to it. A match that reads only the rule, its role and where it was aggregated from gives the same answer
// for every binding of the role: it is run once per rule of a role, and memo[0] keeps the answer (0: not yet,
// 1: no, 2: yes).
func (w *worker) matchGrant(ctx context.Context, r *Rule, gv *grantVars, b graph.Bound, i int, memo []uint8) (bool, error) {
	set := func() {
		perm := b.Permission(i)
		gv.set(&perm)
	}
	if !r.grantLocal {
		set()
		return evalBool(ctx, r.match, gv.vars)
	}
	if memo[0] == 0 {
		set()
		v, err := evalBool(ctx, r.match, gv.vars)
		if err != nil {
			return false, err
		}
		memo[0] = 1
		if v {
			memo[0] = 2
		}
		return v, nil
	}
	if memo[0] == 2 {
		set() // for the severity and the evidence
		return true, nil
	}
	return false, nil
}

type pathKey struct {
	binding       *graph.ObjectRef
	subject, rule int
}

// internPath returns the item's copy of a grant path.
func (w *worker) internPath(gp *graph.GrantPath) *graph.GrantPath {
	k := pathKey{gp.Binding, gp.SubjectIndex, gp.RuleIndex}
	if p, ok := w.paths[k]; ok {
		return p
	}
	if w.paths == nil {
		w.paths = map[pathKey]*graph.GrantPath{}
	}
	p := new(graph.GrantPath)
	*p = *gp
	w.paths[k] = p
	return p
}

// grantMemoFor returns the answers of the grant rules on a role's rules kept by the worker: n per rule.
func (w *worker) grantMemoFor(role *graph.Role, n int) []uint8 {
	m, ok := w.grantMemo[role]
	if !ok {
		if w.grantMemo == nil {
			w.grantMemo = map[*graph.Role][]uint8{}
		}
		m = make([]uint8, n*len(role.Rules))
		w.grantMemo[role] = m
	}
	return m
}

func (w *worker) scopeMemo() map[scopeMemoKey]bool {
	if w.memo == nil {
		w.memo = map[scopeMemoKey]bool{}
	}
	return w.memo
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
	var exprs []*Rule
	for _, r := range w.ec.rulesOf(k.group) {
		if r.check == nil {
			exprs = append(exprs, r)
			continue
		}
		hits, err := r.check.run(w, r, k, "")
		if err != nil {
			return evalError(r, k, "check", err)
		}
		for _, h := range hits {
			emit(r, h)
		}
	}
	if len(exprs) == 0 {
		return nil
	}
	return w.matchObject(ctx, exprs, k, obj, emit)
}

// try evaluates one CEL rule on one set of variables; h is the finding it makes if it matches.
func (w *worker) try(ctx context.Context, r *Rule, k itemKey, vars map[string]any, h hit, subj *Subject) (hit, bool, error) {
	if !r.guardsHold(vars) {
		return hit{}, false, nil
	}
	if subj != nil && subj.ev != nil {
		subj.ev.reset()
	}
	ok, err := evalBool(ctx, r.match, vars)
	if err != nil {
		return hit{}, false, evalError(r, k, "match", err)
	}
	if !ok {
		return hit{}, false, nil
	}
	if err := w.grade(ctx, r, vars, &h); err != nil {
		return hit{}, false, evalError(r, k, "severity", err)
	}
	if subj != nil && subj.ev != nil {
		h.grants = subj.ev.evidence()
	}
	if len(h.grants) == 0 && len(h.objects) == 0 && h.object != nil {
		// A rule that asked no permission question stands on the object itself (and, for a pod, its
		// ServiceAccount).
		h.objects = []graph.ObjectRef{*h.object}
		if k.group == groupPod && h.subject != nil {
			h.objects = append(h.objects, *h.subject)
		}
	}
	return h, true, nil
}

// matchObject evaluates the CEL rules of an object's group on it: the variables are built once (for a binding,
// once per subject) for all of them.
func (w *worker) matchObject(ctx context.Context, rules []*Rule, k itemKey, obj graph.Object, emit func(*Rule, hit)) error {
	ref := k.ref
	try := func(vars map[string]any, h hit, subj *Subject) error {
		for _, r := range rules {
			found, ok, err := w.try(ctx, r, k, vars, h, subj)
			if err != nil {
				return err
			}
			if ok {
				emit(r, found)
				if subj != nil && subj.ev != nil {
					subj.ev.recycle(found.grants) // finish copied what it keeps
				}
			}
		}
		return nil
	}
	switch k.group {
	case groupBinding:
		b := obj.(*graph.Binding)
		roleRef, _ := b.RoleRefObject()
		role, _ := w.ec.roleModel(roleRef)
		bm := modelBinding(b)
		for i := range b.Subjects {
			s := &b.Subjects[i]
			p, ok := principalOf(s, b.Namespace)
			var subj *Subject
			if ok {
				subj = w.subjectFor(p, b.Namespace)
			} else {
				// A subject that matches nobody (a ServiceAccount without a namespace in a ClusterRoleBinding)
				// holds no permissions.
				p = graph.ObjectRef{Kind: graph.Kind(s.Kind), Namespace: s.Namespace, Name: s.Name}
				subj = &Subject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace, Groups: []string{},
					ec: w.ec, ref: p, scope: b.Namespace, nobody: true, spare: &w.spare}
			}
			vars := map[string]any{"binding": bm, "subject": subj, "role": role, "scope": b.Namespace,
				"namespaceObject": w.ec.namespaceModel(b.Namespace)}
			if err := try(vars, hit{subject: &p, object: &ref, namespace: b.Namespace, classify: b}, subj); err != nil {
				return err
			}
		}
		return nil
	case groupRole:
		role := obj.(*graph.Role)
		if role.Kind == graph.KindClusterRole {
			if r, ok := w.ec.snap.ClusterRole(role.Name); ok {
				role = r // with aggregated rules
			}
		}
		vars := map[string]any{"role": modelRole(role), "namespaceObject": w.ec.namespaceModel(role.Namespace),
			"bound": func() any { return w.ec.roleBound(ref) },
			"boundClusterWide": func() any {
				clusterWide, _ := w.ec.snap.RoleBoundBy(ref)
				return clusterWide
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
			"bound":           func() any { return w.ec.isBound(ref) }}
		return try(vars, hit{subject: &ref, object: &ref, namespace: ref.Namespace}, subj)
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
		return try(vars, hit{subject: &saRef, object: &ref, namespace: pod.Namespace}, subj)
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
	return fmt.Errorf("no object rules for %s", k.group)
}

// finish turns a hit into a Finding: evidence, classification, suppression, fingerprint.
func (w *worker) finish(r *Rule, h hit) Finding {
	f := Finding{Rule: r.ID, Pack: r.Pack, Title: r.Title, Severity: r.Severity, Subject: h.subject,
		Object: h.object, Namespace: h.namespace, Message: h.message, Path: h.path,
		Evidence: make([]Evidence, 0, len(h.grants)+len(h.objects))}
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
		e := Evidence{Grant: w.internPath(&perm.GrantPath), Namespace: perm.Namespace}
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
	slices.SortStableFunc(f.Evidence, func(a, b Evidence) int { return compareEvidence(&a, &b) })
	return f
}

func defaultMessage(r *Rule, h *hit) string {
	switch {
	case h.subject != nil && h.object != nil && *h.subject != *h.object:
		return refName(*h.object) + ": " + r.Title + " (" + refName(*h.subject) + ")"
	case h.object != nil:
		return refName(*h.object) + ": " + r.Title
	case h.subject != nil:
		return refName(*h.subject) + ": " + r.Title + " " + where(h.namespace)
	}
	return r.Title
}
