# tenantguard: build, test and run locally.
#   make dev    a local control plane with the guard installed, and the five problems replayed
#   make test   the whole test suite (what CI runs)
#   make image  the container image, built without a container engine

GO        ?= go
BIN       := bin/tenantguard
TOOLS     := $(GO) tool -modfile=hack/tools/go.mod
PKG       := github.com/tenantguard/tenantguard
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS   := -X $(PKG)/internal/version.Version=$(VERSION)

# The image: static release binaries (no dev command, see cmd/tenantguard/
# dev_release.go) per platform, assembled by hack/image into an OCI layout
# in bin/image, or pushed to IMAGE_REPO:IMAGE_TAG when IMAGE_REPO is set.
# Reproducible: file and creation times are the commit time (the epoch
# outside a git checkout).
IMAGE_REPO      ?=
IMAGE_TAG       ?= $(VERSION)
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
REVISION        ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED         ?= $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
RELEASE_FLAGS   := -trimpath -tags release -ldflags "-s -w $(LDFLAGS)"

.PHONY: all build test dev controlplane image lint generate fuzz bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tenantguard

# controlplane builds kube-apiserver, etcd and kubectl once from the Go module
# proxy and caches them ($$TENANTGUARD_CACHE_DIR, default ~/.cache/tenantguard).
controlplane: build
	$(BIN) dev binaries

test: controlplane
	$(GO) test -race -count=1 -timeout 45m ./...

dev: build image
	$(BIN) dev --image bin/image

image:
	rm -rf bin/image
	@for p in $(IMAGE_PLATFORMS); do \
		echo "go build $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build $(RELEASE_FLAGS) -o bin/$${p%/*}_$${p#*/}/tenantguard ./cmd/tenantguard || exit 1; \
	done
	$(GO) run ./hack/image -version "$(VERSION)" -revision "$(REVISION)" -created "$(CREATED)" \
		$(foreach p,$(IMAGE_PLATFORMS),-binary $(p)=bin/$(subst /,_,$(p))/tenantguard) \
		$(if $(IMAGE_REPO),-repo "$(IMAGE_REPO)" -tag "$(IMAGE_TAG)",-out bin/image -tag "$(IMAGE_TAG)")

lint:
	$(GO) vet ./...
	$(GO) vet -tags release ./cmd/tenantguard
	$(TOOLS) staticcheck ./...
	$(TOOLS) staticcheck -tags release ./cmd/tenantguard
	$(GO) mod tidy -diff
	@# The doctor runs on the engineers' machines: the release binary must
	@# build for Windows and macOS.
	GOOS=windows GOARCH=amd64 $(GO) build -tags release -o /dev/null ./cmd/tenantguard
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/tenantguard
	GOOS=darwin GOARCH=arm64 $(GO) build -tags release -o /dev/null ./cmd/tenantguard

# generate refreshes the deepcopy code and the CRDs from api/.
generate:
	$(TOOLS) controller-gen object paths=./api/...
	$(TOOLS) controller-gen crd paths=./api/... output:crd:artifacts:config=config/crd
	$(GO) generate ./internal/install
	$(GO) test ./internal/install -run TestChartTenantRolesMatchGo -args -update-chart

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
