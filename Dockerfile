# syntax=docker/dockerfile:1
# The capz-encryption-webhook image: one static binary on distroless, running as nonroot, no shell.
# Build with `make docker-build` (passes VERSION and COMMIT). test/chart checks that the build stage
# compiles what `make build` compiles, the same way.

# The Go toolchain's minor version follows the go directive of go.mod. The build runs on the
# builder's own platform and cross-compiles (CGO is off), so multi-arch builds need no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build

ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ARG COMMIT=unknown
ARG BUILD_DATE=unknown

WORKDIR /src
# Modules first, in their own layer, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY cmd/ cmd/
COPY internal/ internal/

# Same flags as GO_BUILD in the Makefile: static (CGO off), reproducible paths (-trimpath), stripped,
# version stamped into internal/version.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath \
      -ldflags "-s -w -X github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version.Version=${VERSION} -X github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version.Commit=${COMMIT} -X github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version.BuildDate=${BUILD_DATE}" \
      -o /out/capz-encryption-webhook ./cmd/capz-encryption-webhook

# distroless/static: CA certificates (for Azure), tzdata and /etc/passwd with nonroot (65532); no
# shell, no package manager.
FROM gcr.io/distroless/static:nonroot

LABEL org.opencontainers.image.title="capz-encryption-webhook" \
      org.opencontainers.image.description="Admission webhook enforcing Azure disk encryption on Cluster API Provider Azure machines" \
      org.opencontainers.image.source="https://github.com/capz-encryption-webhook/capz-encryption-webhook"

COPY --from=build /out/capz-encryption-webhook /capz-encryption-webhook
USER 65532:65532
# Exec form: the binary is PID 1 and gets SIGTERM directly (there is no shell to forward it).
# `serve` is the default command; `docker run IMAGE check -f ...` runs the offline check instead.
ENTRYPOINT ["/capz-encryption-webhook"]
CMD ["serve"]
