package queries

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/kiem-io/kiem/graph"
	rbacv1 "k8s.io/api/rbac/v1"
)

// evalContext is what every worker of one evaluation shares: the snapshot and indexes built once.
type evalContext struct {
	e    *Engine
	snap *graph.Snapshot

	principalsOnce sync.Once
	principals     []graph.ObjectRef // sorted
	// indexed says the maps below are built: a full evaluation builds them in the pass that lists the
	// principals; an update, which touches few items, asks the snapshot instead.
	indexed bool
	// boundIn lists, per principal, the scopes where a binding names it directly: "" when a ClusterRoleBinding
	// does, then the namespaces of its RoleBindings.
	boundIn map[graph.ObjectRef][]string
	// rolesBound holds the roles a binding references.
	rolesBound map[graph.ObjectRef]bool

	crbOnce          sync.Once
	crbByClusterRole map[string][]graph.ObjectRef

	broadOnce sync.Once
	broad     []*graph.Role // ClusterRoles, broadest first

	takeovers sync.Map // ServiceAccount graph.ObjectRef → takeoverResult

	// attackGraph is the escalation graph (given by Update, or built on first use), toAdmin every principal's
	// shortest path to cluster-admin, computed once for all.
	attackOnce  sync.Once
	attackGraph *graph.AttackGraph
	toAdmin     map[graph.ObjectRef]graph.AttackPath
	attackErr   error

	roles    sync.Map // graph.ObjectRef → *roleModelEntry
	bindings sync.Map // graph.ObjectRef → *Binding

	podsByNodeOnce sync.Once
	podsByNode     map[string][]graph.ObjectRef

	data map[string]bool // optional data present

	rulesOnce sync.Once
	rules     map[group][]*Rule

	// byRoleSet keeps perRoleSet's answers; roleIDs and nextRoleID number roles for its keys.
	byRoleSet  sync.Map // string → any
	roleIDs    sync.Map // *graph.Role → int64
	nextRoleID atomic.Int64
}

func (e *Engine) newContext(snap *graph.Snapshot) *evalContext {
	return &evalContext{e: e, snap: snap, data: map[string]bool{
		DataSecrets: snap.Count(graph.KindSecret, "") > 0,
		DataPods:    snap.Count(graph.KindPod, "") > 0,
		DataNodes:   snap.Count(graph.KindNode, "") > 0,

		DataServiceAccounts: snap.Count(graph.KindServiceAccount, "") > 0,
	}}
}

// runs reports whether the data a rule requires is present.
func (ec *evalContext) runs(r *Rule) bool {
	for _, d := range r.Requires {
		if !ec.data[d] {
			return false
		}
	}
	return true
}

func (ec *evalContext) skipped() []SkippedRule {
	var out []SkippedRule
	for _, p := range ec.e.packs {
		for _, r := range p.Rules {
			for _, d := range r.Requires {
				if !ec.data[d] {
					out = append(out, SkippedRule{Rule: r.ID, Reason: fmt.Sprintf("needs %s, which the graph does not hold", describeData(d))})
					break
				}
			}
		}
	}
	return out
}

func describeData(d string) string {
	switch d {
	case DataSecrets:
		return "Secret metadata (serve --index-secrets)"
	case DataPods:
		return "pods"
	case DataNodes:
		return "nodes"
	case DataServiceAccounts:
		return "ServiceAccount objects"
	}
	return d
}

// principalOf resolves a binding subject to the principal it names: a ServiceAccount (also when named as its
// user name), a User or a Group. ok is false for subjects that match nobody.
func principalOf(s *rbacv1.Subject, bindingNS string) (graph.ObjectRef, bool) {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNS
		}
		if ns == "" {
			return graph.ObjectRef{}, false
		}
		return graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: s.Name}, true
	case rbacv1.UserKind:
		if ns, name, ok := graph.SplitServiceAccountUsername(s.Name); ok {
			return graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: name}, true
		}
		return graph.ObjectRef{Kind: graph.KindUser, Name: s.Name}, true
	case rbacv1.GroupKind:
		return graph.ObjectRef{Kind: graph.KindGroup, Name: s.Name}, true
	}
	return graph.ObjectRef{}, false
}

