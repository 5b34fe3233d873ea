package queries

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kiem-io/kiem/graph"
)

func init() {
	register(&check{name: "takeover-token", target: TargetPod,
		doc: "the pod mounts the token of a ServiceAccount that can take over the cluster or its namespace " +
			"(create pods or workloads, read secrets, bind, escalate, impersonate, nodes/proxy, mint tokens) (KIEM-WL-001)",
		run: takeoverToken, probes: actionProbes(takeoverActions)})
	register(&check{name: "node-token-concentration", target: TargetNode,
		doc: "the node runs pods whose mounted tokens can take over the cluster (KIEM-WL-002)",
		run: nodeTokenConcentration})
}

// takeoverActions are the permissions that turn a stolen token into control of its namespace or the cluster.
var takeoverActions = []graph.Action{
	{Verb: "create", Resource: "pods"},
	{Verb: "create", APIGroup: "apps", Resource: "deployments"},
	{Verb: "create", APIGroup: "apps", Resource: "daemonsets"},
	{Verb: "create", APIGroup: "apps", Resource: "statefulsets"},
	{Verb: "create", APIGroup: "apps", Resource: "replicasets"},
	{Verb: "create", APIGroup: "batch", Resource: "jobs"},
	{Verb: "create", APIGroup: "batch", Resource: "cronjobs"},
	{Verb: "create", Resource: "replicationcontrollers"},
	{Verb: "update", APIGroup: "apps", Resource: "deployments"},
	{Verb: "patch", APIGroup: "apps", Resource: "deployments"},
	{Verb: "update", APIGroup: "apps", Resource: "daemonsets"},
	{Verb: "patch", APIGroup: "apps", Resource: "daemonsets"},
	{Verb: "update", Resource: "pods"},
	{Verb: "patch", Resource: "pods"},
	{Verb: "create", Resource: "pods", Subresource: "exec"},
	{Verb: "get", Resource: "pods", Subresource: "exec"},
	{Verb: "get", Resource: "secrets"},
	{Verb: "list", Resource: "secrets"},
	{Verb: "watch", Resource: "secrets"},
	{Verb: "bind", APIGroup: rbacGroup, Resource: "clusterroles"},
	{Verb: "escalate", APIGroup: rbacGroup, Resource: "clusterroles"},
	{Verb: "impersonate", Resource: "users"},
	{Verb: "impersonate", Resource: "groups"},
	{Verb: "impersonate", Resource: "serviceaccounts"},
	{Verb: "get", Resource: "nodes", Subresource: "proxy"},
	{Verb: "create", Resource: "nodes", Subresource: "proxy"},
	{Verb: "create", Resource: "serviceaccounts", Subresource: "token"},
}

// takeoverResult is what a ServiceAccount's token can take over, with the grants that say so.
type takeoverResult struct {
	grants []graph.Permission
	what   []string
}

// takeover asks every takeover action of a ServiceAccount in every scope it holds grants in (its own namespace,
// cluster-wide, and any namespace a RoleBinding elsewhere names it in). Every pod of the account asks the same,
// so the answer is kept for the evaluation.
func takeover(w *worker, sa graph.ObjectRef) takeoverResult {
	if r, ok := w.ec.takeovers.Load(sa); ok {
		return r.(takeoverResult)
	}
	ev := w.subjectFor(sa, sa.Namespace).evaluation()
	ev.reset()
	scopes := []string{sa.Namespace}
	for _, ns := range w.ec.namespacesOf(ev.id) {
		if ns != sa.Namespace {
			scopes = append(scopes, ns)
		}
	}
	var what []string
	const most = 12 // enough to judge and to read; the evidence holds every grant asked
	for _, scope := range scopes {
		ev.setScope(scope)
		for _, a := range takeoverActions {
			if ev.ask(a, false) && len(what) < most {
				d := describeAction(a)
				if scope != sa.Namespace {
					d += " in " + scope
				}
				what = append(what, d)
			}
		}
	}
	r := takeoverResult{grants: ev.evidence(), what: what}
	w.ec.takeovers.Store(sa, r)
	return r
}

func actionProbes(as []graph.Action) []probe {
	out := make([]probe, len(as))
	for i, a := range as {
		out[i] = probe{a, false}
	}
	return out
}

func describeAction(a graph.Action) string {
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	return a.Verb + " " + res
}

func podOf(w *worker, ref graph.ObjectRef) *graph.Pod {
	if o, ok := w.ec.snap.Object(ref); ok {
		return o.(*graph.Pod)
	}
	return nil
}

// tokenMounted is the effective automount of a pod: its own setting, else its ServiceAccount's, else true.
func tokenMounted(w *worker, p *graph.Pod) bool {
	if p.AutomountToken != nil {
		return *p.AutomountToken
	}
	sam, _ := w.ec.serviceAccountModel(p.Namespace, p.ServiceAccount)
	return sam.AutomountToken
}

func takeoverToken(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	p := podOf(w, k.ref)
	if p == nil || !tokenMounted(w, p) {
		return nil, nil
	}
	sa := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: p.Namespace, Name: p.ServiceAccount}
	t := takeover(w, sa)
	if len(t.what) == 0 {
		return nil, nil
	}
	return []hit{{subject: &sa, object: &k.ref, namespace: p.Namespace, grants: t.grants,
		message: fmt.Sprintf("%s mounts the token of %s, which can %s", refName(k.ref), refName(sa), strings.Join(t.what, ", "))}}, nil
}

func nodeTokenConcentration(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	var pods []graph.ObjectRef
	var sas []string
	for _, pref := range w.ec.podsOnNode(k.ref.Name) {
		p := podOf(w, pref)
		if p == nil || !tokenMounted(w, p) {
			continue
		}
		sa := graph.ObjectRef{Kind: graph.KindServiceAccount, Namespace: p.Namespace, Name: p.ServiceAccount}
		if t := takeover(w, sa); len(t.what) > 0 {
			pods = append(pods, pref)
			sas = append(sas, sa.Namespace+"/"+sa.Name)
		}
	}
	if len(pods) == 0 {
		return nil, nil
	}
	slices.Sort(sas)
	sas = slices.Compact(sas)
	return []hit{{object: &k.ref, objects: pods,
		message: fmt.Sprintf("Node %s runs %d pods whose tokens can take over the cluster or a namespace (ServiceAccounts %s): compromising the node yields them",
			k.ref.Name, len(pods), strings.Join(sas, ", "))}}, nil
}
