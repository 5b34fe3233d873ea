package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// writeAtomic writes path through a temporary file in the same directory renamed into place, so that a failed
// build never leaves a truncated tarball where the last good one was.
func writeAtomic(path string, write func(w io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// writeDocker writes the tarball `docker load` reads (manifest.json, the config and the gzipped layer), which is
// also what `crane push FILE REF` and `skopeo copy docker-archive:FILE ...` read.
func writeDocker(path string, tag name.Tag, img v1.Image) error {
	return writeAtomic(path, func(w io.Writer) error { return tarball.Write(tag, img, w) })
}

// writeOCI writes an OCI image layout as a tar (an "oci-archive" to skopeo, podman and buildah; untarred, a
// directory `crane push DIR REF` reads). index.json names the image both ways tools look for it: the tag in
// org.opencontainers.image.ref.name, the full reference in io.containerd.image.name (`ctr import`, and `docker
// load` since Docker 25).
func writeOCI(path string, tag name.Tag, img v1.Image, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "kiem-image-layout-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		"io.containerd.image.name":          tag.Name(),
	})); err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error { return tarDir(w, dir, mtime) })
}

// tarDir writes the tree under dir as a tar with fixed metadata (owner 0:0, modes 0755/0644, mtime), in
// lexical order (filepath.WalkDir's), so its bytes depend on the tree's names and contents only.
func tarDir(w io.Writer, dir string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatUSTAR}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		default:
			return fmt.Errorf("unexpected file %s in the image layout", path)
		}
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
