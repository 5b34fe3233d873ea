package auth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/go-cmp/cmp"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// logLines parses JSON log output, dropping time (it varies) and duration (checked separately).
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		delete(m, "time")
		if d, ok := m["duration"]; ok {
			if n, _ := d.(float64); n < 0 {
				t.Errorf("negative duration in %q", l)
			}
			m["duration"] = "set"
		}
		out = append(out, m)
	}
	return out
}

// requestCtx is the context of a request that passed Middleware as p, from 192.0.2.7.
func requestCtx(p Principal) context.Context {
	return WithPrincipal(context.WithValue(context.Background(), remoteKey{}, "192.0.2.7:5555"), p)
}

var ann = Principal{User: "ann", Role: RoleAdmin, Mode: ModeTokenFile}

func TestLogOperation(t *testing.T) {
	ctx := requestCtx(ann)
	log, logs := newLog()
	LogOperation(ctx, log, OperationInfo{Type: "query", Name: "Who", Duration: time.Millisecond})
	LogOperation(ctx, log, OperationInfo{Type: "mutation", Name: "Save", Errors: 2, Duration: time.Millisecond})
	LogOperation(ctx, log, OperationInfo{Type: "mutation", Refused: "needs admin"})
	LogOperation(ctx, log, OperationInfo{Type: "subscription", Name: "Changes", Started: true})
	LogOperation(context.Background(), log, OperationInfo{Type: "query", Refused: "authentication required"})

	who := map[string]any{"level": "INFO", "msg": "graphql operation", "user": "ann", "role": "admin", "auth": "token-file", "remote": "192.0.2.7:5555"}
	line := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range who {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	want := []map[string]any{
		line("op", "query", "name", "Who", "outcome", "ok", "errors", 0.0, "duration", "set"),
		line("op", "mutation", "name", "Save", "outcome", "error", "errors", 2.0, "duration", "set"),
		line("op", "mutation", "name", "", "outcome", "refused", "reason", "needs admin"),
		line("op", "subscription", "name", "Changes", "outcome", "started"),
		line("user", "", "role", "none", "auth", "", "remote", "", "op", "query", "name", "", "outcome", "refused", "reason", "authentication required"),
	}
	if diff := cmp.Diff(want, logLines(t, logs.String())); diff != "" {
		t.Errorf("audit lines (-want +got):\n%s", diff)
	}
}

// opCtx is ctx inside gqlgen's executor, running an operation of kind typ named name.
func opCtx(ctx context.Context, typ ast.Operation, name string) context.Context {
	return graphql.WithOperationContext(ctx, &graphql.OperationContext{
		Operation: &ast.OperationDefinition{Operation: typ, Name: name},
	})
}

// responses returns an operation handler producing resps in turn, then nil; ran reports whether it was called.
func responses(ran *bool, resps ...*graphql.Response) graphql.OperationHandler {
	return func(context.Context) graphql.ResponseHandler {
		*ran = true
		i := 0
		return func(context.Context) *graphql.Response {
			if i == len(resps) {
				return nil
			}
			i++
			return resps[i-1]
		}
	}
}

// drain calls h until it returns nil (at most 10 times) and returns what it produced.
func drain(t *testing.T, ctx context.Context, h graphql.ResponseHandler) []*graphql.Response {
	t.Helper()
	var out []*graphql.Response
	for range 10 {
		r := h(ctx)
		if r == nil {
			return out
		}
		out = append(out, r)
	}
	t.Fatal("response handler never ends: a refusal must be a OneShot")
	return nil
}

func TestGuard(t *testing.T) {
	vic := Principal{User: "vic", Role: RoleViewer, Mode: ModeKubernetes}
	ok := &graphql.Response{Data: []byte(`{}`)}
	withErr := &graphql.Response{Errors: gqlerror.List{{Message: "boom"}}}
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		typ      ast.Operation
		resps    []*graphql.Response
		wantRun  bool
		wantErr  string // the refusal's message
		wantCode string
		wantLog  []map[string]any // only the keys given are compared
	}{
		{name: "viewer query", ctx: requestCtx(vic), typ: ast.Query, resps: []*graphql.Response{ok}, wantRun: true,
			wantLog: []map[string]any{{"user": "vic", "op": "query", "name": "Op", "outcome": "ok", "errors": 0.0}}},
		{name: "viewer mutation", ctx: requestCtx(vic), typ: ast.Mutation, wantErr: "forbidden: mutations need the admin role; you are viewer",
			wantCode: "FORBIDDEN", wantLog: []map[string]any{{"user": "vic", "op": "mutation", "outcome": "refused", "reason": "forbidden: mutations need the admin role; you are viewer"}}},
		{name: "admin mutation with errors", ctx: requestCtx(ann), typ: ast.Mutation, resps: []*graphql.Response{withErr}, wantRun: true,
			wantLog: []map[string]any{{"user": "ann", "op": "mutation", "outcome": "error", "errors": 1.0}}},
		{name: "no principal", ctx: context.Background(), typ: ast.Query, wantErr: "authentication required", wantCode: "UNAUTHENTICATED",
			wantLog: []map[string]any{{"user": "", "outcome": "refused", "reason": "authentication required"}}},
		{name: "subscription", ctx: requestCtx(vic), typ: ast.Subscription, resps: []*graphql.Response{ok, withErr, withErr}, wantRun: true,
			wantLog: []map[string]any{
				{"op": "subscription", "outcome": "started"},
				{"op": "subscription", "outcome": "error", "errors": 2.0, "duration": "set"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newLog()
			ctx := opCtx(tc.ctx, tc.typ, "Op")
			var ran bool
			got := drain(t, ctx, Guard{Log: log}.InterceptOperation(ctx, responses(&ran, tc.resps...)))
			if ran != tc.wantRun {
				t.Errorf("operation ran=%v, want %v", ran, tc.wantRun)
			}
			if tc.wantErr != "" {
				if len(got) != 1 || len(got[0].Errors) != 1 || got[0].Errors[0].Message != tc.wantErr ||
					got[0].Errors[0].Extensions["code"] != tc.wantCode {
					t.Errorf("responses %+v, want one error %q with code %s", got, tc.wantErr, tc.wantCode)
				}
			} else if len(got) != len(tc.resps) {
				t.Errorf("%d responses, want %d", len(got), len(tc.resps))
			}
			lines := logLines(t, logs.String())
			if len(lines) != len(tc.wantLog) {
				t.Fatalf("%d log lines, want %d: %s", len(lines), len(tc.wantLog), logs)
			}
			for i, w := range tc.wantLog {
				for k, v := range w {
					if lines[i][k] != v {
						t.Errorf("line %d: %s=%v, want %v (%v)", i, k, lines[i][k], v, lines[i])
					}
				}
			}
		})
	}
}

func TestGuardLogsOnceForQueries(t *testing.T) {
	// The POST transport calls the handler once; a caller that asks again must not log a second line.
	log, logs := newLog()
	ctx := opCtx(requestCtx(ann), ast.Query, "Q")
	var ran bool
	h := Guard{Log: log}.InterceptOperation(ctx, responses(&ran, &graphql.Response{Data: []byte(`{}`)}))
	h(ctx)
	if n := len(logLines(t, logs.String())); n != 1 {
		t.Fatalf("after the response: %d lines, want 1", n)
	}
	h(ctx)
	if n := len(logLines(t, logs.String())); n != 1 {
		t.Errorf("after the end of the stream: %d lines, want 1", n)
	}
}
