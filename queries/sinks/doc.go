// Package sinks stores kiem's alert sinks (webhook and Slack destinations) and delivers alert messages to them
// through a durable outbox kept in the store's side records: at least once, across restarts.
//
// The alert engine adds a message's outbox entries with Enqueue inside the transaction that stores the alert, so
// an alert and its deliveries commit together or not at all; a Deliverer sends them, retries with backoff and
// records every outcome, which Deliveries reports. The HTTP contract receivers rely on is in docs/sinks.md.
//
// Import rule: sinks imports graph only, besides the standard library. Its key layout (keys.go) is its own:
// other packages, the alert engine included, go through the functions here.
package sinks
