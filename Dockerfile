# syntax=docker/dockerfile:1
# iotblast container image: a release build on Debian bookworm, run as a non-root user.
#   docker build -t iotblast .
#   docker run --rm iotblast --devices 10000 --duration 10s            (embedded mock)
#   docker run --rm --network host iotblast -b 127.0.0.1:9092 --duration 1m
#   docker run --rm -e IOTBLAST_KAFKA_SECURITY_PASSWORD=... iotblast --config /etc/iotblast/production.yaml

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config perl libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that librdkafka (a ~3 minute C build) is cached across source edits.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for b in generate handoff produce; do echo 'fn main() {}' > "benches/$b.rs"; done \
 && cargo build --release --locked \
 && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin iotblast

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home iotblast
COPY --from=build /src/target/release/iotblast /usr/local/bin/iotblast
COPY docs/schema /usr/share/iotblast/schema
COPY configs /etc/iotblast
USER 10001
# /metrics (metrics.address) and /healthz, /readyz (http.address), when configured,
# e.g. by /etc/iotblast/production.yaml.
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/iotblast"]
CMD ["--devices", "10000", "--duration", "10s"]
