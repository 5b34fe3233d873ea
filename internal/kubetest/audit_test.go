package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// auditWait bounds each wait for an event: the webhook batches for a second, and a loaded CI machine needs slack.
const auditWait = 30 * time.Second

// TestAudit starts one cluster with both audit backends and checks, per kind of request, the level the default
// policy gives it, as the webhook receives it and as the log file holds it.
func TestAudit(t *testing.T) {
	const token = "kubetest-audit-token"
	hook := newAuditHook(t, token)
	logPath := filepath.Join(t.TempDir(), "audit.log") // before Start, so it is removed after the cluster stops
	c := Start(t, Options{Audit: &AuditOptions{WebhookURL: hook.url, Token: token, CAFile: hook.caFile, LogPath: logPath}})
	admin := clientset(t, c.RESTConfig("admin"))
	if got := c.AuditLogPath(); got != logPath {
		t.Fatalf("AuditLogPath()=%q, want %q", got, logPath)
	}
	const ns = "audit"
	mustCreate(t, "namespace", func() error {
		_, err := admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})

	// await finds the ResponseComplete event of one request at the webhook and in the log, and checks that both
	// say the same.
	await := func(t *testing.T, what string, match func(*auditEvent) bool) *auditEvent {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), auditWait)
		defer cancel()
		complete := func(e *auditEvent) bool { return e.Stage == "ResponseComplete" && match(e) }
		got, err := hook.await(ctx, complete)
		if err != nil {
			t.Fatalf("webhook: %s: %v", what, err)
		}
		logged, err := awaitLog(ctx, logPath, complete)
		if err != nil {
			t.Fatalf("log %s: %s: %v", logPath, what, err)
		}
		if got.AuditID != logged.AuditID || got.Level != logged.Level || !bytes.Equal(got.ResponseObject, logged.ResponseObject) {
			t.Errorf("%s: webhook has auditID %s at %s, log has auditID %s at %s", what, got.AuditID, got.Level, logged.AuditID, logged.Level)
		}
		return got
	}

	t.Run("rbac write", func(t *testing.T) {
		cr, err := admin.RbacV1().ClusterRoles().Create(t.Context(), &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "audit-probe"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create ClusterRole: %v", err)
		}
		e := await(t, "create clusterrole", isRequest("create", rbacv1.GroupName, "clusterroles", "", cr.Name, ""))
		checkStored(t, e, cr.ObjectMeta)
		if e.User.Username != adminUser {
			t.Errorf("user=%q, want %q", e.User.Username, adminUser)
		}
	})

	t.Run("serviceaccount", func(t *testing.T) {
		ctx := t.Context()
		sa, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create ServiceAccount: %v", err)
		}
		checkStored(t, await(t, "create serviceaccount", isRequest("create", "", "serviceaccounts", ns, sa.Name, "")), sa.ObjectMeta)

		// The response of the token subresource is a bearer token: the policy must not match it as a
		// ServiceAccount write.
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		e := await(t, "create serviceaccounts/token", isRequest("create", "", "serviceaccounts", ns, sa.Name, "token"))
		checkMetadataOnly(t, e, tr.Status.Token)
	})

	t.Run("secret", func(t *testing.T) {
		const value = "kubetest-audit-secret-value"
		s, err := admin.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			StringData: map[string]string{"password": value},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create Secret: %v", err)
		}
		// The request body would hold the value base64-encoded, in data.
		checkMetadataOnly(t, await(t, "create secret", isRequest("create", "", "secrets", ns, s.Name, "")),
			value, base64.StdEncoding.EncodeToString([]byte(value)))
	})

	t.Run("list pods", func(t *testing.T) {
		if _, err := admin.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{}); err != nil {
			t.Fatalf("list pods: %v", err)
		}
		checkMetadataOnly(t, await(t, "list pods", isRequest("list", "", "pods", ns, "", "")))
	})

	t.Run("anonymous probes", func(t *testing.T) {
		anon := newAnonymousClient(t, c)
		for _, path := range []string{"/readyz", "/livez", "/healthz", "/version"} {
			if code := anon.get(t, path); code != http.StatusOK {
				t.Fatalf("anonymous GET %s: %d, want 200", path, code)
			}
		}
		// The same caller on another path is recorded; the log is written in request order, so once this event
		// is there the probes' events would be too, had the policy recorded them.
		anon.get(t, "/api")
		e := await(t, "anonymous GET /api", func(e *auditEvent) bool {
			return e.User.Username == "system:anonymous" && e.RequestURI == "/api"
		})
		if e.Level != "Metadata" {
			t.Errorf("anonymous GET /api at level %s, want Metadata", e.Level)
		}
		events, err := readAuditLog(logPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.User.Username == "system:anonymous" && e.RequestURI != "/api" {
				t.Errorf("anonymous GET %s recorded at level %s; the policy should drop it", e.RequestURI, e.Level)
			}
		}
	})

	t.Run("restart", func(t *testing.T) {
		ctx := t.Context()
		if err := c.StopAPIServer(ctx); err != nil {
			t.Fatalf("StopAPIServer: %v", err)
		}
		if err := c.StartAPIServer(ctx); err != nil {
			t.Fatalf("StartAPIServer: %v", err)
		}
		rb, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "builder-probe"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "audit-probe"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "builder"}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create RoleBinding: %v", err)
		}
		checkStored(t, await(t, "create rolebinding after restart", isRequest("create", rbacv1.GroupName, "rolebindings", ns, rb.Name, "")), rb.ObjectMeta)
	})

	if bad := hook.rejected(); len(bad) > 0 {
		t.Errorf("the webhook refused %d requests: %v", len(bad), bad)
	}
}

