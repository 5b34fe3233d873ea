package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// api is a GraphQL client of the kiem under test.
type api struct {
	url   string // http://host:port
	token string
	hc    *http.Client
}

func newAPI(url, token string) *api {
	return &api{url: url, token: token, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// response is a GraphQL answer as the test reads it.
type response struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// post sends one operation and returns the HTTP status and body.
func (a *api) post(ctx context.Context, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// query runs a valid operation and decodes its data into out (may be nil). Any error — transport, status, or a
// GraphQL error — is returned.
func (a *api) query(ctx context.Context, q string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	status, raw, err := a.post(ctx, a.token, body)
	if err != nil {
		return err
	}
	var r response
	if status != http.StatusOK || json.Unmarshal(raw, &r) != nil {
		return fmt.Errorf("%w: status %d: %.300s", errStatus, status, raw)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("graphql error: %s (query %.120s)", r.Errors[0].Message, q)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			return fmt.Errorf("decode %.120s: %w", q, err)
		}
	}
	return nil
}

var errStatus = errors.New("unexpected response")

// errNoPast says a time-travel request was not made: the history is not yet deep enough.
var errNoPast = errors.New("no past revision yet")

// head returns the server's head revision.
func (a *api) head(ctx context.Context) (uint64, error) {
	var out struct{ Server struct{ Revision uint64 } }
	err := a.query(ctx, `{ server { revision } }`, nil, &out)
	return out.Server.Revision, err
}

// opStats are the outcomes of one kind of request.
type opStats struct {
	mu        sync.Mutex
	ok        int
	failed    int
	firstErr  string
	latencies []time.Duration
}

func (s *opStats) record(took time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed++
		if s.firstErr == "" {
			s.firstErr = err.Error()
		}
		return
	}
	s.ok++
	s.latencies = append(s.latencies, took)
}

func (s *opStats) pct(p float64) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	return l[min(len(l)-1, int(p*float64(len(l))))]
}

// sample is what the clients ask about: subjects and actions of the initial cluster.
type sample struct {
	serviceAccounts [][2]string // namespace, name
	users           []string
	groups          []string
	namespaces      []string
	names           []string // search terms
}

// actions are requests of the kinds people ask about, risky ones included.
var actions = []map[string]any{
	{"verb": "get", "resource": "secrets"},
	{"verb": "list", "resource": "pods"},
	{"verb": "create", "resource": "pods", "subresource": "exec"},
	{"verb": "update", "apiGroup": "apps", "resource": "deployments"},
	{"verb": "delete", "resource": "configmaps"},
	{"verb": "bind", "apiGroup": "rbac.authorization.k8s.io", "resource": "clusterroles"},
	{"verb": "deletecollection", "resource": "services"},
	{"verb": "impersonate", "resource": "users"},
	{"verb": "watch", "apiGroup": "batch", "resource": "jobs"},
	{"verb": "get", "nonResourceURL": "/metrics"},
}

// clientOp is one kind of request a client makes: its name, its weight in the mix, and how to make it.
type clientOp struct {
	name   string
	weight int
	run    func(ctx context.Context, c *client) error
}

// client is one of the 50 concurrent GraphQL clients.
type client struct {
	a    *api
	r    *rand.Rand
	s    *sample
	past *atomic.Uint64 // a revision some way behind the head, for time-travel queries
}

func (c *client) subject() map[string]any {
	switch c.r.IntN(3) {
	case 0:
		u := c.s.users[c.r.IntN(len(c.s.users))]
		return map[string]any{"kind": "USER", "name": u, "groups": []string{c.s.groups[c.r.IntN(len(c.s.groups))]}}
	case 1:
		return map[string]any{"kind": "GROUP", "name": c.s.groups[c.r.IntN(len(c.s.groups))]}
	}
	sa := c.s.serviceAccounts[c.r.IntN(len(c.s.serviceAccounts))]
	return map[string]any{"kind": "SERVICE_ACCOUNT", "namespace": sa[0], "name": sa[1]}
}

func (c *client) action() map[string]any {
	a := maps.Clone(actions[c.r.IntN(len(actions))])
	if _, ok := a["nonResourceURL"]; !ok && c.r.IntN(4) > 0 {
		a["namespace"] = c.s.namespaces[c.r.IntN(len(c.s.namespaces))]
	}
	return a
}

