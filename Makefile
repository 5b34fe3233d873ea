# kiem's build, test and benchmark entry points. `make test` is exactly what CI runs (.ci/run).
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
GO_MIN      := 1.26
ORACLE_DIR  := e2e/oracle
BENCH_TIME  ?= 1x
# Pinned (v0.8.2 is staticcheck 2026.2.2); `go run pkg@version` builds it once into the Go build cache and needs no go.mod entry.
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Pinned like staticcheck: helm v3.22.0 renders the chart (deploy/helm/kiem) into deploy/manifests, no go.mod entry.
HELM        := $(GO) run helm.sh/helm/v3/cmd/helm@v3.22.0

.PHONY: all build test test-unit test-load soak image test-image bench-scale test-oracle test-ui ui ui-deps prereq-ui kube-binaries lint fmt prereq bench bench-ui generate gqlgen check-generated clean docs

all: build

build:
	$(GO) build -o bin/kiem ./cmd/kiem

## prereq: fail fast, naming what is missing.
prereq:
	@command -v $(GO) >/dev/null || { echo "make: Go $(GO_MIN) or newer is required (https://go.dev/dl/); 'go' is not on PATH" >&2; exit 1; }
	@v=$$($(GO) env GOVERSION | sed 's/^go//'); \
	 if [ "$$(printf '%s\n%s\n' "$(GO_MIN)" "$$v" | sort -V | head -1)" != "$(GO_MIN)" ]; then \
	   echo "make: Go $(GO_MIN) or newer is required, found $$v" >&2; exit 1; fi
	@command -v git >/dev/null || { echo "make: git is required" >&2; exit 1; }

## test: everything CI runs: lint, the main module's tests with -race, fuzzing, the load-and-faults test, the
## differential oracle, and the console in a real browser.
test: prereq prereq-ui lint kube-binaries test-unit fuzz test-load test-image test-oracle test-ui

## prereq-ui: the console's build and browser tests need Node.js 18+, npm and Debian's chromium (never a
## downloaded browser). KIEM_CHROMIUM points elsewhere.
CHROMIUM ?= $(or $(KIEM_CHROMIUM),/usr/bin/chromium)
prereq-ui:
	@command -v node >/dev/null || { echo "make: Node.js 18 or newer is required for the console (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	@command -v npm >/dev/null || { echo "make: npm is required for the console (Debian: apt-get install npm)" >&2; exit 1; }
	@v=$$(node -p 'process.versions.node.split(".")[0]'); [ "$$v" -ge 18 ] || { echo "make: Node.js 18 or newer is required, found $$(node --version)" >&2; exit 1; }
	@[ -x "$(CHROMIUM)" ] || { echo "make: the browser tests need Chromium at $(CHROMIUM) (Debian: apt-get install chromium; or set KIEM_CHROMIUM)" >&2; exit 1; }

## ui-deps: the console's npm packages, exactly as package-lock.json pins them.
ui-deps: prereq-ui
	cd ui && npm ci --no-audit --no-fund --loglevel=error

## ui: rebuild the console's embedded assets (ui/dist) from ui/src; commit the result.
ui: ui-deps
	cd ui && node build.mjs

## test-ui: ui/dist is what ui/src builds, the sources type-check, and the browser tests pass against the built
## binary (kiem serve --demo in headless chromium; screenshots under ui/e2e/artifacts).
test-ui: ui-deps build
	cd ui && node build.mjs --check
	cd ui && node_modules/.bin/tsc --noEmit -p .
	cd ui && KIEM_BIN=$(CURDIR)/bin/kiem KIEM_CHROMIUM=$(CHROMIUM) node --test --test-concurrency=1 e2e/

## test-unit needs the binaries: tests that start a cluster (internal/kubetest) run in `go test ./...`. The load
## test (e2e/load) runs on its own in test-load, without -race: it measures a normal build of kiem.
test-unit: kube-binaries
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/e2e/load$$')

## test-load: the real kiem against a synthetic cluster making 1,000 changes/s for LOAD_DURATION, with 50 GraphQL
## clients and faults (watches cut, history compacted, kill -9 and restart); asserts no errors, bounded memory and
## no lost revision, and prints its figures. See docs/operations.md for the soak run.
LOAD_DURATION ?= 60s
test-load: prereq build
	$(GO) test -count=1 -v -timeout 20m -run '^TestLoadAndFaults$$' ./e2e/load/ \
	  -args -load.kiem=$(CURDIR)/bin/kiem -load.duration=$(LOAD_DURATION)

## soak: the load test for hours, not in CI, keeping kiem's store and log in bin/soak, e.g.
## `make soak SOAK_DURATION=8h SOAK_RATE=2000`.
SOAK_DURATION ?= 2h
SOAK_RATE     ?= 1000
soak: prereq build
	rm -rf bin/soak
	$(GO) test -count=1 -v -timeout 0 -run '^TestLoadAndFaults$$' ./e2e/load/ \
	  -args -load.kiem=$(CURDIR)/bin/kiem -load.duration=$(SOAK_DURATION) -load.rate=$(SOAK_RATE) -load.keep=$(CURDIR)/bin/soak

.PHONY: fuzz

## fuzz: each native Go fuzz target for FUZZTIME (their seed corpora, testdata/fuzz/FuzzX/, also run in every
## `go test`). A crasher is written to testdata/fuzz/FuzzX/ of its package, where `go test` replays it: fix the
## code and keep the file. For a longer hunt, e.g. `make fuzz FUZZTIME=10m`. FUZZPARALLEL bounds the workers.
FUZZTIME     ?= 20s
FUZZPARALLEL ?= 2
fuzz: prereq
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) ./indexer/
	$(GO) test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) ./queries/filters/
	$(GO) test -run '^$$' -fuzz '^FuzzReadFile$$' -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) ./queries/filters/
	$(GO) test -run '^$$' -fuzz '^FuzzGraphQL$$' -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) ./gql/

