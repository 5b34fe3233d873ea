package gql

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiem-io/kiem/gql/auth"
	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/internal/demo"
	"github.com/kiem-io/kiem/internal/testutil"
)

const (
	viewerToken = "viewer-token-0123456789"
	adminToken  = "admin-token-0123456789"
)

// testAPI is the API served over real HTTP on loopback, over a real Badger store holding the demo's history.
type testAPI struct {
	t      testing.TB
	srv    *httptest.Server
	live   *graph.Live
	revs   []graph.Revision // the demo steps' revisions, oldest first
	logs   *testutil.Buffer
	reload func(ctx context.Context) (graph.Revision, int, error)
}

// demoLive replays the demo's timeline into a fresh store; shared by the tests of a run, read-only.
var demoOnce struct {
	sync.Once
	steps []demo.Step
	err   error
}

// newTestAPI serves the demo's history; with lets a test set more Options (an audit store, say).
func newTestAPI(t *testing.T, so ServeOptions, with ...func(*Options)) *testAPI {
	t.Helper()
	ctx := context.Background()
	demoOnce.Do(func() { demoOnce.steps, demoOnce.err = demo.Timeline(ctx) })
	if demoOnce.err != nil {
		t.Fatal(demoOnce.err)
	}
	st, err := graph.OpenStore(ctx, graph.StoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	live, err := graph.OpenLive(ctx, st, graph.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &testAPI{t: t, live: live, logs: &testutil.Buffer{}}
	now := time.Now()
	for _, step := range demoOnce.steps {
		rev, err := live.CommitAt(ctx, step.Name, now.Add(-step.Ago), step.Changes)
		if err != nil {
			t.Fatal(err)
		}
		a.revs = append(a.revs, rev)
	}
	tokens := filepath.Join(t.TempDir(), "tokens.csv")
	if err := os.WriteFile(tokens, []byte(viewerToken+",vera,viewer\n"+adminToken+",ada,admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(a.logs, nil))
	if so.Auth == nil {
		if so.Auth, err = auth.LoadTokenFile(tokens, log); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{Graph: live, Cluster: "demo", Source: "demo", Version: "test", Logger: log,
		Reload: func(ctx context.Context) (graph.Revision, int, error) {
			if a.reload == nil {
				return live.Head(), 0, nil
			}
			return a.reload(ctx)
		}}
	for _, w := range with {
		w(&opts)
	}
	h, err := NewHandler(opts, so)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/graphql", h)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// gqlResponse is a GraphQL response as clients read it.
type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// do posts a query and returns the status and the decoded response.
func (a *testAPI) do(token, query string, vars map[string]any) (int, gqlResponse) {
	a.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		a.t.Fatalf("response is not JSON (%d): %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// query runs a query as the viewer, fails the test on any error, and decodes data into out.
func (a *testAPI) query(query string, vars map[string]any, out any) {
	a.t.Helper()
	status, resp := a.do(viewerToken, query, vars)
	if status != http.StatusOK || len(resp.Errors) > 0 {
		a.t.Fatalf("query failed (%d): %+v\n%s", status, resp.Errors, query)
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		a.t.Fatalf("decode %s: %v", resp.Data, err)
	}
}

// queryError runs a query expected to fail and returns its first error message.
func (a *testAPI) queryError(query string, vars map[string]any) string {
	a.t.Helper()
	_, resp := a.do(viewerToken, query, vars)
	if len(resp.Errors) == 0 {
		a.t.Fatalf("query succeeded, want an error: %s\n%s", resp.Data, query)
	}
	return resp.Errors[0].Message
}

func contains(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s = %q, want it to contain %q", what, got, want)
	}
}
