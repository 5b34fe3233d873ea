// Command image builds kiem's container image without a daemon and without downloading a base image: one layer
// on an empty base holding a prebuilt static Linux kiem binary as /kiem, the nonroot user (65532) the Helm chart
// runs it as, and a CA bundle. The result is a tarball for `docker load` or an OCI image layout tar; the same
// inputs always give the same image digest. See README.md.
//
//	go run . -binary ../../bin/kiem-linux-amd64 -version v0.1.0 -revision "$(git rev-parse HEAD)" -o ../../bin/kiem-image.tar
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const defaultRepository = "ghcr.io/kiem-io/kiem"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run builds and writes the image the command line asks for, prints what it wrote, and returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("image", flag.ContinueOnError)
	fl.SetOutput(stderr)
	binary := fl.String("binary", "", "the static Linux kiem binary to install as /kiem (required; CGO_ENABLED=0 GOOS=linux go build ./cmd/kiem)")
	platform := fl.String("platform", "linux/amd64", "OS/ARCH[/VARIANT] of the image; must match -binary")
	version := fl.String("version", "", "kiem's version: the org.opencontainers.image.version label and the default tag (required)")
	tag := fl.String("tag", "", "the image's name in the tarball (default "+defaultRepository+":VERSION)")
	revision := fl.String("revision", "", "the commit built (git rev-parse HEAD): the org.opencontainers.image.revision label")
	epoch := fl.String("source-date-epoch", "", "Unix time of every file's mtime and of the image's creation (default $SOURCE_DATE_EPOCH, else 0)")
	out := fl.String("o", "", "the tarball to write (required)")
	format := fl.String("format", "docker", "docker (for docker load and crane push) or oci (an OCI image layout tar, skopeo's oci-archive)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "image: %v\n", err)
		return 1
	}
	if fl.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q", fl.Args()))
	}
	switch {
	case *binary == "":
		return fail(errors.New("-binary is required"))
	case *version == "":
		return fail(errors.New("-version is required"))
	case *out == "":
		return fail(errors.New("-o is required"))
	case *format != "docker" && *format != "oci":
		return fail(fmt.Errorf("-format %q: want docker or oci", *format))
	}
	p, err := v1.ParsePlatform(*platform)
	if err != nil {
		return fail(fmt.Errorf("-platform: %w", err))
	}
	if p.OS != "linux" || p.Architecture == "" {
		return fail(fmt.Errorf("-platform %q: want linux/ARCH[/VARIANT]", *platform))
	}
	if *tag == "" {
		*tag = defaultRepository + ":" + *version
	}
	ref, err := name.NewTag(*tag, name.StrictValidation)
	if err != nil {
		return fail(fmt.Errorf("-tag: %w", err))
	}
	created, err := sourceDateEpoch(*epoch, getenv)
	if err != nil {
		return fail(err)
	}
	bin, err := readBinary(*binary, *p)
	if err != nil {
		return fail(err)
	}

	s := spec{binary: bin, platform: *p, version: *version, revision: *revision, created: created, oci: *format == "oci"}
	img, err := buildImage(s)
	if err != nil {
		return fail(err)
	}
	if s.oci {
		err = writeOCI(*out, ref, img, created)
	} else {
		err = writeDocker(*out, ref, img)
	}
	if err != nil {
		return fail(fmt.Errorf("writing %s: %w", *out, err))
	}
	if err := report(stdout, img, ref, *p, *format, *out); err != nil {
		return fail(err)
	}
	return 0
}

// sourceDateEpoch is the time of -source-date-epoch, else of $SOURCE_DATE_EPOCH (reproducible-builds.org), else
// the Unix epoch.
func sourceDateEpoch(flagValue string, getenv func(string) string) (time.Time, error) {
	v, from := flagValue, "-source-date-epoch"
	if v == "" {
		v, from = getenv("SOURCE_DATE_EPOCH"), "SOURCE_DATE_EPOCH"
	}
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("%s %q: want a non-negative number of seconds since 1970", from, v)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// report prints what was written: the digest is the manifest's, the one a registry reports for the image once
// `crane push` (docker format) or `skopeo copy oci-archive:` (oci format) has copied it unchanged.
func report(w io.Writer, img v1.Image, ref name.Tag, p v1.Platform, format, out string) error {
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	configName, err := img.ConfigName()
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	size := int64(len(rawManifest)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "image:    %s\nplatform: %s\nformat:   %s\nfile:     %s (%d bytes)\ndigest:   %s\nimage id: %s\nsize:     %d bytes (manifest, config and compressed layer, as pushed)\n",
		ref.Name(), p.String(), format, out, fi.Size(), digest, configName, size)
	return err
}