## image: kiem's container image without a daemon (hack/image): a static linux/$(IMAGE_ARCH) kiem in
## bin/kiem-linux-$(IMAGE_ARCH), then bin/kiem-image.tar (IMAGE_FORMAT=docker: docker load, crane push;
## oci: skopeo copy oci-archive:). Reproducible: file times are the last commit's. For a release, set
## IMAGE_VERSION to the chart's appVersion (e.g. 0.1.0, no "v"). See docs/install.md.
IMAGE_REPO    ?= ghcr.io/kiem-io/kiem
IMAGE_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_ARCH    ?= amd64
IMAGE_FORMAT  ?= docker
image: prereq
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags '-s -w' -o bin/kiem-linux-$(IMAGE_ARCH) ./cmd/kiem
	cd hack/image && SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(GO) run . \
	  -binary $(CURDIR)/bin/kiem-linux-$(IMAGE_ARCH) -platform linux/$(IMAGE_ARCH) \
	  -version $(IMAGE_VERSION) -tag $(IMAGE_REPO):$(IMAGE_VERSION) -revision $$(git rev-parse HEAD) \
	  -format $(IMAGE_FORMAT) -o $(CURDIR)/bin/kiem-image.tar

## test-image: the image builder's tests (hack/image, its own module): builds kiem and its image in both formats,
## checks config and layer, pushes both to an in-process registry, runs the image's /kiem --help. ~10 s warm.
test-image: prereq
	cd hack/image && $(GO) test -count=1 ./...

## kube-binaries: etcd, kube-apiserver and kube-controller-manager v1.33.13 for internal/kubetest, built from the
## Go module proxy into ~/.cache/kiem/kube (KIEM_KUBE_BIN_DIR overrides). ~8-10 min cold, instant once cached.
## Also kubectl v1.33.13, with which cmd/kiem/deploy_e2e_test.go applies the manifests of deploy/ to that apiserver.
kube-binaries: prereq
	bash hack/kube-binaries.sh

test-oracle:
	cd $(ORACLE_DIR) && $(GO) test -count=1 ./...

## gqlgen: regenerate the GraphQL server code (gql/generated.go, gql/models_gen.go) from gql/schema/*.graphqls.
gqlgen: prereq
	$(GO) tool gqlgen generate --config gqlgen.yml

