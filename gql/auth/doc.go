// Package auth authenticates and authorizes callers of kiem's GraphQL API and writes its audit trail.
//
// Every request carries a bearer token (Authorization: Bearer <token>; on a websocket, the connection_init
// payload's Authorization) that an Authenticator turns into a Principal: a user and a Role, viewer (queries,
// subscriptions) or admin (also mutations). Authenticators:
//
//   - TokenFile: a file of TOKEN,USER,ROLE lines, tokens plain or as sha256:<hex>, reloadable.
//   - Delegate: kubernetes mode. A TokenReview says who the token belongs to; SubjectAccessReviews for verb
//     update, then get, on the virtual resource graph in API group kiem.io decide admin, viewer or 403, as
//     kube-rbac-proxy does. Outcomes are cached briefly per token hash.
//   - Static: one token, for the demo's printed admin token.
//   - Anonymous: no authentication, admin for everybody; only for an explicit insecure flag on loopback.
//
// Middleware guards HTTP, WebsocketInit guards websocket connections, Guard (a gqlgen extension) refuses
// mutations by viewers and logs every operation (LogOperation). Tokens never appear in errors or logs, and
// are never accepted from a URL.
//
// Import rule: auth imports gqlgen and the standard library only. The apiserver is reached through the
// TokenReviewer and AccessReviewer interfaces, which cmd/kiem implements with client-go; neither client-go nor
// k8s.io/api types appear here.
package auth
