package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The user kiem runs as: the chart's securityContext (runAsUser/runAsGroup 65532) and distroless' "nonroot".
const (
	nonrootUID = 65532
	nonrootGID = 65532
	user       = "65532:65532"
)

// spec is everything an image is made of. Two builds from equal specs give byte-identical images.
type spec struct {
	binary   []byte      // the linux kiem binary, installed as /kiem
	platform v1.Platform // OS (always linux), architecture and variant
	version  string      // org.opencontainers.image.version
	revision string      // org.opencontainers.image.revision (the commit); empty: no label
	created  time.Time   // every mtime, the config's created and org.opencontainers.image.created
	oci      bool        // OCI media types instead of Docker's
}

// labels are the OCI annotations of the image config (docker inspect, GHCR's link to the repository).
func (s spec) labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "kiem",
		"org.opencontainers.image.description": "Kubernetes Identity Entitlement Management: who can do what in a cluster, why, and since when",
		"org.opencontainers.image.source":      "https://github.com/kiem-io/kiem",
		"org.opencontainers.image.url":         "https://github.com/kiem-io/kiem",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.version":     s.version,
		"org.opencontainers.image.created":     s.created.UTC().Format(time.RFC3339),
	}
	if s.revision != "" {
		l["org.opencontainers.image.revision"] = s.revision
	}
	return l
}

// buildImage assembles the image: one layer on an empty base, no base image to download, no daemon.
func buildImage(s spec) (v1.Image, error) {
	layerTar, err := rootfs(s)
	if err != nil {
		return nil, err
	}
	// Compressed here, once, rather than by go-containerregistry on every read: the layer's bytes, and so its
	// digest, are exactly this gzip stream, with no name and a zero mtime in its header. klauspost/compress
	// rather than compress/gzip: its output is fixed by the version go.mod pins, not by the Go toolchain that
	// runs this, and at its default level it is three times faster for a 3% larger layer (level 9 would take
	// eight times longer for 3% less).
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(layerTar); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	manifestType, configType, layerType := types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	if s.oci {
		manifestType, configType, layerType = types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
	}
	layer, err := newLayer(layerTar, gz.Bytes(), layerType)
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, manifestType)
	img = mutate.ConfigMediaType(img, configType)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: s.created},
			CreatedBy: "hack/image: /kiem, /etc/passwd, /etc/group, /etc/ssl/certs/ca-certificates.crt, /home/nonroot, /tmp, /var/lib/kiem",
			Comment:   "built by github.com/kiem-io/kiem/hack/image",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: s.created}
	cf.OS = s.platform.OS
	cf.Architecture = s.platform.Architecture
	cf.Variant = s.platform.Variant
	cf.Config = v1.Config{
		User: user,
		// The chart passes the whole command line as args (serve --data-dir=/var/lib/kiem ...). There is no Cmd:
		// `docker run IMAGE` alone runs bare `kiem`, which prints the usage and exits 0. A Cmd such as ["serve"]
		// would start a server on the container's loopback (kiem's default), reachable by no one, and
		// ["serve", "--help"] would only repeat what bare `kiem` already shows.
		Entrypoint: []string{"/kiem"},
		WorkingDir: "/",
		Labels:     s.labels(),
		// No Env: kiem needs none. Go finds the CA bundle at its default path, and the runtime's PATH is moot
		// with an absolute entrypoint.
	}
	return mutate.ConfigFile(img, cf)
}

// memLayer is a layer held in memory both ways, so that neither digest needs a pass of gzip.
type memLayer struct {
	uncompressed, compressed []byte
	diffID, digest           v1.Hash
	mediaType                types.MediaType
}

func newLayer(uncompressed, compressed []byte, mt types.MediaType) (*memLayer, error) {
	l := &memLayer{uncompressed: uncompressed, compressed: compressed, mediaType: mt}
	var err error
	if l.diffID, _, err = v1.SHA256(bytes.NewReader(uncompressed)); err != nil {
		return nil, err
	}
	if l.digest, _, err = v1.SHA256(bytes.NewReader(compressed)); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.compressed)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.compressed)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.uncompressed)), nil
}

