package synthkube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kiem-io/kiem/internal/synthkube"
)

const rolesPath = "/apis/rbac.authorization.k8s.io/v1"

func role(ns, name, label string) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"l": label}}}
}

// do sends an authenticated (unless token is empty) GET and returns the response, which the caller closes.
func do(t testing.TB, ctx context.Context, s *synthkube.Server, token, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

// watchAll reads a watch stream to its end (the path must set timeoutSeconds) and summarises each event as
// "TYPE ns/name rv", "BOOKMARK rv [end]" or "ERROR code reason", folding runs of identical lines into one.
func watchAll(t *testing.T, s *synthkube.Server, path string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp := do(t, ctx, s, "t", path)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	var out []string
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Type   string
			Object struct {
				metav1.ObjectMeta `json:"metadata"`
				Code              int
				Reason            string
			}
		}
		if err := dec.Decode(&ev); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("decoding the watch stream of %s: %v", path, err)
		}
		o := ev.Object
		var line string
		switch ev.Type {
		case "BOOKMARK":
			line = "BOOKMARK " + o.ResourceVersion
			if o.Annotations[metav1.InitialEventsAnnotationKey] == "true" {
				line += " end"
			}
		case "ERROR":
			line = fmt.Sprintf("ERROR %d %s", o.Code, o.Reason)
		default:
			line = fmt.Sprintf("%s %s/%s %s", ev.Type, o.Namespace, o.Name, o.ResourceVersion)
		}
		if len(out) == 0 || out[len(out)-1] != line {
			out = append(out, line)
		}
	}
}

