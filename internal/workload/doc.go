// Package workload generates kiem's reference workloads (ARCHITECTURE.md §8) and writes object sets as the
// `kind: List` snapshots that every --snapshot flag reads.
//
// Generate adds a seeded, deterministic synthetic multi-tenant cluster to a base (normally the real kubeadm v1.33
// policy, see internal/fixtures): platform and team namespaces, ServiceAccounts, Roles with core, named and CRD
// groups, subresources and resourceNames, RoleBindings and ClusterRoleBindings to local, built-in and custom roles
// with users, groups and ServiceAccounts in the shapes real identity providers produce, custom and aggregated
// ClusterRoles (aggregated ones carry only their aggregationRule, as manifests ship them), and pods owned by
// ReplicaSets, StatefulSets, DaemonSets and Jobs. L and S are the sizes the benchmarks use. Shares such as "5% of
// ClusterRoles are aggregated" and "0.5% of bindings reference a missing role" are written next to the code that
// draws them.
//
// Import rule: workload imports graph and Kubernetes API types only; it is used by tests, benchmarks, the demo
// and snapshot export, never by graph.
package workload
