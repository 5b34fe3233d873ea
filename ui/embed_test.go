package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	tests := []struct {
		name, method, path string
		status             int
		ctype, body        string // body: a substring the answer must hold
		policy             string // the CSP's style-src
	}{
		{"root is the app", "GET", "/", 200, "text/html", `src="/assets/app.js"`, "style-src 'self';"},
		{"a deep link is the app", "GET", "/e/ClusterRole%2Fcluster-admin", 200, "text/html", `id="app"`, "style-src 'self';"},
		{"an ID with dots is the app", "GET", "/e/User%2Fsystem:kube.proxy", 200, "text/html", `id="app"`, "style-src 'self';"},
		{"a view with a query is the app", "GET", "/who-can?verb=get&resource=secrets&ns=kube-system", 200, "text/html", `id="app"`, "style-src 'self';"},
		{"the bundle", "GET", "/assets/app.js", 200, "text/javascript", "", "style-src 'self';"},
		{"the styles", "GET", "/assets/app.css", 200, "text/css", "", "style-src 'self';"},
		{"the layout worker", "GET", "/assets/layout-worker.js", 200, "text/javascript", "", "style-src 'self';"},
		{"GraphiQL", "GET", "/graphiql", 200, "text/html", `src="/assets/graphiql.js"`, "style-src 'self' 'unsafe-inline';"},
		{"GraphiQL's file", "GET", "/graphiql.html", 200, "text/html", `src="/assets/graphiql.js"`, "style-src 'self' 'unsafe-inline';"},
		{"HEAD", "HEAD", "/", 200, "text/html", "", "style-src 'self';"},
		{"a missing asset is not the app", "GET", "/assets/nope.js", 404, "text/plain", "404", "style-src 'self';"},
		{"no writes", "POST", "/", 405, "text/plain", "method not allowed", "style-src 'self';"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != tt.status || !strings.HasPrefix(h.Get("Content-Type"), tt.ctype) || !strings.Contains(string(body), tt.body) {
				t.Fatalf("%s %s: %d %q %.80q; want %d %s holding %q", tt.method, tt.path, resp.StatusCode, h.Get("Content-Type"), body, tt.status, tt.ctype, tt.body)
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self';", tt.policy, "frame-ancestors 'none'", "connect-src 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-eval") || strings.Contains(strings.Split(csp, "style-src")[0], "unsafe-inline") {
				t.Errorf("CSP %q allows inline or eval'd script", csp)
			}
			for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
				if h.Get(k) != v {
					t.Errorf("%s: %q, want %q", k, h.Get(k), v)
				}
			}
		})
	}
}

// An unchanged asset is revalidated, not downloaded again.
func TestHandlerETag(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	req, _ := http.NewRequest("GET", srv.URL+"/assets/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	again.Body.Close()
	if again.StatusCode != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", again.StatusCode)
	}
}