// TestAuditArgs checks the flags and the webhook kubeconfig auditArgs writes.
func TestAuditArgs(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "audit.log")
	args, err := auditArgs(dir, &AuditOptions{
		WebhookURL: "https://kiem.example:8443/audit", Token: "tok", CAFile: "ca.crt",
		BatchMaxWait: 2500 * time.Millisecond, LogPath: logPath,
	})
	if err != nil {
		t.Fatalf("auditArgs: %v", err)
	}
	policyFile, kubeconfig := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit-webhook.kubeconfig")
	for _, want := range []string{
		"--audit-policy-file=" + policyFile,
		"--audit-webhook-config-file=" + kubeconfig,
		"--audit-webhook-mode=batch",
		"--audit-webhook-batch-max-wait=2.5s",
		"--audit-webhook-initial-backoff=200ms",
		"--audit-log-path=" + logPath,
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if b, err := os.ReadFile(policyFile); err != nil || string(b) != DefaultAuditPolicy {
		t.Errorf("policy file: err=%v, content equal to DefaultAuditPolicy: %v", err, string(b) == DefaultAuditPolicy)
	}
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatalf("load webhook kubeconfig: %v", err)
	}
	cur := cfg.Contexts[cfg.CurrentContext]
	if cur == nil || cfg.Clusters[cur.Cluster] == nil || cfg.AuthInfos[cur.AuthInfo] == nil {
		t.Fatalf("webhook kubeconfig: current context %q is incomplete", cfg.CurrentContext)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cl, user := cfg.Clusters[cur.Cluster], cfg.AuthInfos[cur.AuthInfo]
	if got, want := cl.Server, "https://kiem.example:8443/audit"; got != want {
		t.Errorf("server=%q, want %q", got, want)
	}
	if got, want := cl.CertificateAuthority, filepath.Join(wd, "ca.crt"); got != want {
		t.Errorf("certificate-authority=%q, want %q (absolute)", got, want)
	}
	if got, want := user.Token, "tok"; got != want {
		t.Errorf("token=%q, want %q", got, want)
	}

	t.Run("defaults", func(t *testing.T) {
		args, err := auditArgs(t.TempDir(), &AuditOptions{WebhookURL: "http://127.0.0.1:1/audit"})
		if err != nil {
			t.Fatalf("auditArgs: %v", err)
		}
		if !slices.Contains(args, "--audit-webhook-batch-max-wait=1s") {
			t.Errorf("args %q lack the 1s batch wait", args)
		}
		if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--audit-log-") }) {
			t.Errorf("args %q have log flags without LogPath", args)
		}
	})

	for name, a := range map[string]AuditOptions{
		"no backend":          {Token: "tok"},
		"relative log path":   {LogPath: "audit.log"},
		"negative wait":       {WebhookURL: "https://kiem.example/audit", BatchMaxWait: -time.Second},
		"http off loopback":   {WebhookURL: "http://kiem.example/audit"},
		"http with token":     {WebhookURL: "http://127.0.0.1:1/audit", Token: "tok"},
		"other scheme":        {WebhookURL: "ftp://127.0.0.1/audit"},
		"no host":             {WebhookURL: "https:///audit"},
		"unparsable":          {WebhookURL: "http://[::1/audit"},
		"http to private net": {WebhookURL: "http://10.0.0.1/audit"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := auditArgs(t.TempDir(), &a); err == nil {
				t.Errorf("auditArgs(%+v) succeeded, want an error", a)
			}
		})
	}
}

