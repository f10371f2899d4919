# Every target does its own set-up: a fresh clone with Go and Node needs nothing else.
GO       ?= go
BIN      ?= bin/nfs-watcher-uploader
LDFLAGS  := -s -w
export CGO_ENABLED ?= 0

.PHONY: all build run test deps vet fmt-check cross bench clean

all: build

node_modules/.bin/azurite-blob: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.bin/azurite-blob
	$(GO) mod download

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nfs-watcher-uploader

# Azurite (in memory) on 127.0.0.1:10000 and the service on :8000, with
# local folders under .run/. Ctrl-C stops both.
run: deps build
	./scripts/run-local.sh $(BIN)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# The whole suite: Azurite from npm, go vet, gofmt, the race detector.
test: deps fmt-check vet
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# The image's build step without Docker: static binaries for both targets.
cross:
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nfs-watcher-uploader-linux-arm64 ./cmd/nfs-watcher-uploader
	GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nfs-watcher-uploader-linux-amd64 ./cmd/nfs-watcher-uploader

clean:
	rm -rf bin .run
