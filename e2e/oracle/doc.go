// Package oracle proves kiem's RBAC engine (package github.com/kiem-io/kiem/graph) against the kube-apiserver's
// own authorization code, used as an oracle.
//
// The oracle is what `kube-apiserver --authorization-mode=RBAC` runs: the privileged-group authorizer for
// system:masters and the RBAC authorizer of k8s.io/kubernetes v1.33.13, joined by the apiserver's union
// authorizer, reading the policy from in-memory getters and listers. Aggregated ClusterRoles are filled in by a
// simulation of kube-controller-manager's clusterrole-aggregation controller (Aggregate), itself checked against
// the rules a live controller wrote into a real cluster.
//
// This is a module of its own so that k8s.io/kubernetes and its pinned staging modules never enter kiem's main
// go.mod. It imports only graph from kiem: the indexer and the command grow client-go, whose version this module
// replaces. The tests are the point of the package; see README.md for what they prove and how to run them.
package oracle
