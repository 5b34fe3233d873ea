// Package perf measures kiem against the reference workloads of ARCHITECTURE §8 and prints the figures: load
// time and peak RSS, Can, WhoCan and EffectivePermissions latencies, and the speed-up of the indexed engine over
// a naive evaluator that visits every binding per query. Run it with `make bench`.
//
// It holds benchmarks only; the figures are reported, never asserted against a clock.
package perf
