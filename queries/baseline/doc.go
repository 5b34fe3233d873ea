// Package baseline recognises platform defaults by their content: the RBAC policy the kube-apiserver creates,
// the ServiceAccounts kube-controller-manager creates, kubeadm's objects and add-ons (embedded, see Default), and
// whatever baselines an operator adds (Load). Risk packs use it to mark a finding that only a platform default
// causes as expected, with the reason, rather than dropping it or raising it as a risk.
//
// Names and labels prove nothing: anyone who may create bindings may call one system:controller:evil and label
// it kubernetes.io/bootstrapping=rbac-defaults. An object is a default only when its content equals the content
// the platform gives it; a default somebody changed is Modified, with what differs.
//
// Import rule: baseline imports graph and the k8s.io API types only (its YAML reader is its own), never gql, cmd,
// indexer or another package under queries. It must compile inside e2e/oracle, whose k8s.io modules are older
// than the main module's, which is why it does not use the indexer (client-go) to read its files.
package baseline
