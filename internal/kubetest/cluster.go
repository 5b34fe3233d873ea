package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Deadlines. Start-up takes 3-6 s on an idle 2-core machine; the slack covers `go test ./...` running several
// packages, each perhaps with a cluster, under -race.
const (
	etcdReadyTimeout      = 30 * time.Second
	apiserverReadyTimeout = 60 * time.Second
	aggregationTimeout    = 60 * time.Second
	// stopGrace is how long each process gets between SIGTERM and SIGKILL.
	stopGrace = 10 * time.Second
)

// dirPrefix names cluster dirs under os.TempDir(). They live outside tb.TempDir() so Stop owns their removal
// and sweepStale can find the ones a killed test binary left behind.
const dirPrefix = "kiem-kubetest-"

// kcmControllers are the controllers a test cluster needs: aggregation fills admin/edit/view (and custom
// aggregated ClusterRoles) with rules, and the namespace controller lets deleted namespaces finish terminating.
const kcmControllers = "clusterrole-aggregation-controller,namespace-controller"

// Options configures Start.
type Options struct {
	// Users maps extra token-authenticated users to their groups (tokens are generated); "admin" in
	// system:masters always exists. Names and groups must be non-empty and hold no comma, quote or newline.
	Users map[string][]string
	// WithControllerManager runs kube-controller-manager with the clusterrole-aggregation and namespace
	// controllers. DefaultOptions sets it; a zero Options leaves it off, saving ~70 MB and a process.
	WithControllerManager bool
	// Audit, when set, turns on the apiserver's audit webhook backend (and, with LogPath, its log backend).
	Audit *AuditOptions
}

// DefaultOptions returns the options most tests want: no extra users, and the controller manager running.
func DefaultOptions() Options {
	return Options{WithControllerManager: true}
}

// Cluster is a running etcd + kube-apiserver (+ kube-controller-manager) on 127.0.0.1. Its accessors may be
// called from any goroutine (an unknown user calls tb.Fatal, which belongs on the test's goroutine);
// StopAPIServer, StartAPIServer and Stop serialise on an internal lock. Kubeconfig files last until Stop.
type Cluster struct {
	tb          testing.TB
	dir         string
	bin         string
	url         string
	pki         *pki
	tokens      map[string]string // user → bearer token
	kubeconfigs map[string]string // user → kubeconfig path
	probe       *http.Client      // pins the cluster CA; used for readiness only
	admin       kubernetes.Interface
	spawn       *spawner
	etcd        *process
	kcm         *process
	apiArgs     []string // kube-apiserver's flags, reused verbatim by StartAPIServer so the port stays the same

	auditLogPath string // AuditOptions.LogPath

	mu        sync.Mutex // guards apiserver and stopped
	apiserver *process   // nil while stopped by StopAPIServer
	stopped   bool
}

// Start runs a cluster for tb and registers Stop with tb.Cleanup, so it is stopped even if the test panics.
// It calls tb.Fatal if the binaries are missing (the message says to run `make kube-binaries`) or the cluster
// does not come up; the error then ends with the tail of the failing process's log.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	bin, err := BinDir(tb.Context())
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	c := &Cluster{tb: tb, bin: bin}
	// Registered before anything is started, so a half-started cluster is torn down too.
	tb.Cleanup(c.Stop)
	if err := c.start(tb.Context(), opts); err != nil {
		tb.Fatalf("kubetest: start cluster: %v", err)
	}
	return c
}

