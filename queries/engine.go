package queries

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/kiem-io/kiem/graph"
)

// Baseline tells platform defaults apart (queries/baseline implements it).
type Baseline interface {
	// Path reports whether a grant comes from a default binding and a rule of the default role's content.
	Path(p graph.GrantPath) (expected bool, reason string)
	// Classify reports whether an object is a platform default (status StatusExpected, with its source) or a
	// modified one (modified true, with what differs); objects that are neither give StatusRisky.
	Classify(o graph.Object) (status Status, modified bool, reason string)
}

// Options configure an Engine.
type Options struct {
	// Baseline classifies platform defaults; nil classifies nothing as expected.
	Baseline Baseline
	// Suppressions hide accepted findings until they expire; nil suppresses nothing.
	Suppressions *Suppressions
	// Now gives the time suppressions expire against; nil means time.Now.
	Now func() time.Time
	// Workers bounds the goroutines of a full evaluation; 0 means GOMAXPROCS.
	Workers int
}

// Engine evaluates a set of packs. It is immutable and safe for concurrent use.
type Engine struct {
	packs    []*Pack
	rules    map[string]*Rule
	byTarget map[Target][]*Rule
	opts     Options
	// table numbers the constant permission questions of every rule and check; ruleProbes marks each CEL
	// rule's (for rules whose questions are all constant), native holds the subject rules compiled to run
	// without CEL, and bits caches every role's answers.
	table      *probeTable
	ruleProbes map[*Rule]bitset
	native     map[*Rule]*nativeRule
	bits       *bitsCache
}

// NewEngine prepares packs for evaluation. Rule IDs must be unique across packs.
func NewEngine(packs []*Pack, opts Options) (*Engine, error) {
	e := &Engine{packs: packs, rules: map[string]*Rule{}, byTarget: map[Target][]*Rule{}, opts: opts,
		table: newProbeTable(), ruleProbes: map[*Rule]bitset{}, native: map[*Rule]*nativeRule{}}
	ids := map[*Rule][]int{}
	var errs []error
	for _, p := range packs {
		for _, r := range p.Rules {
			if prev, dup := e.rules[r.ID]; dup {
				errs = append(errs, fmt.Errorf("%s: rule %s: id already used by %s", r.Source, r.ID, prev.Source))
				continue
			}
			e.rules[r.ID] = r
			e.byTarget[r.Target] = append(e.byTarget[r.Target], r)
			if r.Target == TargetSubject && r.check == nil {
				if nr, ok := compileNative(r, e.table); ok {
					e.native[r] = nr
					continue
				}
			}
			for _, p := range r.probes {
				ids[r] = append(ids[r], e.table.id(p))
			}
			if r.check != nil {
				for _, p := range r.check.probes {
					e.table.id(p)
				}
			}
		}
	}
	e.table.finish()
	mask := func(ids []int) bitset {
		b := newBitset(len(e.table.probes))
		for _, id := range ids {
			b.set(id)
		}
		return b
	}
	for _, nr := range e.native {
		nr.probes = mask(nr.ids)
	}
	for r, rids := range ids {
		if r.probesComplete {
			e.ruleProbes[r] = mask(rids)
		}
	}
	e.bits = newBitsCache(e.table)
	if e.opts.Now == nil {
		e.opts.Now = time.Now
	}
	if e.opts.Workers <= 0 {
		e.opts.Workers = runtime.GOMAXPROCS(0)
	}
	return e, errors.Join(errs...)
}

// Packs returns the engine's packs.
func (e *Engine) Packs() []*Pack { return e.packs }

// Rule returns the rule with the given ID.
func (e *Engine) Rule(id string) (*Rule, bool) {
	r, ok := e.rules[id]
	return r, ok
}

// group is the unit of (re-)evaluation: every rule of one target family on one item.
type group string

const (
	groupSubject        group = "subject" // subject and grant rules, per principal
	groupBinding        group = "binding"
	groupRole           group = "role"
	groupServiceAccount group = "serviceAccount"
	groupPod            group = "pod"
	groupNamespace      group = "namespace"
	groupNode           group = "node"
	groupSecret         group = "secret"
	groupPath           group = "path" // attack paths, per principal
)

// groupOrder is the evaluation order: node rules read the findings of pods.
var groupOrder = []group{groupSubject, groupBinding, groupRole, groupServiceAccount, groupNamespace, groupSecret,
	groupPod, groupNode, groupPath}

func groupOf(t Target) group {
	if t == TargetGrant {
		return groupSubject
	}
	return group(t)
}

// itemKey names one evaluated item: a principal in one scope for groupSubject, a principal for groupPath, an
// object otherwise.
type itemKey struct {
	group group
	ref   graph.ObjectRef
	scope string // groupSubject: the namespace, "" for cluster-wide
}

// shard is the namespace an item's findings are kept under in a Result.
func (k itemKey) shard() string {
	ns := k.ref.Namespace
	if k.group == groupSubject {
		ns = k.scope
	}
	if ns != "" {
		return ns
	}
	// Cluster-wide items (ClusterRoleBinding subjects, cluster-scoped objects) are many: they are spread over
	// clusterShards maps so that an update copies one small map, not all of them.
	h := uint32(2166136261)
	for i := 0; i < len(k.ref.Name); i++ {
		h = (h ^ uint32(k.ref.Name[i])) * 16777619
	}
	return clusterShardNames[h%clusterShards]
}

const clusterShards = 64

