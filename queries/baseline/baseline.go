package baseline

import (
	"cmp"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/kiem-io/kiem/graph"
)

// Status says whether an object is a platform default.
type Status int

const (
	// NotDefault: no baseline holds an object of that kind, namespace and name (or the kind is not one a baseline
	// holds). A name with a system: prefix or a kubernetes.io/bootstrapping label changes nothing.
	NotDefault Status = iota
	// Default: the object's content equals that of a baseline object of the same kind, namespace and name.
	Default
	// Modified: a baseline holds an object of that kind, namespace and name, and this one differs from it in
	// content, or opts out of reconciliation (rbac.authorization.kubernetes.io/autoupdate: "false").
	Modified
)

// String returns "not default", "default" or "modified".
func (s Status) String() string {
	switch s {
	case Default:
		return "default"
	case Modified:
		return "modified"
	}
	return "not default"
}

// Verdict is what Object says of one object.
type Verdict struct {
	Status Status
	// Source names the baseline the object is (or was) a default of, e.g. "Kubernetes v1.33 bootstrap policy";
	// empty when the object is NotDefault.
	Source string
	// Differences says for a Modified object what differs from the default, one finding per item, e.g.
	// "subject Group/system:authenticated added", "rule 3 added: get,list secrets", "roleRef changed from
	// ClusterRole/view to ClusterRole/cluster-admin". Rule numbers are 0-based rule indexes, as in GrantPath.
	Differences []string
}

// autoUpdateAnnotation is the annotation whose value "false" stops the kube-apiserver from reconciling a
// default role or binding at start-up.
const autoUpdateAnnotation = rbacv1.AutoUpdateAnnotationKey

// Baseline is a set of platform defaults from one or more sources. It is immutable after construction and safe
// for concurrent use.
//
// A baseline may hold several objects of the same kind, namespace and name from different sources (two platform
// versions, say): an object is Default when it equals any of them.
type Baseline struct {
	sources []string
	entries []*entry // in source order
	byRef   map[graph.ObjectRef][]*entry
	// agg holds, by name, the content the default aggregated ClusterRoles would carry: the rules the
	// aggregation controller would give them from the baseline's ClusterRoles alone.
	agg map[string]*aggregatedDefault
}

// entry is one baseline object with its content prepared for comparison.
type entry struct {
	source string
	obj    graph.Object // *graph.Role, *graph.Binding or *graph.ServiceAccount
	// reconciled is set when the default carries autoupdate "true": the kube-apiserver reconciles it.
	reconciled bool

	// Roles and ClusterRoles.
	ruleKeys   map[string]bool
	aggregated bool
	selectors  []string

	// RoleBindings and ClusterRoleBindings.
	roleRef      graph.ObjectRef
	roleRefGroup string
	subjects     []subjectRef
	subjectSet   map[subjectRef]bool
}

// aggregatedDefault is the default content of an aggregated ClusterRole.
type aggregatedDefault struct {
	rules []rbacv1.PolicyRule // in the controller's order
	// origin gives, by rule key, the baseline ClusterRole the rule comes from (its source is the rule's).
	origin map[string]*entry
	// from holds the names of the ClusterRoles the default aggregationRule selects from the baseline.
	from map[string]bool
}

//go:embed data
var embedded embed.FS

// builtin parses the embedded data once. It is package state only in the sense of a lazily built constant: the
// data never changes, and the Baseline it yields is immutable.
var builtin = sync.OnceValue(func() *Baseline {
	b, err := Load(embedded, "data")
	if err != nil {
		panic("baseline: embedded data: " + err.Error()) // unreachable: TestBuiltin loads the same files
	}
	return b
})

// Builtin returns the embedded baseline: the Kubernetes v1.33 bootstrap policy, the ServiceAccounts
// kube-controller-manager creates, kubeadm v1.33's objects and its CoreDNS and kube-proxy add-ons. It is built
// once and shared.
func Builtin() *Baseline { return builtin() }

// Load reads baseline files from fsys: each path is a file, or a directory walked in lexical order for .yaml, .yml
// and .json files (hidden directories skipped). Every file is one source: its first document names the source in
// a top-level "source" field (see docs/baseline.md), and it holds Roles, ClusterRoles, RoleBindings,
// ClusterRoleBindings and ServiceAccounts, as objects or Lists (`kiem export` output with a source line added is
// a baseline file); other kinds are skipped.
//
// A malformed file fails the whole load with a *FileError naming file and line. A path that does not exist is
// an fs.ErrNotExist.
func Load(fsys fs.FS, paths ...string) (*Baseline, error) {
	if len(paths) == 0 {
		return nil, errors.New("load baseline: no files given")
	}
	var sources []string
	var entries []*entry
	for _, p := range paths {
		files, err := listFiles(fsys, p)
		if err != nil {
			return nil, err
		}
		for _, name := range files {
			data, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, fmt.Errorf("load baseline: %w", err)
			}
			f, err := parseFile(name, data)
			if err != nil {
				return nil, err
			}
			sources = appendNew(sources, f.source)
			for _, o := range f.objects {
				entries = append(entries, newEntry(f.source, o))
			}
		}
	}
	return newBaseline(sources, entries), nil
}

