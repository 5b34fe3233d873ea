// Package archtest holds the test that keeps kiem's layout honest: imports flow one way (ARCHITECTURE §1), and
// storage, graph-algorithm and Kubernetes client libraries stay inside the packages that own them.
package archtest
