// Package indexer holds the sources that feed the graph: snapshot files (Load, LoadFS) and a live cluster's
// informers (Live; audit events come later). It imports graph, never the reverse.
//
// Snapshot files (Load, LoadFS) are read as `kubectl apply -f` and `kubectl get -o yaml|json` have them:
// multi-document YAML split at "---" lines as kubectl splits it, concatenated JSON values, and Lists (kind:
// List, typed lists such as RoleList, nested Lists). Field names match case-sensitively and unknown fields are
// ignored, as in the apiserver. Choices where kubectl or the apiserver leave room, or where kiem differs:
//   - Documents are decoded in parallel, but the output follows the input order, and a later definition of an
//     object replaces an earlier one (recorded in Stats.Duplicates), as a later kubectl apply would.
//   - Any malformed document fails the whole load with a *DocumentError naming file and line; nothing is
//     half-loaded, because a partial snapshot would answer permission questions wrongly without saying so.
//   - Subjects and role references are kept as written; their defaults (a ServiceAccount subject without a
//     namespace) are the engine's business, where the authorizer's semantics live.
//   - YAML is decoded by go-yaml v2, kubectl's own parser, straight into the fields kiem keeps. Booleans are
//     YAML 1.1's as for kubectl (yes, on), but a plain number or boolean where a string belongs is taken as the
//     text written ("name: 0123" is "0123"), where kubectl would send a number that the apiserver rejects. JSON
//     is decoded as strictly as the apiserver decodes it.
//   - A workload (Deployment, DaemonSet, StatefulSet, ReplicaSet, ReplicationController, Job, CronJob) loads as
//     one Pod standing for its pod template, named "deployment/NAME", so that manifests, which hold workloads
//     rather than pods, show which ServiceAccount each runs as (workload.go says how).
//   - A List written in block style has its items cut apart as text and decoded in parallel; if an item does
//     not parse alone (an alias to another item's anchor, say) the List is decoded whole, so the result is the
//     same either way.
package indexer
