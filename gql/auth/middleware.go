package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// Websocket close codes sent when connection_init is refused. graphql-ws treats 4401 as fatal and does not
// reconnect; 4403 and 1013 it retries with backoff, counted against its retry limit (a forbidden user may be
// granted a role; an unreachable apiserver may come back). gqlgen's default, 1000, makes it reconnect at once,
// forever.
const (
	CloseUnauthorized = 4401
	CloseForbidden    = 4403
	CloseTryAgain     = 1013
)

// refusal is how a failed authentication is answered, on HTTP and on a websocket.
type refusal struct {
	status   int
	code     string // extensions.code of the GraphQL-shaped error body
	reason   string // the log's short reason
	message  string // what the client reads: no internals
	wsCode   int
	wsReason string
}

// classify maps an Authenticator's error to its answer. Errors of no known kind are taken as "could not
// decide" (503): a custom authenticator's failure must not read as a verdict on the token.
func classify(err error) refusal {
	switch {
	case errors.Is(err, ErrNoToken):
		return refusal{http.StatusUnauthorized, "UNAUTHENTICATED", "no_token",
			"authentication required: send the header Authorization: Bearer <token>", CloseUnauthorized, "Unauthorized"}
	case errors.Is(err, ErrUnauthenticated):
		return refusal{http.StatusUnauthorized, "UNAUTHENTICATED", "unauthenticated",
			"invalid or expired token", CloseUnauthorized, "Unauthorized"}
	case errors.Is(err, ErrForbidden):
		return refusal{http.StatusForbidden, "FORBIDDEN", "forbidden",
			"forbidden: you are authenticated but have no kiem role (viewer or admin)", CloseForbidden, "Forbidden"}
	default:
		return refusal{http.StatusServiceUnavailable, "UNAVAILABLE", "unavailable",
			"authentication is temporarily unavailable; try again later", CloseTryAgain, "Try again later"}
	}
}

// tokenInQuery answers a request that carries a token in its URL, where proxies, browser history and access
// logs would keep it.
var tokenInQuery = refusal{http.StatusBadRequest, "BAD_REQUEST", "token_in_query",
	"tokens are not accepted in the URL; send the header Authorization: Bearer <token>", 0, ""}

// Middleware authenticates every request with a and passes it on with the Principal in its context
// (PrincipalFrom). It answers 401 (with WWW-Authenticate) for a missing or refused token, 403 for an identity
// without a role, 503 when a could not decide, and 400 for a URL carrying token= or access_token=, always
// with a GraphQL-shaped JSON body, and logs each refusal without the token.
//
// A websocket upgrade without an Authorization header is passed on unauthenticated, because browsers cannot
// set headers on websockets: the transport must authenticate connection_init with WebsocketInit. With the
// header, the upgrade is authenticated like any request and WebsocketInit accepts an init without a token.
//
// Only roles that read (viewer, admin) pass: an audit-writer token is refused with 403.
func Middleware(a Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	return guard(a, log, Role.Reads, next)
}

// AuditMiddleware is Middleware for the audit endpoint: only roles that post audit events (audit-writer, admin)
// pass. A websocket upgrade gets no exception.
func AuditMiddleware(a Authenticator, log *slog.Logger, next http.Handler) http.Handler {
	return guard(a, log, Role.WritesAudit, next)
}

// refusal for a principal whose role does not cover the endpoint.
func wrongRole(p Principal) refusal {
	msg := "forbidden: posting audit events needs the audit-writer or admin role; you are " + p.Role.String()
	if !p.Role.Reads() {
		msg = "forbidden: the " + p.Role.String() + " role may not read kiem's data; it may only post audit events"
	}
	return refusal{http.StatusForbidden, "FORBIDDEN", "wrong_role", msg, CloseForbidden, "Forbidden"}
}

func guard(a Authenticator, log *slog.Logger, allowed func(Role) bool, next http.Handler) http.Handler {
	audit := !allowed(RoleViewer)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), remoteKey{}, r.RemoteAddr)
		if hasTokenParam(r) {
			refuse(ctx, w, r, log, tokenInQuery, nil)
			return
		}
		header := r.Header.Get("Authorization")
		if header == "" && !audit && isWebsocketUpgrade(r) {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		p, err := a.Authenticate(ctx, bearerToken(header))
		if err != nil {
			refuse(ctx, w, r, log, classify(err), err)
			return
		}
		if !allowed(p.Role) {
			refuse(ctx, w, r, log, wrongRole(p), ErrForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(ctx, p)))
	})
}

