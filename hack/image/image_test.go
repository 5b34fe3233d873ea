package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// kiemBinary is a static Linux build of ./cmd/kiem for this machine's architecture, made once by TestMain (or
// $KIEM_IMAGE_TEST_BINARY, a binary built the same way, e.g. by `make image`).
var kiemBinary string

const (
	testVersion  = "v1.2.3"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testEpoch    = 1700000000 // 2023-11-14T22:13:20Z
)

var testPlatform = "linux/" + runtime.GOARCH

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kiem-image-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sharedDir = dir
	if kiemBinary = os.Getenv("KIEM_IMAGE_TEST_BINARY"); kiemBinary == "" {
		kiemBinary = filepath.Join(dir, "kiem")
		if err := goBuild("../..", kiemBinary, "./cmd/kiem"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// sharedDir holds what several tests read: kiem's image in each format, built once (sharedImage).
var sharedDir string

// sharedImage is, by format, the image of stdArgs built once for TestImage, TestPush and TestReproducible (each
// build compresses kiem's 50 MB: the suite's main cost, tenfold under -race): its path and the command's result.
var sharedImage = map[string]func() (string, runResult){
	"docker": sync.OnceValues(func() (string, runResult) { return buildShared("docker") }),
	"oci":    sync.OnceValues(func() (string, runResult) { return buildShared("oci") }),
}

func buildShared(format string) (string, runResult) {
	out := filepath.Join(sharedDir, format+".tar")
	return out, runCommand(nil, stdArgs(format, out)...)
}

// runResult is what the command returned, printed (by field: "digest", "image id", ...) and wrote to stderr.
type runResult struct {
	code    int
	printed map[string]string
	stderr  string
}

// runCommand runs the command as `go run .` would, with args and the environment env.
func runCommand(env map[string]string, args ...string) runResult {
	var stdout, stderr bytes.Buffer
	r := runResult{code: run(args, func(k string) string { return env[k] }, &stdout, &stderr), printed: map[string]string{}}
	r.stderr = stderr.String()
	for line := range strings.Lines(stdout.String()) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			k = "unexpected output line"
		}
		r.printed[k] = strings.TrimSpace(v)
	}
	return r
}

// goBuild builds pkg of the module in dir for linux/GOARCH as `make image` does: static, stripped.
func goBuild(dir, out, pkg string, extra ...string) error {
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}, extra...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", pkg, dir, err, b)
	}
	return nil
}

// mustSucceed requires that the command exited 0, printed only the expected fields and nothing on stderr, and
// returns what it printed.
func mustSucceed(t *testing.T, r runResult) map[string]string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
	want := []string{"digest", "file", "format", "image", "image id", "platform", "size"}
	if got := slices.Sorted(maps.Keys(r.printed)); !slices.Equal(got, want) {
		t.Errorf("printed fields %q, want %q", got, want)
	}
	return r.printed
}

// build runs the command with args and the environment env, requires success and returns what it printed.
func build(t *testing.T, env map[string]string, args ...string) map[string]string {
	t.Helper()
	return mustSucceed(t, runCommand(env, args...))
}

func stdArgs(format, out string) []string {
	return []string{"-binary", kiemBinary, "-platform", testPlatform, "-version", testVersion, "-revision", testRevision,
		"-source-date-epoch", fmt.Sprint(testEpoch), "-format", format, "-o", out}
}

// readImage reads the image of a tarball of either format back with go-containerregistry, as crane and skopeo
// would, and checks its manifest, config and layer against their digests and sizes (validate.Image; with
// validate.Fast all but the layer, the slow part under -race).
func readImage(t *testing.T, format, path string, opts ...validate.Option) v1.Image {
	t.Helper()
	img := openImage(t, format, path)
	if err := validate.Image(img, opts...); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	return img
}

// openImage reads the image of a tarball back without reading its layer.
func openImage(t *testing.T, format, path string) v1.Image {
	t.Helper()
	var img v1.Image
	switch format {
	case "docker":
		tag, err := name.NewTag("ghcr.io/kiem-io/kiem:" + testVersion)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = tarball.ImageFromPath(path, &tag); err != nil {
			t.Fatalf("tarball.ImageFromPath: %v", err)
		}
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"ghcr.io/kiem-io/kiem:" + testVersion}) {
			t.Errorf("manifest.json = %+v, want one image tagged ghcr.io/kiem-io/kiem:%s", m, testVersion)
		}
	case "oci":
		dir := t.TempDir()
		untar(t, path, dir)
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			t.Fatalf("layout.ImageIndexFromPath: %v", err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 {
			t.Fatalf("index.json lists %d manifests, want 1", len(im.Manifests))
		}
		d := im.Manifests[0]
		want := map[string]string{
			"org.opencontainers.image.ref.name": testVersion,
			"io.containerd.image.name":          "ghcr.io/kiem-io/kiem:" + testVersion,
		}
		if d.MediaType != types.OCIManifestSchema1 || !maps.Equal(d.Annotations, want) {
			t.Errorf("index.json manifest: media type %s, annotations %v; want %s, %v", d.MediaType, d.Annotations, types.OCIManifestSchema1, want)
		}
		if img, err = idx.Image(d.Digest); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("format %q", format)
	}
	return img
}