// names reports whether the grant's binding names principal p itself (not one of its groups).
func names(gp *graph.GrantPath, p graph.ObjectRef) bool {
	got, ok := principalOf(gp.Subject, gp.Binding.Namespace)
	return ok && got == p
}

// allPrincipals returns every principal a binding names, sorted, and indexes where each is bound.
func (ec *evalContext) allPrincipals() []graph.ObjectRef {
	ec.principalsOnce.Do(func() {
		boundIn := map[graph.ObjectRef][]string{}
		ec.rolesBound = map[graph.ObjectRef]bool{}
		visit := func(o graph.Object) bool {
			b := o.(*graph.Binding)
			if ref, ok := b.RoleRefObject(); ok {
				ec.rolesBound[ref] = true
			}
			for i := range b.Subjects {
				if p, ok := principalOf(&b.Subjects[i], b.Namespace); ok {
					// The scopes where p is bound: "" for a ClusterRoleBinding (visited first), then
					// namespaces in the order Each visits them.
					nss := boundIn[p]
					if len(nss) == 0 || nss[len(nss)-1] != b.Namespace {
						nss = append(nss, b.Namespace)
					}
					boundIn[p] = nss
				}
			}
			return true
		}
		ec.snap.Each(graph.KindClusterRoleBinding, "", visit)
		ec.snap.Each(graph.KindRoleBinding, "", visit)
		ec.principals = make([]graph.ObjectRef, 0, len(boundIn))
		for p := range boundIn {
			ec.principals = append(ec.principals, p)
		}
		slices.SortFunc(ec.principals, compareRefs)
		ec.boundIn, ec.indexed = boundIn, true
	})
	return ec.principals
}

// roleBound reports whether a binding references the role.
func (ec *evalContext) roleBound(ref graph.ObjectRef) bool {
	if ec.indexed {
		return ec.rolesBound[ref]
	}
	clusterWide, inNamespace := ec.snap.RoleBoundBy(ref)
	return clusterWide || inNamespace
}

// isBound reports whether a binding names the principal directly.
func (ec *evalContext) isBound(p graph.ObjectRef) bool { return len(ec.snap.BoundIn(p)) > 0 }

// clusterRoleBindingsOf returns the ClusterRoleBindings of a ClusterRole, indexed once per evaluation.
func (ec *evalContext) clusterRoleBindingsOf(name string) []graph.ObjectRef {
	ec.crbOnce.Do(func() {
		ec.crbByClusterRole = map[string][]graph.ObjectRef{}
		ec.snap.Each(graph.KindClusterRoleBinding, "", func(o graph.Object) bool {
			b := o.(*graph.Binding)
			if b.RoleRef.Kind == "ClusterRole" {
				ec.crbByClusterRole[b.RoleRef.Name] = append(ec.crbByClusterRole[b.RoleRef.Name], b.Ref())
			}
			return true
		})
	})
	return ec.crbByClusterRole[name]
}

// identity is the identity the apiserver gives a principal (see Subject).
func (ec *evalContext) identity(p graph.ObjectRef) graph.Identity {
	switch p.Kind {
	case graph.KindServiceAccount:
		return graph.ServiceAccountIdentity(p.Namespace, p.Name)
	case graph.KindUser:
		return graph.ImpersonatedIdentity(p.Name, ec.snap.GroupsOf(p.Name))
	}
	return graph.Identity{Groups: []string{p.Name}}
}

