#!/usr/bin/env bash
# Side-by-side throughput on librdkafka's mock cluster: iotblast (embedded mock, --cores 2)
# against librdkafka's own rdkafka_performance with the same message size, alternating
# runs so both see the same machine noise. Also measures the null-sink (generator) rate.
# Alerts are off in the pairs (--alerts-topic ""), so both sides produce exactly
# MESSAGES messages to one topic; a third column shows the default run with alerts on.
#
# Usage: scripts/bench-mock.sh [rounds]     (default 5; prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
MESSAGES=2000000
cargo build --release --quiet
BIN=target/release/iotblast
ANCHOR=$(scripts/rdkafka-perf.sh)   # librdkafka's rdkafka_performance, built once from rdkafka-sys's source

field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print($1)"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

SIZE=$($BIN --devices 10000 --cores 2 --messages 200000 --seed 1 --alerts-topic "" --json -q 2>/dev/null | field "round(d['bytes']/d['messages_delivered'])")
echo "average message size: $SIZE bytes" >&2

ours=(); anchor=(); alerts=(); null1=(); null2=()
# Generator-only rates first: they load both cores hard, and are kept out of the
# alternating pairs below so that neither side of a pair follows them.
for i in $(seq "$ROUNDS"); do
  null1+=("$($BIN --sink null --devices 10000 --cores 1 --messages 20000000 --json -q 2>/dev/null | field "round(d['msgs_per_sec'])")")
  null2+=("$($BIN --sink null --devices 10000 --cores 2 --messages 40000000 --json -q 2>/dev/null | field "round(d['msgs_per_sec'])")")
done
sleep 2
for i in $(seq "$ROUNDS"); do
  ours+=("$($BIN --devices 10000 --cores 2 --messages $MESSAGES --alerts-topic "" --json -q 2>/dev/null | field "round(d['msgs_per_sec'])")")
  anchor+=("$($ANCHOR -P -t bench -s "$SIZE" -c $MESSAGES -a 1 -X test.mock.num.brokers=1 -X linger.ms=50 \
      -X batch.num.messages=100000 -X queue.buffering.max.messages=1000000 -q 2>&1 \
      | grep -oE '[0-9]+ msgs/s' | grep -oE '[0-9]+')")
  alerts+=("$($BIN --devices 10000 --cores 2 --messages $MESSAGES --json -q 2>/dev/null | field "f\"{round(d['msgs_per_sec'])}+{round(d['alerts_sent']/d['elapsed_s'])}\"")")
  echo "round $i: iotblast ${ours[-1]}  rdkafka_performance ${anchor[-1]}  iotblast with alerts ${alerts[-1]}" >&2
done
m_ours=$(printf '%s\n' "${ours[@]}" | median)
m_anchor=$(printf '%s\n' "${anchor[@]}" | median)
m_null1=$(printf '%s\n' "${null1[@]}" | median)
m_null2=$(printf '%s\n' "${null2[@]}" | median)
ratio=$(python3 -c "print(f'{$m_ours/$m_anchor:.2f}')")
cat <<MD
| measurement ($ROUNDS alternating rounds, median) | msgs/s |
|---|---|
| iotblast --sink null --cores 1 (generator only) | $m_null1 |
| iotblast --sink null --cores 2 (generator only) | $m_null2 |
| iotblast embedded mock, --cores 2, --messages $MESSAGES, ${SIZE} B | $m_ours |
| rdkafka_performance -P -s $SIZE -c $MESSAGES -a 1, same mock | $m_anchor |
| **ratio iotblast / rdkafka_performance** | **$ratio** |
| iotblast default (alerts on), readings+alerts per s, per round | ${alerts[*]} |

per-round iotblast: ${ours[*]}
per-round rdkafka_performance: ${anchor[*]}
MD