## check-generated: the committed gqlgen code must be what the schema and gqlgen.yml generate.
GENERATED := gql/generated.go gql/models_gen.go gql/schema.resolvers.go gql/findings.resolvers.go gql/alerts.resolvers.go gql/audit.resolvers.go gql/history.resolvers.go gql/nodes.resolvers.go
check-generated: prereq
	@before=$$(sha256sum $(GENERATED)); \
	 $(GO) tool gqlgen generate --config gqlgen.yml; \
	 after=$$(sha256sum $(GENERATED) 2>/dev/null || true); \
	 if [ "$$before" != "$$after" ]; then \
	   echo "check-generated: the gqlgen code was stale; it is regenerated now (review and commit it):" >&2; \
	   diff <(echo "$$before") <(echo "$$after") >&2 || true; exit 1; fi

.PHONY: manifests check-manifests

## manifests: render the Helm chart deploy/helm/kiem into deploy/manifests/kiem.yaml (default values, after a
## Namespace with Pod Security restricted enforced) and deploy/manifests/examples/NAME.yaml (the values of
## deploy/helm/kiem/ci/NAME-values.yaml), after `helm lint --strict`; commit the result. The first run compiles
## helm (about a minute).
manifests: prereq
	HELM="$(HELM)" bash hack/manifests.sh write

## check-manifests: the chart lints clean and deploy/manifests is what it renders (run by lint).
check-manifests: prereq
	HELM="$(HELM)" bash hack/manifests.sh check

## docs: regenerate docs/rules.md from the embedded packs (a test fails when it is stale).
docs: prereq
	KIEM_UPDATE_DOCS=1 $(GO) test -run TestRulesDoc -count=1 ./queries/

## lint: gofmt, go vet and staticcheck over both modules, generated code and rendered manifests current.
lint: prereq check-generated check-manifests
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	 if [ -n "$$out" ]; then echo "gofmt: these files need 'gofmt -w':" >&2; echo "$$out" >&2; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd $(ORACLE_DIR) && $(GO) vet ./...
	cd $(ORACLE_DIR) && $(STATICCHECK) ./...
	cd hack/image && $(GO) vet ./...
	cd hack/image && $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files -co --exclude-standard '*.go')

## bench: the reference-workload figures of ARCHITECTURE §8 (load time, peak RSS, Can/WhoCan/EffectivePermissions
## percentiles, speed-up over a naive evaluator, incremental Apply, ingest, churn, past revisions, diff, store
## commits and bytes per change). BENCH_TIME=3x repeats them.
bench: prereq
	$(GO) test -run '^$$' -bench 'L$$' -benchtime $(BENCH_TIME) -timeout 60m ./internal/perf/
	$(GO) test -run '^$$' -bench 'Store(CommitL|ObjectsL|History)' -benchtime $(BENCH_TIME) -timeout 60m ./graph/
	$(GO) test -run '^$$' -bench 'StoreCommitSmall' -benchtime 5s -timeout 60m ./graph/
	$(MAKE) bench-ui

## bench-scale: every figure of ARCHITECTURE §8 on L and 2×L in one table with the machine's description, printed
## and saved to bin/bench-scale.md. About 9 minutes on 2 idle cores; 2×L needs about 20 GiB of RAM and is skipped,
## saying why, on a machine with less (SCALE_SIZES=1 measures L alone).
SCALE_SIZES ?= 1,2
bench-scale: prereq
	@mkdir -p bin
	$(GO) test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 90m ./internal/perf/ \
	  -args -scale.sizes=$(SCALE_SIZES) -scale.out=$(CURDIR)/bin/bench-scale.md

## bench-ui: the explorer's time to lay out and render 5,000 nodes, and its frame time while panning.
bench-ui: ui-deps build
	cd ui && KIEM_BIN=$(CURDIR)/bin/kiem KIEM_CHROMIUM=$(CHROMIUM) node bench/explorer.mjs

## generate: write the reference workloads to bin/ (S and L, YAML and JSON).
generate: build
	./bin/kiem generate --size S -o bin/workload-s.yaml
	./bin/kiem generate --size L --format json -o bin/workload-l.json

clean:
	rm -rf bin
