# syntax=docker/dockerfile:1
# The tollgate image: a static binary on distroless, running as the non-root user 65532.
#
#   docker build -t tollgate --build-arg VERSION=$(git describe --tags --always --dirty) .
#
# Envoy runs from its own image next to it (see helm/tollgate).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so source edits reuse the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# Static (no cgo), cross-compiled for the target platform on the build platform; vtprotobuf: the
# generated ext_proc marshallers (docs/performance.md).
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -tags vtprotobuf -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tollgate ./cmd/tollgate

# No shell, no package manager; CA certificates and /etc/passwd with "nonroot" only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tollgate /usr/local/bin/tollgate
# nonroot, numerically so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# gRPC (ext_proc) and the admin server (/healthz, /readyz, /metrics).
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve"]
