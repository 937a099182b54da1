# syntax=docker/dockerfile:1
# mcpmesh images: static binaries (CGO_ENABLED=0, as `make build`) on
# distroless static, run as the nonroot user (65532). Targets:
#   docker build --target controlplane -t mcpmesh/controlplane .
#   docker build --target dataplane    -t mcpmesh/dataplane .
#   docker build --target mcpctl       -t mcpmesh/mcpctl .
#   docker build --target demo         -t mcpmesh/demo .   # all of them + demo-backend
# The default (last) target is dataplane. CMD holds the default flags: a
# container's args (Kubernetes `args`) replace them. Pass --build-arg VERSION=$(git describe --tags --always).
#
# The data plane spawns stdio backends: the distroless image has no shell,
# node or python, so stdio servers need an image of your own FROM this one
# (or a base with those runtimes) — URL backends need nothing.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused while go.mod and go.sum stay the same.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -tags grpcnotrace -ldflags "-s -w -X github.com/mcpmesh/mcpmesh/internal/version.Version=${VERSION}" \
      -o /out/ ./controlplane ./dataplane ./mcpctl ./internal/testbackend/cmd/demo-backend

FROM gcr.io/distroless/static-debian12:nonroot AS base
# /data is the control plane's --data-dir in the image (mount a volume there).
WORKDIR /data
USER 65532:65532

FROM base AS controlplane
COPY --from=build /out/controlplane /usr/local/bin/controlplane
EXPOSE 7070 7071
# Off loopback the gRPC API needs TLS (--tls-cert/--tls-key) or --insecure.
ENTRYPOINT ["/usr/local/bin/controlplane"]
CMD ["--data-dir=/data", "--grpc-addr=0.0.0.0:7070", "--http-addr=0.0.0.0:7071"]

FROM base AS mcpctl
COPY --from=build /out/mcpctl /usr/local/bin/mcpctl
ENTRYPOINT ["/usr/local/bin/mcpctl"]

FROM base AS demo
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/dataplane"]

FROM base AS dataplane
COPY --from=build /out/dataplane /usr/local/bin/dataplane
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dataplane"]
CMD ["--listen=0.0.0.0:8080"]
