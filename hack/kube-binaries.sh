#!/usr/bin/env bash
# kube-binaries.sh builds kube-apiserver, kube-controller-manager and etcd for
# kiem's e2e harness (internal/kubetest) from the Go module proxy, and kubectl
# of the same version for the tests that apply manifests as an operator would
# (cmd/kiem/deploy_e2e_test.go).
#
# It uses a throwaway module in a temp dir that requires k8s.io/kubernetes and
# replaces every ./staging module with its published v0.Y.Z version (see
# /work/shared/KUBE-APISERVER.md §2b). etcd comes from the version kubernetes pins.
#
# Output: ${KIEM_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiem/kube/v1.33.13/bin}
# The last line printed is that directory. Re-running with the binaries in place
# exits at once. Each binary is built to a temporary name and then renamed, so
# an interrupted build never leaves a half-written binary under its real name.
#
# With --check it never builds: it prints the directory if the binaries are
# there and otherwise exits 3 with a hint to run `make kube-binaries`.
set -euo pipefail

K8S_VERSION=v1.33.13
STAGING_VERSION=v0.33.13
K8S_MAJOR=1
K8S_MINOR=33

BIN_DIR="${KIEM_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiem/kube/${K8S_VERSION}/bin}"
BINARIES=(kube-apiserver kube-controller-manager etcd kubectl)

log() { printf '[kube-binaries] %s\n' "$*" >&2; }

# have_all reports whether every binary is installed and kube-apiserver is the
# pinned version.
have_all() {
	local b
	for b in "${BINARIES[@]}"; do
		[[ -x "$BIN_DIR/$b" ]] || return 1
	done
	local v
	v="$("$BIN_DIR/kube-apiserver" --version 2>/dev/null)" || return 1
	[[ "$v" == "Kubernetes ${K8S_VERSION}" ]]
}

# step NAME CMD... runs CMD and logs how long it took.
step() {
	local name=$1
	shift
	local start=$SECONDS
	log "start: $name"
	"$@"
	log "done:  $name ($((SECONDS - start)) s)"
}

CHECK=0
case "${1:-}" in
--check) CHECK=1 ;;
"") ;;
*)
	log "usage: $0 [--check]"
	exit 2
	;;
esac

if have_all; then
	log "kube-apiserver, kube-controller-manager, etcd and kubectl ${K8S_VERSION} already in $BIN_DIR"
	echo "$BIN_DIR"
	exit 0
fi
if ((CHECK)); then
	# Tests call --check (internal/kubetest.BinDir): they must fail fast with a hint rather than start a
	# ~10 min build inside `go test`'s timeout, and parallel test binaries must not each start a build.
	log "kube-apiserver, kube-controller-manager, etcd or kubectl ${K8S_VERSION} are missing from $BIN_DIR: run \`make kube-binaries\` (about 10 min cold, seconds with a warm Go build cache)"
	exit 3
fi

command -v go >/dev/null || { log "go not found in PATH"; exit 1; }
mkdir -p "$BIN_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kiem-kube-build.XXXXXX")"
cleanup() {
	# Remove the throwaway module and any temp binaries left by an interrupted build.
	rm -rf "$WORK"
	rm -f "$BIN_DIR"/.*.tmp.$$
}
trap cleanup EXIT
TOTAL_START=$SECONDS
log "building ${K8S_VERSION} into $BIN_DIR (work dir $WORK)"

download_kubernetes() {
	(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" >/dev/null)
}
step "go mod download k8s.io/kubernetes@${K8S_VERSION}" download_kubernetes

write_module() {
	local mod
	mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/${K8S_VERSION}.mod"
	[[ -f "$mod" ]] || { log "missing $mod"; return 1; }
	local replaces
	replaces="$(grep -E '=> \./staging' "$mod" | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}')"
	[[ -n "$replaces" ]] || { log "no ./staging replaces found in $mod"; return 1; }
	log "replacing $(wc -l <<<"$replaces") staging modules with ${STAGING_VERSION}"
	{
		echo "module local/k8sbuild"
		echo
		echo "go 1.24.0"
		echo
		echo "require k8s.io/kubernetes ${K8S_VERSION}"
		echo
		echo "replace ("
		echo "$replaces"
		echo ")"
	} >"$WORK/go.mod"
	cat >"$WORK/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3" // etcd main package; version pinned by k8s.io/kubernetes
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
}
step "write throwaway module" write_module

tidy() { (cd "$WORK" && go mod tidy); }
step "go mod tidy" tidy
log "etcd: $(cd "$WORK" && go list -m go.etcd.io/etcd/server/v3)"

LDFLAGS_K8S="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=${K8S_MAJOR} -X k8s.io/component-base/version.gitMinor=${K8S_MINOR} -X k8s.io/component-base/version.gitTreeState=clean"

# build NAME PKG LDFLAGS builds PKG to a temp name in BIN_DIR, then renames it.
build() {
	local name=$1 pkg=$2 ldflags=$3
	local tmp="$BIN_DIR/.${name}.tmp.$$"
	(cd "$WORK" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg")
	mv -f "$tmp" "$BIN_DIR/$name"
}
step "build kube-apiserver" build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$LDFLAGS_K8S"
step "build etcd" build etcd go.etcd.io/etcd/server/v3 "-s -w"
step "build kube-controller-manager" build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$LDFLAGS_K8S"
step "build kubectl" build kubectl k8s.io/kubernetes/cmd/kubectl "$LDFLAGS_K8S"

if ! have_all; then
	log "built binaries failed the check: kube-apiserver --version printed: $("$BIN_DIR/kube-apiserver" --version 2>&1 || true)"
	exit 1
fi
log "all binaries built in $((SECONDS - TOTAL_START)) s"
echo "$BIN_DIR"