// TestWatchProtocol drives the watch endpoint directly and checks the exact event sequence for each way of
// starting a watch.
func TestWatchProtocol(t *testing.T) {
	type fixture struct {
		s    *synthkube.Server
		rv0  uint64 // after the three initial roles
		last uint64 // after setup
	}
	rv := func(n uint64) string { return fmt.Sprint(n) }
	cases := []struct {
		name  string
		opts  synthkube.Options
		setup func(f *fixture) // runs after three roles a/r1, a/r2, b/r3 exist
		path  func(f *fixture) string
		want  func(f *fixture) []string
	}{{
		name: "resume from a resourceVersion: later events of this kind and namespace, in order",
		setup: func(f *fixture) {
			f.s.Apply(role("a", "r1", "v2"))
			f.s.Delete(synthkube.Role, "a", "r2")
			f.s.Apply(role("b", "r3", "v2"))
			f.s.Apply(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "c"}})
		},
		path: func(f *fixture) string {
			return rolesPath + "/namespaces/a/roles?watch=1&timeoutSeconds=1&resourceVersion=" + rv(f.rv0)
		},
		want: func(f *fixture) []string {
			return []string{"MODIFIED a/r1 " + rv(f.rv0+1), "DELETED a/r2 " + rv(f.rv0+2)}
		},
	}, {
		name: "no resourceVersion: synthetic ADDED for the current state, then live events",
		path: func(f *fixture) string { return rolesPath + "/roles?watch=true&timeoutSeconds=1" },
		want: func(f *fixture) []string {
			return []string{"ADDED a/r1 " + rv(f.rv0-2), "ADDED a/r2 " + rv(f.rv0-1), "ADDED b/r3 " + rv(f.rv0)}
		},
	}, {
		name: "WatchList: initial events end with the annotated bookmark at the current resourceVersion",
		opts: synthkube.Options{BookmarkInterval: -1},
		path: func(f *fixture) string {
			return rolesPath + "/namespaces/b/roles?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan" +
				"&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=" + rv(f.rv0-2)
		},
		want: func(f *fixture) []string {
			return []string{"ADDED b/r3 " + rv(f.rv0), "BOOKMARK " + rv(f.rv0) + " end"}
		},
	}, {
		name:  "periodic bookmarks carry the global resourceVersion even when this kind is idle",
		opts:  synthkube.Options{BookmarkInterval: 50 * time.Millisecond},
		setup: func(f *fixture) { f.s.Apply(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "c"}}) },
		path: func(f *fixture) string {
			return rolesPath + "/roles?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=" + rv(f.rv0)
		},
		want: func(f *fixture) []string { return []string{"BOOKMARK " + rv(f.last)} },
	}, {
		name:  "compacted history: 410 Expired",
		setup: func(f *fixture) { f.s.Apply(role("a", "r1", "v2")); f.s.Compact() },
		path: func(f *fixture) string {
			return rolesPath + "/roles?watch=1&timeoutSeconds=1&resourceVersion=" + rv(f.rv0)
		},
		want: func(*fixture) []string { return []string{"ERROR 410 Expired"} },
	}, {
		name:  "compaction point itself is still served",
		setup: func(f *fixture) { f.s.Apply(role("a", "r1", "v2")); f.s.Compact(); f.s.Apply(role("a", "r1", "v3")) },
		path: func(f *fixture) string {
			return rolesPath + "/roles?watch=1&timeoutSeconds=1&resourceVersion=" + rv(f.rv0+1)
		},
		want: func(f *fixture) []string { return []string{"MODIFIED a/r1 " + rv(f.rv0+2)} },
	}, {
		name: "history overflow forgets the oldest events",
		opts: synthkube.Options{WatchHistory: 4},
		setup: func(f *fixture) {
			for i := range 5 {
				f.s.Apply(role("a", "r1", fmt.Sprint(i)))
			}
		},
		path: func(f *fixture) string {
			return rolesPath + "/roles?watch=1&timeoutSeconds=1&resourceVersion=" + rv(f.rv0)
		},
		want: func(*fixture) []string { return []string{"ERROR 410 Expired"} },
	}, {
		name: "WatchList from a compacted resourceVersion still gets the current state, not 410",
		opts: synthkube.Options{BookmarkInterval: -1},
		setup: func(f *fixture) {
			f.s.Apply(role("b", "r3", "v2"))
			f.s.Compact()
		},
		path: func(f *fixture) string {
			return rolesPath + "/namespaces/b/roles?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan" +
				"&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=" + rv(f.rv0-2)
		},
		want: func(f *fixture) []string {
			return []string{"ADDED b/r3 " + rv(f.last), "BOOKMARK " + rv(f.last) + " end"}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Token = "t"
			f := &fixture{s: synthkube.New(tc.opts)}
			t.Cleanup(f.s.Close)
			f.s.Apply(role("a", "r1", "v1"))
			f.s.Apply(role("a", "r2", "v1"))
			f.rv0 = f.s.Apply(role("b", "r3", "v1"))
			if tc.setup != nil {
				tc.setup(f)
			}
			f.last = f.s.ResourceVersion()
			got := watchAll(t, f.s, tc.path(f))
			if want := tc.want(f); !slices.Equal(got, want) {
				t.Errorf("events:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestRequests checks status codes and Status reasons across routing, authentication and validation.
func TestRequests(t *testing.T) {
	s := synthkube.New(synthkube.Options{Token: "t"})
	t.Cleanup(s.Close)
	noWL := synthkube.New(synthkube.Options{Token: "t", NoWatchList: true})
	t.Cleanup(noWL.Close)
	rv := s.Apply(role("a", "r1", "v1"))
	s.Apply(role("a", "r1", "v2"))
	s.Apply(role("b", "r2", "v1")) // resourceVersion 4
	wl := "?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
	cases := []struct {
		name, token, path string
		server            *synthkube.Server
		code              int
		reason            metav1.StatusReason
		contains          string
	}{
		{"no token", "", "/api/v1/pods", s, 401, metav1.StatusReasonUnauthorized, ""},
		{"wrong token", "x", "/api/v1/pods", s, 401, metav1.StatusReasonUnauthorized, ""},
		{"list", "t", rolesPath + "/roles", s, 200, "", `"kind":"RoleList","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"resourceVersion":"4"}`},
		{"list ignores limit", "t", rolesPath + "/roles?limit=1", s, 200, "", `"name":"r2"`},
		{"namespaced list", "t", rolesPath + "/namespaces/c/roles", s, 200, "", `"items":[]}`},
		{"get", "t", rolesPath + "/namespaces/a/roles/r1", s, 200, "", `"kind":"Role"`},
		{"get missing", "t", rolesPath + "/namespaces/a/roles/nope", s, 404, metav1.StatusReasonNotFound, ""},
		{"namespaced kind by cluster path", "t", "/api/v1/pods/x", s, 404, metav1.StatusReasonNotFound, ""},
		{"cluster kind by namespaced path", "t", "/api/v1/namespaces/a/nodes", s, 404, metav1.StatusReasonNotFound, ""},
		{"unknown resource", "t", "/api/v1/configmaps", s, 404, metav1.StatusReasonNotFound, ""},
		{"subresource", "t", "/api/v1/namespaces/a/pods/p/log", s, 404, metav1.StatusReasonNotFound, ""},
		{"selector", "t", "/api/v1/pods?labelSelector=a%3Db", s, 400, metav1.StatusReasonBadRequest, ""},
		{"bad resourceVersion", "t", "/api/v1/pods?resourceVersion=x", s, 400, metav1.StatusReasonBadRequest, ""},
		{"continue", "t", "/api/v1/pods?continue=abc", s, 400, metav1.StatusReasonBadRequest, ""},
		{"list too large rv", "t", "/api/v1/pods?resourceVersion=99", s, 504, metav1.StatusReasonTimeout, "ResourceVersionTooLarge"},
		{"watch too large rv", "t", "/api/v1/pods?watch=1&resourceVersion=99", s, 504, metav1.StatusReasonTimeout, "ResourceVersionTooLarge"},
		{"list exact old rv", "t", fmt.Sprintf("/api/v1/pods?resourceVersion=%d&resourceVersionMatch=Exact", rv), s, 410, metav1.StatusReasonExpired, "too old resource version"},
		{"list exact current rv", "t", "/api/v1/pods?resourceVersion=4&resourceVersionMatch=Exact", s, 200, "", `"kind":"PodList"`},
		{"list with sendInitialEvents", "t", "/api/v1/pods?sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0", s, 422, metav1.StatusReasonInvalid, "forbidden for list"},
		{"watch match without sendInitialEvents", "t", "/api/v1/pods?watch=1&resourceVersionMatch=NotOlderThan", s, 422, metav1.StatusReasonInvalid, ""},
		{"watch sendInitialEvents without match", "t", "/api/v1/pods?watch=1&sendInitialEvents=true", s, 422, metav1.StatusReasonInvalid, ""},
		{"WatchList", "t", "/api/v1/pods" + wl, s, 200, "", "k8s.io/initial-events-end"},
		{"WatchList refused", "t", "/api/v1/pods" + wl, noWL, 422, metav1.StatusReasonInvalid, "WatchList feature gate"},
		{"discovery core", "t", "/api/v1", s, 200, "", `"name":"serviceaccounts","singularName":"serviceaccount","namespaced":true,"kind":"ServiceAccount"`},
		{"discovery rbac", "t", rolesPath, s, 200, "", `"name":"clusterrolebindings"`},
		{"api", "t", "/api", s, 200, "", `"versions":["v1"]`},
		{"apis", "t", "/apis", s, 200, "", `"preferredVersion":{"groupVersion":"rbac.authorization.k8s.io/v1"`},
		{"version", "t", "/version", s, 200, "", `"major":"1"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp := do(t, ctx, tc.server, tc.token, tc.path)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the body: %v", err)
			}
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.code != 200 {
				var st metav1.Status
				if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.Reason != tc.reason ||
					int(st.Code) != tc.code {
					t.Errorf("want a Status with reason %s and code %d, got %s (%v)", tc.reason, tc.code, body, err)
				}
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body lacks %q: %s", tc.contains, body)
			}
		})
	}
	if st := s.Stats(); st.Unauthorized != 2 || st.Gets != 1 {
		t.Errorf("stats do not match the requests made: %+v", st)
	}
}

// TestIdleWatchAnswersAtOnce checks that a watch with nothing to send still gets its 200 and headers
// immediately: client-go's Watch call does not return before it has them.
func TestIdleWatchAnswersAtOnce(t *testing.T) {
	s := synthkube.New(synthkube.Options{Token: "t", BookmarkInterval: -1})
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := do(t, ctx, s, "t", fmt.Sprintf("/api/v1/pods?watch=1&timeoutSeconds=60&resourceVersion=%d", s.ResourceVersion()))
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("idle watch answered %s with Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if n := s.Stats().OpenWatches; n != 1 {
		t.Errorf("%d open watches, want 1", n)
	}
}

// TestStuckWatcherExpires opens a watch and does not read it while far more than the history is applied:
// Apply must not wait for it, and once it reads again it gets what it had buffered, then 410 Expired.
func TestStuckWatcherExpires(t *testing.T) {
	s := synthkube.New(synthkube.Options{Token: "t", WatchHistory: 100, BookmarkInterval: -1})
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp := do(t, ctx, s, "t", fmt.Sprintf("/api/v1/secrets?watch=1&resourceVersion=%d", s.ResourceVersion()))
	defer resp.Body.Close()

	// 32 MB of events: far past every flow-control window and socket buffer between the two ends.
	const n = 2000
	data := map[string][]byte{"k": make([]byte, 16<<10)}
	start := time.Now()
	for i := range n {
		s.Apply(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: fmt.Sprint("s", i%10)}, Data: data})
	}
	t.Logf("%d applies of 16 KiB secrets in %v with a stuck watcher", n, time.Since(start))

	dec := json.NewDecoder(resp.Body)
	var got int
	for {
		var ev struct {
			Type   string
			Object metav1.Status
		}
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("stream ended after %d events without a 410: %v", got, err)
		}
		if ev.Type == "ERROR" {
			if ev.Object.Code != http.StatusGone || ev.Object.Reason != metav1.StatusReasonExpired {
				t.Errorf("want 410 Expired, got %+v", ev.Object)
			}
			break
		}
		got++
	}
	if got >= n {
		t.Errorf("the stuck watcher got all %d events: it was never behind the history", got)
	}
	if err := dec.Decode(new(any)); err != io.EOF {
		t.Errorf("want the stream to end after the 410, got %v", err)
	}
}
