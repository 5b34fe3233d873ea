package auth

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Log keys shared by the audit line and the refusal line, so one query finds both.
const (
	keyUser     = "user"
	keyRole     = "role"
	keyMode     = "auth"
	keyRemote   = "remote"
	keyOp       = "op"
	keyName     = "name"
	keyOutcome  = "outcome"
	keyErrors   = "errors"
	keyReason   = "reason"
	keyDuration = "duration"
	keyErr      = "err"
)

// Outcomes of an audited operation.
const (
	OutcomeOK      = "ok"
	OutcomeError   = "error"
	OutcomeRefused = "refused"
	// OutcomeStarted marks the line logged when a subscription begins; another follows when it ends.
	OutcomeStarted = "started"
)

// OperationInfo is what the audit line records about one GraphQL operation.
type OperationInfo struct {
	// Type is query, mutation or subscription.
	Type string
	// Name is the operation's name; empty for anonymous operations.
	Name string
	// Errors counts the errors in the responses.
	Errors int
	// Refused, if set, is why the operation was not run; it makes the outcome "refused".
	Refused string
	// Started marks a subscription that has just begun.
	Started  bool
	Duration time.Duration
}

// LogOperation writes the audit line of one operation at info: who (user, role, auth mode, remote address,
// from ctx), what (op, name) and how it went (outcome, errors, reason, duration).
func LogOperation(ctx context.Context, log *slog.Logger, op OperationInfo) {
	p, _ := PrincipalFrom(ctx)
	outcome := OutcomeOK
	switch {
	case op.Refused != "":
		outcome = OutcomeRefused
	case op.Started:
		outcome = OutcomeStarted
	case op.Errors > 0:
		outcome = OutcomeError
	}
	attrs := []slog.Attr{
		slog.String(keyUser, p.User), slog.String(keyRole, p.Role.String()), slog.String(keyMode, p.Mode),
		slog.String(keyRemote, remoteFrom(ctx)),
		slog.String(keyOp, op.Type), slog.String(keyName, op.Name), slog.String(keyOutcome, outcome),
	}
	switch outcome {
	case OutcomeRefused:
		attrs = append(attrs, slog.String(keyReason, op.Refused))
	case OutcomeOK, OutcomeError:
		attrs = append(attrs, slog.Int(keyErrors, op.Errors), slog.Duration(keyDuration, op.Duration))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "graphql operation", attrs...)
}

// errNoPrincipal refuses an operation that reached the executor without passing Middleware or WebsocketInit.
var errNoPrincipal = errors.New("authentication required")

// Guard is a gqlgen handler extension (srv.Use(auth.Guard{Log: log})) that enforces roles per operation and
// writes the audit line of each: an operation without a principal is refused (so a route that forgot
// Middleware fails closed), a mutation needs RoleAdmin, and everything else runs and is logged when its
// last response is out (a subscription also when it starts).
type Guard struct {
	Log *slog.Logger
}

var (
	_ graphql.HandlerExtension     = Guard{}
	_ graphql.OperationInterceptor = Guard{}
)

// ExtensionName implements graphql.HandlerExtension.
func (Guard) ExtensionName() string { return "KiemAuthGuard" }

// Validate implements graphql.HandlerExtension.
func (Guard) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation implements graphql.OperationInterceptor.
func (g Guard) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil {
		return next(ctx)
	}
	op := OperationInfo{Type: string(oc.Operation.Operation), Name: oc.Operation.Name}
	start := time.Now()
	refuse := func(code string, err error) graphql.ResponseHandler {
		op.Refused = err.Error()
		LogOperation(ctx, g.Log, op)
		// OneShot, or streaming transports ask for the next response forever.
		return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
			Message: err.Error(), Extensions: map[string]any{"code": code},
		}}})
	}
	if _, ok := PrincipalFrom(ctx); !ok {
		return refuse("UNAUTHENTICATED", errNoPrincipal)
	}
	if oc.Operation.Operation == ast.Mutation {
		if err := RequireAdmin(ctx); err != nil {
			return refuse("FORBIDDEN", err)
		}
	}
	responses := next(ctx)
	sub := oc.Operation.Operation == ast.Subscription
	if sub {
		LogOperation(ctx, g.Log, OperationInfo{Type: op.Type, Name: op.Name, Started: true})
	}
	logged := false
	return func(rctx context.Context) *graphql.Response {
		resp := responses(rctx)
		if resp != nil {
			op.Errors += len(resp.Errors)
		}
		// A query with @defer answers in parts; it is over when no more are announced.
		last := resp == nil || (!sub && (resp.HasNext == nil || !*resp.HasNext))
		if last && !logged {
			logged = true
			op.Duration = time.Since(start)
			LogOperation(ctx, g.Log, op)
		}
		return resp
	}
}
