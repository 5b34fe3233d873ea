// Package queries evaluates kiem's risk query packs over a graph snapshot and keeps their findings current.
//
// A pack is data: a YAML file of rules (embedded packs ship with kiem, operators add their own with --packs). Each
// rule names a target (the subjects bindings name, the grants bindings make, or an object kind), a boolean CEL
// match over a documented model of that target, and optionally graded severities; graph-shaped rules name a Go
// check instead. Questions about permissions ("can this subject create pods here?") are answered by the exact
// engine of package graph, and every answer that matched is kept as the finding's evidence: the binding, role and
// rule that grant it.
//
// Findings are classified: a finding whose every grant comes from a platform default whose content matches the
// known default (queries/baseline) is expected, with the reason; suppressions (rule, subject, namespace, object;
// owner, reason, expiry) hide what an operator accepted, and expired ones stop hiding and are reported.
//
// The Tracker keeps findings current on a live graph: after a change it re-evaluates only the targets the change
// touches and reports which findings are new and which are resolved.
package queries
