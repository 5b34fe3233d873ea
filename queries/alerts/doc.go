// Package alerts raises alerts when saved filters (queries/filters) start or stop matching: it evaluates every
// filter on what each revision changed (the changes themselves, the objects, the grants gained and lost, the
// findings new and resolved), stores the alerts with the revision it reached in one write (so that a restart
// evaluates exactly the revisions it missed), hands them to the sinks' outbox in the same write, and publishes
// them to subscribers. It imports graph, queries, queries/filters and queries/sinks.
package alerts