// rootfs is the image's only layer, an uncompressed tar. Every entry has the same mtime (s.created), numeric
// owners and fixed modes, in a fixed order, so the bytes depend on s alone.
func rootfs(s spec) ([]byte, error) {
	type entry struct {
		name     string
		mode     int64
		uid, gid int
		data     []byte // nil: a directory
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonrootUID, nonrootGID)
	group := "root:x:0:\n" + fmt.Sprintf("nonroot:x:%d:\n", nonrootGID)
	certs, err := caBundle()
	if err != nil {
		return nil, err
	}
	entries := []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		// kiem's webhook and Slack sinks (queries/sinks) post over HTTPS with Go's default roots, which on Linux
		// are read from this file: without it every delivery to e.g. https://hooks.slack.com fails certificate
		// verification. (The kube-apiserver's CA comes from the ServiceAccount mount, not from here.)
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs},
		// nonroot's home, as in distroless: `kiem serve` without --data-dir stores under $HOME/.local/share/kiem.
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: nonrootUID, gid: nonrootGID},
		{name: "kiem", mode: 0o755, data: s.binary},
		// The chart mounts an emptyDir at /tmp (the root filesystem is read-only), so this directory is not needed
		// there. It is kept for `docker run IMAGE serve --demo`, whose store is a temporary directory, and so that
		// this image has the same layout as the Dockerfile's distroless one.
		{name: "tmp/", mode: 0o1777},
		{name: "var/", mode: 0o755},
		{name: "var/lib/", mode: 0o755},
		// The store (`serve --data-dir=/var/lib/kiem`). The chart mounts its volume here; a Docker named volume
		// mounted here starts as a copy of this directory, so it must already belong to kiem.
		{name: "var/lib/kiem/", mode: 0o700, uid: nonrootUID, gid: nonrootGID},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: s.created,
			Format:  tar.FormatUSTAR,
		}
		if e.data == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// caBundle is the Mozilla NSS root store as pinned by golang.org/x/crypto/x509roots/fallback in go.mod (not the
// build host's, which would make the image depend on the machine). Roots NSS trusts only with a constraint (a
// distrust-after date) are left out: a PEM file cannot carry the constraint, and trusting them without it would
// accept certificates NSS rejects.
func caBundle() ([]byte, error) {
	var b bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("the pinned root store is empty")
	}
	return b.Bytes(), nil
}

// elfMachines maps a GOARCH to the ELF machine and class of its binaries.
var elfMachines = map[string]struct {
	machine elf.Machine
	class   elf.Class
}{
	"amd64":   {elf.EM_X86_64, elf.ELFCLASS64},
	"arm64":   {elf.EM_AARCH64, elf.ELFCLASS64},
	"arm":     {elf.EM_ARM, elf.ELFCLASS32},
	"386":     {elf.EM_386, elf.ELFCLASS32},
	"ppc64le": {elf.EM_PPC64, elf.ELFCLASS64},
	"s390x":   {elf.EM_S390, elf.ELFCLASS64},
	"riscv64": {elf.EM_RISCV, elf.ELFCLASS64},
}

// checkBinary refuses a binary that cannot run as the only program of an empty image on p: not a Linux ELF
// executable of p's architecture, or dynamically linked (a cgo build needs a libc and a loader the image lacks).
func checkBinary(path string, p v1.Platform) error {
	want, ok := elfMachines[p.Architecture]
	if !ok {
		return fmt.Errorf("unsupported architecture %q", p.Architecture)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a Linux (ELF) binary; build it with GOOS=linux: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is not an executable (ELF type %v)", path, f.Type)
	}
	if f.Machine != want.machine || f.Class != want.class {
		return fmt.Errorf("%s is built for %v (%v), not for %s; build it with GOARCH=%s", path, f.Machine, f.Class, p.Architecture, p.Architecture)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(prog.Open(), 256))
			return fmt.Errorf("%s is dynamically linked (interpreter %s) and cannot run in an image without libc; build it with CGO_ENABLED=0 and without -buildmode=pie", path, bytes.TrimRight(interp, "\x00"))
		}
	}
	return nil
}

// readBinary checks and reads the binary to install as /kiem.
func readBinary(path string, p v1.Platform) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if err := checkBinary(path, p); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}