// start does Start's work; whatever it started before failing is left for Stop.
func (c *Cluster) start(ctx context.Context, opts Options) error {
	t0 := time.Now()
	ids, err := newIdentities(opts.Users)
	if err != nil {
		return err
	}
	sweepStale(filepath.Join(os.TempDir(), dirPrefix+"*"))
	if c.dir, err = os.MkdirTemp("", dirPrefix+"*"); err != nil {
		return fmt.Errorf("create cluster dir: %w", err)
	}
	if err := claimDir(c.dir); err != nil {
		return err
	}
	if c.pki, err = writePKI(filepath.Join(c.dir, "pki")); err != nil {
		return err
	}
	// Audit options are checked before anything runs; the flags keep their place after the others.
	var auditFlags []string
	if opts.Audit != nil {
		if auditFlags, err = auditArgs(c.dir, opts.Audit); err != nil {
			return err
		}
		c.auditLogPath = opts.Audit.LogPath
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c.url = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	tokenFile := filepath.Join(c.dir, "tokens.csv")
	if err := writeTokenFile(tokenFile, ids); err != nil {
		return err
	}
	c.tokens = make(map[string]string, len(ids))
	c.kubeconfigs = make(map[string]string, len(ids))
	for i, id := range ids {
		// User names may hold ':' or '/'; the index keeps sanitised names apart.
		path := filepath.Join(c.dir, fmt.Sprintf("kubeconfig-%d-%s", i, unsafeFileChars.ReplaceAllString(id.user, "_")))
		if err := writeKubeconfig(path, c.url, c.pki.caPEM, id); err != nil {
			return err
		}
		c.tokens[id.user] = id.token
		c.kubeconfigs[id.user] = path
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caPEM)
	c.probe = &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	if c.admin, err = kubernetes.NewForConfig(c.RESTConfig(adminUser)); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	c.spawn = newSpawner()

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	c.etcd, err = startProcess(c.spawn, "etcd", filepath.Join(c.bin, etcdBin), filepath.Join(c.dir, "etcd.log"), []string{
		"--name=kubetest", "--data-dir=" + filepath.Join(c.dir, "etcd-data"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kubetest=" + peerURL,
		// Test data is disposable: skipping fsync and a roomy quota keep bulk fixture loads fast.
		"--unsafe-no-fsync", "--quota-backend-bytes=2147483648",
	})
	if err != nil {
		return err
	}
	if err := waitReady(ctx, c.etcd, etcdReadyTimeout, func(ctx context.Context) error {
		return c.get(ctx, etcdURL+"/health", "")
	}); err != nil {
		return err
	}
	tEtcd := time.Now()

	c.apiArgs = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + c.pki.certFile, "--tls-private-key-file=" + c.pki.keyFile,
		"--client-ca-file=" + c.pki.caFile,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + saIssuer,
		"--service-account-key-file=" + c.pki.saPublicFile, "--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--cert-dir=" + filepath.Join(c.dir, "certs"),
		// Nothing routes to 127.0.0.1 through the kubernetes Service, so publishing its Endpoints is noise.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		// On SIGTERM the HTTP server waits up to --request-timeout (60 s) for open connections, and the controller
		// manager's watches keep its connection open; in this mode it waits 2 s, so StopAPIServer takes ~2 s.
		"--shutdown-send-retry-after=true",
	}
	c.apiArgs = append(c.apiArgs, auditFlags...)
	if err := c.StartAPIServer(ctx); err != nil {
		return err
	}
	tAPI := time.Now()

	if opts.WithControllerManager {
		c.kcm, err = startProcess(c.spawn, "kube-controller-manager", filepath.Join(c.bin, kcmBin), filepath.Join(c.dir, "kube-controller-manager.log"), []string{
			"--kubeconfig=" + c.kubeconfigs[adminUser],
			"--controllers=" + kcmControllers,
			// One manager per cluster, and nothing scrapes it: no lease to wait for, no port to find.
			"--leader-elect=false", "--secure-port=0",
		})
		if err != nil {
			return err
		}
	}
	c.tb.Logf("kubetest: %s up in %s (etcd %s, kube-apiserver %s), dir %s",
		c.url, time.Since(t0).Round(time.Millisecond), tEtcd.Sub(t0).Round(time.Millisecond),
		tAPI.Sub(tEtcd).Round(time.Millisecond), c.dir)
	return nil
}

// unsafeFileChars matches what does not belong in a kubeconfig file name.
var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// get fails unless GET url answers 200, optionally authenticated with a bearer token.
func (c *Cluster) get(ctx context.Context, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.probe.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return nil
}

// user returns name's token, calling tb.Fatal if the cluster has no such user.
func (c *Cluster) user(name string) string {
	c.tb.Helper()
	tok, ok := c.tokens[name]
	if !ok {
		c.tb.Fatalf("kubetest: no user %q (known: admin and Options.Users)", name)
	}
	return tok
}

// URL returns the apiserver's base URL, https://127.0.0.1:<port>. It stays the same across
// StopAPIServer/StartAPIServer.
func (c *Cluster) URL() string { return c.url }

// Token returns user's bearer token. It calls tb.Fatal for an unknown user.
func (c *Cluster) Token(user string) string {
	c.tb.Helper()
	return c.user(user)
}

// Kubeconfig returns the path of a kubeconfig for user (token auth, CA pinned), usable by kubectl and
// client-go. It calls tb.Fatal for an unknown user.
func (c *Cluster) Kubeconfig(user string) string {
	c.tb.Helper()
	c.user(user)
	return c.kubeconfigs[user]
}

// RESTConfig returns a new client-go config for user. It calls tb.Fatal for an unknown user.
func (c *Cluster) RESTConfig(user string) *rest.Config {
	c.tb.Helper()
	return &rest.Config{
		Host:            c.url,
		BearerToken:     c.user(user),
		TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.caPEM},
		// Client-side throttling (5 QPS by default) only slows fixture loads against a private server.
		QPS: -1,
	}
}

