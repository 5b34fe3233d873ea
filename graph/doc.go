// Package graph is kiem's domain core: the model of Kubernetes identities and RBAC objects, the exact RBAC
// semantics of the kube-apiserver's authorizer, and the indexed snapshot that answers Can, WhoCan and
// EffectivePermissions.
//
// Import rule: graph imports no other kiem package. It may import the standard library, k8s.io/api and
// k8s.io/apimachinery types, gonum and (later) badger. client-go, gqlgen and HTTP never appear here.
//
// Semantics follow ARCHITECTURE.md §3 and the upstream RBAC authorizer to the letter; where the upstream
// behaviour is surprising (resourceNames: [""] matching unnamed requests, "*/sub" matching any resource's
// subresource, nonResourceURL prefixes trimmed of every trailing '*'), the code says so next to the rule.
package graph
