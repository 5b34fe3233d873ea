// Command kiem is the Kubernetes Identity Entitlement Management tool: it answers who can do what in a cluster,
// why, and since when. See `kiem --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes shared by every command, as `kubectl auth can-i` uses them: scripts tell "no" from "broken".
const (
	exitOK    = 0
	exitNo    = 1
	exitError = 2
)

// exitCode is returned by a command that finished without error but must exit non-zero (can-i's "no").
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// streams are the standard streams a command reads and writes; tests pass buffers.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	root := newRootCmd(streams{in: in, out: out, err: errOut})
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintf(errOut, "error: %v\n", err)
		return exitError
	}
}

func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "kiem",
		Short: "Kubernetes Identity Entitlement Management: who can do what, why, and since when",
		Long: `kiem answers who can do what in a Kubernetes cluster, exactly as the kube-apiserver's RBAC authorizer
decides it, with the binding -> role -> rule path behind every answer.

Every query command reads RBAC objects from --snapshot (YAML or JSON files or directories, as
'kubectl get -o yaml' writes them) or from the bundled --demo cluster.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.AddCommand(newCanICmd(s), newWhoCanCmd(s), newPermissionsCmd(s), newGenerateCmd(s), newServeCmd(s), newHistoryCmd(s), newExportCmd(s), newBackupCmd(s), newRestoreCmd(s),
		newScanCmd(s), newDiffCmd(s))
	return root
}
