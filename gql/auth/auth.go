package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Role is what a principal may do with kiem. The zero value is no role at all, so a Principal that was never
// filled in grants nothing.
type Role int

// Roles, weakest first: admin includes everything viewer may do.
const (
	// RoleViewer may run queries and subscriptions.
	RoleViewer Role = iota + 1
	// RoleAdmin may also run mutations (saved filters, sinks, suppressions) and post audit events.
	RoleAdmin
	// RoleAuditWriter may post audit events (the kube-apiserver's audit webhook) and nothing else: the token
	// sits in a file on the control plane and must not read who can do what.
	RoleAuditWriter
)

// Reads reports whether the role may read kiem's data (queries, subscriptions, metrics, backups for admins).
func (r Role) Reads() bool { return r == RoleViewer || r == RoleAdmin }

// WritesAudit reports whether the role may post audit events.
func (r Role) WritesAudit() bool { return r == RoleAuditWriter || r == RoleAdmin }

// String returns the role's name as the token file and the logs spell it: "viewer", "admin", or "none".
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleAdmin:
		return "admin"
	case RoleAuditWriter:
		return "audit-writer"
	default:
		return "none"
	}
}

// ParseRole parses "viewer", "admin" or "audit-writer", ignoring case.
func ParseRole(s string) (Role, error) {
	switch {
	case strings.EqualFold(s, "viewer"):
		return RoleViewer, nil
	case strings.EqualFold(s, "admin"):
		return RoleAdmin, nil
	case strings.EqualFold(s, "audit-writer"):
		return RoleAuditWriter, nil
	}
	return 0, fmt.Errorf("unknown role %q (want viewer, admin or audit-writer)", s)
}

// Authentication modes, as Principal.Mode and the audit log name them.
const (
	ModeTokenFile  = "token-file"
	ModeKubernetes = "kubernetes"
	ModeStatic     = "static"
	ModeNone       = "none"
)

// Principal is an authenticated caller.
type Principal struct {
	User string
	// Groups are the caller's groups where the mode knows them (kubernetes); nil otherwise.
	Groups []string
	Role   Role
	// Mode is the authentication mode that admitted the caller (ModeTokenFile, ...), for the audit log.
	Mode string
}

// Authenticator turns a bearer token into a Principal.
type Authenticator interface {
	// Authenticate returns ErrNoToken for an empty token, an error wrapping ErrUnauthenticated for a token it
	// does not accept, ErrForbidden for an identity without a kiem role, and an error wrapping ErrUnavailable
	// when it could not decide (the apiserver is unreachable, say). Errors never contain the token.
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// Conditions an Authenticator reports; the middleware maps them to HTTP statuses and websocket close codes.
var (
	ErrNoToken         = errors.New("no bearer token")
	ErrUnauthenticated = errors.New("invalid or expired token")
	ErrForbidden       = errors.New("forbidden")
	ErrUnavailable     = errors.New("authentication unavailable")
)

type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal the middleware (or WebsocketInit) stored in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// RequireAdmin returns nil if ctx carries an admin principal, and otherwise an error wrapping ErrForbidden
// whose message tells the caller which role they have; it is meant to be shown to the client as is.
func RequireAdmin(ctx context.Context) error {
	p, ok := PrincipalFrom(ctx)
	switch {
	case !ok:
		return fmt.Errorf("%w: mutations need the admin role; the request is not authenticated", ErrForbidden)
	case p.Role != RoleAdmin:
		return fmt.Errorf("%w: mutations need the admin role; you are %s", ErrForbidden, p.Role)
	}
	return nil
}

// tokenHash is the SHA-256 of a token. Tables and caches are keyed by it, so no token is held in memory longer
// than a request and a lookup's timing depends on the hash, never on how much of a secret matched.
type tokenHash [sha256.Size]byte

func hashToken(token string) tokenHash { return sha256.Sum256([]byte(token)) }

// Static admits exactly one token, as one user with one role: the demo's printed admin token.
type Static struct {
	hash tokenHash
	p    Principal
}

// NewStatic returns an authenticator for one token. The token is kept only as its hash.
func NewStatic(token, user string, role Role) (*Static, error) {
	if token == "" {
		return nil, errors.New("static authenticator: empty token")
	}
	if user == "" {
		return nil, errors.New("static authenticator: empty user")
	}
	if role != RoleViewer && role != RoleAdmin {
		return nil, fmt.Errorf("static authenticator: invalid role %d", role)
	}
	return &Static{hash: hashToken(token), p: Principal{User: user, Role: role, Mode: ModeStatic}}, nil
}

// Authenticate implements Authenticator.
func (s *Static) Authenticate(_ context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	h := hashToken(token)
	if subtle.ConstantTimeCompare(h[:], s.hash[:]) != 1 {
		return Principal{}, ErrUnauthenticated
	}
	return s.p, nil
}

// Anonymous admits every request, with or without a token, as the admin "anonymous". It exists for
// --insecure-no-auth, which the caller must allow only on a loopback listener (see IsLoopback).
type Anonymous struct{}

// Authenticate implements Authenticator.
func (Anonymous) Authenticate(context.Context, string) (Principal, error) {
	return Principal{User: "anonymous", Role: RoleAdmin, Mode: ModeNone}, nil
}

// GenerateToken returns 32 random bytes, base64url-encoded without padding (43 characters): a token that
// survives shells, CSV and HTTP headers unquoted.
func GenerateToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// IsLoopback reports whether a listen address (host:port, or a bare host) can be reached only from this
// machine: a loopback IP or the name "localhost". An empty host, 0.0.0.0 and :: listen on every interface;
// other names are refused rather than resolved, because what they resolve to may change after the check.
func IsLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
