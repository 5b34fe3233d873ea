// Package load holds kiem's load-and-faults test: the real kiem binary indexes a synthetic cluster
// (internal/synthkube, a Kubernetes API server over HTTP that the test drives at 1,000 changes per second) while
// 50 GraphQL clients and two subscribers query it, and the test injects faults on both sides: watch streams cut,
// the watch history compacted (every informer relists), kiem killed with SIGKILL and restarted mid-run, and
// malformed, unauthenticated, oversized and abandoned requests among the clients'. It asserts no errors, bounded
// memory and no lost revision; see load_test.go for exactly what.
//
// `make test-load` runs it for 60 s in CI; `make soak` runs it for longer (docs/operations.md). It is kept out of
// the -race run of `go test ./...` in `make test-unit`: the figures it prints are those of a normal build, and
// kiem is a separate process the race detector would not see anyway.
package load
