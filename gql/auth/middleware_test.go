package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/kiem-io/kiem/internal/testutil"
)

// authFunc adapts a function to Authenticator.
type authFunc func(ctx context.Context, token string) (Principal, error)

func (f authFunc) Authenticate(ctx context.Context, token string) (Principal, error) {
	return f(ctx, token)
}

const (
	adminToken     = "tok-admin-0123456789"
	viewerToken    = "tok-viewer-0123456789"
	forbiddenToken = "tok-forbidden-0123456789"
	brokenToken    = "tok-broken-0123456789"
	oddToken       = "tok-odd-0123456789"
	auditToken     = "tok-audit-0123456789"
)

// testAuth knows a fixed set of tokens; each other kind of token produces one kind of error.
var testAuth = authFunc(func(_ context.Context, token string) (Principal, error) {
	switch token {
	case "":
		return Principal{}, ErrNoToken
	case adminToken:
		return Principal{User: "ann", Role: RoleAdmin, Mode: ModeStatic}, nil
	case viewerToken:
		return Principal{User: "vic", Role: RoleViewer, Mode: ModeStatic}, nil
	case auditToken:
		return Principal{User: "apiserver", Role: RoleAuditWriter, Mode: ModeStatic}, nil
	case forbiddenToken:
		return Principal{}, fmt.Errorf("%w: nob has no role", ErrForbidden)
	case brokenToken:
		return Principal{}, fmt.Errorf("%w: dial tcp 10.96.0.1:443: connection refused", ErrUnavailable)
	case oddToken:
		return Principal{}, errors.New("internal detail: /etc/secret/path")
	}
	return Principal{}, ErrUnauthenticated
})

// echo answers 200 with the principal in the context, or 299 if there is none.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := PrincipalFrom(r.Context())
	if !ok {
		w.WriteHeader(299)
		return
	}
	fmt.Fprintf(w, "%s %s", p.User, p.Role)
})

type gqlBody struct {
	Errors []struct {
		Message    string `json:"message"`
		Extensions struct {
			Code string `json:"code"`
		} `json:"extensions"`
	} `json:"errors"`
}

