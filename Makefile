# kiem's build, test and benchmark entry points. `make test` is exactly what CI runs (.ci/run).
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
GO_MIN      := 1.26
ORACLE_DIR  := e2e/oracle
BENCH_TIME  ?= 1x
# Pinned (v0.8.2 is staticcheck 2026.2.2); `go run pkg@version` builds it once into the Go build cache and needs no go.mod entry.
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test test-unit test-oracle kube-binaries lint fmt prereq bench generate gqlgen check-generated clean docs

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

## test: everything CI runs: lint, the main module's tests with -race, and the differential oracle.
test: prereq lint kube-binaries test-unit test-oracle

## test-unit needs the binaries: tests that start a cluster (internal/kubetest) run in `go test ./...`.
test-unit: kube-binaries
	$(GO) test -race -count=1 ./...

## kube-binaries: etcd, kube-apiserver and kube-controller-manager v1.33.13 for internal/kubetest, built from the
## Go module proxy into ~/.cache/kiem/kube (KIEM_KUBE_BIN_DIR overrides). ~8-10 min cold, instant once cached.
kube-binaries: prereq
	bash hack/kube-binaries.sh

test-oracle:
	cd $(ORACLE_DIR) && $(GO) test -count=1 ./...

## gqlgen: regenerate the GraphQL server code (gql/generated.go, gql/models_gen.go) from gql/schema/*.graphqls.
gqlgen: prereq
	$(GO) tool gqlgen generate --config gqlgen.yml

## check-generated: the committed gqlgen code must be what the schema and gqlgen.yml generate.
GENERATED := gql/generated.go gql/models_gen.go gql/schema.resolvers.go gql/findings.resolvers.go gql/alerts.resolvers.go
check-generated: prereq
	@before=$$(sha256sum $(GENERATED)); \
	 $(GO) tool gqlgen generate --config gqlgen.yml; \
	 after=$$(sha256sum $(GENERATED) 2>/dev/null || true); \
	 if [ "$$before" != "$$after" ]; then \
	   echo "check-generated: the gqlgen code was stale; it is regenerated now (review and commit it):" >&2; \
	   diff <(echo "$$before") <(echo "$$after") >&2 || true; exit 1; fi

## docs: regenerate docs/rules.md from the embedded packs (a test fails when it is stale).
docs: prereq
	KIEM_UPDATE_DOCS=1 $(GO) test -run TestRulesDoc -count=1 ./queries/

## lint: gofmt, go vet and staticcheck over both modules, and generated code current.
lint: prereq check-generated
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	 if [ -n "$$out" ]; then echo "gofmt: these files need 'gofmt -w':" >&2; echo "$$out" >&2; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd $(ORACLE_DIR) && $(GO) vet ./...
	cd $(ORACLE_DIR) && $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files -co --exclude-standard '*.go')

## bench: the reference-workload figures of ARCHITECTURE §8 (load time, peak RSS, Can/WhoCan/EffectivePermissions
## percentiles, speed-up over a naive evaluator, incremental Apply, ingest, churn, past revisions, diff, store
## commits and bytes per change). BENCH_TIME=3x repeats them.
bench: prereq
	$(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -timeout 60m ./internal/perf/
	$(GO) test -run '^$$' -bench 'Store(CommitL|ObjectsL|History)' -benchtime $(BENCH_TIME) -timeout 60m ./graph/
	$(GO) test -run '^$$' -bench 'StoreCommitSmall' -benchtime 5s -timeout 60m ./graph/

## generate: write the reference workloads to bin/ (S and L, YAML and JSON).
generate: build
	./bin/kiem generate --size S -o bin/workload-s.yaml
	./bin/kiem generate --size L --format json -o bin/workload-l.json

clean:
	rm -rf bin
