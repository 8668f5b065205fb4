# Causeway's container image: one static binary on distroless, run as a
# non-root user. Build from the repository root:
#
#   docker build -t causeway .
#   docker run --rm -p 7070:7070 causeway serve --region us-east
#
# Every setting is a `causeway serve` flag; the common ones also read
# CAUSEWAY_* environment variables (causeway serve --help lists them).
# There is no HEALTHCHECK on purpose: orchestrators probe the node's gRPC
# health service (grpc.health.v1 on the API port) themselves, and Docker's
# check would need a shell or a second binary in the image.

ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary that needs no libc in the image
# (deploy/docker_test.go builds it the same way in make test).
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/causeway ./cmd/causeway \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/causeway /usr/local/bin/causeway
# The data directory belongs to the image's non-root user (65532, "nonroot").
COPY --from=build --chown=65532:65532 /out/data /var/lib/causeway
USER 65532:65532
ENV CAUSEWAY_DATA=/var/lib/causeway \
    CAUSEWAY_LISTEN=0.0.0.0:7070
VOLUME ["/var/lib/causeway"]
# 7070: API (Connect, gRPC, gRPC-Web), gRPC health and /metrics;
# 7170: gossip (TCP and UDP); 7270: the linearizable tier's Raft transport.
EXPOSE 7070/tcp 7170/tcp 7170/udp 7270/tcp
ENTRYPOINT ["/usr/local/bin/causeway"]
CMD ["serve"]
