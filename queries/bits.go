package queries

import (
	"slices"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// bitset is a set of probe ids. Every bitset of one engine has the same length.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }

func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

// orMasked adds o ∩ mask.
func (b bitset) orMasked(o, mask bitset) {
	for i := range b {
		b[i] |= o[i] & mask[i]
	}
}

func (b bitset) intersects(o bitset) bool {
	for i := range b {
		if b[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

// intersects3 reports whether a ∩ b ∩ c is not empty.
func intersects3(a, b, c bitset) bool {
	for i := range a {
		if a[i]&b[i]&c[i] != 0 {
			return true
		}
	}
	return false
}

func (b bitset) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// probeTable numbers the constant permission questions an engine's rules and checks ask, so that a grant's
// answers to all of them are a bitset computed once per role, and a subject's answers in a scope the union of
// its bindings' sets: a handful of word operations instead of matching every rule against every question.
type probeTable struct {
	probes []probe
	ids    map[probe]int
	// nsBase marks the probes whose request carries the scope's namespace in any namespace (RoleBindings there
	// can grant them); nsByName lists the probes for which that depends on the namespace's name (the Namespace
	// object asked by name), and nsObject those asked about the scope's own Namespace object, whose name is the
	// scope's: a rule restricted to resourceNames answers them per scope.
	nsBase   bitset
	nsByName []int
	nsObject []int
}

func newProbeTable() *probeTable { return &probeTable{ids: map[probe]int{}} }

// id returns the probe's id, adding it when new. Only before finish.
func (t *probeTable) id(p probe) int {
	if id, ok := t.ids[p]; ok {
		return id
	}
	id := len(t.probes)
	t.ids[p] = id
	t.probes = append(t.probes, p)
	return id
}

// lookup returns the id of a known probe.
func (t *probeTable) lookup(a graph.Action, some bool) (int, bool) {
	id, ok := t.ids[probe{a, some}]
	return id, ok
}

func (t *probeTable) finish() {
	t.nsBase = newBitset(len(t.probes))
	for id, p := range t.probes {
		a := p.action
		switch {
		case isNamespaceObject(a) && a.Name == "":
			// get, update, patch and delete of the scope's own Namespace object carry its namespace and name
			if requestNamespace(a, "x") != "" {
				t.nsObject = append(t.nsObject, id)
				t.nsBase.set(id)
			}
		case isNamespaceObject(a):
			t.nsByName = append(t.nsByName, id)
		case requestNamespace(a, "x") != "":
			t.nsBase.set(id)
		}
	}
}

func isNamespaceObject(a graph.Action) bool {
	return a.IsResource() && a.APIGroup == "" && a.Resource == "namespaces" && a.Subresource == ""
}

// nsMask returns the probes a RoleBinding of scope can answer: those whose request carries the namespace.
func (t *probeTable) nsMask(scope string) bitset {
	m := slices.Clone(t.nsBase)
	if scope == "" {
		clear(m)
		return m
	}
	for _, id := range t.nsByName {
		if requestNamespace(t.probes[id].action, scope) != "" {
			m.set(id)
		}
	}
	return m
}

// roleBits are a role's answers to every probe: per rule, and their union.
type roleBits struct {
	all   bitset
	rules []bitset
	// named is set when a rule restricted to resourceNames may name a Namespace: its answers to the questions
	// about a scope's own Namespace object depend on the scope (see roleBitsIn). namedRule marks those rules,
	// and loose is all with those questions added: a superset of the answers in any scope.
	named     bool
	namedRule []bool
	loose     bitset
	// everything is set when a rule grants every verb on every resource of every group, everyURL when one grants
	// every verb on every non-resource URL.
	everything, everyURL bool
}

// bitsCache keeps roleBits by role. Roles are immutable and keep their pointer while unchanged, so the cache
// serves every evaluation and update of an engine; it is emptied when it outgrows the roles it has seen change.
type bitsCache struct {
	t     *probeTable
	mu    sync.RWMutex
	roles map[*graph.Role]*roleBits
	limit int
}

func newBitsCache(t *probeTable) *bitsCache {
	return &bitsCache{t: t, roles: map[*graph.Role]*roleBits{}, limit: 1 << 16}
}

func (c *bitsCache) of(r *graph.Role) *roleBits {
	c.mu.RLock()
	rb, ok := c.roles[r]
	c.mu.RUnlock()
	if ok {
		return rb
	}
	rb = c.compute(r)
	c.mu.Lock()
	if len(c.roles) >= c.limit {
		clear(c.roles) // old versions of changed roles: recomputed on demand
	}
	c.roles[r] = rb
	c.mu.Unlock()
	return rb
}

func (c *bitsCache) compute(r *graph.Role) *roleBits {
	n := len(c.t.probes)
	rb := &roleBits{all: newBitset(n), rules: make([]bitset, len(r.Rules))}
	words := make(bitset, len(rb.all)*len(r.Rules)) // one allocation for every rule's set
	for i := range r.Rules {
		rule := &r.Rules[i]
		rb.rules[i] = words[i*len(rb.all) : (i+1)*len(rb.all)]
		for id, p := range c.t.probes {
			if ruleAllows(rule, p.action, p.some) {
				rb.rules[i].set(id)
			}
		}
		rb.all.or(rb.rules[i])
		if slices.Contains(rule.Verbs, rbacv1.VerbAll) {
			rb.everything = rb.everything || slices.Contains(rule.APIGroups, rbacv1.APIGroupAll) &&
				slices.Contains(rule.Resources, rbacv1.ResourceAll) && len(rule.ResourceNames) == 0
			rb.everyURL = rb.everyURL || slices.Contains(rule.NonResourceURLs, rbacv1.NonResourceAll)
		}
		if len(rule.ResourceNames) > 0 && mayNameNamespaces(rule) && len(c.t.nsObject) > 0 {
			if !rb.named {
				rb.named, rb.namedRule = true, make([]bool, len(r.Rules))
			}
			rb.namedRule[i] = true
		}
	}
	rb.loose = rb.all
	if rb.named {
		rb.loose = slices.Clone(rb.all)
		for _, id := range c.t.nsObject {
			rb.loose.set(id)
		}
	}
	return rb
}

func mayNameNamespaces(r *rbacv1.PolicyRule) bool {
	return (slices.Contains(r.APIGroups, "") || slices.Contains(r.APIGroups, rbacv1.APIGroupAll)) &&
		(slices.Contains(r.Resources, "namespaces") || slices.Contains(r.Resources, rbacv1.ResourceAll))
}

// ruleBitsIn returns rule i's answers in scope: for a rule restricted to resourceNames, the questions about the
// scope's own Namespace object are asked with its name.
func (c *bitsCache) ruleBitsIn(r *graph.Role, rb *roleBits, i int, scope string) bitset {
	rule := &r.Rules[i]
	if !rb.named || !rb.namedRule[i] || scope == "" {
		return rb.rules[i]
	}
	out := slices.Clone(rb.rules[i])
	for _, id := range c.t.nsObject {
		a := c.t.probes[id].action
		a.Name = scope
		if ruleAllows(rule, a, false) {
			out.set(id)
		} else {
			out[id>>6] &^= 1 << (uint(id) & 63)
		}
	}
	return out
}

// roleBitsIn returns the union of the role's answers in scope.
func (c *bitsCache) roleBitsIn(r *graph.Role, rb *roleBits, scope string) bitset {
	if !rb.named || scope == "" || len(c.t.nsObject) == 0 {
		return rb.all
	}
	out := newBitset(len(c.t.probes))
	for i := range r.Rules {
		out.or(c.ruleBitsIn(r, rb, i, scope))
	}
	return out
}
