package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/workload"
)

type storeFlags struct {
	dataDir string
	output  outputFlag
}

func (f *storeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "directory of the store (default: as kiem serve); the server must be stopped")
	cmd.Flags().StringVarP((*string)(&f.output), "output", "o", "table", "output format: table or json")
}

// open opens a stopped store and its live graph. Snapshots of a store that indexed a live cluster take
// aggregated rules as the API held them; others recompute them, as kiem serve did (the revisions' source tells).
func (f *storeFlags) open(ctx context.Context) (*graph.Live, func(), error) {
	dir := f.dataDir
	if dir == "" {
		var err error
		if dir, err = defaultDataDir(); err != nil {
			return nil, nil, err
		}
	}
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir})
	if err != nil {
		return nil, nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	apiAggregation := false
	if head := st.Head(); head > 0 {
		_ = st.Revisions(ctx, head-1, head, func(info graph.RevisionInfo) bool {
			apiAggregation = strings.HasPrefix(info.Source, "cluster:")
			return false
		})
	}
	g, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{APIAggregation: apiAggregation})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return g, func() { st.Close() }, nil
}

func newHistoryCmd(s streams) *cobra.Command {
	var f storeFlags
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List the revisions of a store: when, from which source, and what changed",
		Long: `List the revisions of a kiem store (written by 'kiem serve'), oldest first: the time, the source and a
summary of the changes (+ added, ~ updated, - deleted, by kind). Works on a stopped store.`,
		Example: `  kiem history --data-dir /var/lib/kiem
  kiem history diff 3 7 --data-dir /var/lib/kiem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.output.validate(); err != nil {
				return err
			}
			g, closeFn, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			var revs []graph.RevisionInfo
			if err := g.Store().Revisions(cmd.Context(), 0, g.Head(), func(r graph.RevisionInfo) bool {
				revs = append(revs, r)
				return true
			}); err != nil {
				return err
			}
			if f.output == "json" {
				if revs == nil {
					revs = []graph.RevisionInfo{}
				}
				return writeJSON(s.out, revs)
			}
			t := newTable(s.out, "REVISION", "TIME", "SOURCE", "CHANGES", "SUMMARY")
			for _, r := range revs {
				t.row(strconv.FormatUint(uint64(r.Revision), 10), r.Time.UTC().Format("2006-01-02 15:04:05Z"), r.Source,
					strconv.Itoa(r.Changes), summary(r.Summary))
			}
			return t.flush()
		},
	}
	f.register(cmd)
	cmd.AddCommand(newHistoryDiffCmd(s))
	return cmd
}

func summary(m map[graph.Kind][3]int) string {
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		c := m[graph.Kind(k)]
		var ops []string
		for i, sym := range []string{"+", "~", "-"} {
			if c[i] > 0 {
				ops = append(ops, sym+strconv.Itoa(c[i]))
			}
		}
		parts = append(parts, k+" "+strings.Join(ops, " "))
	}
	return strings.Join(parts, ", ")
}

func newHistoryDiffCmd(s streams) *cobra.Command {
	var f storeFlags
	cmd := &cobra.Command{
		Use:   "diff REV1 REV2",
		Short: "Show what changed between two revisions, and the grants each affected subject gained and lost",
		Long: `Show the objects that changed between revisions REV1 and REV2 (each object once: added, updated or deleted
over the whole range) and, for every subject those objects touch, the grants it gained and lost, each with the
binding, role and rule. Subjects are listed as bindings name them; a group's members are not expanded.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.output.validate(); err != nil {
				return err
			}
			from, err1 := strconv.ParseUint(args[0], 10, 64)
			to, err2 := strconv.ParseUint(args[1], 10, 64)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("revisions are numbers: %w", err)
			}
			g, closeFn, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			d, err := g.Diff(cmd.Context(), graph.Revision(from), graph.Revision(to))
			if err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(s.out, d)
			}
			t := newTable(s.out, "OP", "KIND", "NAMESPACE", "NAME")
			for _, o := range d.Objects {
				t.row(string(o.Op), string(o.Ref.Kind), o.Ref.Namespace, o.Ref.Name)
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(s.out)
			t = newTable(s.out, "SUBJECT", "", "SCOPE", "VERBS", "RESOURCES", "VIA")
			for _, sd := range d.Subjects {
				for _, set := range []struct {
					sign  string
					perms []graph.Permission
				}{{"+", sd.Gained}, {"-", sd.Lost}} {
					for _, p := range set.perms {
						scope := p.Namespace
						if scope == "" {
							scope = "*"
						}
						what := append(append([]string{}, p.Rule.Resources...), p.Rule.NonResourceURLs...)
						t.row(sd.Subject.String(), set.sign, scope, strings.Join(p.Rule.Verbs, ","), strings.Join(what, ","),
							p.Binding.String()+" -> "+p.Role.String())
					}
				}
			}
			return t.flush()
		},
	}
	f.register(cmd)
	return cmd
}

func newExportCmd(s streams) *cobra.Command {
	var f storeFlags
	var at uint64
	var format, out string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the objects of a revision as a snapshot that every --snapshot flag reads",
		Long:  `Write every object of a revision (the head unless --at) of a stopped store as one 'kind: List'.`,
		Example: `  kiem export --data-dir /var/lib/kiem --at 42 -o rev42.yaml
  kiem can-i get secrets -n payments --as alice --snapshot rev42.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "yaml" && format != "json" {
				return fmt.Errorf("unknown format %q: use yaml or json", format)
			}
			g, closeFn, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			rev := g.Head()
			if cmd.Flags().Changed("at") {
				rev = graph.Revision(at)
			}
			objs, err := g.Store().Objects(cmd.Context(), rev)
			if err != nil {
				return err
			}
			return writeTo(out, s.out, func(w io.Writer) error { return workload.Write(w, objs, format) })
		},
	}
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "directory of the store (default: as kiem serve); the server must be stopped")
	cmd.Flags().Uint64Var(&at, "at", 0, "revision to export (default: the head)")
	cmd.Flags().StringVar(&format, "format", "yaml", "yaml or json")
	cmd.Flags().StringVarP(&out, "output-file", "o", "-", "file to write ('-' for stdout)")
	return cmd
}
