# tenantguard: build, test and run locally.
#   make dev    a local control plane with the guard installed, and the five problems replayed
#   make test   the whole test suite (what CI runs)

GO        ?= go
BIN       := bin/tenantguard
TOOLS     := $(GO) tool -modfile=hack/tools/go.mod
PKG       := github.com/tenantguard/tenantguard
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS   := -X $(PKG)/internal/version.Version=$(VERSION)

.PHONY: all build test dev controlplane lint generate fuzz bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tenantguard

# controlplane builds kube-apiserver, etcd and kubectl once from the Go module
# proxy and caches them ($$TENANTGUARD_CACHE_DIR, default ~/.cache/tenantguard).
controlplane: build
	$(BIN) dev binaries

test: controlplane
	$(GO) test -race -count=1 -timeout 45m ./...

dev: build
	$(BIN) dev

lint:
	$(GO) vet ./...
	$(TOOLS) staticcheck ./...

# generate refreshes the deepcopy code and the CRDs from api/.
generate:
	$(TOOLS) controller-gen object paths=./api/...
	$(TOOLS) controller-gen crd paths=./api/... output:crd:artifacts:config=config/crd

# fuzz runs every fuzz target for FUZZTIME each (seed corpora run in `make test`).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin .tenantguard
