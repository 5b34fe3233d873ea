package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kiem-io/kiem/internal/kubetest"
	"github.com/kiem-io/kiem/internal/testutil"
)

// TestServeClusterSubscriptionE2E runs `kiem serve` on a real apiserver and follows a change made through the
// apiserver to a GraphQL subscriber over a real websocket, then asks about the new grant over HTTP.
func TestServeClusterSubscriptionE2E(t *testing.T) {
	cl := kubetest.Start(t, kubetest.DefaultOptions())
	if err := cl.WaitAggregated(context.Background()); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cl.RESTConfig("admin"))
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokens, []byte("e2e-viewer-token,vera,viewer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testutil.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--kubeconfig", cl.Kubeconfig("admin"), "--data-dir", t.TempDir(), "--listen", addr,
			"--token-file", tokens, "--cluster-name", "e2e", "--log-level", "warn"}, strings.NewReader(""), io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, stderr.String())
		}
	})
	waitFor(t, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })

	wsCtx, wsCancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wsCancel()
	dial := func() *websocket.Conn {
		conn, _, err := websocket.Dial(wsCtx, "ws://"+addr+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn
	}
	send := func(conn *websocket.Conn, msg string) {
		if err := conn.Write(wsCtx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	type message struct {
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	read := func(conn *websocket.Conn) (message, error) {
		for {
			_, b, err := conn.Read(wsCtx)
			if err != nil {
				return message{}, err
			}
			var m message
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if m.Type != "ping" && m.Type != "pong" {
				return m, nil
			}
		}
	}

	// Without a token the connection is closed with 4401, which tells clients not to retry.
	anon := dial()
	send(anon, `{"type":"connection_init","payload":{}}`)
	if _, err := read(anon); websocket.CloseStatus(err) != 4401 {
		t.Fatalf("unauthenticated connection_init: %v, want close 4401", err)
	}

	conn := dial()
	send(conn, `{"type":"connection_init","payload":{"Authorization":"Bearer e2e-viewer-token"}}`)
	if m, err := read(conn); err != nil || m.Type != "connection_ack" {
		t.Fatalf("connection_init: %+v %v", m, err)
	}
	// Subscribe from the head as it is now: the revisions after it are replayed, so the change below reaches the
	// subscriber whether it is committed before or after the subscription's goroutine starts.
	_, head := post(t, "http://"+addr+"/graphql", "e2e-viewer-token", `{ server { revision } }`)
	var h struct {
		Data struct{ Server struct{ Revision int } }
	}
	if err := json.Unmarshal([]byte(head), &h); err != nil || h.Data.Server.Revision == 0 {
		t.Fatalf("server revision: %s %v", head, err)
	}
	send(conn, fmt.Sprintf(`{"id":"1","type":"subscribe","payload":{"query":"subscription($s: Revision) { changes(since: $s) { revision source summary { kind added } } }","variables":{"s":%d}}}`, h.Data.Server.Revision))

	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sub-e2e", Namespace: "default"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "zoe@example.com"}}}
	if _, err := cs.RbacV1().RoleBindings("default").Create(context.Background(), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := read(conn)
		if err != nil || m.Type != "next" {
			t.Fatalf("subscription: %+v %s, %v", m, m.Payload, err)
		}
		var p struct {
			Data struct {
				Changes struct {
					Revision int
					Source   string
					Summary  []struct {
						Kind  string
						Added int
					}
				}
			}
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Data.Changes.Source, "cluster:e2e") {
			t.Errorf("revision source %q, want cluster:e2e", p.Data.Changes.Source)
		}
		if len(p.Data.Changes.Summary) > 0 && p.Data.Changes.Summary[0].Kind == "ROLE_BINDING" && p.Data.Changes.Summary[0].Added == 1 {
			break
		}
	}
	code, body := post(t, "http://"+addr+"/graphql", "e2e-viewer-token",
		`{ can(subject: {kind: USER, name: "zoe@example.com"}, action: {verb: "create", apiGroup: "apps", resource: "deployments", namespace: "default"}) { allowed reasons { binding { name } } } }`)
	if code != 200 || !strings.Contains(body, `"allowed":true`) || !strings.Contains(body, `"sub-e2e"`) {
		t.Fatalf("can after the binding: %d %s", code, body)
	}
}
