#!/usr/bin/env bash
# Side-by-side throughput on librdkafka's mock cluster: iotblast (embedded mock, --cores 2)
# against librdkafka's own rdkafka_performance with the same message size, alternating
# runs so both see the same machine noise. Also measures the null-sink (generator) rate.
# Alerts are off in the pairs (--alerts-topic ""), so both sides produce exactly
# MESSAGES messages to one topic; a third column shows the default run with alerts on.
#
# rdkafka_performance produces unkeyed to a topic the mock creates with its default of 4
# partitions. iotblast runs three ways: its defaults (12 partitions, 2 producers); the
# anchor's topic shape (--partitions 4), the headline ratio; and its defaults with one
# producer (--producers 1), to show what the second one is worth. Every ratio is printed.
#
# Usage: scripts/bench-mock.sh [rounds] [--baseline REV]   (rounds default 5; prints a Markdown table)
#   --baseline REV  also builds commit REV (a git worktree under target/baseline/, with its
#                   own target directory, kept for the next run) and alternates its null-sink
#                   runs with this tree's, so generator speed-ups are measured A/B in one run
#                   on this noisy VM: the table adds the baseline's rates and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=5
BASELINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) BASELINE=${2:?--baseline needs a git revision}; shift 2 ;;
    [0-9]*) ROUNDS=$1; shift ;;
    *) echo "usage: scripts/bench-mock.sh [rounds] [--baseline REV]" >&2; exit 2 ;;
  esac
done
MESSAGES=2000000
cargo build --release --quiet
BIN=target/release/iotblast
BASE_BIN=""
if [ -n "$BASELINE" ]; then
  rev=$(git rev-parse --short "$BASELINE^{commit}")
  tree="target/baseline/src-$rev"
  # A separate target directory: cargo names a path package's artifacts alike in every
  # checkout, so building the baseline into target/ would replace this tree's binary.
  # prune first: a worktree whose directory went with a deleted target/ stays registered.
  [ -d "$tree" ] || { git worktree prune; git worktree add --detach "$tree" "$rev" >/dev/null; }
  (cd "$tree" && CARGO_TARGET_DIR="$PWD/../target" cargo build --release --quiet)
  BASE_BIN="target/baseline/target/release/iotblast"
  echo "baseline: $rev ($BASE_BIN)" >&2
fi
ANCHOR=$(scripts/rdkafka-perf.sh)   # librdkafka's rdkafka_performance, built once from rdkafka-sys's source

field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print($1)"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

SIZE=$($BIN --devices 10000 --cores 2 --messages 200000 --seed 1 --alerts-topic "" --json -q 2>/dev/null | field "round(d['bytes']/d['messages_delivered'])")
echo "average message size: $SIZE bytes" >&2

ours=(); four=(); one=(); anchor=(); alerts=(); null1=(); null2=(); base1=(); base2=()
null() { $1 --sink null --devices 10000 --cores "$2" --messages $((20000000 * $2)) --json -q 2>/dev/null | field "round(d['msgs_per_sec'])"; }
# Generator-only rates first: they load both cores hard, and are kept out of the
# alternating pairs below so that neither side of a pair follows them.
for i in $(seq "$ROUNDS"); do
  if [ -n "$BASE_BIN" ]; then
    base1+=("$(null "$BASE_BIN" 1)")
    base2+=("$(null "$BASE_BIN" 2)")
  fi
  null1+=("$(null "$BIN" 1)")
  null2+=("$(null "$BIN" 2)")
  echo "round $i: null sink 1 core ${null1[-1]}, 2 cores ${null2[-1]}${BASE_BIN:+; baseline 1 core ${base1[-1]}, 2 cores ${base2[-1]}}" >&2
