package kubetest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// DefaultAuditPolicy is the audit policy kiem is built for, and what AuditOptions.Policy defaults to. Every
// request is recorded at Metadata level except unauthenticated health and version probes (None), and writes to
// Roles, RoleBindings, ClusterRoles, ClusterRoleBindings and ServiceAccounts are recorded with their bodies
// (RequestResponse), so that responseObject carries the stored object's metadata.uid and resourceVersion.
// Secrets, ConfigMaps, TokenReviews and serviceaccounts/token never get bodies. deploy/audit/policy.yaml is
// this text byte for byte; TestDefaultAuditPolicyFile keeps them so.
const DefaultAuditPolicy = `# kiem's audit policy (audit.k8s.io/v1 Policy), for kube-apiserver's --audit-policy-file.
#
# kiem counts every authorized request as use of the permissions behind it, so nearly every request is
# recorded, at Metadata level: who, which verb, which object, which status code. Bodies are kept only for
# writes to RBAC objects and ServiceAccounts, whose response (the object as stored) carries the
# metadata.uid and resourceVersion that tie the event to the change kiem's watch sees.
#
# The first rule that matches a request decides its level. Keep this file and kubetest.DefaultAuditPolicy
# (internal/kubetest/audit.go) identical; a test fails when they differ.
apiVersion: audit.k8s.io/v1
kind: Policy
# A request is recorded once answered (ResponseComplete, and ResponseStarted for watches); RequestReceived
# holds nothing those stages lack and would double the volume.
omitStages:
  - RequestReceived
# managedFields say which client owns which field; kiem does not read them, and they often outweigh the object.
omitManagedFields: true
rules:
  # Health and version probes without credentials: the kubelet's liveness and readiness probes of a static-pod
  # apiserver and load balancers send them every few seconds. The bootstrap ClusterRole system:public-info-viewer
  # grants them to everybody, so they tell nothing about anyone's use of a permission. The same paths with
  # credentials are still recorded.
  - level: None
    userGroups: ["system:unauthenticated"]
    verbs: ["get"]
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version"]
  # Objects that hold credentials or may hold them: who touched them is recorded, their content never is. This
  # rule comes before the RequestResponse one so that widening that rule cannot reach them; the response of
  # serviceaccounts/token is a bearer token.
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "configmaps", "serviceaccounts/token"]
      - group: authentication.k8s.io
        resources: ["tokenreviews"]
  # RBAC and ServiceAccount writes, with request and response bodies. Subresources do not match: "serviceaccounts"
  # is not "serviceaccounts/token".
  - level: RequestResponse
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
    resources:
      - group: rbac.authorization.k8s.io
        resources: ["roles", "rolebindings", "clusterroles", "clusterrolebindings"]
      - group: ""
        resources: ["serviceaccounts"]
  # Everything else, reads and watches included.
  - level: Metadata
`

// AuditOptions turns on kube-apiserver's audit backends. At least one of WebhookURL and LogPath must be set.
type AuditOptions struct {
	// Policy is an audit.k8s.io/v1 Policy in YAML; empty means DefaultAuditPolicy.
	Policy string
	// WebhookURL is where the apiserver POSTs audit.k8s.io/v1 EventList batches, e.g.
	// https://127.0.0.1:PORT/audit (an httptest.NewTLSServer with its certificate in CAFile). Plain http is
	// accepted only to a loopback host and without Token. Empty: no webhook backend.
	WebhookURL string
	// Token is the bearer token the apiserver sends to WebhookURL (the webhook kubeconfig's user token). It
	// needs an https WebhookURL: the apiserver reads the kubeconfig with client-go's clientcmd, which drops a
	// user's credentials when the server is plain http. Empty: no Authorization header.
	Token string
	// CAFile optionally names the PEM CA bundle that verifies an https WebhookURL; empty means the system roots.
	CAFile string
	// BatchMaxWait is --audit-webhook-batch-max-wait: the longest an event waits for its batch to fill. Zero
	// means a second, so tests see events quickly (the apiserver's own default is 30 s).
	BatchMaxWait time.Duration
	// LogPath, when set, also turns on the log backend (--audit-log-path, JSON lines), for tests of a log
	// follower. It must be absolute, and its directory must outlive the cluster: create it (t.TempDir) before
	// Start so the cleanups remove it after the cluster stops.
	LogPath string
}

// defaultAuditBatchMaxWait is AuditOptions.BatchMaxWait's default.
const defaultAuditBatchMaxWait = time.Second