// untar extracts the OCI layout tar at path into dir, checking the fixed metadata tarDir gives every entry.
func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(testEpoch, 0)) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v, owner %d:%d; want %v, 0:0", h.Name, h.ModTime.UTC(), h.Uid, h.Gid, time.Unix(testEpoch, 0).UTC())
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(target, b, 0o644)
			}
		default:
			t.Fatalf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// layerFile is one entry of the image's layer.
type layerFile struct {
	typ      byte
	mode     int64
	uid, gid int
	data     []byte
}

// layerFiles reads the image's only layer, checking that every entry has the mtime testEpoch.
func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(testEpoch, 0)) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime.UTC(), time.Unix(testEpoch, 0).UTC())
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := files[h.Name]; dup {
			t.Errorf("%s appears twice in the layer", h.Name)
		}
		files[h.Name] = layerFile{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, data: data}
	}
}

// TestImage builds the image of a real kiem binary in both formats through the command line, reads each back
// and checks its manifest and config; then the layer of the docker one, and runs the /kiem it contains. The
// layer of the oci one must be the very same blob.
func TestImage(t *testing.T) {
	binary, err := os.ReadFile(kiemBinary)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(testEpoch, 0).UTC()
	for _, tc := range []struct {
		format                              string
		manifestType, configType, layerType types.MediaType
	}{
		{"docker", types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer},
		{"oci", types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer},
	} {
		t.Run(tc.format, func(t *testing.T) {
			t.Parallel()
			out, r := sharedImage[tc.format]()
			printed := mustSucceed(t, r)
			var img v1.Image
			if tc.format == "docker" {
				img = readImage(t, tc.format, out)
			} else {
				img = readImage(t, tc.format, out, validate.Fast)
			}

			// What was printed is what was written.
			digest, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			configName, err := img.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			for field, want := range map[string]string{
				"image":    "ghcr.io/kiem-io/kiem:" + testVersion,
				"platform": testPlatform,
				"format":   tc.format,
				"file":     fmt.Sprintf("%s (%d bytes)", out, fi.Size()),
				"digest":   digest.String(),
				"image id": configName.String(),
			} {
				if printed[field] != want {
					t.Errorf("printed %s %q, want %q", field, printed[field], want)
				}
			}
			if !regexp.MustCompile(`^[0-9]+ bytes `).MatchString(printed["size"]) {
				t.Errorf("printed size %q", printed["size"])
			}

			// Media types of the format.
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tc.manifestType || m.Config.MediaType != tc.configType || len(m.Layers) != 1 || m.Layers[0].MediaType != tc.layerType {
				t.Errorf("media types: manifest %s, config %s, layers %+v; want %s, %s, one %s", m.MediaType, m.Config.MediaType, m.Layers, tc.manifestType, tc.configType, tc.layerType)
			}

			// The config the chart relies on: user, entrypoint, no Cmd, labels.
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			wantConfig := v1.Config{
				User:       "65532:65532",
				Entrypoint: []string{"/kiem"},
				WorkingDir: "/",
				Labels: map[string]string{
					"org.opencontainers.image.title":       "kiem",
					"org.opencontainers.image.description": "Kubernetes Identity Entitlement Management: who can do what in a cluster, why, and since when",
					"org.opencontainers.image.source":      "https://github.com/kiem-io/kiem",
					"org.opencontainers.image.url":         "https://github.com/kiem-io/kiem",
					"org.opencontainers.image.licenses":    "Apache-2.0",
					"org.opencontainers.image.version":     testVersion,
					"org.opencontainers.image.revision":    testRevision,
					"org.opencontainers.image.created":     "2023-11-14T22:13:20Z",
				},
			}
			if !reflect.DeepEqual(cf.Config, wantConfig) {
				t.Errorf("config\n got %+v\nwant %+v", cf.Config, wantConfig)
			}
			if cf.OS+"/"+cf.Architecture != testPlatform || cf.Variant != "" {
				t.Errorf("platform %s/%s/%s, want %s", cf.OS, cf.Architecture, cf.Variant, testPlatform)
			}
			if !cf.Created.Equal(created) || len(cf.History) != 1 || !cf.History[0].Created.Equal(created) {
				t.Errorf("created %v, history %+v; want %v once", cf.Created, cf.History, created)
			}
			if len(cf.RootFS.DiffIDs) != 1 {
				t.Errorf("rootfs %+v, want one diff ID", cf.RootFS)
			}

			if tc.format == "oci" {
				// The same layer as the docker image's (checked below), which only the media type tells apart.
				docker, _ := sharedImage["docker"]()
				want := layerDigest(t, openImage(t, "docker", docker))
				if got := layerDigest(t, img); got != want {
					t.Errorf("layer %s, want the docker image's %s", got, want)
				}
				layers, err := img.Layers()
				if err != nil {
					t.Fatal(err)
				}
				rc, err := layers[0].Compressed()
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				if h, _, err := v1.SHA256(rc); err != nil || h != want {
					t.Errorf("the layer blob hashes to %s (%v), want %s", h, err, want)
				}
				return
			}

			// The layer, entry by entry: nothing else is in it.
			files := layerFiles(t, img)
			want := map[string]layerFile{
				"etc/":                              {typ: tar.TypeDir, mode: 0o755},
				"etc/group":                         {typ: tar.TypeReg, mode: 0o644},
				"etc/passwd":                        {typ: tar.TypeReg, mode: 0o644},
				"etc/ssl/":                          {typ: tar.TypeDir, mode: 0o755},
				"etc/ssl/certs/":                    {typ: tar.TypeDir, mode: 0o755},
				"etc/ssl/certs/ca-certificates.crt": {typ: tar.TypeReg, mode: 0o644},
				"home/":                             {typ: tar.TypeDir, mode: 0o755},
				"home/nonroot/":                     {typ: tar.TypeDir, mode: 0o700, uid: 65532, gid: 65532},
				"kiem":                              {typ: tar.TypeReg, mode: 0o755},
				"tmp/":                              {typ: tar.TypeDir, mode: 0o1777},
				"var/":                              {typ: tar.TypeDir, mode: 0o755},
				"var/lib/":                          {typ: tar.TypeDir, mode: 0o755},
				"var/lib/kiem/":                     {typ: tar.TypeDir, mode: 0o700, uid: 65532, gid: 65532},
			}
			if got, wantNames := slices.Sorted(maps.Keys(files)), slices.Sorted(maps.Keys(want)); !slices.Equal(got, wantNames) {
				t.Errorf("layer entries\n got %q\nwant %q", got, wantNames)
			}
			for p, w := range want {
				g, ok := files[p]
				if ok && (g.typ != w.typ || g.mode != w.mode || g.uid != w.uid || g.gid != w.gid) {
					t.Errorf("%s: type %c mode %#o owner %d:%d; want type %c mode %#o owner %d:%d", p, g.typ, g.mode, g.uid, g.gid, w.typ, w.mode, w.uid, w.gid)
				}
			}
			if sha256.Sum256(files["kiem"].data) != sha256.Sum256(binary) {
				t.Errorf("/kiem (%d bytes) is not the binary built (%d bytes)", len(files["kiem"].data), len(binary))
			}
			for _, c := range []struct{ file, line string }{
				{"etc/passwd", "root:x:0:0:root:/root:/sbin/nologin"},
				{"etc/passwd", "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"},
				{"etc/group", "root:x:0:"},
				{"etc/group", "nonroot:x:65532:"},
			} {
				if !slices.Contains(strings.Split(string(files[c.file].data), "\n"), c.line) {
					t.Errorf("/%s lacks the line %q:\n%s", c.file, c.line, files[c.file].data)
				}
			}
			checkCABundle(t, files["etc/ssl/certs/ca-certificates.crt"].data)

			// The binary in the image runs.
			runKiem(t, files["kiem"])
		})
	}
}

