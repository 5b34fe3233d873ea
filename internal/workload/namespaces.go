package workload

import (
	"math"
	"strconv"

	"github.com/kiem-io/kiem/graph"
)

// Label keys real clusters put on namespaces, ServiceAccounts and pods.
const (
	labelNamespaceName = "kubernetes.io/metadata.name"
	labelPSAEnforce    = "pod-security.kubernetes.io/enforce"
	labelPSAWarn       = "pod-security.kubernetes.io/warn"
	labelAppName       = "app.kubernetes.io/name"
	labelManagedBy     = "app.kubernetes.io/managed-by"
	labelTeam          = "team"
	labelEnv           = "env"
)

// namespaces creates the synthetic namespaces: first a few platform ones (monitoring, cert-manager, …) that
// host operators, then tenant namespaces named team-app[-env].
func (g *generator) namespaces() {
	n := g.spec.Namespaces
	if n == 0 {
		// Namespaced objects still need a home; every cluster has "default".
		g.tenants = []*tenant{{name: "default", team: "platform", app: "api", weight: 1}}
		return
	}
	plats, ts, as, es := platformNamespaces(), teams(), apps(), envs()
	nPlat := 0
	if n >= 2 {
		nPlat = min(len(plats), max(1, n/20))
	}
	for i := range n {
		t := &tenant{weight: math.Exp(0.8 * g.r.NormFloat64())}
		var name, env string
		if i < nPlat {
			t.platform, t.team, t.app = true, "platform", plats[i]
			name = plats[i]
		} else {
			t.team, t.app = pick(g.r, ts), pick(g.r, as)
			name = t.team + "-" + t.app
			if g.r.IntN(4) > 0 {
				env = pick(g.r, es)
				name += "-" + env
			}
		}
		t.name = claim(g.nsNames, name)
		labels := map[string]string{labelNamespaceName: t.name}
		if !t.platform {
			labels[labelTeam] = t.team
		}
		if env != "" {
			labels[labelEnv] = env
		}
		switch g.r.IntN(10) {
		case 0, 1, 2:
			labels[labelPSAEnforce] = "restricted"
		case 3, 4:
			labels[labelPSAEnforce] = "baseline"
			labels[labelPSAWarn] = "restricted"
		case 5:
			labels[labelPSAEnforce] = "privileged"
		}
		g.tenants = append(g.tenants, t)
		g.out.Namespaces = append(g.out.Namespaces, graph.Namespace{Meta: g.meta("", t.name, labels)})
	}
}

// serviceAccounts gives every namespace its "default" ServiceAccount, then spreads the others by namespace size.
func (g *generator) serviceAccounts() {
	left := g.spec.ServiceAccounts
	for _, t := range g.tenants {
		taken := g.nsSet(graph.KindServiceAccount, t.name)
		if left == 0 || taken["default"] {
			continue
		}
		taken["default"] = true
		t.sas = append(t.sas, "default")
		g.out.ServiceAccounts = append(g.out.ServiceAccounts, graph.ServiceAccount{Meta: g.meta(t.name, "default", nil)})
		left--
	}
	as, suffixes, shared := apps(), saSuffixes(), sharedServiceAccounts()
	for i, k := range apportion(left, g.weightsFor()) {
		t := g.tenants[i]
		taken := g.nsSet(graph.KindServiceAccount, t.name)
		for range k {
			var name string
			switch {
			case g.chance(0.15):
				name = pick(g.r, shared)
			case g.chance(0.5):
				name = t.app + pick(g.r, suffixes)
			default:
				name = pick(g.r, as) + pick(g.r, suffixes)
			}
			name = claim(taken, name)
			t.sas = append(t.sas, name)
			var labels map[string]string
			if g.chance(0.5) {
				labels = map[string]string{labelAppName: name}
				if g.chance(0.5) {
					labels[labelManagedBy] = "Helm"
				}
			}
			sa := graph.ServiceAccount{Meta: g.meta(t.name, name, labels)}
			if g.chance(0.15) {
				sa.AutomountToken = new(false)
			}
			g.out.ServiceAccounts = append(g.out.ServiceAccounts, sa)
		}
	}
}

// randomSA returns a synthetic ServiceAccount as (namespace, name); "default" of a random namespace when no
// ServiceAccount was generated.
func (g *generator) randomSA() (string, string) {
	t := pick(g.r, g.tenants)
	if len(t.sas) == 0 {
		return t.name, "default"
	}
	return t.name, pick(g.r, t.sas)
}

// localSA returns a ServiceAccount name of tenant t, "default" more often than its share as real bindings do.
func (g *generator) localSA(t *tenant) string {
	if len(t.sas) == 0 || g.chance(0.1) {
		return "default"
	}
	return pick(g.r, t.sas)
}

// nodeNames returns the names of the nodes pods run on: about one node per 200 pods, at least 3 (a small HA
// cluster), at most 500.
func (g *generator) nodeNames() []string {
	n := min(max(g.spec.Pods/200, 3), 500)
	taken := names{}
	out := make([]string, 0, n)
	for len(out) < n {
		name := "ip-10-" + strconv.Itoa(len(out)%4) + "-" + strconv.Itoa(g.r.IntN(256)) + "-" +
			strconv.Itoa(1+g.r.IntN(254)) + ".eu-west-1.compute.internal"
		if !taken[name] {
			taken[name] = true
			out = append(out, name)
		}
	}
	return out
}
