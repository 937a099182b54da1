# mcpmesh — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BUF := $(GO) tool -modfile=tools/go.mod buf
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/mcpmesh/mcpmesh/internal/version.Version=$(VERSION)
BINS := controlplane dataplane mcpctl
# Unit tests: every package except the e2e suite (which has its own build tag).
UNIT_PKGS := ./...
E2E_TIMEOUT ?= 10m

.PHONY: help build test unit-test e2e-test fuzz lint generate check-generate check-imports check-deploy run bench bench-profile soak clean tidy fmt

help: ## List the targets.
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The binaries are static (CGO_ENABLED=0: the pure-Go DNS resolver and user
# lookup, no libc): they run in a distroless or scratch image, and each process
# maps about 1.7 MB less (libc and the dynamic loader), a tenth of a data
# plane's idle RSS. The race detector's unit tests still build with cgo.
# grpcnotrace leaves out grpc's golang.org/x/net/trace (request traces on
# /debug/requests, which nothing here turns on): it renders with html/template,
# whose execution reaches reflect's MethodByName, and that makes the linker
# keep every exported method of every type: with it out (and the /oauth pages
# built with gomponents) the data plane is 2.9 MB (15 %) smaller, and all of
# a binary is resident in each process.
BUILD_TAGS = grpcnotrace
build: export CGO_ENABLED = 0
build: ## Build bin/controlplane, bin/dataplane, bin/mcpctl, bin/demo-backend and bin/conformance-fixture (static).
	@mkdir -p bin
	$(GO) build -tags $(BUILD_TAGS) -ldflags "$(LDFLAGS)" -o bin/controlplane ./controlplane
	$(GO) build -tags $(BUILD_TAGS) -ldflags "$(LDFLAGS)" -o bin/dataplane ./dataplane
	$(GO) build -tags $(BUILD_TAGS) -ldflags "$(LDFLAGS)" -o bin/mcpctl ./mcpctl
	$(GO) build -tags $(BUILD_TAGS) -ldflags "$(LDFLAGS)" -o bin/demo-backend ./internal/testbackend/cmd/demo-backend
	@# mcp-go's own server for the official conformance suite (e2e/conformance_test.go),
	@# built from the module cache at the version go.mod requires.
	$(GO) build -o bin/conformance-fixture github.com/mark3labs/mcp-go/examples/conformance

test: lint check-imports check-generate check-deploy unit-test fuzz e2e-test ## Run every check and test (what CI runs).

# make test fuzzes each of the ~30 targets for 5 s (plus its build), to stay
# within CI's 15-minute budget on 2 cores; `make fuzz` alone runs 10 s each.
test: FUZZTIME ?= 5s

unit-test: ## Unit tests with the race detector (and the data plane's HTTP packages once without it).
	$(GO) test -race -count=1 -timeout 10m $(UNIT_PKGS)
	# h1's raw socket I/O is off under -race (dataplane/h1/race_on.go): run
	# the packages whose tests cross it once more with it on.
	$(GO) test -count=1 -timeout 5m ./dataplane/h1/ ./dataplane/backend/ ./dataplane/router/ ./dataplane/front/ ./dataplane/app/

fuzz: ## Every fuzz target with -fuzz for FUZZTIME (default 10s) each.
	FUZZTIME=$(or $(FUZZTIME),10s) scripts/fuzz.sh

e2e-test: build chromium ## End-to-end tests against the real binaries.
	MCPMESH_BIN_DIR=$(CURDIR)/bin $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -v ./e2e/...

# Real MCP software that is not mcp-go (Node 22, the official everything server,
# TypeScript SDK and conformance suite), for e2e/{interop,conformance,relay}_test.go.
# With MCPMESH_INTEROP_DIR set, as here, those tests fail rather than skip when
# the install is missing.
INTEROP_DIR ?= $(CURDIR)/.cache/interop
.PHONY: interop
interop: ## Install the interop test software (pinned npm packages) into .cache/interop.
	MCPMESH_INTEROP_DIR=$(INTEROP_DIR) scripts/interop-install.sh
e2e-test: interop
e2e-test: export MCPMESH_INTEROP_DIR := $(INTEROP_DIR)

# Headless Chromium drives the /oauth page in e2e/oauth_test.go (Debian's
# chromium package at /usr/bin/chromium).
.PHONY: chromium
chromium: ## Install Chromium for the /oauth browser test (apt-get, as root) when /usr/bin/chromium is missing.
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update && apt-get install -y --no-install-recommends chromium; \
	else \
		echo "e2e/oauth_test.go needs Chromium at /usr/bin/chromium: install it (Debian/Ubuntu: sudo apt-get install chromium) and run make again"; exit 1; \
	fi

lint: ## gofmt, go vet (also with the e2e tag) and buf lint.
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) vet -tags bench ./bench/...
	$(BUF) lint

fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go' | grep -v '^gen/')

generate: ## Regenerate gen/ from proto/.
	rm -rf gen
	$(BUF) generate

check-generate: generate ## Fail if the generated code differs from what is committed.
	@git diff --exit-code --stat -- gen || (echo "generated code is stale: run 'make generate' and commit gen/"; exit 1)
	@if [ -n "$$(git status --porcelain -- gen)" ]; then git status --porcelain -- gen; echo "untracked generated files: run 'make generate' and commit gen/"; exit 1; fi

check-imports: ## controlplane, dataplane and mcpctl never import each other.
	@scripts/check-imports.sh

# deploy/validate is a module of its own, so k8s.io/api and kustomize stay out
# of mcpmesh's go.mod. It renders each kustomization (base and any overlay)
# and checks it strictly against the Kubernetes API types.
DEPLOY_DIRS := ../kubernetes $(patsubst deploy/%,../%,$(filter-out deploy/kubernetes-ha,$(wildcard deploy/kubernetes-*)))
check-deploy: ## Validate the Kubernetes manifests (kustomize render, strict API decode, semantic checks).
	cd deploy/validate && $(GO) vet ./... && $(GO) test -count=1 ./... && $(GO) run . $(DEPLOY_DIRS)
	@# The HA overlay is a sibling of the base (kustomize refuses an overlay inside its base's
	@# directory) and names one more operator-made Secret.
	cd deploy/validate && $(GO) run . -external-secrets mcpmesh-dataplane-token,mcpmesh-grpc-tls,mcpmesh-controlplane-secrets ../kubernetes-ha

run: build ## Embedded default: control plane (./data), data plane on 127.0.0.1:8080, demo backend.
	@scripts/run.sh

BENCH_CMD = $(GO) test -tags bench -run '^$$' -bench . -benchmem -count=$(or $(COUNT),3) -timeout 30m ./bench/
bench: build ## Benchmarks against a direct connection, same run; records bench/results/latest.{txt,json,md}.
	@mkdir -p bench/results
	@# The commit is read before the run rewrites bench/results (which would make it -dirty).
	set -o pipefail; commit=$$(git describe --always --dirty); \
	MCPMESH_BIN_DIR=$(CURDIR)/bin $(BENCH_CMD) | tee bench/results/latest.txt && \
	$(GO) run ./bench/report -in bench/results/latest.txt -json bench/results/latest.json -md bench/results/latest.md -commit "$$commit" -command "$(BENCH_CMD)"

PROFILE ?= $(CURDIR)/bench/results/dataplane-cpu.pprof
bench-profile: build ## CPU and allocation profiles of the bench data plane under tools/call load (16 sessions, 10 s; SESSIONS=1 for the serial path) into $(PROFILE) and its -allocs.pprof; prints pprof -top.
	@mkdir -p $(dir $(PROFILE))
	MCPMESH_BIN_DIR=$(CURDIR)/bin MCPMESH_BENCH_CPUPROFILE=$(PROFILE) MCPMESH_BENCH_PROFILE_SESSIONS=$(or $(SESSIONS),16) $(GO) test -tags bench -run '^$$' -bench '^BenchmarkProfile$$' -count=1 -timeout 10m ./bench/
	{ $(GO) tool pprof -top -nodecount=40 bin/dataplane $(PROFILE); echo; $(GO) tool pprof -top -cum -nodecount=60 bin/dataplane $(PROFILE) | sed -n '/flat%/,$$p'; } | tee $(basename $(PROFILE))-top.txt

SOAK ?= 10m
soak: build ## Chaos soak: flap backend endpoints for $(SOAK) (10m), report success rate, uptime, recovery.
	set -o pipefail; MCPMESH_BIN_DIR=$(CURDIR)/bin MCPMESH_SOAK=$(SOAK) $(GO) test -tags e2e -count=1 -timeout 60m -run '^TestSoakFlappingEndpoints$$' -v ./e2e/ 2>&1 | tee soak.out | grep -E 'measure:|^(---|ok|FAIL|PASS)|calls failed'

tidy: ## go mod tidy for both modules.
	$(GO) mod tidy
	cd tools && $(GO) mod tidy
	cd deploy/validate && $(GO) mod tidy

clean: ## Remove build output (keeps ./data).
	rm -rf bin e2e.out soak.out