// clientOps is the mix of valid requests: mostly the interactive questions, some history and risk views, and
// some time travel.
var clientOps = []clientOp{
	{"can", 40, func(ctx context.Context, c *client) error {
		var out struct{ Can struct{ Allowed bool } }
		return c.a.query(ctx, `query($s: SubjectInput!, $a: ActionInput!) { can(subject: $s, action: $a) { allowed reasons { text } } }`,
			map[string]any{"s": c.subject(), "a": c.action()}, &out)
	}},
	{"whoCan", 8, func(ctx context.Context, c *client) error {
		return c.a.query(ctx, `query($a: ActionInput!) { whoCan(action: $a, first: 50) { totalCount nodes { subject { kind name } paths { text } } } }`,
			map[string]any{"a": c.action()}, nil)
	}},
	{"effectivePermissions", 12, func(ctx context.Context, c *client) error {
		sa := c.s.serviceAccounts[c.r.IntN(len(c.s.serviceAccounts))]
		return c.a.query(ctx, `query($s: SubjectInput!) { effectivePermissions(subject: $s, first: 50) { totalCount nodes { namespace grant { text } } } }`,
			map[string]any{"s": map[string]any{"kind": "SERVICE_ACCOUNT", "namespace": sa[0], "name": sa[1]}}, nil)
	}},
	{"search", 10, func(ctx context.Context, c *client) error {
		return c.a.query(ctx, `query($q: String!) { search(query: $q, first: 20) { edges { field rank node { id kind name } } } }`,
			map[string]any{"q": c.s.names[c.r.IntN(len(c.s.names))]}, nil)
	}},
	{"neighbourhood", 5, func(ctx context.Context, c *client) error {
		sa := c.s.serviceAccounts[c.r.IntN(len(c.s.serviceAccounts))]
		var out struct{ Lookup *struct{ ID string } }
		if err := c.a.query(ctx, `query($n: String!, $ns: String) { lookup(kind: SERVICE_ACCOUNT, name: $n, namespace: $ns) { id } }`,
			map[string]any{"n": sa[1], "ns": sa[0]}, &out); err != nil || out.Lookup == nil {
			return err // a ServiceAccount the source deleted has no neighbourhood: not an error
		}
		return c.a.query(ctx, `query($id: ID!) { neighbourhood(id: $id, depth: 2, first: 200) { truncated nodes { id kind name } edges { from to type } } }`,
			map[string]any{"id": out.Lookup.ID}, nil)
	}},
	{"history", 8, func(ctx context.Context, c *client) error {
		var out struct {
			Revisions struct{ Nodes []struct{ Revision uint64 } }
		}
		if err := c.a.query(ctx, `{ revisions(first: 20) { nodes { revision time source changes summary { kind added updated deleted } } } }`, nil, &out); err != nil {
			return err
		}
		if len(out.Revisions.Nodes) == 0 {
			return errors.New("revisions: empty history")
		}
		head := out.Revisions.Nodes[0].Revision
		from := head - min(head, 20)
		return c.a.query(ctx, `query($f: Revision!) { changes(from: $f, first: 50) { nodes { op kind namespace name revision { revision } } } }`,
			map[string]any{"f": from}, nil)
	}},
	// diff asks for the objects and grants that changed, not for the findings: those of a past revision are a
	// full evaluation of the packs (seconds; measured by make bench-scale), not an interactive question.
	{"diff", 5, func(ctx context.Context, c *client) error {
		past := c.past.Load()
		if past == 0 {
			return errNoPast
		}
		return c.a.query(ctx, `query($f: Revision!) { diff(from: $f) { from to objects(first: 20) { totalCount } subjects(first: 20) { totalCount nodes { subject { kind name } gained { namespace grant { text } } lost { namespace grant { text } } } } } }`,
			map[string]any{"f": past}, nil)
	}},
	{"findings", 7, func(ctx context.Context, c *client) error {
		return c.a.query(ctx, `{ findings(first: 20) { revision totalCount summary { risky bySeverity { severity count } } nodes { fingerprint severity rule { id } evidence { text } } } }`, nil, nil)
	}},
	{"timeTravel", 5, func(ctx context.Context, c *client) error {
		past := c.past.Load()
		if past == 0 {
			return errNoPast
		}
		return c.a.query(ctx, `query($s: SubjectInput!, $a: ActionInput!, $at: Revision) { can(subject: $s, action: $a, at: $at) { allowed reasons { text } } }`,
			map[string]any{"s": c.subject(), "a": c.action(), "at": past}, nil)
	}},
}

// badRequest is a request that must fail cleanly: the server answers with the given statuses and never 5xx, a
// panic or a hang.
type badRequest struct {
	name   string
	token  func(a *api) string
	body   []byte
	status []int // acceptable statuses
}

