# syntax=docker/dockerfile:1
#
# kiem's container image, for Docker with BuildKit (docker buildx; podman and buildah read it too):
#
#   docker build --build-arg VERSION=v0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" -t ghcr.io/kiem-io/kiem:v0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=v0.1.0 -t ghcr.io/kiem-io/kiem:v0.1.0 --push .
#
# Without a daemon, `make image` builds the same image (entrypoint, user, labels, /var/lib/kiem) on an empty base
# with hack/image instead: see hack/image/README.md. The Helm chart (deploy/helm/kiem) expects exactly this: the
# kiem binary as the entrypoint, run as 65532:65532 on a read-only root filesystem.
#
# VERSION only labels the image: kiem reports the version the Go toolchain records, which is "(devel)" here
# since .git stays out of the build context.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY . .
# Pure Go, statically linked: the final image has no libc. Cross-compiled for the target platform on the build
# machine's own architecture (no emulation).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/kiem ./cmd/kiem
# The store's directory, created below owned by kiem (a Docker volume mounted there starts as a copy of it).
RUN mkdir /out/data

# distroless: CA certificates, /etc/passwd with nonroot (65532), /tmp, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=""
LABEL org.opencontainers.image.title="kiem" \
      org.opencontainers.image.description="Kubernetes Identity Entitlement Management: who can do what in a cluster, why, and since when" \
      org.opencontainers.image.source="https://github.com/kiem-io/kiem" \
      org.opencontainers.image.url="https://github.com/kiem-io/kiem" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/kiem /kiem
COPY --from=build --chown=65532:65532 /out/data/ /var/lib/kiem/
USER 65532:65532
WORKDIR /
# No CMD: bare `kiem` prints its usage. The chart passes `serve --data-dir=/var/lib/kiem ...` as args.
ENTRYPOINT ["/kiem"]
