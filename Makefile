# Every target does its own set-up: a fresh clone with Go and Node needs nothing else.
GO       ?= go
BIN      ?= bin/nfs-watcher-uploader
LDFLAGS  := -s -w
export CGO_ENABLED ?= 0

.PHONY: all build run test deps browser vet fmt-check cross bench bench-peer chaos clean

all: build

node_modules/.bin/azurite-blob: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: node_modules/.bin/azurite-blob
	$(GO) mod download

# The status page test drives a real headless chromium; as root (CI, a
# Debian machine) it is installed when missing, and in CI the test never
# skips. Elsewhere the test skips with a message.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q --no-install-recommends chromium; \
	  else echo "chromium is not installed (needs root to install): the status page test will skip"; fi; }

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

# The whole suite: Azurite from npm, go vet, gofmt, the image's static
# cross-builds, the race detector.
test: deps browser fmt-check vet cross
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...

# The Dockerfile's build step without Docker: the same static, stripped
# binary for both image platforms, checked to be pure Go for its target.
cross:
	@set -e; for arch in arm64 amd64; do \
	  out=bin/nfs-watcher-uploader-linux-$$arch; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/nfs-watcher-uploader; \
	  info=$$($(GO) version -m $$out); \
	  echo "$$info" | grep -q 'CGO_ENABLED=0' || { echo "$$out is not static"; exit 1; }; \
	  echo "$$info" | grep -q "GOARCH=$$arch" || { echo "$$out is not $$arch"; exit 1; }; \
	  echo "$$out: static linux/$$arch, $$(du -h $$out | cut -f1)"; \
	done

# AzCopy, the benchmark's peer side: its own pinned npm package (kept out of
# the root package.json that every test run installs) and Debian's
# libsecret-1-0, which the binary links. Either missing only skips that side.
cmd/bench/peer/node_modules/.package-lock.json: cmd/bench/peer/package.json cmd/bench/peer/package-lock.json
	@npm ci --prefix cmd/bench/peer --no-audit --no-fund --loglevel=error && touch $@ || \
	  echo "AzCopy's npm package did not install: the benchmark's AzCopy side will skip"

bench-peer: cmd/bench/peer/node_modules/.package-lock.json
	@if command -v dpkg-query >/dev/null && ! dpkg-query -W -f '$${Status}' libsecret-1-0 2>/dev/null | grep -q 'ok installed'; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    { apt-get update -q && apt-get install -y -q --no-install-recommends libsecret-1-0; } || \
	      echo "libsecret-1-0 did not install: the benchmark's AzCopy side will skip"; \
	  else echo "libsecret-1-0 is not installed (needs root to install): the benchmark's AzCopy side will skip"; fi; \
	fi

# Not part of `make test`: the service against the raw SDK and AzCopy (a
# few minutes, several GB of temp files), then the hot-path micro-benchmarks.
bench: deps bench-peer
	$(GO) run ./cmd/bench $(BENCH_ARGS)
	$(GO) test -run '^$$' -bench . -benchtime 3x ./internal/watch/ ./internal/pipeline/

# Not part of `make test`: the crash test at full scale, SIGKILLs at random
# moments and every blob checked (tens of minutes). Ends with the test's
# summary line and the duration; the whole output is in .run/chaos.log.
CHAOS_ARGS ?= -crash.kills=200 -crash.files=2000
chaos: deps
	@mkdir -p .run
	@start=$$(date +%s); \
	{ $(GO) test ./test/e2e -run CrashSafety -count=1 -timeout 60m -v -args $(CHAOS_ARGS); echo $$? >.run/chaos.rc; } 2>&1 | tee .run/chaos.log; \
	rc=$$(cat .run/chaos.rc); secs=$$(( $$(date +%s) - start )); \
	echo "---"; \
	grep -E '^[0-9]+ kills, ' .run/chaos.log || echo "no summary line: the test stopped early"; \
	echo "chaos: $$((secs / 60))m$$((secs % 60))s, exit $$rc"; \
	exit $$rc

clean:
	rm -rf bin .run