done
sleep 2
for i in $(seq "$ROUNDS"); do
  mock_run() { $BIN --devices 10000 --cores 2 --messages $MESSAGES --alerts-topic "" --json -q "$@" 2>/dev/null | field "round(d['msgs_per_sec'])"; }
  ours+=("$(mock_run)")
  four+=("$(mock_run --partitions 4)")
  one+=("$(mock_run --producers 1)")
  anchor+=("$($ANCHOR -P -t bench -s "$SIZE" -c $MESSAGES -a 1 -X test.mock.num.brokers=1 -X linger.ms=50 \
      -X batch.num.messages=100000 -X queue.buffering.max.messages=1000000 -q 2>&1 \
      | grep -oE '[0-9]+ msgs/s' | grep -oE '[0-9]+')")
  alerts+=("$($BIN --devices 10000 --cores 2 --messages $MESSAGES --json -q 2>/dev/null | field "f\"{round(d['msgs_per_sec'])}+{round(d['alerts_sent']/d['elapsed_s'])}\"")")
  echo "round $i: iotblast ${ours[-1]}, 4 partitions ${four[-1]}, 1 producer ${one[-1]}  rdkafka_performance ${anchor[-1]}  iotblast with alerts ${alerts[-1]}" >&2
done
m_ours=$(printf '%s\n' "${ours[@]}" | median)
m_four=$(printf '%s\n' "${four[@]}" | median)
m_one=$(printf '%s\n' "${one[@]}" | median)
m_anchor=$(printf '%s\n' "${anchor[@]}" | median)
m_null1=$(printf '%s\n' "${null1[@]}" | median)
m_null2=$(printf '%s\n' "${null2[@]}" | median)
ratio=$(python3 -c "print(f'{$m_ours/$m_anchor:.2f}')")
ratio4=$(python3 -c "print(f'{$m_four/$m_anchor:.2f}')")
ratio1=$(python3 -c "print(f'{$m_one/$m_anchor:.2f}')")
scaling=$(python3 -c "print(f'{$m_null2/$m_null1:.2f}')")
baseline_rows=""
if [ -n "$BASE_BIN" ]; then
  m_base1=$(printf '%s\n' "${base1[@]}" | median)
  m_base2=$(printf '%s\n' "${base2[@]}" | median)
  baseline_rows="| baseline $rev --sink null --cores 1 | $m_base1 |
| baseline $rev --sink null --cores 2 | $m_base2 |
| **null sink 1 core, this tree / baseline** | **$(python3 -c "print(f'{$m_null1/$m_base1:.2f}')")** |
| null sink 2 cores, this tree / baseline | $(python3 -c "print(f'{$m_null2/$m_base2:.2f}')") |
"
fi
cat <<MD
| measurement ($ROUNDS alternating rounds, median) | msgs/s |
|---|---|
| iotblast --sink null --cores 1 (generator only) | $m_null1 |
| iotblast --sink null --cores 2 (generator only) | $m_null2 |
| null sink 2 cores / 1 core | $scaling |
${baseline_rows}| iotblast embedded mock, --cores 2, --messages $MESSAGES, ${SIZE} B (defaults: 12 partitions, 2 producers) | $m_ours |
| the same, --partitions 4 (the anchor's topic) | $m_four |
| the same, --producers 1 | $m_one |
| rdkafka_performance -P -s $SIZE -c $MESSAGES -a 1, same mock (4 partitions, unkeyed) | $m_anchor |
| **ratio, --partitions 4 / rdkafka_performance (same topic shape)** | **$ratio4** |
| ratio, iotblast defaults / rdkafka_performance | $ratio |
| ratio, --producers 1 / rdkafka_performance | $ratio1 |
| iotblast default (alerts on), readings+alerts per s, per round | ${alerts[*]} |

per-round null sink 1 core: ${null1[*]}; 2 cores: ${null2[*]}${BASE_BIN:+
per-round baseline null sink 1 core: ${base1[*]}; 2 cores: ${base2[*]}}
per-round iotblast: ${ours[*]}
per-round iotblast --partitions 4: ${four[*]}
per-round iotblast --producers 1: ${one[*]}
per-round rdkafka_performance: ${anchor[*]}
MD
