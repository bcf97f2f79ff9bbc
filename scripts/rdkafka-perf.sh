#!/usr/bin/env bash
# Prints the absolute path of librdkafka's own rdkafka_performance tool (the C anchor that
# scripts/bench-mock.sh compares iotblast against), building it once if it is missing.
#
# The source is the librdkafka that this project's rdkafka-sys already brings: the exact
# rdkafka-sys version pinned in Cargo.lock, whose crate in the cargo registry carries the C
# source in librdkafka/ (located with `cargo metadata`; `cargo fetch` first if absent).
# The build runs in a temporary copy (the cargo registry is never written to), and the
# binary is cached as target/anchors/rdkafka-sys-<version>/rdkafka_performance, so
# `cargo clean` removes it and an rdkafka-sys bump builds a new one. Building takes a few
# minutes on 2 cores; the log is kept next to the binary as build.log.
#
# Needs only a C toolchain, make and perl (scripts/test.sh installs build-essential, perl,
# zlib1g-dev), python3 and cargo. Nothing outside this repository.
#
# Usage: scripts/rdkafka-perf.sh            (prints the path; progress goes to stderr)
#        $(scripts/rdkafka-perf.sh) -P -t bench -s 500 -c 200000 -a 1 \
#            -X test.mock.num.brokers=1 -X linger.ms=50 -q
# Environment: CARGO_TARGET_DIR (default target/), JOBS (make -j, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { echo "rdkafka-perf.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The exact rdkafka-sys version this project builds against, e.g. 4.10.0+2.12.1.
[ -f Cargo.lock ] || die "no Cargo.lock in $ROOT"
mapfile -t versions < <(awk '
  /^\[\[package\]\]/  { in_pkg = 0 }
  /^name = "rdkafka-sys"$/ { in_pkg = 1; next }
  in_pkg && /^version = / { gsub(/"/, "", $3); print $3; in_pkg = 0 }' Cargo.lock)
[ ${#versions[@]} -eq 1 ] || die "expected exactly one rdkafka-sys in Cargo.lock, found ${#versions[@]}: ${versions[*]:-}"
VERSION=${versions[0]}

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
CACHE=$TARGET_DIR/anchors/rdkafka-sys-$VERSION
BIN=$CACHE/rdkafka_performance
if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

missing=()
for tool in gcc make perl python3 cargo rustc; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  die "missing ${missing[*]} (on Debian/Ubuntu: apt-get install build-essential perl zlib1g-dev python3, or run scripts/test.sh which installs the build packages)"
fi

# Where cargo keeps the rdkafka-sys crate: dirname of its manifest_path. --locked so that
# Cargo.lock is never rewritten; --filter-platform so only host packages are needed.
HOST=$(rustc -vV | sed -n 's/^host: //p')
crate_dir() {
  cargo metadata --format-version 1 --locked --filter-platform "$HOST" 2>/dev/null \
    | python3 -c '
import json, os, sys
version = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "rdkafka-sys" and p["version"] == version:
        print(os.path.dirname(p["manifest_path"]))
        break
' "$VERSION" || true
}
CRATE=$(crate_dir)
if [ -z "$CRATE" ] || [ ! -f "$CRATE/librdkafka/configure" ]; then
  say "rdkafka-sys $VERSION is not in the cargo registry yet: cargo fetch"
  cargo fetch --locked --target "$HOST" >&2 || die "cargo fetch failed"
  CRATE=$(crate_dir)
fi
[ -n "$CRATE" ] || die "cargo metadata does not list rdkafka-sys $VERSION (is Cargo.lock in sync with Cargo.toml?)"
SRC=$CRATE/librdkafka
if [ ! -f "$SRC/configure" ] || [ ! -f "$SRC/examples/rdkafka_performance.c" ]; then
  die "no librdkafka source under $SRC"
fi

mkdir -p "$CACHE"
LOG=$CACHE/build.log
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rdkafka-perf.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
: >"$LOG"

fail() {
  say "error: $1 failed; last lines of $LOG:"
  tail -n 40 "$LOG" >&2
  exit 1
}
step() { # step DESCRIPTION COMMAND...: runs COMMAND in the build copy, output to the log
  local what=$1; shift
  echo "### $what: $*" >>"$LOG"
  (cd "$WORK/librdkafka" && "$@") >>"$LOG" 2>&1 || fail "$what"
}

say "building rdkafka_performance from librdkafka of rdkafka-sys $VERSION (a few minutes; log: $LOG)"
start=$SECONDS
cp -R "$SRC" "$WORK/librdkafka"
chmod -R u+w "$WORK/librdkafka"
step configure ./configure --disable-ssl --disable-gssapi --disable-curl --disable-zstd
# LIBSUBDIRS=src: only the C library; the C++ wrapper (src-cpp) is not needed, nor g++.
step "make libs" make -j"${JOBS:-2}" libs LIBSUBDIRS=src
# Link against the libraries configure selected (its LIBS), as librdkafka's own
# examples/Makefile does: -lpthread -lz -lm -ldl -lrt here, plus -llz4 where liblz4 is installed.
cat >"$WORK/print-libs.mk" <<'MK'
include Makefile.config
print-libs: ; @echo $(LIBS)
MK
LIBS=$(cd "$WORK/librdkafka" && make -s -f "$WORK/print-libs.mk" print-libs 2>>"$LOG") || fail "reading LIBS from Makefile.config"
read -r -a libs <<<"$LIBS"
step "link rdkafka_performance" gcc -O2 -Isrc -o rdkafka_performance examples/rdkafka_performance.c \
  src/librdkafka.a "${libs[@]}" -lpthread -lm -ldl -lrt
# Move into place in one step, so a concurrent run never sees a half-written binary.
cp "$WORK/librdkafka/rdkafka_performance" "$BIN.tmp.$$"
mv -f "$BIN.tmp.$$" "$BIN"
say "built $BIN in $((SECONDS - start)) s"
echo "$BIN"