// errStopped is returned by StartAPIServer and StopAPIServer after Stop.
var errStopped = errors.New("kubetest: cluster stopped")

// StopAPIServer stops kube-apiserver only; etcd keeps its data and the controller manager keeps retrying.
// It sends SIGTERM and escalates to SIGKILL after stopGrace or when ctx ends, whichever comes first. Stopping
// a stopped apiserver does nothing.
func (c *Cluster) StopAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errStopped
	}
	if c.apiserver != nil {
		ctx, cancel := context.WithTimeout(ctx, stopGrace)
		defer cancel()
		c.apiserver.stop(ctx)
		c.apiserver = nil
	}
	// Pooled connections point at the dead server.
	c.probe.CloseIdleConnections()
	return nil
}

// StartAPIServer starts kube-apiserver on the same port with the same flags and waits until /readyz and
// /livez answer ok (at most a minute, less if ctx ends sooner). It fails if the apiserver is already running;
// if it does not become ready it is stopped again and the error ends with the tail of its log.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errStopped
	}
	if c.apiserver != nil {
		return errors.New("kubetest: kube-apiserver is already running")
	}
	p, err := startProcess(c.spawn, "kube-apiserver", filepath.Join(c.bin, apiserverBin), filepath.Join(c.dir, "kube-apiserver.log"), c.apiArgs)
	if err != nil {
		return err
	}
	token := c.tokens[adminUser]
	err = waitReady(ctx, p, apiserverReadyTimeout, func(ctx context.Context) error {
		if err := c.get(ctx, c.url+"/readyz", token); err != nil {
			return err
		}
		return c.get(ctx, c.url+"/livez", token)
	})
	if err != nil {
		// A half-up apiserver helps nobody; stopping it lets the caller retry. ctx may be done already, so the
		// grace period gets its own deadline.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
		defer cancel()
		p.stop(stopCtx)
		return err
	}
	c.apiserver = p
	return nil
}

// WaitAggregated waits until the ClusterRole view has rules, that is until the controller manager's
// aggregation controller has run (at most a minute, less if ctx ends sooner). It fails at once if the
// cluster runs without the controller manager, and with its log tail if the controller manager has exited.
func (c *Cluster) WaitAggregated(ctx context.Context) error {
	if c.kcm == nil {
		return errors.New("kubetest: no controller manager (Options.WithControllerManager is false), so view is never aggregated")
	}
	err := waitReady(ctx, c.kcm, aggregationTimeout, func(ctx context.Context) error {
		view, err := c.admin.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(view.Rules) == 0 {
			return errors.New("clusterrole view has no rules yet")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wait for aggregation: %w", err)
	}
	return nil
}

// Stop stops the controller manager, kube-apiserver and etcd, in that order, each with SIGTERM and after
// stopGrace SIGKILL to its whole process group, then removes the cluster's directory. It is idempotent and
// is registered with tb.Cleanup by Start; call it from the test's goroutine or a cleanup.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	for _, p := range []*process{c.kcm, c.apiserver, c.etcd} {
		if p == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		p.stop(ctx)
		cancel()
	}
	if c.spawn != nil {
		c.spawn.close()
	}
	if c.probe != nil {
		c.probe.CloseIdleConnections()
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			c.tb.Errorf("kubetest: remove %s: %v", c.dir, err)
		}
	}
}
