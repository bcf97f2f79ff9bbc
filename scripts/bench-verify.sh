#!/usr/bin/env bash
# verify's read rates: NDJSON from a file (one core: verify is single-threaded) and a
# topic on a local Tansu broker, each against the readings' count, over ROUNDS rounds.
# Tansu comes from the cache scripts/test.sh fills (or TANSU_BIN).
#
# Usage: scripts/bench-verify.sh [rounds] [readings]   (defaults 3 and 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
N=${2:-1000000}
cargo build --release --quiet
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c "import json,sys; print(json.load(sys.stdin)['target_directory'])")/release/iotblast
TANSU=${TANSU_BIN:-$HOME/.cache/iotblast-tools/bin/tansu}
WORK=$(mktemp -d)
trap 'kill $TPID 2>/dev/null || true; rm -rf "$WORK"' EXIT
TPID=""

field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print($1)"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

$BIN --sink stdout --devices 10000 --messages "$N" --seed 1 -q > "$WORK/readings.ndjson" 2>/dev/null
file=()
for i in $(seq "$ROUNDS"); do
  file+=("$(taskset -c 0 $BIN verify --file "$WORK/readings.ndjson" --expect "$N" --json | field "round(d['msgs_per_sec'])")")
done

PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$TANSU" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine memory://tansu/ >/dev/null 2>&1 &
TPID=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
$BIN -b "127.0.0.1:$PORT" -t bench --alerts-topic "" --partitions 12 --devices 10000 --messages "$N" --seed 1 -q >/dev/null 2>&1
kafka=()
for i in $(seq "$ROUNDS"); do
  kafka+=("$($BIN verify -b "127.0.0.1:$PORT" -t bench --alerts-topic "" --expect "$N" --idle 2s --json | field "round(d['msgs_per_sec'])")")
done

echo "| source | readings | rounds | median msg/s | all |"
echo "|---|---|---|---|---|"
echo "| file, one core (taskset -c 0) | $N | $ROUNDS | $(printf '%s\n' "${file[@]}" | median) | ${file[*]} |"
echo "| Tansu on loopback, 12 partitions | $N | $ROUNDS | $(printf '%s\n' "${kafka[@]}" | median) | ${kafka[*]} |"
