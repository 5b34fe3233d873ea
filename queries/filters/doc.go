// Package filters holds saved filters: a name, an owner, a target (findings, grants, changes, or the entities of
// one kind) and a CEL expression over a documented model of that target (docs/alerts.md). It validates filters
// when they are saved (compile errors point at the expression; the cost of an evaluation is bounded) and
// evaluates them. It imports graph and queries only.
package filters