func badRequests() []badRequest {
	own := func(a *api) string { return a.token }
	return []badRequest{
		{"syntax error", own, []byte(`{"query":"{ can(subject: "}`), []int{200, 422}},
		{"unknown field", own, []byte(`{"query":"{ server { nope } }"}`), []int{200, 422}},
		{"too deep", own, []byte(`{"query":"{ server { viewer { name } } ` + strings.Repeat(" ", 1) + `}","variables":{"x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}}`), []int{200, 400, 422}},
		{"not JSON", own, []byte(`{"query": {{{`), []int{400, 422}},
		{"no token", func(*api) string { return "" }, []byte(`{"query":"{ server { revision } }"}`), []int{401}},
		{"wrong token", func(*api) string { return "not-a-token" }, []byte(`{"query":"{ server { revision } }"}`), []int{401}},
		{"oversized", own, append(append([]byte(`{"query":"{ server { revision } }","variables":{"pad":"`), bytes.Repeat([]byte("x"), 3<<20)...), `"}}`...), []int{400, 413}},
		{"too costly", own, []byte(`{"query":"{ nodes(kind: ROLE_BINDING, first: 1000) { nodes { ... on RoleBinding { subjects { node { ... on ServiceAccount { permissions(first: 1000) { totalCount } } } } } } } }"}`), []int{200, 422}},
	}
}

// checkBad sends a bad request and reports an error unless the answer is one of its statuses, with a GraphQL
// error body for 200 and 422.
func (a *api) checkBad(ctx context.Context, b badRequest) error {
	status, raw, err := a.post(ctx, b.token(a), b.body)
	if err != nil {
		return err
	}
	if !slices.Contains(b.status, status) {
		return fmt.Errorf("%s: status %d, want one of %v: %.200s", b.name, status, b.status, raw)
	}
	if status == http.StatusOK || status == http.StatusUnprocessableEntity {
		var r response
		if json.Unmarshal(raw, &r) != nil || len(r.Errors) == 0 {
			return fmt.Errorf("%s: status %d without a GraphQL error: %.200s", b.name, status, raw)
		}
	}
	return nil
}

// sentRevision is a revision as the subscription announced it.
type sentRevision struct {
	rev     uint64
	changes int
}

// subscriber follows the changes subscription and records every revision it is sent, reconnecting with since
// when the connection drops (kiem killed and restarted), so that it can tell whether any revision went missing.
type subscriber struct {
	a        *api
	mu       sync.Mutex
	revs     []sentRevision
	reconn   int
	lastErr  string
	received atomic.Int64
}

// run follows the subscription until ctx ends. Connection failures while kiem is down are retried.
func (s *subscriber) run(ctx context.Context) {
	var since *uint64
	for ctx.Err() == nil {
		err := s.follow(ctx, since)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.reconn++
		s.lastErr = fmt.Sprint(err)
		if n := len(s.revs); n > 0 {
			last := s.revs[n-1].rev
			since = &last
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // reconnect pacing while the server restarts
		}
	}
}

func (s *subscriber) follow(ctx context.Context, since *uint64) error {
	url := "ws" + strings.TrimPrefix(s.a.url, "http") + "/graphql"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	send := func(m map[string]any) error {
		b, _ := json.Marshal(m)
		return conn.Write(ctx, websocket.MessageText, b)
	}
	if err := send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + s.a.token}}); err != nil {
		return err
	}
	vars := map[string]any{}
	if since != nil {
		vars["since"] = *since
	}
	if err := send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($since: Revision) { changes(since: $since) { revision changes } }`, "variables": vars}}); err != nil {
		return err
	}
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		var m struct {
			Type    string
			Payload struct {
				Data struct {
					Changes struct {
						Revision uint64
						Changes  int
					}
				}
				Errors []any
			}
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("message %.200s: %w", b, err)
		}
		switch m.Type {
		case "ping":
			if err := send(map[string]any{"type": "pong"}); err != nil {
				return err
			}
		case "next":
			if len(m.Payload.Errors) > 0 || m.Payload.Data.Changes.Changes == 0 {
				return fmt.Errorf("next: %s", b)
			}
			s.mu.Lock()
			s.revs = append(s.revs, sentRevision{m.Payload.Data.Changes.Revision, m.Payload.Data.Changes.Changes})
			s.mu.Unlock()
			s.received.Add(1)
		case "connection_ack", "pong":
		default:
			return fmt.Errorf("unexpected message %.200s", b)
		}
	}
}

// disorder returns where what the subscriber received is not strictly increasing (a revision sent twice or out
// of order); whether any is missing is checked against the store.
func (s *subscriber) disorder() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i := 1; i < len(s.revs); i++ {
		if s.revs[i].rev <= s.revs[i-1].rev {
			out = append(out, fmt.Sprintf("%d after %d", s.revs[i].rev, s.revs[i-1].rev))
		}
	}
	return out
}

func (s *subscriber) span() (first, last uint64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.revs) == 0 {
		return 0, 0, 0
	}
	return s.revs[0].rev, s.revs[len(s.revs)-1].rev, len(s.revs)
}
