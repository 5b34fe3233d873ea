package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/demo"
	"github.com/kiem-io/kiem/internal/fixtures"
	"github.com/kiem-io/kiem/internal/workload"
)

type generateFlags struct {
	size   string
	seed   int64
	format string
	out    string
}

func newGenerateCmd(s streams) *cobra.Command {
	var f generateFlags
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write a reference workload (S or L) as a snapshot file, for benchmarks and trials",
		Long: `Write one of kiem's reference workloads as a 'kind: List' that every --snapshot flag reads.

S is the demo cluster (kubeadm v1.33 with a few real-world apps) plus a small synthetic tenant set.
L is the real kubeadm v1.33 policy plus 2,000 namespaces, 40,000 ServiceAccounts, 10,000 Roles, 60,000
RoleBindings, 1,000 ClusterRoles (some aggregated), 2,000 ClusterRoleBindings, 5,000 users, 500 groups and
100,000 pods. The same --seed always writes the same bytes.`,
		Example: `  kiem generate --size L --format json -o /tmp/l.json
  kiem who-can get secrets -n tenant-0042 --snapshot /tmp/l.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.format != "yaml" && f.format != "json" {
				return fmt.Errorf("unknown format %q: use yaml or json", f.format)
			}
			var base *graph.Objects
			var spec workload.Spec
			var err error
			switch f.size {
			case "S", "s":
				base, err = demo.Final(cmd.Context())
				spec = workload.S()
			case "L", "l":
				base, _, err = indexer.LoadFS(cmd.Context(), fixtures.FS, []string{fixtures.KubeadmV133}, indexer.LoadOptions{})
				spec = workload.L()
			default:
				return fmt.Errorf("unknown size %q: use S or L", f.size)
			}
			if err != nil {
				return err
			}
			objs := workload.Generate(base, spec, f.seed)
			return writeTo(f.out, s.out, func(w io.Writer) error { return workload.Write(w, objs, f.format) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.size, "size", "S", "workload: S or L")
	fl.Int64Var(&f.seed, "seed", 1, "random seed")
	fl.StringVar(&f.format, "format", "yaml", "yaml or json")
	fl.StringVarP(&f.out, "output-file", "o", "-", "file to write ('-' for stdout)")
	return cmd
}

// writeTo writes through a buffer to path, or to stdout for "-". A file is written under a temporary name and
// renamed, so a failed run never leaves a truncated snapshot behind.
func writeTo(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "-" {
		w := bufio.NewWriterSize(stdout, 1<<20)
		if err := write(w); err != nil {
			return err
		}
		return w.Flush()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kiem-generate-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(w); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	// On disk before the rename makes it visible: a crash never leaves a short file under the final name.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
