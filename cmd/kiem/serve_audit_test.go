package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiem-io/kiem/internal/testutil"
)

// auditLine is one line of the apiserver's JSON audit log: a request of the demo's payments/ci-deployer.
func auditLine(id, verb, resource string, sec int) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s","stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/payments/%s","verb":"%s","user":{"username":"system:serviceaccount:payments:ci-deployer",`+
		`"groups":["system:serviceaccounts","system:serviceaccounts:payments","system:authenticated"]},"sourceIPs":["10.0.0.9"],`+
		`"objectRef":{"resource":"%s","namespace":"payments","apiVersion":"v1"},"responseStatus":{"code":200},`+
		`"annotations":{"authorization.k8s.io/decision":"allow"},`+
		`"requestReceivedTimestamp":"2026-11-24T10:00:%02dZ","stageTimestamp":"2026-11-24T10:00:%02dZ"}`+"\n", id, resource, verb, resource, sec, sec)
}

// TestServeAuditLog follows an audit log with `serve --audit-log`: lines already there and lines appended while
// serving become usage, a malformed line is skipped, and a restart resumes where the last run stopped.
func TestServeAuditLog(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "audit.log")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(logFile, []byte(auditLine("a-1", "list", "pods", 1)+"{not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	serve := func(t *testing.T) (string, func()) {
		addr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		var stderr testutil.Buffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--demo", "--data-dir", data, "--listen", addr, "--insecure-no-auth", "--audit-log", logFile},
				strings.NewReader(""), io.Discard, &stderr)
		}()
		waitFor(t, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })
		return "http://" + addr, func() {
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("serve exited %d:\n%s", code, stderr.String())
			}
		}
	}
	usage := func(base string) string {
		_, body := post(t, base+"/graphql", "", `{ usage(subject: {kind: SERVICE_ACCOUNT, namespace: "payments", name: "ci-deployer"}) { nodes { verb resource } } }`)
		return body
	}
	base, stop := serve(t)
	waitFor(t, "the logged list recorded", func() bool { return strings.Contains(usage(base), `{"verb":"list","resource":"pods"}`) })
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(auditLine("a-2", "get", "secrets", 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the appended get recorded", func() bool { return strings.Contains(usage(base), `{"verb":"get","resource":"secrets"}`) })
	_, metrics := get(base + "/metrics")
	// (The demo's own audit trail is ingested too: only the malformed count is the log's alone.)
	if !strings.Contains(metrics, `kiem_audit_events_total{result="malformed"} 1`) {
		t.Fatalf("audit metrics:\n%s", grepLines(metrics, "kiem_audit_events"))
	}
	stop()
	// Written while kiem was down: read after the restart, and nothing before it read again (the demo is not
	// replayed into a store that holds history).
	if _, err := f.WriteString(auditLine("a-3", "watch", "configmaps", 3)); err != nil {
		t.Fatal(err)
	}
	base, stop = serve(t)
	defer stop()
	waitFor(t, "the line written while down recorded", func() bool { return strings.Contains(usage(base), `{"verb":"watch","resource":"configmaps"}`) })
	_, metrics = get(base + "/metrics")
	if !strings.Contains(metrics, `kiem_audit_events_total{result="ingested"} 1`) || !strings.Contains(metrics, `kiem_audit_events_total{result="malformed"} 0`) {
		t.Fatalf("after a restart, kiem re-read lines it had ingested:\n%s", grepLines(metrics, "kiem_audit_events"))
	}
}
