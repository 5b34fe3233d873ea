package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiem-io/kiem/internal/testutil"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls fn until it returns true or the deadline passes.
func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !fn() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeDemoThenHistory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testutil.Buffer
	done := make(chan int, 1)
	groups := filepath.Join(t.TempDir(), "groups.yaml")
	if err := os.WriteFile(groups, []byte("frank@example.com: [\"oidc:contractors\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- run(ctx, []string{"serve", "--demo", "--data-dir", dir, "--listen", addr, "--groups-file", groups}, strings.NewReader(""), io.Discard, &stderr)
	}()
	waitFor(t, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })
	if code, body := get("http://" + addr + "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	token := printedToken(t, &stderr)
	if code, _ := get("http://" + addr + "/metrics"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token = %d, want 401", code)
	}
	if code, body := post(t, "http://"+addr+"/graphql", "", `{ server { revision } }`); code != http.StatusUnauthorized {
		t.Fatalf("/graphql without a token = %d %s, want 401", code, body)
	}
	// The console's pages need no token (they hold no data; what they show comes through /graphql), and the
	// announcement says where it is.
	if code, body := get("http://" + addr + "/who-can"); code != 200 || !strings.Contains(body, `/assets/app.js`) {
		t.Fatalf("/who-can = %d %.100q, want the console", code, body)
	}
	if !strings.Contains(stderr.String(), "console at http://"+addr+"/") {
		t.Fatalf("serve did not print the console's URL:\n%s", stderr.String())
	}
	// Revision numbers grow but are not dense (kiem's own records, such as the alerts' progress, take timestamps
	// too): the head is the eighth revision (the demo's seven and the groups file), whatever its number.
	code, body := post(t, "http://"+addr+"/graphql", token, `{ server { revision source ready viewer { role } } }`)
	var srvInfo struct {
		Data struct {
			Server struct{ Revision int }
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &srvInfo) != nil || !strings.Contains(body, `"role":"ADMIN"`) || !strings.Contains(body, `"source":"demo"`) {
		t.Fatalf("/graphql server = %d %s", code, body)
	}
	head := srvInfo.Data.Server.Revision
	_, metrics := getWithToken(t, "http://"+addr+"/metrics", token)
	if !strings.Contains(metrics, fmt.Sprintf("kiem_revision %d\n", head)) || !strings.Contains(metrics, "kiem_ready 1") {
		t.Fatalf("/metrics lacks revision %d:\n%s", head, metrics)
	}
	// The risk packs run on the demo: its payments-ci-admin binding of cluster-admin is a risky finding, with
	// evidence; a suppression added through the API is saved next to the store and hides it.
	var findings string
	waitFor(t, "findings", func() bool {
		_, findings = post(t, "http://"+addr+"/graphql", token,
			`{ findings(rule: "KIEM-CIS-5.1.1") { revision totalCount nodes { fingerprint status message objectRef { name } evidence { text } } } }`)
		return strings.Contains(findings, fmt.Sprintf(`"revision":%d`, head))
	})
	if !strings.Contains(findings, `"name":"payments-ci-admin"`) || !strings.Contains(findings, `"status":"RISKY"`) {
		t.Fatalf("findings on the demo lack the payments-ci-admin binding of cluster-admin:\n%s", findings)
	}
	if code, body := post(t, "http://"+addr+"/graphql", token, `mutation { addSuppression(input: {rule: "KIEM-CIS-5.1.1",
		object: {kind: CLUSTER_ROLE_BINDING, name: "payments-ci-admin"}, reason: "demo", expires: "2099-01-01"}) { id owner } }`); code != 200 || !strings.Contains(body, `"id"`) {
		t.Fatalf("addSuppression = %d %s", code, body)
	}
	if saved, err := os.ReadFile(filepath.Join(dir, "suppressions.yaml")); err != nil || !strings.Contains(string(saved), "payments-ci-admin") {
		t.Fatalf("suppression not saved in the data dir: %v %s", err, saved)
	}
	if _, body := post(t, "http://"+addr+"/graphql", token, `{ findings(rule: "KIEM-CIS-5.1.1", status: [SUPPRESSED]) { nodes { objectRef { name } } } }`); !strings.Contains(body, "payments-ci-admin") {
		t.Fatalf("the suppressed finding is not listed as suppressed: %s", body)
	}
	if _, metrics := getWithToken(t, "http://"+addr+"/metrics", token); !strings.Contains(metrics, `kiem_findings{severity="critical",status="suppressed"}`) {
		t.Fatalf("/metrics lacks the findings counts:\n%s", metrics)
	}
	// The demo's audit trail: who granted the CI account cluster-admin, and what of it the account uses.
	if _, body := post(t, "http://"+addr+"/graphql", token, `{ changes(from: 0, first: 1000) { nodes { name actor { user } } } }`); !strings.Contains(body, `{"name":"payments-ci-admin","actor":{"user":"bob@example.com"}}`) {
		t.Fatalf("the demo's cluster-admin grant has no actor: %s", body)
	}
	if _, body := post(t, "http://"+addr+"/graphql", token, `{ leastPrivilege(subject: {kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer"}, unusedFor: "30d") { summary { used unused } yaml } }`); !strings.Contains(body, "kiem-least-payments.ci-deployer") || strings.Contains(body, `"unused":0`) {
		t.Fatalf("least privilege of the demo's ci-deployer: %s", body)
	}
	// The groups file is read again by the reload mutation; unchanged, it commits nothing.
	if code, body := post(t, "http://"+addr+"/graphql", token, `mutation { reload { revision changes } }`); code != 200 || !strings.Contains(body, `"changes":0`) {
		t.Fatalf("reload = %d %s", code, body)
	}
	stopServe(t, cancel, done, &stderr)

	// The stopped store answers history, diff and export; a second demo run does not replay into it.
	r := kiem(t, "", "history", "--data-dir", dir, "-o", "json")
	var revs []struct {
		Revision uint64 `json:"revision"`
		Source   string `json:"source"`
	}
	// The demo's steps, the users its audit trail shows, the groups file.
	if r.code != 0 || json.Unmarshal([]byte(r.out), &revs) != nil || len(revs) != 9 || revs[7].Source != "audit" || !strings.HasPrefix(revs[8].Source, "groups-file:") {
		t.Fatalf("history: code %d, %d revisions, stderr %q", r.code, len(revs), r.err)
	}
	// The second and third revisions of the demo's history (numbers are not dense: see above).
	rev := func(i int) string { return strconv.FormatUint(revs[i-1].Revision, 10) }
	r = kiem(t, "", "history", "diff", rev(2), rev(3), "--data-dir", dir)
	if r.code != 0 || !strings.Contains(r.out, "payments-ci-admin") || !strings.Contains(r.out, "ServiceAccount/payments/ci-deployer") {
		t.Fatalf("history diff %s %s: code %d\n%s%s", rev(2), rev(3), r.code, r.out, r.err)
	}
	exported := filepath.Join(t.TempDir(), "rev6.yaml")
	if r := kiem(t, "", "export", "--data-dir", dir, "--at", rev(6), "-o", exported); r.code != 0 {
		t.Fatalf("export: code %d stderr %q", r.code, r.err)
	}
	// At revision 6 anonymous callers could list pods; at the head they cannot.
	if r := kiem(t, "", "can-i", "list", "pods", "-n", "payments", "--as", "system:anonymous", "--snapshot", exported); r.code != 0 {
		t.Fatalf("can-i on revision 6: code %d %q, want yes", r.code, r.out)
	}
	if r := kiem(t, "", "can-i", "list", "pods", "-n", "payments", "--as", "system:anonymous", "--demo"); r.code != 1 {
		t.Fatalf("can-i on the demo head: code %d %q, want no", r.code, r.out)
	}
	if r := kiem(t, "", "history", "diff", "5", "x", "--data-dir", dir); r.code != 2 {
		t.Fatalf("history diff with a bad revision: code %d", r.code)
	}
}

// stopServe cancels a `kiem serve` run started with run() in a goroutine and waits for it to exit cleanly.
func stopServe(t *testing.T, cancel context.CancelFunc, done <-chan int, stderr *testutil.Buffer) {
	t.Helper()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
}

// printedToken returns the admin token serve printed for a loopback server without a token file.
func printedToken(t *testing.T, stderr *testutil.Buffer) string {
	t.Helper()
	var token string
	waitFor(t, "the printed admin token", func() bool {
		out := stderr.String()
		_, after, ok := strings.Cut(out, "admin token")
		if !ok {
			return false
		}
		for _, line := range strings.Split(after, "\n")[1:] {
			if f := strings.TrimSpace(line); f != "" {
				token = f
				return true
			}
		}
		return false
	})
	return token
}

func getWithToken(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends a GraphQL query with a bearer token ("" for none).
func post(t *testing.T, url, token, query string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServeRefusesUnauthenticatedExposure(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no auth on all interfaces", []string{"serve", "--demo", "--listen", "0.0.0.0:0"}, "needs authentication"},
		{"insecure on all interfaces", []string{"serve", "--demo", "--listen", "0.0.0.0:0", "--insecure-no-auth"}, "loopback address only"},
		{"insecure with a token file", []string{"serve", "--demo", "--insecure-no-auth", "--token-file", "x.csv"}, "excludes"},
		{"unknown auth mode", []string{"serve", "--demo", "--auth", "ldap"}, "want token or kubernetes"},
		{"missing token file", []string{"serve", "--demo", "--token-file", "/nonexistent/tokens.csv"}, "tokens.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kiem(t, "", tt.args...)
			if r.code != 2 || !strings.Contains(r.err, tt.want) {
				t.Fatalf("code %d, stderr %q; want 2 and %q", r.code, r.err, tt.want)
			}
		})
	}
}

func TestServeInsecureOnLoopbackAndTokenFile(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	sum := sha256.Sum256([]byte("s3cret-viewer"))
	if err := os.WriteFile(tokens, []byte("sha256:"+hex.EncodeToString(sum[:])+",vera,viewer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		args        []string
	}{
		{"insecure", "", []string{"--insecure-no-auth"}},
		{"token file", "s3cret-viewer", []string{"--token-file", tokens}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stderr testutil.Buffer
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, append([]string{"serve", "--demo", "--listen", addr}, tc.args...), strings.NewReader(""), io.Discard, &stderr)
			}()
			waitFor(t, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })
			code, body := post(t, "http://"+addr+"/graphql", tc.token, `{ can(subject: {kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer"}, action: {verb: "*", resource: "*"}) { allowed } }`)
			if code != 200 || !strings.Contains(body, `"allowed":true`) {
				t.Fatalf("can = %d %s\n%s", code, body, stderr.String())
			}
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("serve exited %d:\n%s", code, stderr.String())
			}
		})
	}
}
