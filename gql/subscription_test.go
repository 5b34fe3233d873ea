package gql

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/kiem-io/kiem/graph"
)

// wsClient speaks graphql-transport-ws, the protocol of the npm graphql-ws client, over a real websocket.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
}

func dialWS(t *testing.T, a *testAPI, header http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	url := "ws" + strings.TrimPrefix(a.srv.URL, "http") + "/graphql"
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: t, conn: conn, ctx: ctx}, resp, nil
}

func (c *wsClient) send(msg map[string]any) {
	c.t.Helper()
	b, _ := json.Marshal(msg)
	if err := c.conn.Write(c.ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

type wsMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// read returns the next message that is not a ping.
func (c *wsClient) read() (wsMessage, error) {
	for {
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			return wsMessage{}, err
		}
		var m wsMessage
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("message %s: %v", b, err)
		}
		if m.Type != "ping" && m.Type != "pong" {
			return m, nil
		}
	}
}

func (c *wsClient) init(token string) {
	c.t.Helper()
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	if m, err := c.read(); err != nil || m.Type != "connection_ack" {
		c.t.Fatalf("connection_init: %+v, %v", m, err)
	}
}

// next reads the next revision the subscription sends.
func (c *wsClient) next() graph.Revision {
	c.t.Helper()
	m, err := c.read()
	if err != nil || m.Type != "next" {
		c.t.Fatalf("want a next message: %+v %s, %v", m, m.Payload, err)
	}
	var p struct {
		Data struct {
			Changes struct {
				Revision graph.Revision
				Source   string
				Changes  int
			}
		}
		Errors []any
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 || p.Data.Changes.Changes == 0 {
		c.t.Fatalf("next payload %s: %v", m.Payload, err)
	}
	return p.Data.Changes.Revision
}

func TestSubscriptionReceivesEachRevision(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	c, _, err := dialWS(t, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.init(viewerToken)
	c.send(map[string]any{"id": "replay", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($since: Revision) { changes(since: $since) { revision source changes summary { kind added } } }`,
		"variables": map[string]any{"since": a.revs[4]}}})
	// The revisions after since come first, then every new one as it is committed.
	for _, want := range a.revs[5:] {
		if got := c.next(); got != want {
			t.Fatalf("replayed revision %d, want %d", got, want)
		}
	}
	for i := range 3 {
		role := &graph.Role{Kind: graph.KindRole, Meta: graph.Meta{Namespace: "payments", Name: "sub-test-" + string(rune('a'+i))}}
		rev, err := a.live.Commit(context.Background(), "test", []graph.Change{graph.NewChange(nil, role)})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.next(); got != rev {
			t.Fatalf("subscription sent revision %d, committed %d", got, rev)
		}
	}
	c.send(map[string]any{"id": "replay", "type": "complete"})
}

func TestSubscriptionRefusals(t *testing.T) {
	a := newTestAPI(t, ServeOptions{})
	t.Run("no token", func(t *testing.T) {
		c, _, err := dialWS(t, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
		_, err = c.read()
		if code := websocket.CloseStatus(err); code != 4401 {
			t.Fatalf("close status %d (%v), want 4401 so that clients stop reconnecting", code, err)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		c, _, err := dialWS(t, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer nope"}})
		_, err = c.read()
		if code := websocket.CloseStatus(err); code != 4401 {
			t.Fatalf("close status %d (%v), want 4401", code, err)
		}
	})
	t.Run("foreign origin", func(t *testing.T) {
		_, resp, err := dialWS(t, a, http.Header{"Origin": []string{"https://evil.example"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin websocket: %v, %v; want 403", resp, err)
		}
	})
	t.Run("viewer cannot mutate over websocket", func(t *testing.T) {
		c, _, err := dialWS(t, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.init(viewerToken)
		c.send(map[string]any{"id": "m", "type": "subscribe", "payload": map[string]any{"query": `mutation { reload { revision } }`}})
		m, err := c.read()
		if err != nil || !strings.Contains(string(m.Payload), "FORBIDDEN") {
			t.Fatalf("mutation as viewer over websocket: %+v %s, %v", m, m.Payload, err)
		}
	})
}
