// Package graph is kiem's domain core: the model of Kubernetes identities and RBAC objects, the exact RBAC
// semantics of the kube-apiserver's authorizer, the indexed, sharded Snapshot that answers Can, WhoCan and
// EffectivePermissions and follows changes incrementally (Apply), the versioned Store on Badger (every change a
// revision; any retained revision readable), and Live, which ties the two into the versioned graph with Diff.
//
// Import rule: graph imports no other kiem package. It may import the standard library, k8s.io/api and
// k8s.io/apimachinery types, gonum and badger; Badger types never leave the package. client-go, gqlgen and HTTP
// never appear here.
//
// Semantics follow ARCHITECTURE.md §3 and the upstream RBAC authorizer to the letter; where the upstream
// behaviour is surprising (resourceNames: [""] matching unnamed requests, "*/sub" matching any resource's
// subresource, nonResourceURL prefixes trimmed of every trailing '*'), the code says so next to the rule.
package graph
