// Package demo is kiem's embedded demo cluster: the RBAC of a real kubeadm v1.33 cluster with argo-cd,
// ingress-nginx, kube-prometheus and kyverno installed, then a week of changes (a team onboarded, and the risky
// grants real clusters accumulate: a CI ServiceAccount with cluster-admin, a role that makes view read secrets,
// contractors with pods/exec, impersonation, anonymous access) replayed into history so that history and diffs
// have something to show. A groups file (groups.yaml) declares which groups a few human users belong to.
package demo

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/fixtures"
)

//go:embed timeline groups.yaml
var timelineFS embed.FS

// deleteAnnotation marks, in a timeline file, an object the step deletes rather than applies.
const deleteAnnotation = "kiem.io/demo-delete"

// Step is one revision of the demo's history.
type Step struct {
	Name    string        // what happened, for the revision's source
	Ago     time.Duration // when, before the moment the demo starts
	Changes []graph.Change
}

// apps are the real-world installs of the first step.
func apps() []string {
	return []string{"argo-cd.yaml", "ingress-nginx.yaml", "kube-prometheus.yaml", "kyverno.yaml"}
}

// Timeline returns the demo's history, oldest step first. The first step installs the cluster; each later one
// applies a file of timeline/ against the state the steps before it left.
func Timeline(ctx context.Context) ([]Step, error) {
	steps, _, err := timeline(ctx)
	return steps, err
}

// timeline builds the steps and the snapshot they leave.
func timeline(ctx context.Context) ([]Step, *graph.Snapshot, error) {
	base, err := baseObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	cur := graph.NewSnapshot(&graph.Objects{})
	first := graph.ReconcileChanges(cur, base)
	cur = cur.Apply(first)
	steps := []Step{{Name: "demo: kubeadm v1.33 cluster with argo-cd, ingress-nginx, kube-prometheus, kyverno", Ago: 7 * 24 * time.Hour, Changes: first}}

	files, err := fs.Glob(timelineFS, "timeline/*.yaml")
	if err != nil {
		return nil, nil, err
	}
	for i, f := range files {
		objs, _, err := indexer.LoadFS(ctx, timelineFS, []string{f}, indexer.LoadOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("demo timeline: %w", err)
		}
		var changes []graph.Change
		objs.Each(func(o graph.Object) bool {
			have, exists := cur.Object(o.Ref())
			switch {
			case deleted(o) && exists:
				changes = append(changes, graph.NewChange(have, nil))
			case deleted(o):
			case exists:
				changes = append(changes, graph.NewChange(have, o))
			default:
				changes = append(changes, graph.NewChange(nil, o))
			}
			return true
		})
		cur = cur.Apply(changes)
		name := path.Base(f)
		steps = append(steps, Step{Name: "demo: " + name[3:len(name)-len(".yaml")], Ago: time.Duration(len(files)-i) * 20 * time.Hour, Changes: changes})
	}
	return steps, cur, nil
}

// Final returns the objects the whole timeline leaves.
func Final(ctx context.Context) (*graph.Objects, error) {
	_, final, err := timeline(ctx)
	if err != nil {
		return nil, err
	}
	// Copy: the snapshot's objects are shared.
	out := &graph.Objects{}
	out.Append(final.Objects())
	return out, nil
}

func deleted(o graph.Object) bool {
	var m *graph.Meta
	switch v := o.(type) {
	case *graph.Role:
		m = &v.Meta
	case *graph.Binding:
		m = &v.Meta
	case *graph.ServiceAccount:
		m = &v.Meta
	case *graph.Namespace:
		m = &v.Meta
	case *graph.Pod:
		m = &v.Meta
	case *graph.Node:
		m = &v.Meta
	}
	return m != nil && m.Annotations[deleteAnnotation] == "true"
}

// baseObjects is the cluster of the first step: kubeadm v1.33 and the apps, each with its install namespace.
func baseObjects(ctx context.Context) (*graph.Objects, error) {
	objs, _, err := indexer.LoadFS(ctx, fixtures.FS, []string{fixtures.KubeadmV133}, indexer.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	users, err := indexer.LoadGroupsFS(timelineFS, "groups.yaml")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	objs.Users = append(objs.Users, users...)
	for _, app := range apps() {
		p := path.Join(fixtures.RealWorldDir, app)
		more, _, err := indexer.LoadFS(ctx, fixtures.FS, []string{p}, indexer.LoadOptions{DefaultNamespace: fixtures.InstallNamespace(app)})
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		objs.Append(more)
	}
	return objs, nil
}
