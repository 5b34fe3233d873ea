package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
)

// The demo's audit trail: who made each step's RBAC changes, and a week of requests by the payments
// ServiceAccounts, fed through the same ingester as the apiserver's webhook, so that the demo shows "changed by",
// usage and least-privilege suggestions.

// demoPeople take turns at the demo's steps after the first (which is the cluster as installed).
var demoPeople = []indexer.AuditUser{
	{Username: "alice@example.com", Groups: []string{"oidc:platform-admins", graph.GroupAuthenticated}},
	{Username: "bob@example.com", Groups: []string{"oidc:payments-developers", graph.GroupAuthenticated}},
}

// stampDemo gives the objects a step writes the UID and resourceVersion a cluster would, so that audit events
// can name them.
func stampDemo(step int, changes []graph.Change) {
	for i, c := range changes {
		if c.After == nil {
			continue
		}
		m := graph.MetaOf(c.After)
		if m == nil {
			continue
		}
		if m.UID == "" {
			sum := sha256.Sum256([]byte(c.Ref.String()))
			h := hex.EncodeToString(sum[:16])
			m.UID = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
		}
		m.ResourceVersion = fmt.Sprint(step*100000 + i + 1)
	}
}

// demoWrites are the audit events of a step's RBAC and ServiceAccount writes, made by who at time at.
func demoWrites(step int, who indexer.AuditUser, at time.Time, changes []graph.Change) []indexer.AuditEvent {
	var out []indexer.AuditEvent
	for i, c := range changes {
		group, resource, ok := indexer.AuditedResource(c.Ref.Kind)
		if !ok {
			continue
		}
		verb := map[graph.Op]string{graph.OpAdd: "create", graph.OpUpdate: "update", graph.OpDelete: "delete"}[c.Op]
		var resp any
		if c.After != nil {
			m := graph.MetaOf(c.After)
			resp = map[string]any{"kind": string(c.Ref.Kind), "metadata": map[string]any{"name": m.Name, "namespace": m.Namespace, "uid": m.UID, "resourceVersion": m.ResourceVersion}}
		} else {
			resp = map[string]any{"kind": "Status", "status": "Success", "details": map[string]any{"name": c.Ref.Name, "uid": graph.MetaOf(c.Before).UID}}
		}
		raw, err := json.Marshal(resp)
		if err != nil {
			continue
		}
		out = append(out, indexer.AuditEvent{
			AuditID: fmt.Sprintf("00000000-demo-%04d-%04d-000000000000", step, i), Stage: "ResponseComplete", Level: "RequestResponse",
			Verb: verb, User: who, UserAgent: "kubectl/v1.33.0 (linux/amd64)", SourceIPs: []string{"10.20.0.7"},
			ObjectRef:      &indexer.AuditObjectRef{APIGroup: group, Resource: resource, Namespace: c.Ref.Namespace, Name: c.Ref.Name, APIVersion: "v1"},
			ResponseStatus: &indexer.AuditStatus{Code: 200}, ResponseObject: raw,
			Annotations:              map[string]string{"authorization.k8s.io/decision": "allow"},
			RequestReceivedTimestamp: at, StageTimestamp: at.Add(12 * time.Millisecond),
		})
	}
	return out
}

// demoUsage is a week of the payments ServiceAccounts' requests: ci-deployer rolls out deployments and reads pods
// (it holds far more), api reads its configuration.
func demoUsage(now time.Time) []indexer.AuditEvent {
	type use struct {
		sa, verb, group, resource, sub, name string
	}
	uses := []use{
		{"ci-deployer", "get", "apps", "deployments", "", "checkout"},
		{"ci-deployer", "patch", "apps", "deployments", "", "checkout"},
		{"ci-deployer", "list", "", "pods", "", ""},
		{"ci-deployer", "get", "", "pods", "log", "checkout-7d9f8-x2k4q"},
		{"api", "get", "", "configmaps", "", "api-settings"},
		{"api", "watch", "", "configmaps", "", ""},
	}
	var out []indexer.AuditEvent
	for day := range 7 {
		for i, u := range uses {
			at := now.Add(-time.Duration(day)*24*time.Hour - time.Duration(i)*time.Minute)
			out = append(out, indexer.AuditEvent{
				AuditID: fmt.Sprintf("00000000-demo-use0-%04d-%012d", day, i), Stage: "ResponseComplete", Level: "Metadata", Verb: u.verb,
				User:      indexer.AuditUser{Username: graph.ServiceAccountUsername("payments", u.sa), Groups: append(graph.ServiceAccountGroups("payments"), graph.GroupAuthenticated)},
				SourceIPs: []string{"10.20.3.14"}, UserAgent: "demo/v1",
				ObjectRef:      &indexer.AuditObjectRef{APIGroup: u.group, Resource: u.resource, Subresource: u.sub, Namespace: "payments", Name: u.name, APIVersion: "v1"},
				ResponseStatus: &indexer.AuditStatus{Code: 200}, Annotations: map[string]string{"authorization.k8s.io/decision": "allow"},
				RequestReceivedTimestamp: at, StageTimestamp: at.Add(3 * time.Millisecond),
			})
		}
	}
	return out
}

// ingestDemo ingests a step's writes (after its revision is committed, as audit batches arrive after the watch).
func ingestDemo(ctx context.Context, in *indexer.AuditIngester, events []indexer.AuditEvent) error {
	if in == nil || len(events) == 0 {
		return nil
	}
	if err := in.Ingest(ctx, events, nil, nil); err != nil {
		return fmt.Errorf("demo audit events: %w", err)
	}
	return nil
}
