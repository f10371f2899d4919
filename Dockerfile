# syntax=docker/dockerfile:1
# Multi-arch from any host:
#   docker buildx build --platform linux/arm64,linux/amd64 --build-arg COMMIT=$(git rev-parse HEAD) \
#     -t REGISTRY/nfs-watcher-uploader:TAG --push .
# The builder runs on the build host's platform and cross-compiles (pure Go,
# no cgo), so an arm64 image builds in seconds on an amd64 machine and vice
# versa. `make cross` runs the same go build without Docker.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH
# What `nfs-watcher-uploader version` reports: the context holds no .git to stamp.
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd ./cmd
COPY internal ./internal
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X github.com/edge/nfs-watcher-uploader/internal/cli.Commit=$COMMIT" -o /out/nfs-watcher-uploader ./cmd/nfs-watcher-uploader

# Static binary only: distroless static has CA certificates (HTTPS to Azure),
# tzdata and a non-root user (65532), and no shell or package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nfs-watcher-uploader /nfs-watcher-uploader
USER 65532:65532
# 8000: HTTP API and probes; 9464: Prometheus scrape (APP_METRICS_ADDR).
EXPOSE 8000 9464
ENTRYPOINT ["/nfs-watcher-uploader"]