// wsHandshake returns the headers of a websocket handshake plus extra.
func wsHandshake(extra map[string]string) map[string]string {
	h := map[string]string{"Upgrade": "websocket", "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

func TestMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		url     string
		header  map[string]string
		status  int
		body    string // exact body of a 2xx; else the error message must contain it
		code    string
		wwwAuth string
		logged  string // substring of the log line; "" means no line
	}{
		{name: "admin", header: map[string]string{"Authorization": "Bearer " + adminToken}, status: 200, body: "ann admin"},
		{name: "viewer, scheme in lower case", header: map[string]string{"Authorization": "bearer  " + viewerToken + " "}, status: 200, body: "vic viewer"},
		{name: "no header", status: 401, body: "authentication required", code: "UNAUTHENTICATED",
			wwwAuth: `Bearer realm="kiem"`, logged: `"level":"INFO","msg":"authentication refused"`},
		{name: "basic auth", header: map[string]string{"Authorization": "Basic YWxpY2U6cHc="}, status: 401,
			body: "authentication required", code: "UNAUTHENTICATED", wwwAuth: `Bearer realm="kiem"`, logged: `"reason":"no_token"`},
		{name: "bearer without token", header: map[string]string{"Authorization": "Bearer "}, status: 401,
			body: "authentication required", code: "UNAUTHENTICATED", wwwAuth: `Bearer realm="kiem"`, logged: `"reason":"no_token"`},
		{name: "bad token", header: map[string]string{"Authorization": "Bearer nope-0123456789"}, status: 401,
			body: "invalid or expired token", code: "UNAUTHENTICATED", wwwAuth: `Bearer realm="kiem", error="invalid_token"`,
			logged: `"level":"WARN","msg":"authentication refused","transport":"http","method":"GET","path":"/graphql","status":401,"remote":"192.0.2.1:1234","reason":"unauthenticated"`},
		{name: "forbidden", header: map[string]string{"Authorization": "Bearer " + forbiddenToken}, status: 403,
			body: "no kiem role", code: "FORBIDDEN", logged: `"reason":"forbidden","err":"forbidden: nob has no role"`},
		{name: "unavailable", header: map[string]string{"Authorization": "Bearer " + brokenToken}, status: 503,
			body: "try again later", code: "UNAVAILABLE", logged: `"level":"ERROR"`},
		{name: "unknown error", header: map[string]string{"Authorization": "Bearer " + oddToken}, status: 503,
			body: "try again later", code: "UNAVAILABLE", logged: `"err":"internal detail: /etc/secret/path"`},
		{name: "token in query", url: "/graphql?token=" + adminToken, header: map[string]string{"Authorization": "Bearer " + adminToken},
			status: 400, body: "tokens are not accepted in the URL", code: "BAD_REQUEST", logged: `"reason":"token_in_query"`},
		{name: "access_token in query", url: "/graphql?query=x&Access_Token=" + adminToken, status: 400,
			body: "Authorization: Bearer", code: "BAD_REQUEST", logged: `"reason":"token_in_query"`},
		{name: "websocket upgrade without header", header: wsHandshake(nil), status: 299},
		{name: "upgrade header on a non-handshake", header: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"}, status: 401,
			body: "authentication required", code: "UNAUTHENTICATED", wwwAuth: `Bearer realm="kiem"`, logged: `"reason":"no_token"`},
		{name: "websocket handshake by POST", method: http.MethodPost, header: wsHandshake(nil), status: 401,
			body: "authentication required", code: "UNAUTHENTICATED", wwwAuth: `Bearer realm="kiem"`, logged: `"reason":"no_token"`},
		{name: "websocket upgrade with header", header: wsHandshake(map[string]string{"Authorization": "Bearer " + viewerToken}),
			status: 200, body: "vic viewer"},
		{name: "websocket upgrade with bad header", header: wsHandshake(map[string]string{"Authorization": "Bearer nope"}),
			status: 401, body: "invalid or expired token", code: "UNAUTHENTICATED", wwwAuth: `Bearer realm="kiem", error="invalid_token"`,
			logged: `"reason":"unauthenticated"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLog()
			url := tc.url
			if url == "" {
				url = "/graphql"
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, url, nil)
			r.RemoteAddr = "192.0.2.1:1234"
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			Middleware(testAuth, log, echo).ServeHTTP(w, r)

			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tc.wwwAuth {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.wwwAuth)
			}
			if tc.status < 300 {
				if got := w.Body.String(); got != tc.body {
					t.Errorf("body %q, want %q", got, tc.body)
				}
			} else {
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				var b gqlBody
				if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || len(b.Errors) != 1 {
					t.Fatalf("body %s: want one GraphQL error (%v)", w.Body, err)
				}
				if e := b.Errors[0]; !strings.Contains(e.Message, tc.body) || e.Extensions.Code != tc.code {
					t.Errorf("error %+v, want message containing %q and code %s", e, tc.body, tc.code)
				}
				for _, internal := range []string{"10.96.0.1", "/etc/secret", "nob has no role"} {
					if strings.Contains(w.Body.String(), internal) {
						t.Errorf("body %s leaks %q", w.Body, internal)
					}
				}
			}
			if tc.status == 503 && w.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if tc.logged == "" && logs.String() != "" {
				t.Errorf("unexpected log %s", logs)
			}
			if !strings.Contains(logs.String(), tc.logged) {
				t.Errorf("log %s does not contain %s", logs, tc.logged)
			}
			for _, tok := range []string{adminToken, viewerToken, forbiddenToken, brokenToken, oddToken, "nope-0123456789"} {
				if strings.Contains(logs.String(), tok) {
					t.Errorf("log leaks a token: %s", logs)
				}
			}
		})
	}
}

func TestMiddlewareAnonymous(t *testing.T) {
	log, _ := newLog()
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	w := httptest.NewRecorder()
	Middleware(Anonymous{}, log, echo).ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "anonymous admin" {
		t.Errorf("anonymous: %d %s", w.Code, w.Body)
	}
}

// wsServer serves gqlgen's websocket transport with WebsocketInit behind Middleware, as kiem wires them. The
// principals of accepted connections arrive on the returned channel.
func wsServer(t *testing.T, a Authenticator) (string, <-chan Principal, *testutil.Buffer) {
	t.Helper()
	log, logs := newLog()
	accepted := make(chan Principal, 1)
	init := WebsocketInit(a, log)
	ws := transport.Websocket{InitFunc: func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		ctx, ack, err := init(ctx, p)
		if err == nil {
			pr, _ := PrincipalFrom(ctx)
			accepted <- pr
		}
		return ctx, ack, err
	}}
	// No operation runs in these tests: connection_init is all that is exchanged, so no executor is needed.
	srv := httptest.NewServer(Middleware(a, log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws.Do(w, r, nil)
	})))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql", accepted, logs
}

func TestWebsocketInit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		subprotocol string
		header      string // Authorization on the upgrade request
		payload     map[string]any
		wantUser    string // accepted as this user, or:
		wantCode    websocket.StatusCode
		wantReason  string
	}{
		{name: "bearer in payload", subprotocol: "graphql-transport-ws", payload: map[string]any{"Authorization": "Bearer " + adminToken}, wantUser: "ann"},
		{name: "bare token, lower-case key", subprotocol: "graphql-transport-ws", payload: map[string]any{"authorization": viewerToken}, wantUser: "vic"},
		{name: "legacy protocol", subprotocol: "graphql-ws", payload: map[string]any{"Authorization": "Bearer " + viewerToken}, wantUser: "vic"},
		{name: "upgrade header", subprotocol: "graphql-transport-ws", header: "Bearer " + viewerToken, wantUser: "vic"},
		{name: "payload wins over header", subprotocol: "graphql-transport-ws", header: "Bearer " + adminToken,
			payload: map[string]any{"Authorization": "Bearer nope"}, wantCode: 4401, wantReason: "Unauthorized"},
		{name: "no token", subprotocol: "graphql-transport-ws", wantCode: 4401, wantReason: "Unauthorized"},
		{name: "bad token", subprotocol: "graphql-transport-ws", payload: map[string]any{"Authorization": "Bearer nope"}, wantCode: 4401, wantReason: "Unauthorized"},
		{name: "forbidden", subprotocol: "graphql-transport-ws", payload: map[string]any{"Authorization": forbiddenToken}, wantCode: 4403, wantReason: "Forbidden"},
		{name: "unavailable", subprotocol: "graphql-transport-ws", payload: map[string]any{"Authorization": brokenToken}, wantCode: 1013, wantReason: "Try again later"},
		{name: "legacy protocol, bad token", subprotocol: "graphql-ws", payload: map[string]any{"Authorization": "nope"}, wantCode: 4401, wantReason: "Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, accepted, logs := wsServer(t, testAuth)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			opts := &websocket.DialOptions{Subprotocols: []string{tc.subprotocol}, HTTPHeader: http.Header{}}
			if tc.header != "" {
				opts.HTTPHeader.Set("Authorization", tc.header)
			}
			conn, _, err := websocket.Dial(ctx, url, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			init, err := json.Marshal(map[string]any{"type": "connection_init", "payload": tc.payload})
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Write(ctx, websocket.MessageText, init); err != nil {
				t.Fatal(err)
			}
			// Read until the ack or the close; a refusal may be preceded by an error message.
			for {
				_, msg, err := conn.Read(ctx)
				if err != nil {
					var ce websocket.CloseError
					if !errors.As(err, &ce) {
						t.Fatalf("read: %v, want a close frame", err)
					}
					if tc.wantUser != "" {
						t.Fatalf("closed with %d %q, want acceptance as %s", ce.Code, ce.Reason, tc.wantUser)
					}
					if ce.Code != tc.wantCode || ce.Reason != tc.wantReason {
						t.Errorf("closed with %d %q, want %d %q", ce.Code, ce.Reason, tc.wantCode, tc.wantReason)
					}
					if !strings.Contains(logs.String(), `"transport":"websocket","close_code":`+fmt.Sprint(int(tc.wantCode))) {
						t.Errorf("no refusal log line: %s", logs)
					}
					return
				}
				var m struct{ Type string }
				if err := json.Unmarshal(msg, &m); err != nil {
					t.Fatalf("message %s: %v", msg, err)
				}
				if m.Type == "connection_ack" {
					break
				}
			}
			if tc.wantUser == "" {
				t.Fatalf("acknowledged, want close code %d", tc.wantCode)
			}
			select {
			case p := <-accepted:
				if p.User != tc.wantUser {
					t.Errorf("accepted as %q, want %q", p.User, tc.wantUser)
				}
			case <-ctx.Done():
				t.Fatal("acknowledged, but the init func reported no principal")
			}
			_ = conn.Close(websocket.StatusNormalClosure, "")
		})
	}
}

// TestRoleGuards checks which roles each middleware lets through: an audit-writer token (kept on the control
// plane) never reads, and a viewer never posts audit events.
func TestRoleGuards(t *testing.T) {
	for _, tc := range []struct {
		name   string
		guard  func(Authenticator, *slog.Logger, http.Handler) http.Handler
		token  string
		status int
		msg    string
	}{
		{"read as admin", Middleware, adminToken, 200, ""},
		{"read as viewer", Middleware, viewerToken, 200, ""},
		{"read as audit-writer", Middleware, auditToken, 403, "may only post audit events"},
		{"audit as admin", AuditMiddleware, adminToken, 200, ""},
		{"audit as audit-writer", AuditMiddleware, auditToken, 200, ""},
		{"audit as viewer", AuditMiddleware, viewerToken, 403, "needs the audit-writer or admin role; you are viewer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLog()
			r := httptest.NewRequest(http.MethodPost, "/audit", nil)
			r.Header.Set("Authorization", "Bearer "+tc.token)
			w := httptest.NewRecorder()
			tc.guard(testAuth, log, echo).ServeHTTP(w, r)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.msg) {
				t.Fatalf("status %d body %s, want %d with %q", w.Code, w.Body, tc.status, tc.msg)
			}
			if tc.status == 403 && !strings.Contains(logs.String(), `"reason":"wrong_role"`) {
				t.Errorf("refusal not logged: %s", logs)
			}
		})
	}
	// A websocket upgrade without a header is no way around the audit guard.
	r := httptest.NewRequest(http.MethodGet, "/audit", nil)
	for k, v := range wsHandshake(nil) {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	log, _ := newLog()
	AuditMiddleware(testAuth, log, echo).ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("unauthenticated websocket upgrade to the audit endpoint: status %d, want 401", w.Code)
	}
}
