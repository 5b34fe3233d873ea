package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kiem-io/kiem/gql"
	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/demo"
	"github.com/kiem-io/kiem/queries"
	"github.com/kiem-io/kiem/ui"
)

type serveFlags struct {
	src         sourceFlags
	kubeconfig  string
	kubeContext string
	dataDir     string
	listen      string
	clusterName string
	retention   string
	logLevel    string
	secrets     bool
	api         apiFlags
	tls         tlsFlags
	findings    findingsFlags
	filters     string
	pprof       string
	auditLog    string
}

// apiFlags configure who may use the API and how much one request may ask for.
type apiFlags struct {
	authMode       string
	tokenFile      string
	audiences      []string
	insecureNoAuth bool
	publicMetrics  bool
	introspection  bool
	origins        []string
	maxDepth       int
	maxCost        int
	timeout        time.Duration
}

func newServeCmd(s streams) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Index a cluster (or a snapshot, or the demo) into a versioned graph and serve it",
		Long: `Index a live cluster, a snapshot or the bundled demo into kiem's versioned graph, kept in a Badger store
under --data-dir, and serve it.

Sources, one of:
  (default)            the cluster of --kubeconfig/--context, or the in-cluster config inside a pod; kiem needs
                       only get/list/watch on what it indexes. The initial list is one revision; every later
                       change joins a revision within milliseconds. A restart records what changed meanwhile.
  --snapshot PATH      files or directories of YAML/JSON; if they changed since the last run on the same
                       --data-dir, the difference is committed as one reconciling revision.
  --demo               the bundled demo cluster and a week of history, in a fresh temporary store unless
                       --data-dir is given (the timeline is replayed only into an empty store).

--groups-file FILE declares which groups human users belong to (a YAML/JSON map user -> groups, exported from the
identity provider); it is committed as its own revision, and a changed file records the difference.

Endpoints: /graphql (the GraphQL API: queries, mutations, and subscriptions over websocket), /healthz (alive),
/readyz (ready once the initial sync is committed), /metrics (Prometheus; needs a token unless
--public-metrics). kiem listens on loopback unless --listen says otherwise.

Authentication (every GraphQL operation needs it; see docs/auth.md):
  --token-file FILE    CSV lines TOKEN,USER,ROLE; TOKEN is sha256:<hex> or the token itself; ROLE viewer or admin
  --auth=kubernetes    TokenReview authenticates the bearer token, SubjectAccessReview on the virtual resource
                       graph.kiem.io decides the role (get: viewer, update: admin); for running in a cluster
  (neither)            on a loopback address kiem makes a random admin token and prints it; elsewhere it refuses
  --insecure-no-auth   no authentication at all; refused unless --listen is a loopback address
Requests carry 'Authorization: Bearer TOKEN'; websockets send it in connection_init. Tokens never go in URLs.

TLS: with --tls-cert-file and --tls-key-file (PEM; the certificate file may hold the chain after the leaf) kiem
serves HTTPS only, TLS 1.2 or newer, and re-reads both files within seconds when they change (a renewed or
rotated certificate needs no restart; a pair that fails to load is logged and the previous one kept). Without
them kiem serves plain HTTP: on anything but loopback, put TLS in front of it (these flags, or a proxy), since
bearer tokens travel in every request.`,
		Example: `  kiem serve --demo
  kiem serve --kubeconfig ~/.kube/config --context prod --cluster-name prod --retention 90d
  kiem serve --snapshot ./manifests --data-dir /var/lib/kiem
  kiem serve --listen 0.0.0.0:8443 --token-file tokens.csv --tls-cert-file tls.crt --tls-key-file tls.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(cmd.Context(), s, &f) },
	}
	fl := cmd.Flags()
	f.src.register(fl)
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config; in a pod: the in-cluster config)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context to use")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory of the store (default: $XDG_DATA_HOME/kiem or ~/.local/share/kiem; --demo: a temporary one)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fl.StringVar(&f.clusterName, "cluster-name", "default", "name of the cluster, recorded as the source of every revision")
	fl.StringVar(&f.retention, "retention", "", "history to keep: a duration (720h, 90d) or a number of revisions; empty keeps everything")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.BoolVar(&f.secrets, "index-secrets", false,
		"also index Secret metadata (type, and the ServiceAccount of token secrets; never data); needs list/watch on secrets")
	fl.StringSliceVar(&f.findings.packs, "packs", nil, "directory of extra risk packs (YAML) to evaluate besides kiem's own; repeatable")
	fl.StringVar(&f.findings.suppressions, "suppressions", "", "suppressions file the console edits and kiem scan reads (default: suppressions.yaml in --data-dir)")
	fl.StringVar(&f.filters, "filters", "", "YAML file of saved filters to declare at start (GitOps); they replace those the file declared before")
	fl.StringVar(&f.api.authMode, "auth", "", `authentication: "token" (--token-file, or a generated token on loopback) or "kubernetes" (TokenReview + SubjectAccessReview)`)
	fl.StringVar(&f.api.tokenFile, "token-file", "", "CSV file of TOKEN,USER,ROLE lines (ROLE: viewer or admin); re-read when it changes")
	fl.StringSliceVar(&f.api.audiences, "auth-audience", nil, "with --auth=kubernetes: audiences the TokenReview asks the token to be meant for (default: the apiserver's)")
	fl.BoolVar(&f.api.insecureNoAuth, "insecure-no-auth", false, "serve without authentication (refused unless --listen is a loopback address)")
	fl.BoolVar(&f.api.publicMetrics, "public-metrics", false, "serve /metrics without authentication")
	fl.BoolVar(&f.api.introspection, "introspection", false, "allow GraphQL schema introspection")
	fl.StringSliceVar(&f.api.origins, "allowed-origins", nil, "hosts (patterns) whose pages may open websockets besides kiem's own, e.g. ui.example.com")
	fl.IntVar(&f.api.maxDepth, "max-query-depth", gql.DefaultMaxDepth, "deepest GraphQL selection allowed")
	fl.IntVar(&f.api.maxCost, "max-query-cost", gql.DefaultMaxCost, "costliest GraphQL operation allowed (page sizes multiply)")
	fl.DurationVar(&f.api.timeout, "request-timeout", gql.DefaultTimeout, "longest a query or mutation may run")
	fl.StringVar(&f.tls.certFile, "tls-cert-file", "", "PEM certificate (chain) to serve HTTPS with, instead of HTTP; needs --tls-key-file; re-read when it changes")
	fl.StringVar(&f.tls.keyFile, "tls-key-file", "", "PEM private key of --tls-cert-file; re-read when it changes")
	fl.StringVar(&f.auditLog, "audit-log", "", "kube-apiserver audit log (JSON lines) to follow, surviving rotation; an alternative to the audit webhook (POST /audit)")
	fl.StringVar(&f.pprof, "pprof-listen", "", "serve Go's profiling endpoints (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; off by default")
	return cmd
}

// defaultDataDir is the per-user data directory of the XDG base directory specification.
func defaultDataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "kiem"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --data-dir and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "kiem"), nil
}

func runServe(ctx context.Context, s streams, f *serveFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(log.With("component", "client-go"))
	retention, err := graph.ParseRetention(f.retention)
	if err != nil {
		return fmt.Errorf("--retention: %w", err)
	}
	if f.src.demo && len(f.src.snapshots) > 0 {
		return errors.New("--demo and --snapshot exclude each other")
	}
	if err := f.tls.check(); err != nil {
		return err
	}
	var certs *certWatcher
	if f.tls.enabled() {
		if certs, err = loadCertWatcher(f.tls.certFile, f.tls.keyFile, log.With("component", "tls")); err != nil {
			return err
		}
	} else if !auth.IsLoopback(f.listen) {
		log.Warn("serving plain HTTP on a non-loopback address: bearer tokens cross the network in clear unless a proxy in front terminates TLS; see --tls-cert-file", "listen", f.listen)
	}
	dir := f.dataDir
	if dir == "" && f.src.demo {
		tmp, err := os.MkdirTemp("", "kiem-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if dir == "" {
		if dir, err = defaultDataDir(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	authn, announce, err := authenticator(ctx, log, f)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	store, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: dir, Retention: retention, Logger: log.With("component", "store")})
	if err != nil {
		return err
	}
	defer store.Close()
	liveCluster := !f.src.demo && len(f.src.snapshots) == 0
	g, err := graph.OpenLive(ctx, store, graph.SnapshotOptions{APIAggregation: liveCluster})
	if err != nil {
		return err
	}
	srv := &server{log: log, graph: g, ready: make(chan struct{}), auth: authn, publicMetrics: f.api.publicMetrics}
	if certs != nil {
		srv.tls = certs.config()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The token file and certificate watchers and the findings tracker run until ctx ends; Close waits for them.
	var watchers sync.WaitGroup
	defer func() { cancel(); watchers.Wait() }()
	if certs != nil {
		watchers.Go(func() { certs.Run(ctx, certPollInterval) })
	}
	if f.pprof != "" {
		if !auth.IsLoopback(f.pprof) {
			return fmt.Errorf("--pprof-listen %s: profiling is served on loopback addresses only", f.pprof)
		}
		watchers.Go(func() {
			if err := servePprof(ctx, log, f.pprof); err != nil {
				log.Error("profiling endpoints stopped", "err", err)
			}
		})
	}
	audit, err := startAudit(ctx, log, g, dir, f.auditLog, &watchers)
	if err != nil {
		return err
	}
	srv.audit = audit
	fs, err := startFindings(ctx, log, g, &f.findings, dir, &watchers)
	if err != nil {
		return err
	}
	srv.findings = fs.tracker
	ae, err := startAlerts(ctx, log, g, fs.tracker, f.filters, &watchers)
	if err != nil {
		return err
	}
	srv.api, err = gql.NewHandler(gql.Options{
		Graph: g, Cluster: f.clusterName, Source: sourceKind(f), Version: version, Logger: log.With("component", "graphql"),
		Ready: srv.isReady, Reload: reloader(log, g, f), Findings: fs.tracker, Suppressions: fs.suppressions,
		Alerts: ae, Audit: audit.store,
	}, gql.ServeOptions{
		Auth: authn, Introspection: f.api.introspection, OriginPatterns: f.api.origins,
		MaxDepth: f.api.maxDepth, MaxCost: f.api.maxCost, Timeout: f.api.timeout,
	})
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.serveHTTP(ctx, ln) }()
	// The token file is re-read when it changes, so tokens are added and revoked without a restart.
	if tf, ok := authn.(*auth.TokenFile); ok {
		watchers.Go(func() {
			if err := tf.Run(ctx, 5*time.Second); err != nil {
				log.Error("token file watcher stopped", "err", err)
			}
		})
	}

	base := f.tls.scheme() + "://" + ln.Addr().String()
	log.Info("kiem serving", "url", base, "data-dir", dir, "revision", g.Head())
	announce(s.err, base)
	var indexErr error
	switch {
	case f.src.demo:
		indexErr = replayDemo(ctx, log, g, fs, audit.ingester)
		if indexErr == nil && f.src.groupsFile != "" {
			_, indexErr = commitGroups(ctx, log, g, f.src.groupsFile)
		}
		srv.markReady()
	case len(f.src.snapshots) > 0:
		_, indexErr = commitSnapshot(ctx, log, g, &f.src)
		srv.markReady()
	default:
		indexErr = runCluster(ctx, log, g, f, srv)
	}
	if indexErr != nil && !errors.Is(indexErr, context.Canceled) {
		cancel()
		<-errc
		return indexErr
	}
	if indexErr == nil && !liveCluster {
		fmt.Fprintf(s.err, "kiem: %s indexed at revision %d; serving on %s (Ctrl-C to stop)\n", sourceName(f), g.Head(), base)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	return <-errc
}

func sourceName(f *serveFlags) string {
	if f.src.demo {
		return "demo"
	}
	return "snapshot " + strings.Join(f.src.snapshots, ",")
}

// replayDemo commits the demo's timeline into an empty store, each step a revision at its time in the past. It
// lets the findings tracker evaluate each step before the next, so the console's risk trend has a point per step.
func replayDemo(ctx context.Context, log *slog.Logger, g *graph.Live, fs *findings, in *indexer.AuditIngester) error {
	if g.Head() > 0 {
		log.Info("demo store already holds history; not replaying", "revision", g.Head())
		return nil
	}
	steps, err := demo.Timeline(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var events []indexer.AuditEvent
	for i, st := range steps {
		stampDemo(i, st.Changes)
		rev, err := g.CommitAt(ctx, st.Name, now.Add(-st.Ago), st.Changes)
		if err != nil {
			return err
		}
		if i > 0 { // the first step is the cluster as installed, before anyone's audit trail
			events = append(events, demoWrites(i, demoPeople[(i-1)%len(demoPeople)], now.Add(-st.Ago), st.Changes)...)
		}
		log.Info("demo revision", "revision", rev, "step", st.Name, "changes", len(st.Changes))
		if err := fs.waitEvaluated(ctx, rev); err != nil {
			return err
		}
	}
	// One batch after the timeline, as a webhook would deliver a backlog: the people it shows become one revision.
	return ingestDemo(ctx, in, append(events, demoUsage(now)...))
}

// waitEvaluated waits until the tracker has evaluated rev, or has stopped (its error is logged).
func (fs *findings) waitEvaluated(ctx context.Context, rev graph.Revision) error {
	for {
		updated := fs.tracker.Updated()
		if got, cur := fs.tracker.Current(); cur != nil && got >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fs.stopped:
			return nil
		case <-updated:
		}
	}
}

// commitSnapshot commits what changed in the snapshot files since the store's head as one revision.
func commitSnapshot(ctx context.Context, log *slog.Logger, g *graph.Live, src *sourceFlags) (int, error) {
	objs, err := src.objects(ctx)
	if err != nil {
		return 0, err
	}
	// Users are not the snapshot's: the groups file declares them and audit events show them.
	changes := slices.DeleteFunc(g.Reconcile(objs), func(c graph.Change) bool { return c.Ref.Kind == graph.KindUser && c.Op == graph.OpDelete })
	kind := "initial"
	if g.Head() > 0 {
		kind = "reconcile"
	}
	rev, err := g.Commit(ctx, "snapshot:"+strings.Join(src.snapshots, ",")+":"+kind, changes)
	if err != nil {
		return 0, err
	}
	log.Info("snapshot indexed", "revision", rev, "changes", len(changes), "objects", objs.Count())
	return len(changes), nil
}

// commitGroups commits the declared group membership of a groups file as one revision (what changed since the
// store's head: users added, changed, or no longer in the file).
func commitGroups(ctx context.Context, log *slog.Logger, g *graph.Live, path string) (int, error) {
	users, err := indexer.LoadGroups(path)
	if err != nil {
		return 0, err
	}
	changes := graph.ReconcileUsers(g.Current(), users)
	rev, err := g.Commit(ctx, "groups-file:"+path, changes)
	if err != nil {
		return 0, err
	}
	log.Info("groups file indexed", "revision", rev, "users", len(users), "changes", len(changes))
	return len(changes), nil
}

// runCluster indexes a live cluster until ctx ends.
func runCluster(ctx context.Context, log *slog.Logger, g *graph.Live, f *serveFlags, srv *server) error {
	cfg, err := restConfig(f.kubeconfig, f.kubeContext)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	ix, err := indexer.NewLive(indexer.LiveOptions{Client: cs, Graph: g, Logger: log.With("component", "indexer"),
		Source: "cluster:" + f.clusterName, Secrets: f.secrets})
	if err != nil {
		return err
	}
	srv.indexer = ix
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	groupsErr := make(chan error, 1)
	go func() {
		select {
		case <-ix.Ready():
			log.Info("initial sync committed", "revision", g.Head())
			if f.src.groupsFile != "" {
				if _, err := commitGroups(ctx, log, g, f.src.groupsFile); err != nil {
					groupsErr <- err
					cancel()
					return
				}
			}
			srv.markReady()
		case <-ctx.Done():
		}
		groupsErr <- nil
	}()
	err = ix.Run(ctx)
	cancel()
	if gerr := <-groupsErr; gerr != nil {
		return gerr
	}
	return err
}

// restConfig loads the kubeconfig the way kubectl does, falling back to the in-cluster config inside a pod.
func restConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	if kubeconfig == "" && kubeContext == "" && os.Getenv("KUBECONFIG") == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// server serves kiem's HTTP endpoints.
type server struct {
	log           *slog.Logger
	graph         *graph.Live
	indexer       *indexer.Live // nil unless indexing a cluster
	ready         chan struct{}
	api           http.Handler // /graphql, authenticated
	auth          auth.Authenticator
	publicMetrics bool
	findings      *queries.Tracker
	tls           *tls.Config   // nil: plain HTTP
	audit         *auditService // audit events: the POST /audit endpoint and usage
}

func (s *server) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

func (s *server) markReady() {
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.ready:
			fmt.Fprintln(w, "ok")
		default:
			http.Error(w, "initial sync in progress", http.StatusServiceUnavailable)
		}
	})
	metrics := s.metricsHandler()
	if !s.publicMetrics {
		metrics = auth.Middleware(s.auth, s.log, metrics)
	}
	mux.Handle("GET /metrics", metrics)
	mux.Handle("/graphql", s.api)
	// The console: its assets need no token (they hold no data); everything it shows comes through /graphql.
	mux.Handle("GET /backup", auth.Middleware(s.auth, s.log, backupHandler(s.graph.Store(), s.log.With("component", "backup"))))
	if s.audit != nil {
		// The kube-apiserver's audit webhook backend posts here, with an audit-writer token.
		mux.Handle("/audit", auth.AuditMiddleware(s.auth, s.log, indexer.AuditHandler(s.audit.ingester, s.log.With("component", "audit"))))
	}
	mux.Handle("/", ui.Handler())
	return mux
}

// serveHTTP serves until ctx ends, then shuts down gracefully. With s.tls it serves HTTPS only (HTTP/2 and
// HTTP/1.1; websockets use HTTP/1.1).
func (s *server) serveHTTP(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: s.tls,
		ErrorLog: httpErrorLog(s.log.With("component", "http"))}
	done := make(chan error, 1)
	go func() {
		if s.tls != nil {
			done <- hs.ServeTLS(ln, "", "")
			return
		}
		done <- hs.Serve(ln)
	}()
	select {
	case err := <-done:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
