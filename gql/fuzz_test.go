package gql

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fuzzLog is the handler's log during fuzzing: it keeps only what the API must never log for any request, a
// resolver's panic or internal error, and drops the rest (the audit lines would grow without bound).
type fuzzLog struct {
	mu  sync.Mutex
	bad []string
}

func (l *fuzzLog) Enabled(context.Context, slog.Level) bool { return true }

func (l *fuzzLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "graphql resolver panicked" && r.Message != "graphql resolver failed" {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bad = append(l.bad, b.String())
	return nil
}

func (l *fuzzLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *fuzzLog) WithGroup(string) slog.Handler      { return l }

// take returns what was logged since the last call.
func (l *fuzzLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := l.bad
	l.bad = nil
	return bad
}

// fuzzRequest builds a request to /graphql from the fuzzer's input. mode picks the token (bit 2: the viewer's,
// else the admin's, who may run mutations) and the shape (bits 0-1): a JSON body with query and variables (when
// they are JSON), the raw body as it comes, a GET with query and variables in the URL, or a JSON body with an
// operation name; bit 3 sends a POST as text/plain, as a cross-site form would.
func fuzzRequest(mode uint8, query, variables string) *http.Request {
	var req *http.Request
	switch mode & 3 {
	case 0:
		body := map[string]any{"query": query}
		if json.Valid([]byte(variables)) {
			body["variables"] = json.RawMessage(variables)
		}
		b, _ := json.Marshal(body)
		req = httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(b))
	case 1:
		req = httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(query+variables))
	case 2:
		req = httptest.NewRequest(http.MethodGet, "/graphql?"+url.Values{"query": {query}, "variables": {variables}}.Encode(), nil)
	case 3:
		b, _ := json.Marshal(map[string]any{"query": query, "operationName": variables})
		req = httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(b))
	}
	if req.Method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
		if mode&8 != 0 {
			req.Header.Set("Content-Type", "text/plain")
		}
	}
	token := adminToken
	if mode&4 != 0 {
		token = viewerToken
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// FuzzGraphQL sends arbitrary queries, variables and bodies to the /graphql handler of NewHandler over a real
// graph (the kubeadm fixture and planted risks, with findings and suppressions, as newRiskAPI builds it; the seed
// corpus in testdata/fuzz/FuzzGraphQL holds the queries of the gql tests). Whatever the request, the handler
// never panics, never answers 5xx, always answers JSON holding data or errors, and no resolver panics or fails
// with an internal error: whatever a caller sends is theirs to get wrong, and is told so.
func FuzzGraphQL(f *testing.F) {
	logs := &fuzzLog{}
	a := newRiskAPI(f, ServeOptions{}, func(o *Options) { o.Logger = slog.New(logs) })
	h := a.srv.Config.Handler
	f.Add(uint8(0), `{ server { revision viewer { user role } } }`, `{}`)
	f.Fuzz(func(t *testing.T, mode uint8, query, variables string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, fuzzRequest(mode, query, variables))
		body := rec.Body.Bytes()
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, body)
		}
		if ct, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || ct != "application/json" {
			t.Fatalf("status %d, Content-Type %q: %s", rec.Code, rec.Header().Get("Content-Type"), body)
		}
		var resp struct {
			Data   json.RawMessage   `json:"data"`
			Errors []json.RawMessage `json:"errors"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("status %d, not JSON (%v): %s", rec.Code, err, body)
		}
		if len(resp.Errors) == 0 && (len(resp.Data) == 0 || string(resp.Data) == "null") {
			t.Fatalf("status %d, neither data nor errors: %s", rec.Code, body)
		}
		if bad := logs.take(); len(bad) > 0 {
			t.Fatalf("the server logged %q for a request (status %d): %s", bad, rec.Code, body)
		}
	})
}
