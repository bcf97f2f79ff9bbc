# syntax=docker/dockerfile:1
# iotblast container image: a release build on Debian bookworm, run as a non-root user.
#   docker build -t iotblast:0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --rm iotblast:0.1.0                    (embedded mock, 10 s, serves :9090 and :8080)
#   docker run --rm iotblast:0.1.0 --devices 10000 --duration 10s
#   docker run --rm --network host iotblast:0.1.0 -b 127.0.0.1:9092 --duration 1m
#   docker run --rm -e IOTBLAST_KAFKA_SECURITY_PASSWORD=... iotblast:0.1.0 --config /etc/iotblast/production.yaml
# Kubernetes manifests: deploy/k8s; guide: docs/deployment.md.
#
# Base images are pinned to exact versions. To pin them by digest as well (recommended
# for production builds), look the digests up and append them, e.g.
#   docker buildx imagetools inspect rust:1.95.0-bookworm     -> FROM rust:1.95.0-bookworm@sha256:<digest>
#   docker buildx imagetools inspect debian:12.11-slim        -> FROM debian:12.11-slim@sha256:<digest>
# (use the digest of the multi-platform index that `inspect` prints first).

FROM rust:1.95.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config perl libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that librdkafka (a ~3 minute C build) is cached across source
# edits. Cargo wants a file for every target in Cargo.toml, so every [[bench]] listed
# there gets a stub (read from Cargo.toml, so a new bench cannot break this step).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && awk '/^\[/ { bench = ($0 == "[[bench]]") } bench && /^name *=/ { gsub(/^name *= *"|".*$/, ""); print "fn main() {}" > ("benches/" $0 ".rs") }' Cargo.toml \
 && cargo build --release --locked \
 && rm -rf src benches
COPY src ./src
COPY benches ./benches
# The release profile keeps line tables (debug = "line-tables-only") for flamegraphs on
# a developer's machine; the image drops that debug info but keeps the symbol table,
# so a panic's backtrace still names its functions.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin iotblast \
 && strip --strip-debug -o /iotblast target/release/iotblast

FROM debian:12.11-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="iotblast" \
      org.opencontainers.image.description="Simulates a fleet of industrial IoT devices and produces their sensor readings to Apache Kafka as fast as the hardware allows" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:12.11-slim"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home iotblast
COPY --from=build /iotblast /usr/local/bin/iotblast
COPY docs/schema /usr/share/iotblast/schema
COPY schema/reading.proto /usr/share/iotblast/schema/reading.proto
COPY configs /etc/iotblast
USER 10001
# The default command is a 10-second run on the embedded mock cluster that serves
# /metrics on 9090 and /healthz, /readyz on 8080 (by default iotblast serves neither:
# metrics.address and http.address are null), so EXPOSE and HEALTHCHECK below hold for
# it. A command of your own serves them only if it asks to: pass --metrics-address
# 0.0.0.0:9090 --http-address 0.0.0.0:8080, or a config that sets them (like
# /etc/iotblast/production.yaml); otherwise the health check reports unhealthy
# (docker run --no-healthcheck turns it off). Kubernetes ignores HEALTHCHECK and uses
# the probes in deploy/k8s.
EXPOSE 9090 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/iotblast", "healthcheck", "--url", "http://127.0.0.1:8080/healthz", "--timeout", "2s"]
ENTRYPOINT ["/usr/local/bin/iotblast"]
CMD ["--devices", "10000", "--duration", "10s", "--metrics-address", "0.0.0.0:9090", "--http-address", "0.0.0.0:8080"]