// allItems lists every item of a group, in a stable order.
func (ec *evalContext) allItems(g group) []itemKey {
	if len(ec.rulesOf(g)) == 0 {
		return nil
	}
	var out []itemKey
	add := func(o graph.Object) bool {
		out = append(out, itemKey{group: g, ref: o.Ref()})
		return true
	}
	switch g {
	case groupSubject:
		for _, p := range ec.allPrincipals() {
			for _, scope := range ec.boundIn[p] {
				out = append(out, itemKey{group: g, ref: p, scope: scope})
			}
		}
	case groupBinding:
		ec.snap.Each(graph.KindClusterRoleBinding, "", add)
		ec.snap.Each(graph.KindRoleBinding, "", add)
	case groupRole:
		ec.snap.Each(graph.KindClusterRole, "", add)
		ec.snap.Each(graph.KindRole, "", add)
	case groupServiceAccount:
		ec.snap.Each(graph.KindServiceAccount, "", add)
	case groupPod:
		ec.snap.Each(graph.KindPod, "", add)
	case groupNamespace:
		for _, ns := range ec.snap.NamespaceNames() {
			out = append(out, itemKey{group: g, ref: graph.ObjectRef{Kind: graph.KindNamespace, Name: ns}})
		}
	case groupNode:
		ec.snap.Each(graph.KindNode, "", add)
	case groupSecret:
		ec.snap.Each(graph.KindSecret, "", add)
	case groupPath:
		paths, err := ec.pathsToAdmin(context.Background())
		if err != nil {
			return nil // reported when an item is evaluated
		}
		for ref := range paths {
			if ref.Kind == graph.KindUser || ref.Kind == graph.KindGroup || ref.Kind == graph.KindServiceAccount {
				out = append(out, itemKey{group: g, ref: ref})
			}
		}
		slices.SortFunc(out, func(a, b itemKey) int { return compareRefs(a.ref, b.ref) })
	}
	return out
}

// pathsToAdmin returns every principal's shortest path to cluster-admin, over the escalation graph: the one
// Update carried over, or one built now.
func (ec *evalContext) pathsToAdmin(ctx context.Context) (map[graph.ObjectRef]graph.AttackPath, error) {
	ec.attackOnce.Do(func() {
		if ec.attackGraph == nil {
			ec.attackGraph, ec.attackErr = graph.NewAttackGraph(ctx, ec.snap)
			if ec.attackErr != nil {
				return
			}
		}
		ec.toAdmin, ec.attackErr = ec.attackGraph.ToClusterAdmin(ctx)
	})
	return ec.toAdmin, ec.attackErr
}

// rulesOf returns the rules evaluated for a group that can run on this snapshot, by ID.
func (ec *evalContext) rulesOf(g group) []*Rule {
	ec.rulesOnce.Do(func() {
		ec.rules = map[group][]*Rule{}
		for t, rs := range ec.e.byTarget {
			for _, r := range rs {
				if ec.runs(r) {
					ec.rules[groupOf(t)] = append(ec.rules[groupOf(t)], r)
				}
			}
		}
		for _, rs := range ec.rules {
			sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
		}
	})
	return ec.rules[g]
}

// podsOnNode returns the pods scheduled on a node, indexed once per evaluation.
func (ec *evalContext) podsOnNode(node string) []graph.ObjectRef {
	ec.podsByNodeOnce.Do(func() {
		ec.podsByNode = map[string][]graph.ObjectRef{}
		ec.snap.Each(graph.KindPod, "", func(o graph.Object) bool {
			p := o.(*graph.Pod)
			if p.NodeName != "" {
				ec.podsByNode[p.NodeName] = append(ec.podsByNode[p.NodeName], p.Ref())
			}
			return true
		})
	})
	return ec.podsByNode[node]
}

// namespaceModel returns the model of a namespace; an absent namespace has Exists false.
func (ec *evalContext) namespaceModel(name string) *Namespace {
	m := &Namespace{Name: name, Labels: map[string]string{}, Annotations: map[string]string{}}
	if name == "" {
		return m
	}
	if o, ok := ec.snap.Object(graph.ObjectRef{Kind: graph.KindNamespace, Name: name}); ok {
		ns := o.(*graph.Namespace)
		m.Labels, m.Annotations, m.Exists = nonNilMap(ns.Labels), nonNilMap(ns.Annotations), true
	}
	return m
}

