#!/usr/bin/env bash
# Records one run with `perf` and writes a flamegraph and a top-symbols report, for iotblast
# or for the C anchor (librdkafka's rdkafka_performance, as scripts/bench-mock.sh runs it),
# so that the two profiles can be read side by side. perf/README.md explains the outputs.
#
# Usage: scripts/flamegraph.sh [iotblast args]
#            e.g. scripts/flamegraph.sh --devices 10000 --messages 2000000
#        scripts/flamegraph.sh --anchor [-- extra rdkafka_performance args]
#            rdkafka_performance -P -t bench -s SIZE -c MESSAGES -a 1 on a 1-broker mock
#            cluster, the settings of scripts/bench-mock.sh; extra args come last and win.
#
# Writes, under perf/flamegraphs/ (git-ignored), with NAME iotblast or rdkafka_performance:
#   NAME-<UTC time>.svg     the flamegraph (inferno); one tower per thread name
#   NAME-<UTC time>.txt     CPU per thread, top symbols by self and by total time, the run's output
#   NAME-<UTC time>.folded  the collapsed stacks (inferno-flamegraph / inferno-diff-folded input)
#
# Exit status: 0 when all three were written; 1 when a step failed (build, perf, the profiled
# program, stack collapse, SVG, or a profile without samples or without the program's own
# symbols); 2 on bad usage; 3 when this machine does not let perf profile (perf_event_paranoid,
# capabilities, a container's seccomp filter): the message says what to change.
#
# Installs what it lacks: perf (Debian's linux-perf, via apt-get, with sudo when not root) and
# inferno (cargo install, pinned, into ~/.cache/iotblast-tools like scripts/test.sh's tools).
#
# Environment:
#   FREQ=999         samples per second per running thread (cpu-clock: works in VMs without a PMU)
#   UNWIND=dwarf     how stacks are walked: dwarf (the release build as it is), or fp (iotblast
#                    only: a frame-pointer build in target/profiling-fp, ~7 CPU-minutes the
#                    first time; 1/200 of the data, for long runs, but see below)
#   STACK=32768      bytes of user stack copied per sample for DWARF unwinding (see below)
#   MMAP_PAGES       perf's ring buffer per CPU, in 4 KiB pages: 4096 as root, 1024 otherwise
#                    (locked memory is limited, see perf_event_mlock_kb), perf's own default if
#                    that is refused. With perf's default, DWARF runs here lost ~5 % of samples.
#   INLINE=1         name inlined frames (perf runs addr2line); INLINE=0 skips that
#   TOP=25           rows per table in the .txt report
#   KEEP_DATA=0      1 keeps perf.data and perf's build-id cache next to the outputs
#                    (NAME-<time>.perf.data and .buildid/, ~100 + 60 MB)
#   OUT=perf/flamegraphs, PERF=perf, TOOLS_CACHE=~/.cache/iotblast-tools, CARGO_TARGET_DIR
#   --anchor only: MESSAGES=2000000; SIZE (bytes) defaults to the average size of iotblast's
#   readings, measured as scripts/bench-mock.sh does.
#
# Why DWARF unwinding (`--call-graph dwarf,32768`) by default: measured on this 2-core VM on
# 2026-12-01 with `--devices 10000 --messages 2000000` (share of samples whose stack reaches
# its thread's entry, clone3/start_thread/_start; the rest end in [unknown] or a hex address):
#   -g (frame pointers), the release build as it is:        0 %  (neither Rust code, its std,
#                                                                 librdkafka nor glibc keep them)
#   UNWIND=fp: RUSTFLAGS=-C force-frame-pointers=yes,
#       CFLAGS=-fno-omit-frame-pointer (target/profiling-fp): 99 %, 130 bytes of perf.data per
#       sample, but wrong where it matters: glibc and Rust's std still have no frame pointers,
#       so a sample in a glibc leaf loses its caller. The hottest lock, pthread_mutex_lock under
#       rd_kafka_msgset_writer_write_msgq -> rd_avg_add, shows up directly under
#       rd_kafka_ProduceRequest.
#   --call-graph dwarf,8192 (perf's default size):          63 %
#   --call-graph dwarf,16384:                               88 %
#   --call-graph dwarf,32768:                               95 %  (~31 KB of perf.data per sample)
#   --call-graph dwarf,65528 (the maximum):                 95 %  (twice the data)
# librdkafka's socket send and receive keep struct iovec iov[IOV_MAX] (16 KiB) on the stack,
# so 8 KiB copies lose the broker thread's callers. DWARF needs no special build: the release
# profile keeps line tables (debug = "line-tables-only"), and perf script names inlined frames
# from them (INLINE=1). The cost is data: ~31 MB per second of CPU sampled, so keep DWARF runs
# to seconds (2M messages: ~110 MB, deleted afterwards) and use UNWIND=fp for long runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { echo "flamegraph.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { sed -n '/^# Usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

