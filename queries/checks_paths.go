package queries

import (
	"fmt"

	"github.com/kiem-io/kiem/graph"
)

func init() {
	register(&check{name: "path-to-cluster-admin", target: TargetPath,
		doc: "the subject reaches cluster-admin through escalation edges (RISKS.md §4): the shortest path, every hop " +
			"with its evidence; subjects that are administrators outright (system:masters, a '*' role bound " +
			"cluster-wide) are left to KIEM-CIS-5.1.1 and KIEM-ESC-020",
		run: pathToClusterAdmin})
}

// direct are the edges that make their source an administrator by itself, not by escalation.
var direct = map[graph.AttackEdgeKind]bool{graph.EdgeAdminEquivalent: true, graph.EdgeMasters: true}

func pathToClusterAdmin(w *worker, r *Rule, k itemKey, _ string) ([]hit, error) {
	paths, err := w.ec.pathsToAdmin(w.ctx)
	if err != nil {
		return nil, err
	}
	path, ok := paths[k.ref]
	if !ok || len(path.Hops) == 0 || (len(path.Hops) == 1 && direct[path.Hops[0].Edge]) {
		return nil, nil
	}
	h := hit{subject: &k.ref, path: path.Hops}
	steps := 0
	for _, hop := range path.Hops {
		if hop.Technique != "" || direct[hop.Edge] {
			steps++
		}
		for _, gp := range hop.Evidence {
			if gp.Binding == nil || gp.Subject == nil || gp.Role == nil || gp.Rule == nil {
				continue // a binding the attacker would create: the hop's text says so
			}
			h.grants = append(h.grants, graph.Permission{Namespace: hopNamespace(hop), GrantPath: gp})
		}
	}
	h.message = fmt.Sprintf("%s can become cluster-admin in %d steps: %s", refName(k.ref), steps, graph.AttackPath{Hops: path.Hops})
	return []hit{h}, nil
}

func hopNamespace(h graph.AttackHop) string {
	if h.Namespace == graph.AllNamespaces {
		return ""
	}
	return h.Namespace
}