// serviceAccountModel returns the model of a ServiceAccount; an absent one has Exists false and mounts tokens.
func (ec *evalContext) serviceAccountModel(ns, name string) (*ServiceAccount, *graph.ServiceAccount) {
	m := &ServiceAccount{Namespace: ns, Name: name, Labels: map[string]string{}, AutomountToken: true}
	o, ok := ec.snap.Object(graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: ns, Name: name})
	if !ok {
		return m, nil
	}
	sa := o.(*graph.ServiceAccount)
	m.Labels, m.Exists = nonNilMap(sa.Labels), true
	if sa.AutomountToken != nil {
		m.AutomountToken, m.AutomountTokenSet = *sa.AutomountToken, true
	}
	return m, sa
}

type roleModelEntry struct {
	model *Role
	role  *graph.Role
}

// roleModel returns the role a binding references, Exists false when it is missing. Models are built once per
// evaluation: many bindings share a role.
func (ec *evalContext) roleModel(ref graph.ObjectRef) (*Role, *graph.Role) {
	if e, ok := ec.roles.Load(ref); ok {
		e := e.(*roleModelEntry)
		return e.model, e.role
	}
	m, r := ec.buildRoleModel(ref)
	ec.roles.Store(ref, &roleModelEntry{m, r})
	return m, r
}

// bindingModel returns the model of a binding, built once per evaluation.
func (ec *evalContext) bindingModel(ref graph.ObjectRef) *Binding {
	if m, ok := ec.bindings.Load(ref); ok {
		return m.(*Binding)
	}
	o, ok := ec.snap.Object(ref)
	if !ok {
		return &Binding{Kind: string(ref.Kind), Namespace: ref.Namespace, Name: ref.Name, Labels: map[string]string{},
			Annotations: map[string]string{}, Subjects: []SubjectRef{}}
	}
	m := modelBinding(o.(*graph.Binding))
	ec.bindings.Store(ref, m)
	return m
}

func (ec *evalContext) buildRoleModel(ref graph.ObjectRef) (*Role, *graph.Role) {
	var r *graph.Role
	var ok bool
	switch ref.Kind {
	case graph.KindClusterRole:
		r, ok = ec.snap.ClusterRole(ref.Name)
	case graph.KindRole:
		r, ok = ec.snap.Role(ref.Namespace, ref.Name)
	}
	if !ok {
		return &Role{Kind: string(ref.Kind), Namespace: ref.Namespace, Name: ref.Name, Labels: map[string]string{},
			Annotations: map[string]string{}, Rules: []PolicyRule{}}, nil
	}
	return modelRole(r), r
}

// namespacesOf lists, sorted, the namespaces where a RoleBinding names the identity id or one of its groups.
func (ec *evalContext) namespacesOf(id graph.Identity) []string { return ec.snap.BoundNamespaces(id) }

// clusterRolesByBreadth returns the ClusterRoles, those granting the most first: '*' verbs, resources and
// groups count most, then the number of rules.
func (ec *evalContext) clusterRolesByBreadth() []*graph.Role {
	ec.broadOnce.Do(func() {
		score := map[*graph.Role]int{}
		ec.snap.Each(graph.KindClusterRole, "", func(o graph.Object) bool {
			r := o.(*graph.Role)
			n := len(r.Rules)
			for _, rule := range r.Rules {
				for _, f := range [][]string{rule.Verbs, rule.APIGroups, rule.Resources} {
					if slices.Contains(f, "*") {
						n += 1000
					}
				}
			}
			score[r] = n
			ec.broad = append(ec.broad, r)
			return true
		})
		slices.SortStableFunc(ec.broad, func(a, b *graph.Role) int { return score[b] - score[a] })
	})
	return ec.broad
}

// scopesOf returns the scopes where a binding names p directly: "" for a ClusterRoleBinding, and the namespaces
// of its RoleBindings.
func scopesOf(s *graph.Snapshot, p graph.ObjectRef) []string { return s.BoundIn(p) }
