package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kiem-io/kiem/internal/kubetest"
	"github.com/kiem-io/kiem/internal/testutil"
)

// auditE2E is kiem serving over TLS with the apiserver's audit webhook pointed at it.
type auditE2E struct {
	t      *testing.T
	cl     *kubetest.Cluster
	base   string
	client *http.Client
}

const (
	auditWriterToken = "e2e-audit-writer-token"
	auditViewerToken = "e2e-audit-viewer-token"
)

func startAuditE2E(t *testing.T) *auditE2E {
	t.Helper()
	ca := newTestCA(t)
	certPEM, keyPEM := ca.leaf(t, 2)
	dir := t.TempDir()
	files := map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM, "ca.crt": pemCert(ca),
		"tokens.csv": []byte(auditWriterToken + ",kube-apiserver,audit-writer\n" + auditViewerToken + ",vera,viewer\n")}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	// The apiserver starts first; the batches it sends before kiem listens are retried, then dropped: the test
	// makes its requests once kiem is ready.
	cl := kubetest.Start(t, kubetest.Options{
		Users: map[string][]string{"alice": {"rbac-admins"}, "bob": {"rbac-admins", "oncall"}},
		Audit: &kubetest.AuditOptions{WebhookURL: "https://" + addr + "/audit", Token: auditWriterToken, CAFile: filepath.Join(dir, "ca.crt")},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--kubeconfig", cl.Kubeconfig("admin"), "--data-dir", filepath.Join(dir, "data"),
			"--listen", addr, "--token-file", filepath.Join(dir, "tokens.csv"), "--tls-cert-file", filepath.Join(dir, "tls.crt"),
			"--tls-key-file", filepath.Join(dir, "tls.key"), "--cluster-name", "e2e", "--log-level", "warn"},
			strings.NewReader(""), io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, stderr.String())
		}
	})
	e := &auditE2E{t: t, cl: cl, base: "https://" + addr,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}}}}
	eventually(t, 60*time.Second, "kiem ready", func() bool {
		resp, err := e.client.Get(e.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return e
}

func pemCert(ca *testCA) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// query runs a GraphQL query as the viewer and decodes data into out; GraphQL errors fail the test.
func (e *auditE2E) query(q string, out any) {
	e.t.Helper()
	status, body := e.post("/graphql", auditViewerToken, "application/json", mustJSON(map[string]any{"query": q}))
	if status != 200 {
		e.t.Fatalf("graphql: %d %s", status, body)
	}
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []any           `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Errors) > 0 {
		e.t.Fatalf("graphql %s: %s", q, body)
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		e.t.Fatal(err)
	}
}

func (e *auditE2E) post(path, token, contentType string, body []byte) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestAuditE2E runs the real apiserver with its audit webhook pointed at kiem: changes made concurrently by two
// users are attributed to the right one, a ServiceAccount using part of its role gets the unused-permission
// finding and a correct smaller role, and replayed and malformed events change nothing.
func TestAuditE2E(t *testing.T) {
	e := startAuditE2E(t)
	ctx := t.Context()
	admin := kubernetes.NewForConfigOrDie(e.cl.RESTConfig("admin"))
	mustCreate(t, func() error {
		_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "rbac-admins"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "Group", APIGroup: rbacv1.GroupName, Name: "rbac-admins"}},
		}, metav1.CreateOptions{})
		return err
	})

	// The apiserver's RBAC cache follows a watch: wait until it has the binding for both users.
	for _, user := range []string{"alice", "bob"} {
		cs := kubernetes.NewForConfigOrDie(e.cl.RESTConfig(user))
		eventually(t, 30*time.Second, user+" may create roles", func() bool {
			r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "update", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: "default"}}}, metav1.CreateOptions{})
			return err == nil && r.Status.Allowed
		})
	}

	t.Run("concurrent writers attributed", func(t *testing.T) {
		const n = 6
		var wg sync.WaitGroup
		var mu sync.Mutex
		wrote := map[string]string{} // resourceVersion → the user whose write produced it
		errs := make(chan error, 4)
		clients := map[string]kubernetes.Interface{}
		for _, user := range []string{"alice", "bob"} {
			clients[user] = kubernetes.NewForConfigOrDie(e.cl.RESTConfig(user))
		}
		record := func(rv, user string) {
			mu.Lock()
			wrote[rv] = user
			mu.Unlock()
		}
		// Both create their roles at the same time; then each edits half of the other's, at the same time, so that
		// one object's changes have two authors.
		for _, user := range []string{"alice", "bob"} {
			wg.Go(func() {
				for i := range n {
					r, err := clients[user].RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("by-%s-%d", user, i)},
						Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, metav1.CreateOptions{})
					if err != nil {
						errs <- err
						return
					}
					record(r.ResourceVersion, user)
				}
			})
		}
		wg.Wait()
		for _, user := range []string{"alice", "bob"} {
			other := map[string]string{"alice": "bob", "bob": "alice"}[user]
			wg.Go(func() {
				for i := 0; i < n; i += 2 {
					rv, err := updateRole(ctx, clients[user], fmt.Sprintf("by-%s-%d", other, i), user)
					if err != nil {
						errs <- err
						return
					}
					record(rv, user)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Every change to these roles carries the author of the write that produced its state. (Two writes the
		// watch delivers within one commit window make one change: it is the later write's.)
		var bad []string
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("misattributed: %v", bad)
			}
		})
		eventually(t, 60*time.Second, "every change attributed to its author", func() bool {
			bad = bad[:0]
			changes := roleChanges(e)
			for _, c := range changes {
				if want := wrote[c.rv]; c.actor != want {
					bad = append(bad, fmt.Sprintf("%s@%s by %q, want %q", c.name, c.rv, c.actor, want))
				}
			}
			return len(changes) >= 2*n && len(bad) == 0
		})
		// The actor carries the user's groups and the audit ID.
		var h struct {
			Changes struct {
				Nodes []struct {
					Name  string
					Actor *struct {
						User, UserAgent, SourceIP, AuditID string
						Groups                             []string
					}
				}
			}
		}
		e.query(`{changes(from: 0, first: 1000) {nodes {name actor {user groups userAgent sourceIP auditID}}}}`, &h)
		for _, c := range h.Changes.Nodes {
			if c.Name == "by-bob-1" && c.Actor != nil {
				if !slices.Contains(c.Actor.Groups, "oncall") || c.Actor.AuditID == "" || c.Actor.SourceIP != "127.0.0.1" || c.Actor.UserAgent == "" {
					t.Fatalf("actor of by-bob-1 = %+v", c.Actor)
				}
			}
		}
	})

	t.Run("observed groups", func(t *testing.T) {
		var u struct {
			Node *struct {
				Declared bool
				Seen     *struct{ Last time.Time }
				Groups   []struct {
					Observed bool
					Group    struct{ Name string }
				}
			} `json:"node"`
		}
		var observed []string
		eventually(t, 30*time.Second, "bob seen with his groups", func() bool {
			e.query(`{node: lookup(kind: USER, name: "bob") {... on User {declared seen {last} groups {observed group {name}}}}}`, &u)
			observed = observed[:0]
			if u.Node == nil {
				return false
			}
			for _, g := range u.Node.Groups {
				if g.Observed {
					observed = append(observed, g.Group.Name)
				}
			}
			return u.Node.Seen != nil && slices.Equal(observed, []string{"oncall", "rbac-admins"})
		})
		if u.Node.Declared {
			t.Fatalf("user bob = %+v, want an observed, undeclared user", u.Node)
		}
		// bob's effective permissions include those of the groups he authenticates with.
		var p struct {
			Can struct{ Allowed bool }
		}
		e.query(`{can(subject: {kind: USER, name: "bob"}, action: {verb: "delete", resource: "nodes"}) {allowed}}`, &p)
		if !p.Can.Allowed {
			t.Fatal("bob's observed membership of rbac-admins does not give him its grants")
		}
	})

	t.Run("unused permissions and least privilege", func(t *testing.T) {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}}, metav1.CreateOptions{})
			return err
		})
		sa, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reporter"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mustCreate(t, func() error {
			_, err := admin.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "reporter"},
				Rules: []rbacv1.PolicyRule{
					{Verbs: []string{"get", "list", "watch", "create", "delete"}, APIGroups: []string{""}, Resources: []string{"configmaps"}},
					{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}},
				}}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, func() error {
			_, err := admin.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reporter"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reporter"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "default", Name: "reporter"}}}, metav1.CreateOptions{})
			return err
		})
		cfg := rest.CopyConfig(e.cl.RESTConfig("admin"))
		cfg.BearerToken = e.cl.MintServiceAccountToken(kubetest.ServiceAccountToken{Namespace: "default", Name: "reporter", UID: string(sa.UID)})
		cfg.CertData, cfg.KeyData, cfg.CertFile, cfg.KeyFile, cfg.Username, cfg.Password = nil, nil, "", "", "", ""
		cs := kubernetes.NewForConfigOrDie(cfg)
		// RBAC needs a moment to see the new binding (its cache follows a watch).
		eventually(t, 30*time.Second, "the ServiceAccount may list configmaps", func() bool {
			_, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
			return err == nil
		})
		if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		// A denied request is no usage.
		if _, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err == nil {
			t.Fatal("the ServiceAccount may list pods")
		}
		subject := `{kind: SERVICE_ACCOUNT, namespace: "default", name: "reporter"}`
		var lp struct {
			LeastPrivilege struct {
				Unused []struct {
					Verb, Resource string
					Binding        struct{ Name string }
				}
				Yaml string
			}
		}
		eventually(t, 60*time.Second, "the ServiceAccount's get and list recorded", func() bool {
			var u struct {
				Usage struct {
					Nodes []struct{ Verb, Resource string }
				}
			}
			e.query(`{usage(subject: `+subject+`) {nodes {verb resource}}}`, &u)
			var got []string
			for _, n := range u.Usage.Nodes {
				got = append(got, n.Verb+" "+n.Resource)
			}
			slices.Sort(got)
			return slices.Equal(got, []string{"get configmaps", "list configmaps"})
		})
		e.query(`{leastPrivilege(subject: `+subject+`, unusedFor: "1h") {unused {verb resource binding {name}} yaml}}`, &lp)
		var unused []string
		for _, u := range lp.LeastPrivilege.Unused {
			if u.Binding.Name == "reporter" { // the others are the discovery grants every account holds
				unused = append(unused, u.Verb+" "+u.Resource)
			}
		}
		slices.Sort(unused)
		if want := []string{"create configmaps", "delete configmaps", "get secrets", "watch configmaps"}; !slices.Equal(unused, want) {
			t.Fatalf("unused = %v, want %v", unused, want)
		}
		// The suggested role is applied for a fresh ServiceAccount, and the apiserver itself allows it exactly what
		// the reporter used, and nothing it did not.
		checkSuggestion(t, e, admin, lp.LeastPrivilege.Yaml)

		var f struct {
			UnusedPermissions struct {
				Nodes []struct {
					Rule     struct{ ID string }
					Severity string
					Message  string
				}
			}
		}
		e.query(`{unusedPermissions(unusedFor: "1h", subject: `+subject+`, requireFullWindow: false) {nodes {rule {id} severity message}}}`, &f)
		if n := f.UnusedPermissions.Nodes; len(n) != 1 || n[0].Rule.ID != "KIEM-HYG-009" || n[0].Severity != "MEDIUM" {
			t.Fatalf("unusedPermissions = %+v, want one KIEM-HYG-009 finding of severity MEDIUM (unused secret read)", n)
		}
		// Judged over a window audit events do not cover yet, nothing is claimed.
		e.query(`{unusedPermissions(unusedFor: "90d", subject: `+subject+`) {nodes {rule {id}}}}`, &f)
		if len(f.UnusedPermissions.Nodes) != 0 {
			t.Fatalf("unusedPermissions over an unobserved window = %+v, want none", f.UnusedPermissions.Nodes)
		}
	})

	t.Run("replayed and malformed events", func(t *testing.T) {
		batch := mustJSON(map[string]any{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": []any{
			map[string]any{"auditID": "5f0c0c5e-replay", "stage": "ResponseComplete", "verb": "get", "requestURI": "/api/v1/namespaces/default/pods/x",
				"user":        map[string]any{"username": "carol", "groups": []string{"auditors", "system:authenticated"}},
				"objectRef":   map[string]any{"resource": "pods", "namespace": "default", "name": "x", "apiVersion": "v1"},
				"annotations": map[string]string{"authorization.k8s.io/decision": "allow"}, "responseStatus": map[string]any{"code": 200},
				"requestReceivedTimestamp": "2026-11-24T10:00:00Z", "stageTimestamp": "2026-11-24T10:00:00Z"},
			map[string]any{"auditID": "", "stage": "Nonsense"},
		}})
		for range 2 {
			if status, body := e.post("/audit", auditWriterToken, "application/json", batch); status != 200 || !strings.Contains(body, `"malformed":1`) {
				t.Fatalf("POST /audit = %d %s", status, body)
			}
		}
		if status, _ := e.post("/audit", auditWriterToken, "application/json", []byte(`{"kind":"Pod"}`)); status != 400 {
			t.Fatalf("POST of a non-EventList = %d, want 400", status)
		}
		if status, _ := e.post("/audit", auditViewerToken, "application/json", batch); status != 403 {
			t.Fatalf("POST /audit as a viewer = %d, want 403", status)
		}
		if status, _ := e.post("/graphql", auditWriterToken, "application/json", mustJSON(map[string]any{"query": "{revision}"})); status != 403 {
			t.Fatalf("a query with the audit-writer token = %d, want 403", status)
		}
		var u struct {
			Usage struct {
				Nodes []struct{ Last time.Time }
			}
		}
		e.query(`{usage(subject: {kind: USER, name: "carol"}) {nodes {last}}}`, &u)
		if len(u.Usage.Nodes) != 1 {
			t.Fatalf("usage of carol after a replayed batch = %+v, want one record", u.Usage.Nodes)
		}
		req, _ := http.NewRequest(http.MethodGet, e.base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+auditViewerToken)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`kiem_audit_events_total{result="duplicate"} 1`, `kiem_audit_events_total{result="malformed"} 3`} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("metrics lack %s:\n%s", want, grepLines(string(metrics), "kiem_audit"))
			}
		}
	})
}

func updateRole(ctx context.Context, cs kubernetes.Interface, name, by string) (string, error) {
	r, err := cs.RbacV1().Roles("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	r.Labels = map[string]string{"edited-by": by}
	r, err = cs.RbacV1().Roles("default").Update(ctx, r, metav1.UpdateOptions{})
	if err != nil {
		return "", err
	}
	return r.ResourceVersion, nil
}

type roleChange struct{ name, rv, actor string }

// roleChanges lists the adds and updates of the Roles named by-*, with the resourceVersion they recorded and
// their actor ("" when none yet).
func roleChanges(e *auditE2E) []roleChange {
	var h struct {
		Changes struct {
			Nodes []struct {
				Kind, Name, Op string
				After          *struct{ ResourceVersion string }
				Actor          *struct{ User string }
			}
		}
	}
	e.query(`{changes(from: 0, first: 1000) {nodes {kind name op after actor {user}}}}`, &h)
	var out []roleChange
	for _, c := range h.Changes.Nodes {
		if c.Kind != "ROLE" || !strings.HasPrefix(c.Name, "by-") || c.After == nil {
			continue
		}
		rc := roleChange{name: c.Name, rv: c.After.ResourceVersion}
		if c.Actor != nil {
			rc.actor = c.Actor.User
		}
		out = append(out, rc)
	}
	return out
}

// checkSuggestion applies the suggested YAML with the reporter's subject renamed to a fresh ServiceAccount and
// asks the apiserver what that account may do.
func checkSuggestion(t *testing.T, e *auditE2E, admin kubernetes.Interface, yaml string) {
	t.Helper()
	ctx := t.Context()
	if !strings.Contains(yaml, "kind: Role") || !strings.Contains(yaml, "configmaps") || strings.Contains(yaml, "secrets") {
		t.Fatalf("suggested YAML:\n%s", yaml)
	}
	fresh := strings.ReplaceAll(yaml, "name: reporter", "name: fresh")
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "fresh"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "suggested.yaml")
	if err := os.WriteFile(f, []byte(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := kubectlRun(t, e.cl.Kubeconfig("admin"), "apply", "-f", f); err != nil {
		t.Fatalf("kubectl apply of the suggestion: %v\n%s%s", err, out, stderr)
	}
	can := func(verb, resource string) bool {
		out, _, _ := kubectlRun(t, e.cl.Kubeconfig("admin"), "auth", "can-i", verb, resource, "-n", "default", "--as", "system:serviceaccount:default:fresh")
		return strings.TrimSpace(out) == "yes"
	}
	eventually(t, 30*time.Second, "the suggestion grants get configmaps", func() bool { return can("get", "configmaps") })
	for _, c := range []struct {
		verb, resource string
		want           bool
	}{{"list", "configmaps", true}, {"watch", "configmaps", false}, {"create", "configmaps", false}, {"delete", "configmaps", false}, {"get", "secrets", false}} {
		if got := can(c.verb, c.resource); got != c.want {
			t.Errorf("suggested role: can-i %s %s = %v, want %v", c.verb, c.resource, got, c.want)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
