package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
	"github.com/kiem-io/kiem/internal/demo"
)

// sourceFlags choose where a query command reads objects from.
type sourceFlags struct {
	snapshots        []string
	demo             bool
	defaultNamespace string
	groupsFile       string
}

func (f *sourceFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.snapshots, "snapshot", nil,
		"read objects from this YAML/JSON file or directory (repeatable); multi-document YAML and kind: List are read")
	fs.BoolVar(&f.demo, "demo", false, "use the bundled demo cluster (kubeadm v1.33 with argo-cd, ingress-nginx, kube-prometheus, kyverno and a payments team, after a week of changes)")
	fs.StringVar(&f.groupsFile, "groups-file", "",
		"YAML/JSON map of user name to groups (exported from the identity provider): the groups --as USER belongs to when no --as-group is given")
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
	objs, err := f.sourceObjects(ctx)
	if err != nil || f.groupsFile == "" {
		return objs, err
	}
	users, err := indexer.LoadGroups(f.groupsFile)
	if err != nil {
		return nil, err
	}
	// The file's declarations replace any the source carried (the demo declares a few of its own).
	objs.Users = users
	return objs, nil
}

func (f *sourceFlags) sourceObjects(ctx context.Context) (*graph.Objects, error) {
	switch {
	case f.demo && len(f.snapshots) > 0:
		return nil, errors.New("--demo and --snapshot exclude each other")
	case f.demo:
		objs, err := demo.Final(ctx)
		if err != nil {
			return nil, fmt.Errorf("load demo: %w", err)
		}
		return objs, nil
	case len(f.snapshots) == 0:
		return nil, errors.New("no objects to read: give --snapshot PATH (files or directories of YAML/JSON) or --demo")
	}
	objs, _, err := indexer.Load(ctx, f.snapshots, indexer.LoadOptions{DefaultNamespace: f.defaultNamespace})
	if err != nil {
		return nil, fmt.Errorf("load snapshot: %w", err)
	}
	return objs, nil
}
