// Package manifests reads manifest files for the tests of packages that read graph only (queries), which must not
// import the loader themselves.
package manifests

import (
	"context"
	"io/fs"

	"github.com/kiem-io/kiem/graph"
	"github.com/kiem-io/kiem/indexer"
)

// Load reads manifest files the way every --snapshot flag does: paths in fsys, or on disk when fsys is nil;
// namespaced objects without a namespace get defaultNamespace.
func Load(ctx context.Context, fsys fs.FS, paths []string, defaultNamespace string) (*graph.Objects, error) {
	opts := indexer.LoadOptions{DefaultNamespace: defaultNamespace}
	if fsys == nil {
		objs, _, err := indexer.Load(ctx, paths, opts)
		return objs, err
	}
	objs, _, err := indexer.LoadFS(ctx, fsys, paths, opts)
	return objs, err
}
