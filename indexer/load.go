package indexer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/kiem-io/kiem/graph"
)

// LoadOptions tunes Load.
type LoadOptions struct {
	// DefaultNamespace is given to namespaced objects that carry no metadata.namespace, as `kubectl apply -n`
	// does. Empty means "default".
	DefaultNamespace string
}

// Stats says what Load read.
type Stats struct {
	// Files is the number of files read.
	Files int
	// Documents counts the YAML documents and JSON values read. A List counts once; its items count in Objects
	// or Skipped.
	Documents int
	// Objects counts the objects loaded, per kind, once duplicates are resolved.
	Objects map[graph.Kind]int
	// Skipped counts the objects of other kinds, which are not loaded, by "apiVersion/kind" (e.g.
	// "apps/v1/Deployment").
	Skipped map[string]int
	// Duplicates lists the objects defined more than once, as "Kind/ns/name at file:line replaces file:line":
	// a later definition of the same object wins, as a later kubectl apply would.
	Duplicates []string
}

// DocumentError is a malformed document. File and Line identify it: Line is the 1-based line where the document
// starts, or the exact line of a syntax error when the decoder reports one. Errors inside an item of a List
// name the List's line and the item ("items[3]: …"); YAML type errors also name the line of the field in their
// message ("Role: line 12: cannot unmarshal !!str `x` into []indexer.policyRule").
type DocumentError struct {
	File string
	Line int
	Err  error
}

// Error renders the error as "file:line: message", the form editors and CI annotations recognise.
func (e *DocumentError) Error() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *DocumentError) Unwrap() error { return e.Err }

// Load reads the Kubernetes objects in the files and directories of paths (see LoadFS) from the operating
// system's file system.
func Load(ctx context.Context, paths []string, opts LoadOptions) (*graph.Objects, Stats, error) {
	return load(ctx, osFS{}, paths, opts)
}

// LoadFS reads the Kubernetes objects in the files and directories of paths inside fsys.
//
// Directories are walked recursively in lexical order, reading .yaml, .yml and .json files and skipping hidden
// directories; a file named in paths is read whatever its name (as JSON if it ends in .json, else as YAML).
// Inputs are multi-document YAML, JSON values (several may follow each other in a file), and Lists, as
// `kubectl get -o yaml|json` writes them, typed (RoleList) or nested. Namespaces, ServiceAccounts, Pods and the
// RBAC kinds are loaded; workloads (Deployments, DaemonSets, StatefulSets, ReplicaSets, ReplicationControllers,
// Jobs, CronJobs) load as the Pod their template stands for, named "deployment/NAME" (see workload.go) and
// counted as Pods; other kinds are counted in Stats.Skipped.
//
// The output follows the input order, and a later definition of an object replaces an earlier one. On error
// LoadFS returns nil objects: nothing is half-loaded. A malformed document is a *DocumentError; a path that does
// not exist is an fs.ErrNotExist; a cancelled ctx returns ctx.Err().
func LoadFS(ctx context.Context, fsys fs.FS, paths []string, opts LoadOptions) (*graph.Objects, Stats, error) {
	return load(ctx, ioFS{fsys}, paths, opts)
}

// fileSystem is what loading needs of the operating system or of an fs.FS.
type fileSystem interface {
	Stat(name string) (fs.FileInfo, error)
	WalkDir(root string, fn fs.WalkDirFunc) error
	Open(name string) (fs.File, error)
}

type osFS struct{}

func (osFS) Stat(name string) (fs.FileInfo, error)        { return os.Stat(name) }
func (osFS) WalkDir(root string, fn fs.WalkDirFunc) error { return filepath.WalkDir(root, fn) }
func (osFS) Open(name string) (fs.File, error)            { return os.Open(name) }

type ioFS struct{ fsys fs.FS }

func (f ioFS) Stat(name string) (fs.FileInfo, error)        { return fs.Stat(f.fsys, name) }
func (f ioFS) WalkDir(root string, fn fs.WalkDirFunc) error { return fs.WalkDir(f.fsys, root, fn) }
func (f ioFS) Open(name string) (fs.File, error)            { return f.fsys.Open(name) }

