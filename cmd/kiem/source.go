package main

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/spf13/pflag"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/fixtures"
)

// sourceFlags choose where a query command reads objects from.
type sourceFlags struct {
	snapshots        []string
	demo             bool
	defaultNamespace string
}

func (f *sourceFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.snapshots, "snapshot", nil,
		"read objects from this YAML/JSON file or directory (repeatable); multi-document YAML and kind: List are read")
	fs.BoolVar(&f.demo, "demo", false, "use the bundled demo cluster (a kubeadm v1.33 cluster with argo-cd, ingress-nginx, kube-prometheus and kyverno)")
	fs.StringVar(&f.defaultNamespace, "default-namespace", "default",
		"namespace of namespaced objects in --snapshot files that carry none, as 'kubectl apply -n' would give them")
}

// load reads the chosen objects and indexes them.
func (f *sourceFlags) load(ctx context.Context) (*graph.Snapshot, error) {
	objs, err := f.objects(ctx)
	if err != nil {
		return nil, err
	}
	return graph.NewSnapshot(objs), nil
}

func (f *sourceFlags) objects(ctx context.Context) (*graph.Objects, error) {
	switch {
	case f.demo && len(f.snapshots) > 0:
		return nil, errors.New("--demo and --snapshot exclude each other")
	case f.demo:
		return demoObjects(ctx)
	case len(f.snapshots) == 0:
		return nil, errors.New("no objects to read: give --snapshot PATH (files or directories of YAML/JSON) or --demo")
	}
	objs, _, err := indexer.Load(ctx, f.snapshots, indexer.LoadOptions{DefaultNamespace: f.defaultNamespace})
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	return objs, nil
}

// demoApps are the real-world installs the demo adds to the kubeadm cluster.
func demoApps() []string {
	return []string{"argo-cd.yaml", "ingress-nginx.yaml", "kube-prometheus.yaml", "kyverno.yaml"}
}

// demoObjects is the bundled demo cluster: the objects of a real kubeadm v1.33 cluster plus the RBAC of a few
// widely used projects, each loaded with its install namespace.
func demoObjects(ctx context.Context) (*graph.Objects, error) {
	objs, _, err := indexer.LoadFS(ctx, fixtures.FS, []string{fixtures.KubeadmV133}, indexer.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("load demo: %w", err)
	}
	for _, app := range demoApps() {
		p := path.Join(fixtures.RealWorldDir, app)
		more, _, err := indexer.LoadFS(ctx, fixtures.FS, []string{p}, indexer.LoadOptions{DefaultNamespace: fixtures.InstallNamespace(app)})
		if err != nil {
			return nil, fmt.Errorf("load demo: %w", err)
		}
		objs.Append(more)
	}
	return objs, nil
}