// listFiles returns p if it is a file, else the baseline files under directory p in lexical order.
func listFiles(fsys fs.FS, p string) ([]string, error) {
	info, err := fs.Stat(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("load baseline: %w", err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = fs.WalkDir(fsys, p, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name != p && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		switch path.Ext(name) {
		case ".yaml", ".yml", ".json":
			files = append(files, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load baseline: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load baseline: no .yaml, .yml or .json file in %s", p)
	}
	return files, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// Merge returns a baseline holding the sources of b and then of others; b and others are unchanged. Aggregated
// ClusterRoles are recomputed over the merged ClusterRoles, so that a source adding a ClusterRole labelled for
// aggregation (a managed platform's additions to admin, say) widens the default content of the aggregated role.
func (b *Baseline) Merge(others ...*Baseline) *Baseline {
	sources := slices.Clone(b.sources)
	entries := slices.Clone(b.entries)
	for _, o := range others {
		if o == nil {
			continue
		}
		for _, s := range o.sources {
			sources = appendNew(sources, s)
		}
		entries = append(entries, o.entries...)
	}
	return newBaseline(sources, entries)
}

// Sources returns the names of the baseline's sources, in the order they were loaded and merged.
func (b *Baseline) Sources() []string { return slices.Clone(b.sources) }

// Refs returns the objects source holds, sorted by kind, namespace and name. A ServiceAccount present in every
// namespace has Namespace AnyNamespace.
func (b *Baseline) Refs(source string) []graph.ObjectRef {
	var out []graph.ObjectRef
	for _, e := range b.entries {
		if e.source == source {
			out = append(out, e.obj.Ref())
		}
	}
	slices.SortFunc(out, func(x, y graph.ObjectRef) int {
		return cmp.Or(cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	return slices.Compact(out)
}

func newEntry(source string, o graph.Object) *entry {
	e := &entry{source: source, obj: o}
	switch v := o.(type) {
	case *graph.Role:
		e.reconciled = v.Annotations[autoUpdateAnnotation] == "true"
		e.ruleKeys = make(map[string]bool, len(v.Rules))
		for i := range v.Rules {
			e.ruleKeys[ruleKey(&v.Rules[i])] = true
		}
		e.aggregated = v.AggregationRule != nil
		e.selectors = selectorKeys(v.AggregationRule)
	case *graph.Binding:
		e.reconciled = v.Annotations[autoUpdateAnnotation] == "true"
		e.roleRef, e.roleRefGroup = roleRefOf(v)
		e.subjects, e.subjectSet = subjectsOf(v)
	}
	return e
}

// subjectsOf returns a binding's subjects with the API's defaults applied, in order and without repeats.
func subjectsOf(b *graph.Binding) ([]subjectRef, map[subjectRef]bool) {
	list := make([]subjectRef, 0, len(b.Subjects))
	set := make(map[subjectRef]bool, len(b.Subjects))
	for _, s := range b.Subjects {
		r := normSubject(s, b.Namespace)
		if !set[r] {
			set[r] = true
			list = append(list, r)
		}
	}
	return list, set
}

func newBaseline(sources []string, entries []*entry) *Baseline {
	b := &Baseline{sources: sources, entries: entries, byRef: make(map[graph.ObjectRef][]*entry, len(entries))}
	for _, e := range entries {
		ref := e.obj.Ref()
		b.byRef[ref] = append(b.byRef[ref], e)
	}
	b.agg = aggregateDefaults(b.byRef)
	return b
}

// aggregateDefaults computes the default content of every aggregated baseline ClusterRole with graph's own
// simulation of the aggregation controller, over the baseline's ClusterRoles (the first of each name) alone.
func aggregateDefaults(byRef map[graph.ObjectRef][]*entry) map[string]*aggregatedDefault {
	first := map[string]*entry{}
	var roles []graph.Role
	for ref, es := range byRef {
		if ref.Kind != graph.KindClusterRole {
			continue
		}
		// An aggregated variant first, so that a name some source aggregates keeps its aggregation.
		e := es[0]
		if i := slices.IndexFunc(es, func(e *entry) bool { return e.aggregated }); i >= 0 {
			e = es[i]
		}
		first[ref.Name] = e
		roles = append(roles, *e.obj.(*graph.Role))
	}
	snap := graph.NewSnapshot(&graph.Objects{ClusterRoles: roles})
	out := map[string]*aggregatedDefault{}
	for name, e := range first {
		if !e.aggregated {
			continue
		}
		r, _ := snap.ClusterRole(name)
		ad := &aggregatedDefault{rules: r.Rules, origin: map[string]*entry{}, from: map[string]bool{}}
		for _, f := range snap.AggregatedFrom(name) {
			ad.from[f.Name] = true
		}
		leaves := aggregationLeaves(snap, name, first)
		for i := range r.Rules {
			k := ruleKey(&r.Rules[i])
			if _, done := ad.origin[k]; done {
				continue
			}
			ad.origin[k] = e // a role with an invalid selector keeps its own rules
			for _, l := range leaves {
				if l.ruleKeys[k] {
					ad.origin[k] = l
					break
				}
			}
		}
		out[name] = ad
	}
	return out
}

// aggregationLeaves returns the ClusterRoles without an aggregationRule that name's aggregation reaches, directly
// or through other aggregated roles, in the order aggregation visits them.
func aggregationLeaves(snap *graph.Snapshot, name string, roles map[string]*entry) []*entry {
	var leaves []*entry
	seen := map[string]bool{name: true}
	queue := []string{name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, f := range snap.AggregatedFrom(n) {
			if seen[f.Name] {
				continue
			}
			seen[f.Name] = true
			if e := roles[f.Name]; e != nil && !e.aggregated {
				leaves = append(leaves, e)
			} else {
				queue = append(queue, f.Name)
			}
		}
	}
	return leaves
}