// Work is cut into batches of about this size so that hand-offs between goroutines stay rare.
const (
	batchBytes  = 64 << 10
	batchPieces = 256
)

func load(ctx context.Context, fsys fileSystem, paths []string, opts LoadOptions) (*graph.Objects, Stats, error) {
	stats := Stats{Objects: map[graph.Kind]int{}, Skipped: map[string]int{}}
	files, err := listFiles(fsys, paths)
	if err != nil {
		return nil, stats, err
	}
	conv := &converter{defaultNamespace: cmp.Or(opts.DefaultNamespace, "default")}
	m := &merger{conv: conv, stats: &stats, seen: map[graph.ObjectRef]slot{}}
	stats.Files, err = decodeFiles(ctx, fsys, files, conv, m, true)
	if errors.Is(err, errCutList) {
		stats = Stats{Objects: map[graph.Kind]int{}, Skipped: map[string]int{}}
		m = &merger{conv: conv, stats: &stats, seen: map[graph.ObjectRef]slot{}}
		stats.Files, err = decodeFiles(ctx, fsys, files, conv, m, false)
	}
	if err != nil {
		return nil, stats, err
	}
	objs := &m.objs
	for kind, n := range map[graph.Kind]int{
		graph.KindNamespace: len(objs.Namespaces), graph.KindServiceAccount: len(objs.ServiceAccounts),
		graph.KindRole: len(objs.Roles), graph.KindClusterRole: len(objs.ClusterRoles),
		graph.KindRoleBinding: len(objs.RoleBindings), graph.KindClusterRoleBinding: len(objs.ClusterRoleBindings),
		graph.KindPod: len(objs.Pods), graph.KindNode: len(objs.Nodes),
	} {
		if n > 0 {
			stats.Objects[kind] = n
		}
	}
	return objs, stats, nil
}

// decodeFiles reads files, decodes them on GOMAXPROCS workers and merges the results into m, returning the
// number of files read. One reader cuts the files into pieces (and YAML Lists into items if cut is set) and hands
// batches of them both to the workers and, in input order, to the merger (this goroutine), which waits for each
// batch in turn: the output follows the input whatever the workers' pace. Every goroutine has ended when
// decodeFiles returns.
func decodeFiles(ctx context.Context, fsys fileSystem, files []string, conv *converter, m *merger, cut bool) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *batch, workers)
	ordered := make(chan *batch, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range work {
				b.decode(ctx, conv)
				close(b.done)
			}
		})
	}
	r := &reader{fsys: fsys, cut: cut, send: func(b *batch) bool {
		select {
		case ordered <- b:
		case <-ctx.Done():
			return false
		}
		if b.err != nil {
			return true
		}
		select {
		case work <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}}
	wg.Go(func() {
		defer close(work)
		defer close(ordered)
		r.read(ctx, files)
	})
	err := m.run(ctx, ordered)
	cancel()
	// Drain what the reader sent before it saw the cancellation, so that it never blocks.
	for range ordered {
	}
	wg.Wait()
	return r.files, err
}

// listFiles expands directories into the snapshot files they hold, in lexical order.
func listFiles(fsys fileSystem, paths []string) ([]string, error) {
	var files []string
	for _, root := range paths {
		fi, err := fsys.Stat(root)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, root)
			continue
		}
		err = fsys.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir():
				if name != root && strings.HasPrefix(d.Name(), ".") {
					return fs.SkipDir
				}
				return nil
			case !isSnapshotFile(name):
				return nil
			case d.Type()&fs.ModeSymlink != 0:
				// Walking does not follow links; a link to a file is read, a link to a directory is not entered.
				fi, err := fsys.Stat(name)
				if err != nil {
					return err
				}
				if fi.IsDir() {
					return nil
				}
			}
			files = append(files, name)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", root, err)
		}
	}
	return files, nil
}

func isSnapshotFile(name string) bool {
	switch path.Ext(filepath.ToSlash(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func isJSONFile(name string) bool { return path.Ext(filepath.ToSlash(name)) == ".json" }