// checkCABundle: PEM certificates only, a full root store, with the roots of public endpoints kiem's sinks reach.
func checkCABundle(t *testing.T, data []byte) {
	t.Helper()
	var subjects []string
	for rest := data; len(bytes.TrimSpace(rest)) > 0; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil || b.Type != "CERTIFICATE" {
			t.Fatalf("the CA bundle holds something other than PEM certificates")
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !c.IsCA {
			t.Errorf("%s is not a CA certificate", c.Subject)
		}
		subjects = append(subjects, c.Subject.CommonName)
	}
	if len(subjects) < 100 {
		t.Errorf("the CA bundle holds %d certificates, want the whole root store (over 100)", len(subjects))
	}
	for _, cn := range []string{"ISRG Root X1", "DigiCert Global Root G2", "Amazon Root CA 1"} {
		if !slices.Contains(subjects, cn) {
			t.Errorf("the CA bundle lacks %q", cn)
		}
	}
}

// runKiem writes the image's /kiem to a file with its mode in the image and runs `kiem --help`.
func runKiem(t *testing.T, f layerFile) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Fatalf("this test runs the image's linux binary, so it needs linux, not %s", runtime.GOOS)
	}
	path := filepath.Join(t.TempDir(), "kiem")
	if err := os.WriteFile(path, f.data, os.FileMode(f.mode)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), path, "--help")
	cmd.Env = []string{} // as in the image: kiem needs no environment
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("/kiem --help: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{"kiem answers who can do what in a Kubernetes cluster", "Usage:\n  kiem [command]", "\n  serve "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("/kiem --help does not print %q:\n%s", want, stdout.String())
		}
	}
}

