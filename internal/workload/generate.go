package workload

import (
	"cmp"
	"encoding/hex"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// epochUnix is the creation time of the oldest synthetic object; later objects are up to two years younger.
// Fixed so that output depends on the seed only.
const epochUnix = 1735689600 // 2025-01-01T00:00:00Z

// pcgStream is the second PCG word: the seed picks the sequence, the constant keeps it apart from other users of
// the same seed.
const pcgStream = 0x6b69656d776c6431 // "kiemwld1"

// Generate returns a deep copy of base (which may be nil) plus the synthetic objects spec asks for. The output is
// a function of base, spec and seed only: the same inputs give the same objects in the same order.
//
// Synthetic objects name the well-known ClusterRoles of a kubeadm cluster (view, edit, admin, cluster-admin,
// system:auth-delegator, …) without checking that base holds them: pass the kubeadm policy as base or those
// references dangle. Names never collide with base's: a taken name gets a numeric suffix.
func Generate(base *graph.Objects, spec Spec, seed int64) *graph.Objects {
	g := newGenerator(base, spec.normalized(), seed)
	g.namespaces()
	g.serviceAccounts()
	g.subjectPools()
	g.clusterRoles()
	g.roles()
	g.roleBindings()
	g.clusterRoleBindings()
	g.placeUnusedSubjects()
	g.pods()
	return g.out
}

// generator holds the state of one Generate call.
type generator struct {
	r    *rand.Rand
	spec Spec
	out  *graph.Objects
	// firstRB and firstCRB index the first synthetic binding of out, after base's.
	firstRB, firstCRB int
	rv                uint64

	nsNames  names                // every namespace name, base's included
	clusterN map[graph.Kind]names // cluster-scoped names in use, by kind
	nsN      map[string]names     // namespaced names in use, by "kind/namespace"
	tenants  []*tenant            // synthetic namespaces, or the "default" namespace when there are none
	ops      []operator           // operators whose ClusterRoles exist

	users, groups *pool
	crs           clusterRoleSets
}

// names is a set of names in use.
type names map[string]bool

// tenant is a namespace the generator fills: who owns it and what it holds.
type tenant struct {
	name      string
	team, app string
	platform  bool
	weight    float64 // relative size: big namespaces hold more of everything
	sas       []string
	roles     []string
}

func newGenerator(base *graph.Objects, spec Spec, seed int64) *generator {
	g := &generator{
		r:        rand.New(rand.NewPCG(uint64(seed), pcgStream)),
		spec:     spec,
		out:      deepCopy(base),
		rv:       100000, // above the resource versions of a freshly built cluster
		nsNames:  names{},
		clusterN: map[graph.Kind]names{graph.KindClusterRole: {}, graph.KindClusterRoleBinding: {}},
		nsN:      map[string]names{},
	}
	g.firstRB, g.firstCRB = len(g.out.RoleBindings), len(g.out.ClusterRoleBindings)
	for _, n := range g.out.Namespaces {
		g.nsNames[n.Name] = true
	}
	for _, r := range g.out.ClusterRoles {
		g.clusterN[graph.KindClusterRole][r.Name] = true
	}
	for _, b := range g.out.ClusterRoleBindings {
		g.clusterN[graph.KindClusterRoleBinding][b.Name] = true
	}
	for _, s := range g.out.ServiceAccounts {
		g.nsSet(graph.KindServiceAccount, s.Namespace)[s.Name] = true
	}
	for _, r := range g.out.Roles {
		g.nsSet(graph.KindRole, r.Namespace)[r.Name] = true
	}
	for _, b := range g.out.RoleBindings {
		g.nsSet(graph.KindRoleBinding, b.Namespace)[b.Name] = true
	}
	for _, p := range g.out.Pods {
		g.nsSet(graph.KindPod, p.Namespace)[p.Name] = true
	}
	return g
}

// nsSet returns the set of names of kind in use in namespace ns.
func (g *generator) nsSet(kind graph.Kind, ns string) names {
	key := string(kind) + "/" + ns
	s, ok := g.nsN[key]
	if !ok {
		s = names{}
		g.nsN[key] = s
	}
	return s
}

// claim returns name, or name-2, name-3, … when taken, and records the result as taken.
func claim(taken names, name string) string {
	n := name
	for i := 2; taken[n]; i++ {
		n = name + "-" + strconv.Itoa(i)
	}
	taken[n] = true
	return n
}

// meta returns fresh metadata: a random UID, the next resource version and a creation time after the epoch.
func (g *generator) meta(ns, name string, labels map[string]string) graph.Meta {
	g.rv++
	return graph.Meta{
		Namespace:       ns,
		Name:            name,
		UID:             g.uuid(),
		ResourceVersion: strconv.FormatUint(g.rv, 10),
		Labels:          labels,
		Created:         time.Unix(epochUnix+g.r.Int64N(2*365*24*3600), 0).UTC(),
	}
}

// uuid returns a random version 4 UUID, as the apiserver gives objects.
func (g *generator) uuid() string {
	var b [16]byte
	for i := range 2 {
		u := g.r.Uint64()
		for j := range 8 {
			b[i*8+j] = byte(u >> (8 * j))
		}
	}
	return formatUUID(b)
}

// formatUUID formats b as a version 4 (random) UUID, overwriting its version and variant bits.
func formatUUID(b [16]byte) string {
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	hex.Encode(s[9:13], b[4:6])
	hex.Encode(s[14:18], b[6:8])
	hex.Encode(s[19:23], b[8:10])
	hex.Encode(s[24:], b[10:])
	s[8], s[13], s[18], s[23] = '-', '-', '-', '-'
	return string(s[:])
}

// pick returns a random element of s; s must not be empty.
func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// chance reports true with probability p.
func (g *generator) chance(p float64) bool { return g.r.Float64() < p }

// pickWeighted draws a name with probability proportional to its weight.
func pickWeighted(r *rand.Rand, ws []weighted) string {
	total := 0
	for _, w := range ws {
		total += w.weight
	}
	n := r.IntN(total)
	for _, w := range ws {
		if n < w.weight {
			return w.name
		}
		n -= w.weight
	}
	return ws[len(ws)-1].name
}

// apportion splits total into len(weights) whole parts proportional to weights (largest remainder), so that the
// parts sum to total exactly.
func apportion(total int, weights []float64) []int {
	parts := make([]int, len(weights))
	if len(weights) == 0 || total <= 0 {
		return parts
	}
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	if sum <= 0 {
		weights = slices.Repeat([]float64{1}, len(weights))
		sum = float64(len(weights))
	}
	type rem struct {
		i    int
		frac float64
	}
	rems := make([]rem, len(weights))
	given := 0
	for i, w := range weights {
		exact := float64(total) * w / sum
		parts[i] = int(math.Floor(exact))
		given += parts[i]
		rems[i] = rem{i, exact - float64(parts[i])}
	}
	// Ties go to the lower index, which keeps the result deterministic.
	slices.SortStableFunc(rems, func(a, b rem) int { return cmp.Compare(b.frac, a.frac) })
	for _, rm := range rems[:total-given] {
		parts[rm.i]++
	}
	return parts
}

// weightsFor returns the tenants' sizes with some noise, so that counts of different kinds correlate but differ.
func (g *generator) weightsFor() []float64 {
	ws := make([]float64, len(g.tenants))
	for i, t := range g.tenants {
		ws[i] = t.weight * (0.5 + g.r.Float64())
	}
	return ws
}

// skewed returns an index in [0, n) where low indices are much more likely: the few heavy users (platform
// admins, shared CI accounts) and the long tail of a real directory. Half the draws are uniform so that small
// pools are not dominated by their first name.
func (g *generator) skewed(n int) int {
	u := g.r.Float64()
	if g.r.IntN(2) == 0 {
		u = u * u * u
	}
	return min(int(u*float64(n)), n-1)
}

// deepCopy returns a copy of o that shares no memory with it; nil gives an empty set. Each object is copied by
// value first, so that fields graph may add later are kept, then its reference fields are cloned.
func deepCopy(o *graph.Objects) *graph.Objects {
	out := &graph.Objects{}
	if o == nil {
		return out
	}
	out.Namespaces = slices.Clone(o.Namespaces)
	for i := range out.Namespaces {
		copyMeta(&out.Namespaces[i].Meta)
	}
	out.ServiceAccounts = slices.Clone(o.ServiceAccounts)
	for i := range out.ServiceAccounts {
		s := &out.ServiceAccounts[i]
		copyMeta(&s.Meta)
		s.AutomountToken = copyBool(s.AutomountToken)
	}
	out.Roles = copyRoles(o.Roles)
	out.ClusterRoles = copyRoles(o.ClusterRoles)
	out.RoleBindings = copyBindings(o.RoleBindings)
	out.ClusterRoleBindings = copyBindings(o.ClusterRoleBindings)
	out.Pods = slices.Clone(o.Pods)
	for i := range out.Pods {
		p := &out.Pods[i]
		copyMeta(&p.Meta)
		p.AutomountToken = copyBool(p.AutomountToken)
		if p.Owner != nil {
			owner := *p.Owner
			p.Owner = &owner
		}
	}
	return out
}

// copyMeta replaces the maps of m with copies.
func copyMeta(m *graph.Meta) {
	m.Labels = maps.Clone(m.Labels)
	m.Annotations = maps.Clone(m.Annotations)
}

// copyBool returns a new pointer to *b, or nil.
func copyBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	return new(*b)
}

// copyRoles deep-copies roles.
func copyRoles(rs []graph.Role) []graph.Role {
	out := slices.Clone(rs)
	for i := range out {
		r := &out[i]
		copyMeta(&r.Meta)
		r.AggregationRule = r.AggregationRule.DeepCopy()
		if r.Rules != nil {
			rules := make([]rbacv1.PolicyRule, len(r.Rules))
			for j := range r.Rules {
				r.Rules[j].DeepCopyInto(&rules[j])
			}
			r.Rules = rules
		}
	}
	return out
}

// copyBindings deep-copies bindings.
func copyBindings(bs []graph.Binding) []graph.Binding {
	out := slices.Clone(bs)
	for i := range out {
		copyMeta(&out[i].Meta)
		out[i].Subjects = slices.Clone(out[i].Subjects)
	}
	return out
}
