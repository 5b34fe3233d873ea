package gql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// userError is an error in what the caller asked, whose message is safe and useful to show them. Every other
// error a resolver returns is internal: logged, and shown only as "internal error".
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func userErrorf(format string, args ...any) error { return &userError{fmt.Sprintf(format, args...)} }

// presentError is the server's error presenter: the caller sees what they can act on and never the internals
// (paths of the store, library messages, stack traces).
func presentError(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var ue *userError
		var ge *gqlerror.Error
		switch {
		case errors.As(err, &ue):
			e := graphql.DefaultErrorPresenter(ctx, ue)
			e.Message = ue.msg
			e.Extensions = map[string]any{"code": "BAD_USER_INPUT"}
			return e
		case errors.Is(err, context.DeadlineExceeded):
			e := graphql.DefaultErrorPresenter(ctx, errors.New("request timed out"))
			e.Extensions = map[string]any{"code": "TIMEOUT"}
			return e
		case errors.Is(err, context.Canceled):
			return graphql.DefaultErrorPresenter(ctx, errors.New("request canceled"))
		case errors.As(err, &ge) && ge.Err == nil:
			// gqlgen's own errors: parse, validation, limits, argument coercion.
			return graphql.DefaultErrorPresenter(ctx, err)
		case introspecting(ctx):
			// The executor's own refusal of __schema and __type when introspection is off.
			return graphql.DefaultErrorPresenter(ctx, err)
		}
		log.ErrorContext(ctx, "graphql resolver failed", "path", graphql.GetPath(ctx).String(), "err", err)
		e := graphql.DefaultErrorPresenter(ctx, errors.New("internal error (logged on the server)"))
		e.Extensions = map[string]any{"code": "INTERNAL"}
		return e
	}
}

// recoverPanic turns a panic in a resolver into an internal error, logged with its value.
func recoverPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "graphql resolver panicked", "path", graphql.GetPath(ctx).String(), "panic", fmt.Sprint(p))
		return errors.New("internal error (logged on the server)")
	}
}

func introspecting(ctx context.Context) bool {
	fc := graphql.GetFieldContext(ctx)
	return fc != nil && strings.HasPrefix(fc.Field.Name, "__")
}