MODE=iotblast
ARGS=()
case ${1:-} in
  -h|--help) usage 0 ;;
  --anchor)
    MODE=anchor; shift
    if [ $# -gt 0 ]; then
      [ "$1" = "--" ] || { say "error: after --anchor, rdkafka_performance args go after --"; usage; }
      shift
    fi
    ARGS=("$@") ;;
  *) ARGS=("$@") ;;
esac

FREQ=${FREQ:-999}
UNWIND=${UNWIND:-dwarf}
MMAP_PAGES_SET=${MMAP_PAGES:+yes}
if [ "$(id -u)" -eq 0 ]; then MMAP_PAGES=${MMAP_PAGES:-4096}; else MMAP_PAGES=${MMAP_PAGES:-1024}; fi
STACK=${STACK:-32768}
INLINE=${INLINE:-1}
TOP=${TOP:-25}
KEEP_DATA=${KEEP_DATA:-0}
OUT=${OUT:-perf/flamegraphs}
PERF=${PERF:-perf}
TOOLS=${TOOLS_CACHE:-$HOME/.cache/iotblast-tools}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
for v in FREQ STACK TOP MMAP_PAGES; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { say "error: $v must be a positive integer, not '${!v}'"; exit 2; }
done
case $UNWIND in
  dwarf) CALL_GRAPH=dwarf,$STACK ;;
  fp) [ "$MODE" = iotblast ] || { say "error: UNWIND=fp is for iotblast only (the anchor has no frame pointers)"; exit 2; }
      CALL_GRAPH=fp ;;
  *) say "error: UNWIND must be dwarf or fp, not '$UNWIND'"; exit 2 ;;
esac

# --- perf: present, and allowed to profile ---------------------------------------------------
if ! command -v "$PERF" >/dev/null 2>&1; then
  [ "$PERF" = perf ] || die "PERF=$PERF is not an executable"
  say "perf is missing: installing Debian's linux-perf"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq linux-perf \
    || die "apt-get install linux-perf failed (on Ubuntu the package is linux-tools-\$(uname -r))"
  command -v perf >/dev/null 2>&1 || die "linux-perf is installed but there is no perf on PATH"
fi