// clusterShardNames are the keys of the cluster-wide shards; a NUL cannot start a namespace name.
var clusterShardNames = func() [clusterShards]string {
	var out [clusterShards]string
	for i := range out {
		out[i] = "\x00" + strconv.Itoa(i)
	}
	return out
}()

// Result is the findings of an engine on one snapshot. It is immutable.
type Result struct {
	snap *graph.Snapshot
	// items holds the findings per namespace (of the item) and item, so that an update copies only what it
	// touches.
	items map[string]map[itemKey][]Finding
	// Skipped lists rules that did not run, with why (missing optional data).
	Skipped []SkippedRule
	// Expired lists suppressions past their expiry date: they no longer suppress anything.
	Expired []Suppression

	flatOnce sync.Once
	flat     []Finding

	// attack is the escalation graph of snap when a path rule ran; Update moves it to the next snapshot
	// (so it belongs to the newest result).
	attack *graph.AttackGraph
	// pathsPending says the attack-path findings are those of an earlier snapshot (see Engine.RefreshPaths).
	pathsPending bool
}

// PathsPending reports whether the attack-path findings trail the snapshot (Engine.RefreshPaths catches up).
func (r *Result) PathsPending() bool { return r.pathsPending }

// SkippedRule is a rule that did not run.
type SkippedRule struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// Snapshot returns the snapshot the findings are about.
func (r *Result) Snapshot() *graph.Snapshot { return r.snap }

// Findings returns every finding, sorted with CompareFindings. The slice is shared: do not modify it.
func (r *Result) Findings() []Finding {
	r.flatOnce.Do(func() {
		n := 0
		for _, m := range r.items {
			for _, fs := range m {
				n += len(fs)
			}
		}
		r.flat = make([]Finding, 0, n)
		for _, m := range r.items {
			for _, fs := range m {
				r.flat = append(r.flat, fs...)
			}
		}
		SortFindings(r.flat)
	})
	return r.flat
}

// Evaluate runs every rule on snap.
func (e *Engine) Evaluate(ctx context.Context, snap *graph.Snapshot) (*Result, error) {
	ec := e.newContext(snap)
	res := &Result{snap: snap, items: map[string]map[itemKey][]Finding{}}
	if len(ec.rulesOf(groupPath)) > 0 {
		// The escalation graph is built while the other groups are evaluated; the path group waits for it.
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() { _, _ = ec.pathsToAdmin(ctx) }) // its error is reported by the path items
	}
	for _, g := range groupOrder {
		if err := e.evaluateItems(ctx, ec, res, ec.allItems(g)); err != nil {
			return nil, err
		}
	}
	res.Skipped, res.Expired = ec.skipped(), e.opts.Suppressions.expired(e.opts.Now())
	res.attack = ec.attackGraph
	return res, nil
}

// evaluateItems evaluates items (all of one group) on the engine's workers and stores their findings in res,
// replacing what res held for them.
func (e *Engine) evaluateItems(ctx context.Context, ec *evalContext, res *Result, items []itemKey) error {
	if len(items) == 0 {
		return nil
	}
	results := make([][]Finding, len(items))
	workers := min(e.opts.Workers, (len(items)+63)/64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := 0
	take := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next >= len(items) {
			return 0, 0
		}
		lo := next
		next = min(next+64, len(items))
		return lo, next
	}
	for range max(workers, 1) {
		wg.Go(func() {
			w := ec.newWorker()
			for {
				lo, hi := take()
				if lo == hi {
					return
				}
				if err := ctx.Err(); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				for i := lo; i < hi; i++ {
					fs, err := w.evaluate(ctx, items[i])
					if err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						return
					}
					results[i] = fs
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for i, k := range items {
		m := res.items[k.shard()]
		if m == nil {
			m = map[itemKey][]Finding{}
			res.items[k.shard()] = m
		}
		if len(results[i]) == 0 {
			delete(m, k)
			continue
		}
		m[k] = results[i]
	}
	return nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// evalError wraps an expression's runtime error with the rule and item it failed on.
func evalError(r *Rule, k itemKey, what string, err error) error {
	return fmt.Errorf("%s: rule %s on %s %s: %s: %w", r.Source, r.ID, k.group, k.ref, what, err)
}

// evalBool runs a boolean program. Programs are bounded by their cost limit; the context is checked between
// items by the callers (ContextEval would start a watcher per evaluation, which costs more than most
// evaluations).
func evalBool(_ context.Context, prg cel.Program, vars map[string]any) (bool, error) {
	out, _, err := prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("expression gave %v, not a bool", out)
	}
	return b, nil
}

func evalString(_ context.Context, prg cel.Program, vars map[string]any) (string, error) {
	out, _, err := prg.Eval(vars)
	if err != nil {
		return "", err
	}
	s, ok := out.Value().(string)
	if !ok {
		return "", fmt.Errorf("expression gave %v, not a string", out)
	}
	return s, nil
}

// where says where a finding applies, for messages.
func where(ns string) string {
	if ns == "" {
		return "cluster-wide"
	}
	return "in namespace " + ns
}

func refName(r graph.ObjectRef) string {
	if r.Namespace == "" {
		return string(r.Kind) + " " + r.Name
	}
	return string(r.Kind) + " " + r.Namespace + "/" + r.Name
}

func joinReasons(rs []string) string {
	slices.Sort(rs)
	return strings.Join(slices.Compact(rs), "; ")
}
