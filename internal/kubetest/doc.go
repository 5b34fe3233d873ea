// Package kubetest runs a real etcd, kube-apiserver and kube-controller-manager on loopback for tests.
//
// The binaries come from hack/kube-binaries.sh (`make kube-binaries`), which builds Kubernetes v1.33.13 from the
// Go module proxy into a per-user cache; see /work/shared/KUBE-APISERVER.md for the measured facts behind the
// flags used here. A cluster authenticates users by bearer token (a token file, so each test can name its own
// users and groups), authorizes with RBAC only, and by default runs the controller manager with the
// clusterrole-aggregation and namespace controllers, without which admin/edit/view have no rules and deleted
// namespaces never go away. With Options.Audit the apiserver also sends audit events (DefaultAuditPolicy, the
// policy kiem ships in deploy/audit) to a webhook, a log file, or both.
//
// Every process runs in its own process group, is killed as a group, and dies with the test binary
// (PR_SET_PDEATHSIG), so neither a failed test, a panic nor a `go test` timeout leaves processes behind.
//
// Import rule: test support only. It may import client-go (see internal/archtest); production packages never
// import kubetest.
package kubetest
