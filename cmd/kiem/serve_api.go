package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
)

// version is kiem's version as the Go toolchain recorded it in the binary ("(devel)" for a source build).
var version = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}()

func sourceKind(f *serveFlags) string {
	switch {
	case f.src.demo:
		return "demo"
	case len(f.src.snapshots) > 0:
		return "snapshot"
	}
	return "cluster"
}

// authenticator builds the authentication the flags ask for. Without any, kiem makes a random admin token when
// it listens on loopback only (announce prints it, with the base URL "http(s)://host:port"), and refuses to start
// otherwise: data about who can reach what is never served to anyone who asks.
func authenticator(ctx context.Context, log *slog.Logger, f *serveFlags) (auth.Authenticator, func(w io.Writer, base string), error) {
	quiet := func(io.Writer, string) {}
	loopback := auth.IsLoopback(f.listen)
	a := &f.api
	switch {
	case a.insecureNoAuth && (a.tokenFile != "" || a.authMode != ""):
		return nil, nil, errors.New("--insecure-no-auth excludes --token-file and --auth")
	case a.insecureNoAuth && !loopback:
		return nil, nil, fmt.Errorf("--insecure-no-auth is refused on %s: serve without authentication on a loopback address only", f.listen)
	case a.insecureNoAuth:
		return auth.Anonymous{}, func(w io.Writer, base string) {
			fmt.Fprintf(w, "kiem: WARNING: serving without authentication (--insecure-no-auth) on %s\n", base)
		}, nil
	}
	switch a.authMode {
	case "kubernetes":
		if a.tokenFile != "" {
			return nil, nil, errors.New("--auth=kubernetes excludes --token-file")
		}
		cfg, err := restConfig(f.kubeconfig, f.kubeContext)
		if err != nil {
			return nil, nil, err
		}
		d, err := newKubeAuthenticator(cfg, a.audiences...)
		if err != nil {
			return nil, nil, err
		}
		return d, quiet, nil
	case "", "token":
	default:
		return nil, nil, fmt.Errorf("--auth %q: want token or kubernetes", a.authMode)
	}
	if a.tokenFile != "" {
		tf, err := auth.LoadTokenFile(a.tokenFile, log.With("component", "auth"))
		if err != nil {
			return nil, nil, err
		}
		return tf, quiet, nil
	}
	if !loopback {
		return nil, nil, fmt.Errorf("kiem serve on %s needs authentication: --token-file FILE or --auth=kubernetes (a generated token is offered on loopback addresses only)", f.listen)
	}
	token, err := auth.GenerateToken()
	if err != nil {
		return nil, nil, err
	}
	st, err := auth.NewStatic(token, "admin", auth.RoleAdmin)
	if err != nil {
		return nil, nil, err
	}
	return st, func(w io.Writer, base string) {
		fmt.Fprintf(w, "kiem: console at %s/ (sign in with the token below); GraphQL API at %s/graphql\n"+
			"kiem: admin token (valid until kiem stops; send it as 'Authorization: Bearer TOKEN'):\n\n    %s\n\n", base, base, token)
	}, nil
}

// reloader returns what the reload mutation runs: the snapshot files and the groups file read again, each
// difference committed as its revision. nil when kiem reads nothing from files.
func reloader(log *slog.Logger, g *graph.Live, f *serveFlags) func(context.Context) (graph.Revision, int, error) {
	snapshot := len(f.src.snapshots) > 0
	if !snapshot && f.src.groupsFile == "" {
		return nil
	}
	return func(ctx context.Context) (graph.Revision, int, error) {
		total := 0
		if snapshot {
			n, err := commitSnapshot(ctx, log, g, &f.src)
			if err != nil {
				return 0, 0, err
			}
			total += n
		}
		if f.src.groupsFile != "" {
			n, err := commitGroups(ctx, log, g, f.src.groupsFile)
			if err != nil {
				return 0, 0, err
			}
			total += n
		}
		return g.Head(), total, nil
	}
}
