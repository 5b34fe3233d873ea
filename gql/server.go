package gql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kiem-io/kiem/gql/auth"
)

// ServeOptions say how the API is served: who may ask, and how much one request may ask for.
type ServeOptions struct {
	// Auth authenticates every request and websocket connection. Required: use auth.Anonymous only where the
	// operator asked for no authentication.
	Auth auth.Authenticator
	// Introspection allows schema introspection (off by default: the schema is documented, and a closed schema
	// tells a prober less).
	Introspection bool
	// MaxDepth and MaxCost bound one operation (see limits); MaxBodyBytes one request body; Timeout one query or
	// mutation (subscriptions last as long as their connection).
	MaxDepth     int
	MaxCost      int
	MaxBodyBytes int64
	Timeout      time.Duration
	// OriginPatterns are the hosts (path.Match patterns) whose pages may open websockets besides the server's
	// own; browsers' cross-origin websockets are otherwise refused.
	OriginPatterns []string
}

// Defaults of ServeOptions.
const (
	DefaultMaxDepth     = 15
	DefaultMaxCost      = 250_000
	DefaultMaxBodyBytes = 1 << 20
	DefaultTimeout      = 30 * time.Second
)

func (o *ServeOptions) defaults() {
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxCost == 0 {
		o.MaxCost = DefaultMaxCost
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
}

// NewHandler returns the /graphql handler: queries and mutations over GET and POST, subscriptions over websocket
// (graphql-transport-ws and the legacy graphql-ws), every one authenticated.
func NewHandler(opts Options, so ServeOptions) (http.Handler, error) {
	if opts.Graph == nil {
		return nil, errors.New("gql: no graph")
	}
	if so.Auth == nil {
		return nil, errors.New("gql: no authenticator (use auth.Anonymous to serve without authentication)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	so.defaults()
	log := opts.Logger
	srv := handler.New(NewExecutableSchema(Config{Resolvers: &Resolver{opts: opts}}))
	srv.AddTransport(transport.Websocket{
		KeepAlivePingInterval: 15 * time.Second,
		InitTimeout:           10 * time.Second,
		InitFunc:              auth.WebsocketInit(so.Auth, log),
		PayloadReadLimit:      &so.MaxBodyBytes,
		Implementation: transport.CoderWebsocketImplementation{
			AcceptOptions: coderws.AcceptOptions{OriginPatterns: so.OriginPatterns},
		},
	})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(20_000)
	srv.SetDisableSuggestion(true)
	if so.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.AroundOperations(refuseSubscriptionsOverHTTP)
	srv.Use(auth.Guard{Log: log})
	srv.Use(limits{maxDepth: so.MaxDepth, maxCost: so.MaxCost})
	srv.SetErrorPresenter(presentError(log))
	srv.SetRecoverFunc(recoverPanic(log))
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		return next(withRequestViews(ctx))
	})
	return auth.Middleware(so.Auth, log, bounded(so, srv)), nil
}

// bounded limits the body and the time of a request; websocket upgrades keep their connection's lifetime. Every
// other answer is JSON, gqlgen's refusal of a request no transport takes (a POST that is not application/json)
// included, which it sends without a Content-Type.
func bounded(so ServeOptions, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.ContentLength > so.MaxBodyBytes {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"errors":[{"message":"request body of %d bytes exceeds the limit of %d","extensions":{"code":"REQUEST_TOO_LARGE"}}]}`+"\n", r.ContentLength, so.MaxBodyBytes)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, so.MaxBodyBytes)
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), overHTTPKey{}, true), so.Timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// overHTTPKey marks the context of a request answered over plain HTTP (GET or POST), not a websocket.
type overHTTPKey struct{}

// refuseSubscriptionsOverHTTP refuses a subscription sent over GET or POST at once. gqlgen's POST transport would
// run it and wait for its first event, holding the request until the request timeout, then answer null (found
// by FuzzGraphQL, testdata/fuzz/FuzzGraphQL/subscription-over-post).
func refuseSubscriptionsOverHTTP(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if plain, _ := ctx.Value(overHTTPKey{}).(bool); plain && oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
			Message:    "subscriptions are served over websocket (graphql-transport-ws or graphql-ws), not over GET or POST",
			Extensions: map[string]any{"code": "BAD_REQUEST"},
		}}})
	}
	return next(ctx)
}