func fileSHA256(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func layerDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReproducible: the same inputs give the same bytes; another SOURCE_DATE_EPOCH gives another image.
func TestReproducible(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, r := sharedImage["docker"]()
	printedA := mustSucceed(t, r)
	b, c := filepath.Join(dir, "b.tar"), filepath.Join(dir, "c.tar")
	printedB := build(t, nil, stdArgs("docker", b)...)
	if printedA["digest"] != printedB["digest"] || printedA["image id"] != printedB["image id"] {
		t.Errorf("two builds of the same inputs: digests %s and %s, image ids %s and %s", printedA["digest"], printedB["digest"], printedA["image id"], printedB["image id"])
	}
	if fileSHA256(t, a) != fileSHA256(t, b) {
		t.Errorf("two builds of the same inputs wrote different tarballs")
	}

	// The epoch from the environment (no -source-date-epoch): every mtime and the created time change.
	argsC := slices.DeleteFunc(stdArgs("docker", c), func(s string) bool { return s == "-source-date-epoch" || s == fmt.Sprint(testEpoch) })
	printedC := build(t, map[string]string{"SOURCE_DATE_EPOCH": fmt.Sprint(testEpoch + 1)}, argsC...)
	if printedC["digest"] == printedA["digest"] {
		t.Errorf("another SOURCE_DATE_EPOCH gave the same digest %s", printedC["digest"])
	}
	imgA, imgC := openImage(t, "docker", a), openImage(t, "docker", c)
	if layerDigest(t, imgA) == layerDigest(t, imgC) {
		t.Errorf("another SOURCE_DATE_EPOCH gave the same layer (its mtimes must differ)")
	}
	cf, err := imgC.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(testEpoch+1, 0).UTC(); !cf.Created.Equal(want) || cf.Config.Labels["org.opencontainers.image.created"] != want.Format(time.RFC3339) {
		t.Errorf("with SOURCE_DATE_EPOCH=%d: created %v, label %q; want %v", testEpoch+1, cf.Created, cf.Config.Labels["org.opencontainers.image.created"], want)
	}

	// Writing the same image as an OCI layout twice gives the same bytes too (the layer is built once here: the
	// build itself is covered above).
	img, err := buildImage(spec{binary: []byte("not run"), platform: v1.Platform{OS: "linux", Architecture: "amd64"}, version: testVersion, created: time.Unix(testEpoch, 0), oci: true})
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("ghcr.io/kiem-io/kiem:" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	o1, o2 := filepath.Join(dir, "o1.tar"), filepath.Join(dir, "o2.tar")
	for _, o := range []string{o1, o2} {
		if err := writeOCI(o, tag, img, time.Unix(testEpoch, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if fileSHA256(t, o1) != fileSHA256(t, o2) {
		t.Errorf("two OCI writes of the same image differ")
	}
}

// TestPush pushes each tarball to a registry as `crane push` does (an in-process one) and reads it back: the
// registry holds the image under the digest the command printed, the one to give the chart as image.digest.
func TestPush(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close) // after the parallel subtests, unlike a defer
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, format := range []string{"docker", "oci"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			path, r := sharedImage[format]()
			printed := mustSucceed(t, r)
			ref, err := name.NewTag(host + "/kiem-io/kiem:" + format)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, openImage(t, format, path)); err != nil {
				t.Fatalf("push: %v", err)
			}
			desc, err := remote.Head(ref)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest.String() != printed["digest"] {
				t.Errorf("the registry has %s, the command printed %s", desc.Digest, printed["digest"])
			}
			pulled, err := remote.Image(ref.Context().Digest(printed["digest"]))
			if err != nil {
				t.Fatal(err)
			}
			cf, err := pulled.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{"/kiem"}) {
				t.Errorf("pulled by digest: user %q, entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
			}
		})
	}
}

// TestReject: a command line or binary the image cannot be built from fails with a message naming the problem,
// and writes nothing.
func TestReject(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "kiem.sh")
	if err := os.WriteFile(text, []byte("#!/bin/sh\necho kiem\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A cgo-free binary linked as a PIE still has an ELF interpreter: it needs the dynamic loader.
	pieSrc, pie := filepath.Join(dir, "pie"), filepath.Join(dir, "pie.bin")
	if err := os.MkdirAll(pieSrc, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, content := range map[string]string{"go.mod": "module pie\n\ngo 1.26\n", "main.go": "package main\n\nfunc main() {}\n"} {
		if err := os.WriteFile(filepath.Join(pieSrc, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := goBuild(pieSrc, pie, ".", "-buildmode=pie"); err != nil {
		t.Fatal(err)
	}
	otherArch := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "linux/amd64"
	}
	out := filepath.Join(dir, "out.tar")
	with := func(key, value string) []string {
		args := stdArgs("docker", out)
		if i := slices.Index(args, key); i >= 0 {
			if value == "" {
				return slices.Delete(args, i, i+2)
			}
			args[i+1] = value
			return args
		}
		return append(args, key, value)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no binary", with("-binary", ""), nil, "-binary is required"},
		{"no version", with("-version", ""), nil, "-version is required"},
		{"no output", with("-o", ""), nil, "-o is required"},
		{"unknown format", with("-format", "tar"), nil, `-format "tar": want docker or oci`},
		{"no architecture", with("-platform", "linux"), nil, `-platform "linux": want linux/ARCH`},
		{"not linux", with("-platform", "windows/amd64"), nil, `-platform "windows/amd64": want linux/ARCH`},
		{"unsupported architecture", with("-platform", "linux/mips"), nil, `unsupported architecture "mips"`},
		{"other architecture", with("-platform", otherArch), nil, "not for " + strings.TrimPrefix(otherArch, "linux/")},
		{"not ELF", with("-binary", text), nil, "is not a Linux (ELF) binary"},
		{"directory", with("-binary", dir), nil, "is not a regular file"},
		{"missing binary", with("-binary", filepath.Join(dir, "nope")), nil, "no such file"},
		{"dynamically linked", with("-binary", pie), nil, "is dynamically linked (interpreter /"},
		{"invalid tag", with("-tag", "ghcr.io/kiem-io/KIEM:v1"), nil, "-tag:"},
		{"version not a tag", with("-version", "v1.0.0+dirty"), nil, "-tag:"},
		{"stray argument", append(stdArgs("docker", out), "serve"), nil, `unexpected arguments ["serve"]`},
		{"epoch not a number", with("-source-date-epoch", "yesterday"), nil, `-source-date-epoch "yesterday"`},
		{"negative epoch", with("-source-date-epoch", "-1"), nil, `-source-date-epoch "-1"`},
		{"bad SOURCE_DATE_EPOCH", with("-source-date-epoch", ""), map[string]string{"SOURCE_DATE_EPOCH": "1.5"}, `SOURCE_DATE_EPOCH "1.5"`},
		{"unknown flag", with("-push", "ghcr.io/x/y:z"), nil, "flag provided but not defined: -push"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, func(k string) string { return tc.env[k] }, &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", code, stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after a failure (%v)", out, err)
			}
		})
	}
}

func TestSourceDateEpoch(t *testing.T) {
	for _, tc := range []struct {
		flag, env string
		want      int64
		wantErr   bool
	}{
		{want: 0},
		{env: "1700000000", want: 1700000000},
		{flag: "1600000000", env: "1700000000", want: 1600000000},
		{flag: "0", env: "1700000000", want: 0},
		{env: "-5", wantErr: true},
		{flag: "1e9", wantErr: true},
	} {
		t.Run(fmt.Sprintf("flag=%q,env=%q", tc.flag, tc.env), func(t *testing.T) {
			got, err := sourceDateEpoch(tc.flag, func(k string) string {
				if k == "SOURCE_DATE_EPOCH" {
					return tc.env
				}
				return ""
			})
			if (err != nil) != tc.wantErr || (err == nil && (got.Unix() != tc.want || got.Location() != time.UTC)) {
				t.Errorf("got %v, %v; want %d (error: %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