PARANOID=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo unknown)
# CAP_PERFMON (38) or CAP_SYS_ADMIN (21) in the effective set lifts the paranoid checks.
has_perf_cap() {
  local eff
  eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status 2>/dev/null) || return 1
  [ -n "$eff" ] || return 1
  (( (16#$eff >> 38) & 1 || (16#$eff >> 21) & 1 ))
}
not_permitted() { # not_permitted [perf's own message]
  say "error: perf may not profile here (kernel.perf_event_paranoid=$PARANOID, uid $(id -u))."
  [ -z "${1:-}" ] || printf 'perf said:\n%s\n' "$1" >&2
  cat >&2 <<EOF
Profiling your own processes needs kernel.perf_event_paranoid <= 2 (user-space stacks only),
<= 1 to include kernel frames, or CAP_PERFMON / CAP_SYS_ADMIN (root). One of:
  sudo sysctl kernel.perf_event_paranoid=1       (until reboot; for good, put
                                                  kernel.perf_event_paranoid = 1 in /etc/sysctl.d/)
  sudo -E scripts/flamegraph.sh ...              (run as root)
In a container the setting belongs to the host (it is not namespaced): set it there, or grant
the container CAP_PERFMON. Docker's default seccomp profile allows perf_event_open only with
CAP_PERFMON or CAP_SYS_ADMIN: docker run --cap-add PERFMON ... (Linux >= 5.8; SYS_ADMIN before).
Kubernetes: securityContext.capabilities.add: ["PERFMON"], and a seccomp profile that allows
perf_event_open (RuntimeDefault is the runtime's; Localhost can allow it). See perf/README.md.
EOF
  exit 3
}
if [[ $PARANOID =~ ^[0-9]+$ ]] && [ "$PARANOID" -gt 2 ] && ! has_perf_cap; then
  not_permitted ""
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flamegraph.XXXXXX")
# On failure, no SVG or report is left behind (a .folded file named in the error is kept).
cleanup() {
  local status=$?
  rm -rf "$WORK"
  [ "$status" -eq 0 ] || rm -f "${SVG:-}" "${TXT:-}"
}
trap cleanup EXIT
RECORD=(record -e cpu-clock -F "$FREQ" --call-graph "$CALL_GRAPH" -m "$MMAP_PAGES")
# perf keeps copies of the profiled binaries, and the only copy of the vDSO (clock_gettime),
# in a build-id cache: ~/.debug by default, which grows with every build. A private one here.
PERF_CMD=("$PERF" --buildid-dir "$WORK/buildid")
PERMISSION_RE='perf_event_paranoid|Permission denied|Operation not permitted|No permission|Access to performance monitoring'
# The same recording options as the real run, on `true`: fails in a second, before any build,
# when perf_event_open is refused (paranoid, seccomp) or an option is not supported.
probe() { "${PERF_CMD[@]}" "${RECORD[@]}" -o "$WORK/probe.data" -- true >"$WORK/probe.log" 2>&1; }
if ! probe && [ -z "$MMAP_PAGES_SET" ] && grep -q 'Permission error mapping pages' "$WORK/probe.log"; then
  say "warning: perf may not lock $MMAP_PAGES pages per CPU here: using perf's default buffer (may lose samples)"
  RECORD=(record -e cpu-clock -F "$FREQ" --call-graph "$CALL_GRAPH")
fi
if ! probe; then
  if grep -qE "$PERMISSION_RE" "$WORK/probe.log"; then
    not_permitted "$(cat "$WORK/probe.log")"
  fi
  cat "$WORK/probe.log" >&2
  die "perf record fails on a trivial command (output above; for 'mapping pages' errors, try MMAP_PAGES=128)"
fi

# --- inferno (stack collapsing and SVG), pinned, cached outside the tree ---------------------
INFERNO_VERSION=0.12.8
INFERNO_BUILD="inferno $INFERNO_VERSION"
COLLAPSE=$TOOLS/bin/inferno-collapse-perf
FLAMEGRAPH=$TOOLS/bin/inferno-flamegraph
if [ ! -x "$COLLAPSE" ] || [ ! -x "$FLAMEGRAPH" ] || [ "$(cat "$TOOLS/inferno.stamp" 2>/dev/null)" != "$INFERNO_BUILD" ]; then
  say "installing $INFERNO_BUILD into $TOOLS (one-off, ~3 minutes)"
  cargo install inferno --version "$INFERNO_VERSION" --locked --root "$TOOLS" >&2 \
    || die "cargo install inferno $INFERNO_VERSION failed"
  echo "$INFERNO_BUILD" >"$TOOLS/inferno.stamp"
fi

# --- what to run -------------------------------------------------------------------------------
if [ "$UNWIND" = fp ]; then
  # Rust code and every C library built here (librdkafka, mimalloc, zstd) keep frame pointers;
  # Rust's std and the system's glibc still have none (see the measurements above).
  BUILD_DIR=$TARGET_DIR/profiling-fp
  say "cargo build --release with frame pointers into $BUILD_DIR"
  CARGO_TARGET_DIR=$BUILD_DIR RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C force-frame-pointers=yes" \
    CFLAGS="${CFLAGS:--O2} -fno-omit-frame-pointer" cargo build --release --quiet \
    || die "cargo build --release (frame pointers) failed"
  IOTBLAST=$BUILD_DIR/release/iotblast
else
  say "cargo build --release"
  cargo build --release --quiet || die "cargo build --release failed"
  IOTBLAST=$TARGET_DIR/release/iotblast
fi
[ -x "$IOTBLAST" ] || die "no $IOTBLAST after the build"
if [ "$MODE" = iotblast ]; then
  NAME=iotblast
  CMD=("$IOTBLAST" "${ARGS[@]}")
  OWN_RE='iotblast::'       # the profile must resolve the program's own symbols
else
  NAME=rdkafka_performance
  ANCHOR=$(scripts/rdkafka-perf.sh) || die "scripts/rdkafka-perf.sh failed to build the anchor"
  MESSAGES=${MESSAGES:-2000000}
  if [ -z "${SIZE:-}" ]; then
    # The average size of iotblast's readings, as scripts/bench-mock.sh measures it.
    json=$("$IOTBLAST" --devices 10000 --cores 2 --messages 200000 --seed 1 --alerts-topic "" --json -q 2>/dev/null | tail -n 1) \
      || die "measuring iotblast's message size failed"
    SIZE=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(round(d["bytes"]/d["messages_delivered"]))' "$json") \
      || die "could not read the message size from iotblast's JSON summary: $json"
    say "message size: $SIZE bytes (average of iotblast's readings)"
  fi
  for v in MESSAGES SIZE; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { say "error: $v must be a positive integer, not '${!v}'"; exit 2; }
  done
  CMD=("$ANCHOR" -P -t bench -s "$SIZE" -c "$MESSAGES" -a 1 -X test.mock.num.brokers=1 -X linger.ms=50
       -X batch.num.messages=100000 -X queue.buffering.max.messages=1000000 -q "${ARGS[@]}")
  OWN_RE='rd_kafka_'
fi

mkdir -p "$OUT" || die "cannot create $OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
BASE=$OUT/$NAME-$STAMP
SVG=$BASE.svg TXT=$BASE.txt FOLDED=$BASE.folded
DATA=$WORK/perf.data RUNLOG=$WORK/run.log
SHOWN_CMD="${CMD[*]}"; SHOWN_CMD=${SHOWN_CMD#"$ROOT/"}; SHOWN_CMD=${SHOWN_CMD#"$TARGET_DIR/"}

# --- record --------------------------------------------------------------------------------------
say "perf ${RECORD[*]} -- $SHOWN_CMD"
start=$EPOCHREALTIME
set +e
"${PERF_CMD[@]}" "${RECORD[@]}" -o "$DATA" -- "${CMD[@]}" 2>&1 | tee "$RUNLOG"
rc=${PIPESTATUS[0]}
set -e
wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
if ! grep -q '^\[ perf record: Captured and wrote' "$RUNLOG"; then
  grep -qE "$PERMISSION_RE" "$RUNLOG" && not_permitted "$(grep -E -A3 "$PERMISSION_RE" "$RUNLOG")"
  die "perf record failed (exit $rc; its output is above)"
fi
# perf record exits with the profiled program's status once it has recorded.
[ "$rc" -eq 0 ] || die "the profiled program exited with status $rc (its output is above); no flamegraph written"

stats=$("${PERF_CMD[@]}" report -i "$DATA" --stats 2>/dev/null) || die "perf report --stats failed"
SAMPLES=$(awk '/^ *SAMPLE events:/ {print $3; exit}' <<<"$stats")
SAMPLES=${SAMPLES:-0}
[ "$SAMPLES" -gt 0 ] || die "perf recorded no samples"
[ "$SAMPLES" -ge 200 ] || say "warning: only $SAMPLES samples: a run this short gives a noisy profile"
# perf record's own warnings ("lost N chunks", "lost X%" of samples) go into the report.
LOSSES=$(grep -E '^Processed .* lost ' "$RUNLOG" | paste -sd ';' - || true)
[ -z "$LOSSES" ] || say "warning: perf record: $LOSSES (the profile under-counts; raise MMAP_PAGES or lower FREQ)"

# --- collapse, check, draw -----------------------------------------------------------------------
say "collapsing $SAMPLES samples (INLINE=$INLINE)"
collapse_start=$SECONDS
# No period field, so that inferno counts samples (cpu-clock's period is in ns).
SCRIPT_OPTS=(-F "comm,pid,tid,time,event,ip,sym,dso")
[ "$INLINE" = 1 ] || SCRIPT_OPTS+=(--no-inline)
"${PERF_CMD[@]}" script -i "$DATA" "${SCRIPT_OPTS[@]}" 2>"$WORK/script.err" >"$WORK/perf.script" \
  || { cat "$WORK/script.err" >&2; die "perf script failed"; }
"$COLLAPSE" --quiet "$WORK/perf.script" >"$FOLDED" || die "inferno-collapse-perf failed"
[ -s "$FOLDED" ] || die "no stacks in the profile ($FOLDED is empty)"
say "collapsed in $((SECONDS - collapse_start)) s"
grep -q "$OWN_RE" "$FOLDED" \
  || die "no ${OWN_RE%::} symbols in the profile: symbols were not resolved (stripped binary?); see $FOLDED"
# Share of samples whose stack unwinds to a thread entry, and with unresolved frames.
read -r UNWOUND UNRESOLVED < <(awk '{
    n = $NF; total += n; split($1, f, ";")
    if (f[2] ~ /^(clone3?|start_thread|_start|__libc_start_main.*)$/) rooted += n
    if ($0 ~ /;\[unknown\]|;0x[0-9a-f]+/) unknown += n
  } END { printf "%.1f %.1f\n", 100 * rooted / total, 100 * unknown / total }' "$FOLDED")

if [ "$MODE" = iotblast ]; then
  TITLE="iotblast ${ARGS[*]}"
else
  TITLE="rdkafka_performance -P -s $SIZE -c $MESSAGES, 1-broker mock as in bench-mock.sh${ARGS[*]:+, then ${ARGS[*]}}"
fi
SUBTITLE="$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo '+changes'), $SAMPLES samples of cpu-clock at $FREQ Hz"
"$FLAMEGRAPH" --title "$TITLE" --subtitle "$SUBTITLE" --hash "$FOLDED" >"$SVG" 2>"$WORK/svg.err" \
  || { cat "$WORK/svg.err" >&2; die "inferno-flamegraph failed"; }
FRAMES=$(grep -o '<g><title>' "$SVG" | wc -l)   # inferno writes one <g><title> per drawn frame
if ! grep -q '</svg>' "$SVG" || [ "$FRAMES" -le 1 ]; then
  die "$SVG is not a complete flamegraph"
fi

# --- the text report -----------------------------------------------------------------------------
report() { # report TITLE perf-report-args...: the first TOP rows of one flat table
  local title=$1; shift
  "${PERF_CMD[@]}" report -i "$DATA" --stdio --no-inline -g none --percent-limit 0.1 "$@" \
    >"$WORK/report.txt" 2>"$WORK/report.err" \
    || { cat "$WORK/report.err" >&2; die "perf report $* failed"; }
  printf '\n## %s\n# perf report %s\n' "$title" "$*"
  # Rows only; perf 6.1 adds two empty IPC columns ("-  -") without branch data: cut them.
  grep -E '^ +[0-9.]+%' "$WORK/report.txt" | sed -E 's/( +-){2} *$//; s/ *$//' \
    | grep -vE "${SKIP_RE:-^$}" | head -n "$TOP"
}
DELIVERED=$(grep -oE '[0-9]+ delivered' "$RUNLOG" | head -n 1 | grep -oE '[0-9]+' || true)
CPU_S=$(awk -v n="$SAMPLES" -v f="$FREQ" 'BEGIN {printf "%.2f", n / f}')
{
  echo "# flamegraph.sh: $NAME"
  echo "command:   $SHOWN_CMD"
  echo "date:      $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' with uncommitted changes')"
  echo "machine:   $(nproc) CPUs, Linux $(uname -r), $("$PERF" --version), kernel.perf_event_paranoid=$PARANOID, uid $(id -u)"
  echo "recording: perf ${RECORD[*]}"
  echo "samples:   $SAMPLES, ~$CPU_S s of CPU in $wall s wall (perf record's whole run); losses: ${LOSSES:-none reported}"
  if [ -n "$DELIVERED" ]; then
    echo "per message: $DELIVERED delivered, ~$(awk -v c="$CPU_S" -v m="$DELIVERED" 'BEGIN {printf "%.2f", c * 1e6 / m}') µs of CPU each (all threads)"
  fi
  echo "stacks:    $UNWOUND % unwound to their thread's entry; $UNRESOLVED % contain an unresolved frame"
  echo "outputs:   $SVG, $FOLDED"
  report "CPU by thread (comm)" --no-children --sort comm
  report "Top $TOP symbols by self time" --no-children --sort dso,symbol
  # Thread entries and syscall entry frames would fill the top of this table: left out.
  SKIP_RE='\] (clone3?|start_thread|_start|__libc_start_(main|call_main).*|main|std::rt::.*|std::sys::backtrace::__rust_begin_short_backtrace|core::ops::function::FnOnce::call_once.*|<std::sys::thread::unix::Thread>::new::thread_start|entry_SYSCALL_64_after_hwframe|do_syscall_64)$' \
    report "Top $TOP symbols by total time (self + callees; thread and syscall entries left out)" --children --sort symbol
  printf '\n## The run'"'"'s output (last 15 lines)\n'
  grep -v '^\[ perf record:' "$RUNLOG" | tail -n 15
} >"$TXT" || die "writing $TXT failed"

if [ "$KEEP_DATA" = 1 ]; then
  mv "$DATA" "$BASE.perf.data" && mv "$WORK/buildid" "$BASE.buildid" \
    && say "kept $BASE.perf.data: perf --buildid-dir $BASE.buildid report -i $BASE.perf.data"
fi
say "wrote $SVG ($(wc -c <"$SVG") bytes, $FRAMES frames), $TXT, $FOLDED"
sed -n '/^## Top .* self time/,/^$/p' "$TXT" | head -n 13 >&2