// auditWebhookInitialBackoff replaces the apiserver's 10 s wait before it retries a failed webhook POST (it
// retries any error, 4 times, each wait 1.5 times the last): a test's webhook that fails a batch once, on purpose
// or while starting, should not hold its events back for longer than a test waits.
const auditWebhookInitialBackoff = 200 * time.Millisecond

// auditArgs checks a, writes the policy file and, for the webhook, its kubeconfig under dir, and returns the
// kube-apiserver flags that turn the backends on. Every path in the flags is absolute, so they stay valid for
// every start of the apiserver.
func auditArgs(dir string, a *AuditOptions) ([]string, error) {
	if a.WebhookURL == "" && a.LogPath == "" {
		return nil, errors.New("audit: set WebhookURL, LogPath or both")
	}
	if a.BatchMaxWait < 0 {
		return nil, fmt.Errorf("audit: negative BatchMaxWait %s", a.BatchMaxWait)
	}
	if a.LogPath != "" && !filepath.IsAbs(a.LogPath) {
		return nil, fmt.Errorf("audit: LogPath %q is not absolute", a.LogPath)
	}
	policy := a.Policy
	if policy == "" {
		policy = DefaultAuditPolicy
	}
	policyFile := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		return nil, fmt.Errorf("audit: write policy: %w", err)
	}
	args := []string{"--audit-policy-file=" + policyFile}

	if a.WebhookURL != "" {
		if err := checkWebhookURL(a.WebhookURL, a.Token != ""); err != nil {
			return nil, err
		}
		kubeconfig := filepath.Join(dir, "audit-webhook.kubeconfig")
		if err := writeAuditKubeconfig(kubeconfig, a); err != nil {
			return nil, err
		}
		wait := a.BatchMaxWait
		if wait == 0 {
			wait = defaultAuditBatchMaxWait
		}
		args = append(args,
			"--audit-webhook-config-file="+kubeconfig,
			// Batch is what a production apiserver should use: a slow or absent kiem then never delays a request.
			"--audit-webhook-mode=batch",
			"--audit-webhook-batch-max-wait="+wait.String(),
			"--audit-webhook-initial-backoff="+auditWebhookInitialBackoff.String(),
		)
	}
	if a.LogPath != "" {
		args = append(args,
			"--audit-log-path="+a.LogPath,
			"--audit-log-format=json",
			// Blocking writes each event from the request's own goroutine, a line at a time: the log holds events
			// in the order they were recorded, without a batch's delay. With no --audit-log-maxsize the file
			// rotates at 100 MB (lumberjack's default), which no test reaches, so a follower needs no rotation.
			"--audit-log-mode=blocking",
		)
	}
	return args, nil
}

// checkWebhookURL accepts https URLs, and http URLs whose host is a loopback address or localhost as long as no
// token goes with them: the apiserver would silently send none, and the webhook would refuse every batch.
func checkWebhookURL(raw string, token bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("audit: WebhookURL: %w", err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if token {
			return fmt.Errorf("audit: WebhookURL %q: the apiserver sends no token over plain http; use https", raw)
		}
		if h := u.Hostname(); h != "localhost" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("audit: WebhookURL %q: plain http only to a loopback host", raw)
			}
		}
	default:
		return fmt.Errorf("audit: WebhookURL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("audit: WebhookURL %q has no host", raw)
	}
	return nil
}

// writeAuditKubeconfig writes --audit-webhook-config-file: the cluster is the webhook, the user its bearer token.
func writeAuditKubeconfig(path string, a *AuditOptions) error {
	ca := a.CAFile
	if ca != "" {
		// A relative path in a kubeconfig is resolved against the kubeconfig's directory, not the caller's.
		abs, err := filepath.Abs(ca)
		if err != nil {
			return fmt.Errorf("audit: CAFile: %w", err)
		}
		ca = abs
	}
	cfg := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"audit-webhook": {Server: a.WebhookURL, CertificateAuthority: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"kube-apiserver": {Token: a.Token}},
		Contexts:       map[string]*clientcmdapi.Context{"audit-webhook": {Cluster: "audit-webhook", AuthInfo: "kube-apiserver"}},
		CurrentContext: "audit-webhook",
	}
	if err := clientcmd.WriteToFile(cfg, path); err != nil {
		return fmt.Errorf("audit: write webhook kubeconfig: %w", err)
	}
	return nil
}

// AuditLogPath returns AuditOptions.LogPath, the file the apiserver writes audit events to as JSON lines, or ""
// if the cluster has no log backend.
func (c *Cluster) AuditLogPath() string { return c.auditLogPath }
