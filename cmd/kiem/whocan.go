package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiem-io/kiem/graph"
)

type whoCanFlags struct {
	src           sourceFlags
	namespace     string
	allNamespaces bool
	subresource   string
	output        outputFlag
}

func newWhoCanCmd(s streams) *cobra.Command {
	var f whoCanFlags
	cmd := &cobra.Command{
		Use:   "who-can VERB TYPE[/NAME] | VERB NONRESOURCEURL",
		Short: "List every subject allowed an action, with the bindings that allow it",
		Long: `List every subject (User, Group, ServiceAccount, as the bindings name them) that is allowed an action, with
the binding -> role -> rule paths that allow it. Groups are listed once and never expanded to members. The group
system:masters is always listed: the apiserver allows it before RBAC.

The request is in namespace 'default' unless -n is given; for cluster-scoped built-in resources and non-resource
URLs it carries no namespace, as real requests for them do. With -A the answer covers every namespace: each
subject is listed with the namespaces where it is allowed ('*' for cluster-wide).`,
		Example: `  kiem who-can get secrets -n kube-system --demo
  kiem who-can create pods --subresource exec -A --demo
  kiem who-can impersonate users --demo -o json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.output.validate(); err != nil {
				return err
			}
			snap, err := f.src.load(cmd.Context())
			if err != nil {
				return err
			}
			a, clusterScoped, err := whoCanAction(&f, args, snap, func(msg string) { fmt.Fprintf(s.err, "Warning: %s\n", msg) })
			if err != nil {
				return err
			}
			scopes := []string{a.Namespace}
			if f.allNamespaces && !clusterScoped {
				scopes = namespacesWithBindings(snap)
			}
			rows, err := whoCanScopes(cmd.Context(), snap, a, scopes)
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(s.out, rows)
			}
			t := newTable(s.out, "KIND", "NAMESPACE", "NAME", "WHERE", "VIA")
			for _, r := range rows {
				t.row(string(r.Subject.Kind), r.Subject.Namespace, r.Subject.Name, strings.Join(r.Where, ","), via(r))
			}
			return t.flush()
		},
	}
	fl := cmd.Flags()
	f.src.register(fl)
	fl.StringVarP(&f.namespace, "namespace", "n", "default", "namespace of the request")
	fl.BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "answer for every namespace (and cluster-wide)")
	fl.StringVar(&f.subresource, "subresource", "", "subresource, such as exec, log or scale")
	fl.StringVarP((*string)(&f.output), "output", "o", "table", "output format: table or json")
	return cmd
}

// whoCanAction builds the action; clusterScoped is true when the request carries no namespace by nature.
func whoCanAction(f *whoCanFlags, args []string, snap *graph.Snapshot, warn func(string)) (graph.Action, bool, error) {
	a := graph.Action{Verb: args[0]}
	if strings.HasPrefix(args[1], "/") {
		if f.subresource != "" {
			return a, false, errors.New("--subresource can not be used with NonResourceURL")
		}
		a.NonResourceURL = args[1]
		return a, true, nil
	}
	typ, name, _ := strings.Cut(args[1], "/")
	res := resolveResource(typ, rulesGroupsOf(snap))
	if res.note != "" {
		warn(res.note)
	}
	a.APIGroup, a.Resource, a.Subresource, a.Name = res.group, res.resource, f.subresource, name
	if res.known && !res.namespaced {
		return a, true, nil
	}
	a.Namespace = f.namespace
	return a, false, nil
}

// whoCanRow is one subject of the answer, merged over the namespaces asked.
type whoCanRow struct {
	graph.WhoCanEntry
	// Where lists the namespaces where the subject is allowed; "*" means cluster-wide.
	Where []string `json:"where"`
}

func whoCanScopes(ctx context.Context, snap *graph.Snapshot, a graph.Action, scopes []string) ([]whoCanRow, error) {
	rows := map[graph.ObjectRef]*whoCanRow{}
	var order []graph.ObjectRef
	for _, ns := range scopes {
		a.Namespace = ns
		entries, err := snap.WhoCan(ctx, a)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			r := rows[e.Subject]
			if r == nil {
				r = &whoCanRow{WhoCanEntry: graph.WhoCanEntry{Subject: e.Subject, Superuser: e.Superuser}}
				rows[e.Subject] = r
				order = append(order, e.Subject)
			}
			where := ns
			for _, p := range e.Paths {
				if p.Binding.Kind == graph.KindClusterRoleBinding {
					where = "*"
				}
				if !slices.ContainsFunc(r.Paths, func(q graph.GrantPath) bool { return q.Binding == p.Binding && q.RuleIndex == p.RuleIndex }) {
					r.Paths = append(r.Paths, p)
				}
			}
			if e.Superuser || where == "" {
				where = "*"
			}
			if !slices.Contains(r.Where, where) {
				r.Where = append(r.Where, where)
			}
		}
	}
	out := make([]whoCanRow, 0, len(order))
	for _, ref := range order {
		r := rows[ref]
		if slices.Contains(r.Where, "*") {
			r.Where = []string{"*"}
		}
		out = append(out, *r)
	}
	// Keep system:masters first, then the engine's order, which is stable across namespaces.
	slices.SortStableFunc(out[1:], func(x, y whoCanRow) int { return compareRef(x.Subject, y.Subject) })
	return out, nil
}

func compareRef(a, b graph.ObjectRef) int {
	return strings.Compare(string(a.Kind)+"\x00"+a.Namespace+"\x00"+a.Name, string(b.Kind)+"\x00"+b.Namespace+"\x00"+b.Name)
}

// namespacesWithBindings lists "" (cluster-wide) and every namespace that holds a RoleBinding: elsewhere only
// ClusterRoleBindings apply, and they are covered by "".
func namespacesWithBindings(snap *graph.Snapshot) []string {
	out := []string{""}
	for _, b := range snap.Objects().RoleBindings {
		if out[len(out)-1] != b.Namespace {
			out = append(out, b.Namespace)
		}
	}
	return out
}

func via(r whoCanRow) string {
	if r.Superuser && len(r.Paths) == 0 {
		return "superuser group (before RBAC)"
	}
	var parts []string
	for _, p := range r.Paths {
		s := p.Binding.String() + " -> " + p.Role.String()
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}
