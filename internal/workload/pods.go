package workload

import (
	"strconv"

	"github.com/kiem-io/kiem/graph"
)

// hashAlphabet is the alphabet of the random suffixes Kubernetes controllers put in generated names.
const hashAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// labelPodTemplateHash is the label a Deployment's ReplicaSet puts on its pods.
const labelPodTemplateHash = "pod-template-hash"

// pods spreads the pods over namespaces by size and groups them into workloads: Deployments' ReplicaSets,
// StatefulSets, DaemonSets, Jobs and a few bare pods. All pods of a workload share its ServiceAccount.
func (g *generator) pods() {
	if g.spec.Pods == 0 {
		return
	}
	nodes := g.nodeNames()
	as := apps()
	for i, budget := range apportion(g.spec.Pods, g.weightsFor()) {
		t := g.tenants[i]
		podNames := g.nsSet(graph.KindPod, t.name)
		for budget > 0 {
			sa := g.localSA(t)
			comp := sa
			if sa == "default" {
				comp = pick(g.r, as)
			}
			var w controller
			switch n := g.r.IntN(100); {
			case n < 62:
				hash := g.hash(10)
				w = controller{kind: "ReplicaSet", name: comp + "-" + hash, replicas: 1 + g.r.IntN(6), hash: hash}
			case n < 77:
				w = controller{kind: "StatefulSet", name: comp, replicas: 1 + g.r.IntN(5)}
			case n < 87:
				w = controller{kind: "DaemonSet", name: comp, replicas: min(1+g.r.IntN(8), len(nodes))}
			case n < 97:
				w = controller{kind: "Job", name: comp + "-" + strconv.Itoa(28900000+g.r.IntN(100000)), replicas: 1 + g.r.IntN(3)}
			default:
				w = controller{name: comp, replicas: 1}
			}
			w.replicas = min(w.replicas, budget)
			budget -= w.replicas
			if w.kind != "" {
				w.name = claim(g.nsSet(graph.Kind(w.kind), t.name), w.name)
			}
			var automount *bool
			if g.chance(0.1) {
				automount = new(false)
			}
			for k := range w.replicas {
				name := w.name + "-" + g.hash(5)
				switch w.kind {
				case "StatefulSet":
					name = w.name + "-" + strconv.Itoa(k)
				case "":
					name = w.name
				}
				labels := map[string]string{labelAppName: comp}
				if w.hash != "" {
					labels[labelPodTemplateHash] = w.hash
				}
				p := graph.Pod{
					Meta:           g.meta(t.name, claim(podNames, name), labels),
					ServiceAccount: sa,
					AutomountToken: copyBool(automount),
				}
				// About 2% of pods are Pending, not yet scheduled.
				if !g.chance(0.02) {
					p.NodeName = pick(g.r, nodes)
				}
				if w.kind != "" {
					p.Owner = &graph.OwnerRef{Kind: w.kind, Name: w.name}
				}
				g.out.Pods = append(g.out.Pods, p)
			}
		}
	}
}

// controller is the owner of a group of pods; kind "" means bare pods.
type controller struct {
	kind, name string
	replicas   int
	hash       string
}

// hash returns n random characters of hashAlphabet.
func (g *generator) hash(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = hashAlphabet[g.r.IntN(len(hashAlphabet))]
	}
	return string(b)
}
