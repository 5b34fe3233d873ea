// Package synthkube is a synthetic Kubernetes API server over real HTTP, for load and fault tests of kiem's
// informers. It serves the nine read-only resources kiem watches (core/v1 namespaces, serviceaccounts, pods,
// nodes, secrets; rbac.authorization.k8s.io/v1 roles, rolebindings, clusterroles, clusterrolebindings) from
// memory, and lets the test change them with Apply and Delete at rates a real kube-apiserver and etcd pair cannot
// sustain on a small machine, while injecting the faults informers must survive (BreakWatches, Compact).
//
// Test support only: it is not a kube-apiserver. There is no admission, no validation beyond what a client needs
// to be told no, no field managers or managedFields, no generation, no finalizers, graceful or cascading
// deletion (deleting a namespace leaves its objects), no label or field selectors (rejected with 400), no
// pagination, no protobuf or CBOR, no writes over HTTP. Every Apply is a write: unlike the real server, an
// unchanged object still gets a new resourceVersion and a MODIFIED event, so a load test's change count is
// exact.
//
// What it does implement, as far as client-go's reflector and kubectl can tell:
//   - one global resourceVersion counter, as etcd has; Apply assigns a UID and creationTimestamp on create
//     (keeping both on replace) and the new resourceVersion;
//   - LIST of a whole resource or of one namespace, always complete and at the current resourceVersion: limit is
//     ignored and no continue token is ever returned, which the API allows ("servers may choose not to support
//     the limit argument"); resourceVersionMatch=Exact is served only at the current resourceVersion (older ones
//     get 410, as after an etcd compaction), and a resourceVersion newer than the server's gets the 504 "Too
//     large resource version" error the real server gives;
//   - GET of one object, and enough discovery (/api, /apis, /api/v1, /apis/rbac.authorization.k8s.io/v1,
//     /version) for kubectl get;
//   - WATCH from a resourceVersion, streamed as newline-delimited JSON watch events in resourceVersion order;
//     synthetic ADDED events first when the watch starts from "" or "0" or asks for sendInitialEvents (the
//     WatchList protocol client-go's reflector uses by default since v0.35, ended by the BOOKMARK annotated
//     k8s.io/initial-events-end); periodic BOOKMARK events when allowed; timeoutSeconds; and the ERROR event
//     with a 410 Expired Status when the requested resourceVersion is older than the retained history;
//   - bearer token authentication, answering 401 with a Status body, over TLS (the kubeconfig carries the CA)
//     because clientcmd drops a kubeconfig's credentials for a plain-HTTP server; HTTP/2 like the real server;
//   - JSON only, whatever Accept asks for: client-go decodes by the response's Content-Type, and kubectl falls
//     back from the Table it asks for to printing the plain list.
//
// All watchers read one shared, bounded event log (Options.WatchHistory events; overflow forgets the oldest,
// which is the legitimate 410 path) with cursors of their own, so a slow watcher only delays itself and Apply
// never waits for a reader. Each event is encoded to JSON once, at Apply, and the bytes are shared by every
// watcher and LIST.
//
// Import rule: test support only; production packages never import synthkube.
package synthkube
