# Tollgate — the two commands that matter are `make run` and `make test`.

GO        ?= go
BIN       := bin/tollgate
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
STATICCHECK_VERSION := v0.8.2
HELM_VERSION        := v3.22.0
GOBIN     := $(shell $(GO) env GOPATH)/bin
FUZZTIME  ?= 15s
BENCHTIME ?= 1s
# vtprotobuf: go-control-plane's generated marshallers for the ext_proc replies (internal/grpccodec,
# docs/performance.md); a build without the tag is correct, only slower.
TAGS      ?= vtprotobuf

.PHONY: all build run test test-short vet fmt-check lint staticcheck tidy-check bench fuzz check-config envoy helm-test docker tools clean

all: build

## build: the tollgate binary (static, no cgo) in bin/
build:
	CGO_ENABLED=0 $(GO) build -tags '$(TAGS)' -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tollgate

## run: the whole gateway on its embedded example config: processor (answering the mock provider) and Envoy (or,
## without an envoy binary, the development front) listening on 127.0.0.1:10000
run:
	$(GO) run -tags '$(TAGS)' ./cmd/tollgate run --dev

## test: the whole suite, as CI runs it (vet, gofmt, race-enabled tests incl. e2e, Redis and Helm chart)
test: vet fmt-check helm-test
	$(GO) test -tags '$(TAGS)' -race -count=1 ./...
	@# the codec's portable path, which a build without the tag runs
	$(GO) test -race -count=1 ./internal/grpccodec/

## tools: what the suite needs beyond Go (helm from the Go module proxy; redis-server from apt where root)
tools:
	@command -v helm >/dev/null || test -x $(GOBIN)/helm || $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || echo "redis-server not installed: Redis tests will skip (install the redis-server package)"; }

## helm-test: lint, render and validate the Helm chart (test/helm is its own module)
helm-test: tools
	cd test/helm && PATH="$(GOBIN):$$PATH" $(GO) vet ./... && PATH="$(GOBIN):$$PATH" $(GO) test -race -count=1 ./...

## test-short: quick tests without the race detector
test-short:
	$(GO) test -tags '$(TAGS)' -count=1 ./...

vet:
	$(GO) vet -tags '$(TAGS)' ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## lint: vet, gofmt, staticcheck and a tidy go.mod (both modules)
lint: vet fmt-check staticcheck tidy-check

tidy-check:
	$(GO) mod tidy -diff
	cd test/helm && $(GO) mod tidy -diff

staticcheck:
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck -tags '$(TAGS)' ./...
	cd test/helm && $(GOBIN)/staticcheck ./...

## docker: build the tollgate image where a Docker engine is available
docker:
	@if docker info >/dev/null 2>&1; then docker build --build-arg VERSION=$(VERSION) -t tollgate:$(VERSION) .; \
	else echo "docker not available: skipping the image build"; fi

## bench: Tollgate against the null-processor floor, ext_proc lifecycle over real gRPC, SSE scanner throughput
## (see docs/performance.md; BENCHTIME=400x for a bounded run on a loaded machine)
bench:
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./extproc/... ./routing/... ./policy/... ./internal/grpccodec/ ./internal/sse/ ./internal/eventstream/

## fuzz: run every fuzz target for FUZZTIME each (their seed corpora run in `make test`)
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## check-config: validate the example config and the Envoy bootstraps with `tollgate check`
check-config:
	$(GO) run ./cmd/tollgate check --config routing/config/example/tollgate.yaml --envoy envoy/envoy.yaml --envoy envoy/envoy-tls.yaml --envoy envoy/envoy-fallback.yaml --envoy envoy/envoy-ads.yaml

## envoy: regenerate the bootstraps under envoy/ (a test fails when they are stale)
envoy:
	$(GO) run ./cmd/tollgate envoy bootstrap > envoy/envoy-ads.yaml
	$(GO) run ./cmd/tollgate envoy bootstrap --static --config envoy/config/providers.yaml > envoy/envoy.yaml
	$(GO) run ./cmd/tollgate envoy bootstrap --static --listen 0.0.0.0:8443 --tls --config envoy/config/providers.yaml > envoy/envoy-tls.yaml
	$(GO) run ./cmd/tollgate envoy bootstrap --static --config envoy/config/providers.yaml --config envoy/config/fallback.yaml > envoy/envoy-fallback.yaml

clean:
	rm -rf bin