// WebsocketInit returns a gqlgen transport.Websocket InitFunc that authenticates connection_init with a. The
// token comes from the payload's Authorization ("Bearer <token>" or the bare token); without one, a principal
// that Middleware took from the upgrade request's header is kept. A refusal closes the connection with
// CloseUnauthorized, CloseForbidden or CloseTryAgain and a short reason, so clients stop rather than
// reconnect in a loop.
func WebsocketInit(a Authenticator, log *slog.Logger) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		raw := strings.TrimSpace(payload.Authorization())
		if raw == "" {
			if _, ok := PrincipalFrom(ctx); ok {
				return ctx, nil, nil
			}
		}
		token := raw
		if t, ok := cutBearer(raw); ok {
			token = t
		}
		p, err := a.Authenticate(ctx, token)
		if err != nil {
			rf := classify(err)
			logRefusal(ctx, log, rf, err, "transport", "websocket", "close_code", rf.wsCode)
			ctx = transport.WithWebsocketCloseCode(ctx, rf.wsCode)
			ctx = transport.AppendCloseReason(ctx, rf.wsReason)
			return ctx, nil, errors.New(rf.message)
		}
		if !p.Role.Reads() {
			rf := wrongRole(p)
			logRefusal(ctx, log, rf, ErrForbidden, "transport", "websocket", "close_code", rf.wsCode)
			ctx = transport.WithWebsocketCloseCode(ctx, rf.wsCode)
			ctx = transport.AppendCloseReason(ctx, rf.wsReason)
			return ctx, nil, errors.New(rf.message)
		}
		return WithPrincipal(ctx, p), nil, nil
	}
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header value, or "" for anything else,
// which the authenticator then reports as ErrNoToken.
func bearerToken(header string) string {
	t, _ := cutBearer(strings.TrimSpace(header))
	return t
}

// cutBearer strips the Bearer scheme, which RFC 7235 makes case-insensitive.
func cutBearer(v string) (string, bool) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// hasTokenParam reports whether the URL carries something named like a token, in any letter case.
func hasTokenParam(r *http.Request) bool {
	for k := range r.URL.Query() {
		if strings.EqualFold(k, "token") || strings.EqualFold(k, "access_token") {
			return true
		}
	}
	return false
}

// isWebsocketUpgrade reports whether r is a websocket handshake (RFC 6455 §4.1), strictly: the exemption from
// the header must not let a POST with a stray Upgrade header through. Guard refuses any operation without a
// principal all the same.
func isWebsocketUpgrade(r *http.Request) bool {
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		r.Header.Get("Sec-WebSocket-Key") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// refuse writes rf as a GraphQL-shaped error response and logs it.
func refuse(ctx context.Context, w http.ResponseWriter, r *http.Request, log *slog.Logger, rf refusal, err error) {
	logRefusal(ctx, log, rf, err, "transport", "http", "method", r.Method, "path", r.URL.Path, "status", rf.status)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	switch rf.status {
	case http.StatusUnauthorized:
		if rf.reason == "no_token" {
			h.Set("WWW-Authenticate", `Bearer realm="kiem"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="kiem", error="invalid_token"`)
		}
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "5")
	}
	w.WriteHeader(rf.status)
	_ = json.NewEncoder(w).Encode(errorBody(rf.message, rf.code))
}

// errorBody is {"errors":[{"message":..., "extensions":{"code":...}}]}, which GraphQL clients display.
func errorBody(message, code string) any {
	type ext struct {
		Code string `json:"code"`
	}
	type gqlError struct {
		Message    string `json:"message"`
		Extensions ext    `json:"extensions"`
	}
	return struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{message, ext{code}}}}
}

// logRefusal logs a refused authentication: routine ones (no token yet) at info, refused credentials at warn,
// failures to decide at error. err's text is safe to log: authenticators never put tokens in errors.
func logRefusal(ctx context.Context, log *slog.Logger, rf refusal, err error, attrs ...any) {
	level := slog.LevelWarn
	switch rf.reason {
	case "no_token":
		level = slog.LevelInfo
	case "unavailable":
		level = slog.LevelError
	}
	attrs = append(attrs, keyRemote, remoteFrom(ctx), keyReason, rf.reason)
	if err != nil {
		attrs = append(attrs, keyErr, err.Error())
	}
	log.Log(ctx, level, "authentication refused", attrs...)
}

type remoteKey struct{}

// remoteFrom returns the client address Middleware saw, or "" outside a request.
func remoteFrom(ctx context.Context) string {
	s, _ := ctx.Value(remoteKey{}).(string)
	return s
}