// TestDefaultAuditPolicyFile keeps the policy operators install identical to the one tests run with.
func TestDefaultAuditPolicyFile(t *testing.T) {
	const path = "../../deploy/audit/policy.yaml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if got := string(b); got != DefaultAuditPolicy {
		got, want := strings.Split(got, "\n"), strings.Split(DefaultAuditPolicy, "\n")
		for i := range max(len(got), len(want)) {
			g, w := "(end)", "(end)"
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Fatalf("%s differs from DefaultAuditPolicy at line %d:\n file: %q\n const: %q\ncopy one to the other", path, i+1, g, w)
			}
		}
	}
}

// auditEvent is what these tests read of an audit.k8s.io/v1 Event.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	Level      string `json:"level"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	RequestObject  json.RawMessage `json:"requestObject"`
	ResponseObject json.RawMessage `json:"responseObject"`

	raw []byte // the event as sent, to look for what must never be in it
}

// decodeAuditEvent decodes one event and keeps its bytes.
func decodeAuditEvent(b []byte) (*auditEvent, error) {
	e := &auditEvent{raw: bytes.Clone(b)}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, err
	}
	return e, nil
}

// isRequest matches events of one resource request; name "" matches any name.
func isRequest(verb, group, resource, ns, name, sub string) func(*auditEvent) bool {
	return func(e *auditEvent) bool {
		r := e.ObjectRef
		return e.Verb == verb && r != nil && r.APIGroup == group && r.Resource == resource && r.Subresource == sub &&
			r.Namespace == ns && (name == "" || r.Name == name)
	}
}

// checkStored checks an event at RequestResponse level whose responseObject is the object stored as stored.
func checkStored(t *testing.T, e *auditEvent, stored metav1.ObjectMeta) {
	t.Helper()
	if e.Level != "RequestResponse" {
		t.Fatalf("level=%s, want RequestResponse", e.Level)
	}
	if len(e.RequestObject) == 0 {
		t.Error("no requestObject")
	}
	var resp struct {
		Metadata struct {
			UID             string `json:"uid"`
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(e.ResponseObject, &resp); err != nil {
		t.Fatalf("responseObject %s: %v", e.ResponseObject, err)
	}
	if got, want := resp.Metadata.UID, string(stored.UID); got != want {
		t.Errorf("responseObject.metadata.uid=%q, want %q", got, want)
	}
	if got, want := resp.Metadata.ResourceVersion, stored.ResourceVersion; got != want {
		t.Errorf("responseObject.metadata.resourceVersion=%q, want %q", got, want)
	}
}

// checkMetadataOnly checks an event at Metadata level, without bodies, and holding none of secrets.
func checkMetadataOnly(t *testing.T, e *auditEvent, secrets ...string) {
	t.Helper()
	if e.Level != "Metadata" {
		t.Errorf("level=%s, want Metadata", e.Level)
	}
	if len(e.RequestObject) > 0 || len(e.ResponseObject) > 0 {
		t.Errorf("event has requestObject %s, responseObject %s; want neither", e.RequestObject, e.ResponseObject)
	}
	for i, s := range secrets {
		if bytes.Contains(e.raw, []byte(s)) {
			t.Errorf("the event holds secret #%d", i) // not quoted: a failing test should not leak it further
		}
	}
}

// auditHook is a webhook like kiem's POST /audit: it checks the bearer token and decodes EventList batches.
type auditHook struct {
	url    string
	caFile string // the server's self-signed certificate, PEM
	token  string
	notify chan struct{} // capacity 1: a pending wake-up for await

	mu     sync.Mutex
	events []*auditEvent
	bad    []string // why requests were refused
}

// newAuditHook serves a hook over https on 127.0.0.1 until the end of the test; https because the apiserver
// sends no token over http. Call it before Start: cleanups run last first, so the cluster, and with it every
// POST, is gone before the server closes.
func newAuditHook(t *testing.T, token string) *auditHook {
	t.Helper()
	h := &auditHook{token: token, notify: make(chan struct{}, 1)}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/audit"
	h.caFile = filepath.Join(t.TempDir(), "audit-hook-ca.crt")
	if err := os.WriteFile(h.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *auditHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	refuse := func(code int, why string) {
		h.mu.Lock()
		h.bad = append(h.bad, why)
		h.mu.Unlock()
		http.Error(w, why, code)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/audit" {
		refuse(http.StatusNotFound, r.Method+" "+r.URL.Path)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+h.token {
		refuse(http.StatusUnauthorized, "wrong or missing bearer token")
		return
	}
	var list struct {
		Kind       string            `json:"kind"`
		APIVersion string            `json:"apiVersion"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(r.Body).Decode(&list); err != nil {
		refuse(http.StatusBadRequest, "decode: "+err.Error())
		return
	}
	if list.Kind != "EventList" || list.APIVersion != "audit.k8s.io/v1" {
		refuse(http.StatusBadRequest, fmt.Sprintf("got %s %s, want audit.k8s.io/v1 EventList", list.APIVersion, list.Kind))
		return
	}
	events := make([]*auditEvent, 0, len(list.Items))
	for i, raw := range list.Items {
		e, err := decodeAuditEvent(raw)
		if err != nil {
			refuse(http.StatusBadRequest, fmt.Sprintf("item %d: %v", i, err))
			return
		}
		events = append(events, e)
	}
	h.mu.Lock()
	h.events = append(h.events, events...)
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// await returns the first event received that matches, waiting for it until ctx ends. One goroutine at a time.
func (h *auditHook) await(ctx context.Context, match func(*auditEvent) bool) (*auditEvent, error) {
	for {
		h.mu.Lock()
		i := slices.IndexFunc(h.events, match)
		var e *auditEvent
		if i >= 0 {
			e = h.events[i]
		}
		n := len(h.events)
		h.mu.Unlock()
		if e != nil {
			return e, nil
		}
		select {
		case <-h.notify:
		case <-ctx.Done():
			return nil, fmt.Errorf("no matching event among %d received: %w", n, ctx.Err())
		}
	}
}

// rejected returns why the hook refused requests.
func (h *auditHook) rejected() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bad)
}

// awaitLog polls the audit log until an event matches or ctx ends. A file has no change notification that a
// test could wait on portably, so it polls like waitReady.
func awaitLog(ctx context.Context, path string, match func(*auditEvent) bool) (*auditEvent, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		events, err := readAuditLog(path)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		if i := slices.IndexFunc(events, match); i >= 0 {
			return events[i], nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("no matching event among %d logged: %w", len(events), ctx.Err())
		}
	}
}

// readAuditLog decodes the complete lines of an audit log; a last line without its newline is being written.
func readAuditLog(path string) ([]*auditEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []*auditEvent
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return events, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		e, err := decodeAuditEvent(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		events = append(events, e)
	}
}

// anonymousClient sends requests without credentials, trusting the cluster's CA.
type anonymousClient struct {
	url    string
	client *http.Client
}

func newAnonymousClient(t *testing.T, c *Cluster) *anonymousClient {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &anonymousClient{url: c.URL(), client: &http.Client{Transport: tr, Timeout: auditWait}}
}

// get sends GET path and returns the status code, failing the test if there is none.
func (a *anonymousClient) get(t *testing.T, path string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestAuditWebhookKubeconfigTemplate checks that the template operators fill in is a kubeconfig the apiserver can
// use: its current context names a cluster at an https /audit URL with a CA, and a user with a token.
func TestAuditWebhookKubeconfigTemplate(t *testing.T) {
	const path = "../../deploy/audit/webhook-kubeconfig.yaml"
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	cur := cfg.Contexts[cfg.CurrentContext]
	if cur == nil || cfg.Clusters[cur.Cluster] == nil || cfg.AuthInfos[cur.AuthInfo] == nil {
		t.Fatalf("%s: current context %q does not name a cluster and a user", path, cfg.CurrentContext)
	}
	cl, user := cfg.Clusters[cur.Cluster], cfg.AuthInfos[cur.AuthInfo]
	u, err := url.Parse(cl.Server)
	if err != nil || u.Scheme != "https" || u.Path != "/audit" {
		t.Errorf("server=%q (err %v), want an https URL with path /audit", cl.Server, err)
	}
	if cl.CertificateAuthority == "" {
		t.Error("no certificate-authority")
	}
	if user.Token == "" {
		t.Error("no token")
	}
}
