#!/usr/bin/env bash
# The soak: a long paced run against a 3-node Apache Kafka cluster, judged on memory,
# loss, duplicates and latency. Not a CI test (docs/reliability.md records its results).
#
#   1. Starts a 3-node cluster (scripts/kafka.sh), or uses --dir DIR of a running one.
#   2. Finds the highest rate that meets the SLO there (`iotblast --find-max-rate`).
#   3. Runs at 80 % of it for DURATION on a topic with replication factor 3 and
#      min.insync.replicas=2, acks=all with idempotence, zstd (as configs/production.yaml),
#      sampling iotblast's RSS every second, one interval line a minute.
#   4. Reads the topic back with `iotblast verify` and judges:
#      - memory: peak RSS over the last sixth of the run (the last 5 minutes of 30) is
#        within 10 % of the peak in the minute before the first sixth (minute 5 of 30);
#      - loss and duplicates: verify finds exactly the delivered readings, no gap, no
#        duplicate, and the summary balances (sent = delivered + failed + in doubt);
#      - latency: every minute's p99 (from each reading's due time) is within the SLO.
#   Prints the figures as a markdown table, and exits 0 only if every judgement passes.
#
# Usage: scripts/soak.sh DURATION [--slo p99=100ms] [--devices 10000] [--dir DIR]
#        e.g. scripts/soak.sh 30m          (DURATION at least 6m)
# Disk: zstd-compressed readings take ~40 bytes each per replica; the script checks
# there is room for the run (3 replicas) before it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "soak.sh: $*" >&2; exit 2; }
say() { echo "soak.sh: $*" >&2; }

[ $# -ge 1 ] || die "usage: scripts/soak.sh DURATION [--slo p99=100ms] [--devices N] [--dir DIR]"
DURATION="$1"
shift
SLO="p99=100ms" DEVICES=10000 DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --slo) SLO="${2:?--slo needs pQ=DUR}"; shift 2 ;;
    --devices) DEVICES="${2:?--devices needs a count}"; shift 2 ;;
    --dir) DIR="${2:?--dir needs a directory}"; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
SECS=$(python3 -c "
import re,sys
m=re.fullmatch(r'(\d+)(s|m|h)','$DURATION') or sys.exit('DURATION must be like 30m, 1h or 600s, got $DURATION')
print(int(m[1])*{'s':1,'m':60,'h':3600}[m[2]])")
[ "$SECS" -ge 360 ] || die "DURATION must be at least 6m (memory is judged on its first and last sixths)"
SLO_MS=$(python3 -c "
import re,sys
m=re.fullmatch(r'p(\d+(?:\.\d+)?)=(\d+(?:\.\d+)?)(ms|s)','$SLO') or sys.exit('--slo must be like p99=100ms, got $SLO')
print(float(m[2])*(1000 if m[3]=='s' else 1))")
Q=$(sed 's/^p\([0-9.]*\)=.*/\1/' <<<"$SLO")
[ "$Q" = 99 ] || die "--slo judges each minute's p99 from the interval log: give p99=DUR"

cargo build --release --quiet
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c "import json,sys; print(json.load(sys.stdin)['target_directory'])")/release/iotblast"
# The run's files stay in target/soak-<time>/ (summary, report, interval log, RSS samples,
# verify's report, logs); a cluster the script started is stopped and removed at exit.
WORK="$(dirname "$(dirname "$BIN")")/soak-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$WORK"
OWN=""
if [ -z "$DIR" ]; then
  OWN="$(mktemp -d)"
  DIR="$OWN/kafka"
  trap 'scripts/kafka.sh stop --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$OWN"' EXIT
  scripts/kafka.sh start --brokers 3 --dir "$DIR" --owner-pid $$
fi
say "files in $WORK"
# shellcheck disable=SC1091
. "$DIR/cluster.env"
[ "$BROKERS" = 3 ] || die "$DIR runs $BROKERS node(s); the soak needs 3"
STAMP=$(date +%s)
SEARCH="soak-search-$STAMP" TOPIC="soak-$STAMP" ALERTS="soak-alerts-$STAMP"
topics() { scripts/kafka.sh tool topics --bootstrap-server "$BOOTSTRAP" "$@" >/dev/null; }
for t in "$SEARCH" "$TOPIC" "$ALERTS"; do
  topics --create --topic "$t" --partitions 12 --replication-factor 3 --config min.insync.replicas=2
done
PRODUCER=(-X enable.idempotence=true -X compression.type=zstd --devices "$DEVICES" --no-create-topic)

say "searching for the highest rate with $SLO on 3 brokers (RF 3, acks=all)"
"$BIN" -b "$BOOTSTRAP" -t "$SEARCH" --alerts-topic "" "${PRODUCER[@]}" \
  --find-max-rate --latency-slo "$SLO" --json -q > "$WORK/search.json" 2> "$WORK/search.log" \
  || { tail -5 "$WORK/search.log" >&2; die "--find-max-rate found no rate that meets $SLO"; }
MAX=$(tail -1 "$WORK/search.json" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['search']['found']))")
RATE=$((MAX * 8 / 10))
topics --delete --topic "$SEARCH"

NEED=$(python3 -c "print(int($RATE * $SECS * 40 * 3 * 1.5))")
FREE=$(df -B1 --output=avail "$DIR" | tail -1)
[ "$FREE" -gt "$NEED" ] || die "$((NEED >> 30)) GiB needed for $DURATION at $RATE/s, $((FREE >> 30)) GiB free on $DIR"

say "max $MAX/s; soaking at $RATE/s (80 %) for $DURATION"
"$BIN" -b "$BOOTSTRAP" -t "$TOPIC" --alerts-topic "$ALERTS" "${PRODUCER[@]}" \
  --rate "$RATE" --duration "$DURATION" --report-interval 60s \
  --interval-log "$WORK/intervals.jsonl" --report-file "$WORK/report.json" --json -q \
  > "$WORK/summary.json" 2> "$WORK/run.log" &
PID=$!
T0=$(date +%s.%N)
: > "$WORK/rss.tsv"
while kill -0 "$PID" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null || true)
  [ -n "$rss" ] && echo "$(python3 -c "print(round($(date +%s.%N) - $T0, 1))") $rss" >> "$WORK/rss.tsv"
  sleep 1
done
set +e
wait "$PID"
CODE=$?
set -e

DELIVERED=$(tail -1 "$WORK/summary.json" | python3 -c "import json,sys; print(json.load(sys.stdin)['messages_delivered'])")
say "reading $DELIVERED readings back with iotblast verify"
set +e
"$BIN" verify -b "$BOOTSTRAP" -t "$TOPIC" --alerts-topic "$ALERTS" --expect "$DELIVERED" \
  --idle 10s --json > "$WORK/verify.json" 2> "$WORK/verify.log"
VCODE=$?
set -e

python3 - "$WORK" "$SECS" "$SLO_MS" "$SLO" "$MAX" "$RATE" "$CODE" "$VCODE" "$DURATION" <<'EOF'
import json, sys
work, secs, slo_ms, slo, mx, rate, code, vcode, duration = sys.argv[1:]
secs, slo_ms, code, vcode = int(secs), float(slo_ms), int(code), int(vcode)
s = json.loads(open(f"{work}/summary.json").read().splitlines()[-1])
v = json.loads(open(f"{work}/verify.json").read().splitlines()[-1])
rss = [tuple(map(float, l.split())) for l in open(f"{work}/rss.tsv") if l.strip()]
minutes = [json.loads(l) for l in open(f"{work}/intervals.jsonl") if l.strip()]
sixth = secs / 6
early = max((r for t, r in rss if sixth - 60 < t <= sixth), default=0)
late = max((r for t, r in rss if t > secs - sixth), default=0)
worst = max(minutes, key=lambda m: m["latency_ms"]["p99"])
p99s = [m["latency_ms"]["p99"] for m in minutes if m["readings_delivered"] > 0]
balanced = s["messages_sent"] == s["messages_delivered"] + s["messages_failed"] + s["messages_in_doubt"]
checks = [
    ("exit status", code == 0, f"{code}"),
    ("sent = delivered + failed + in doubt", balanced,
     f"{s['messages_sent']:,} = {s['messages_delivered']:,} + {s['messages_failed']:,} + {s['messages_in_doubt']:,}"),
    ("verify: readings = delivered", v["readings"] == s["messages_delivered"] and vcode == 0,
     f"{v['readings']:,} read, {s['messages_delivered']:,} delivered (verify exit {vcode})"),
    ("verify: gaps, duplicates", v["gaps"] == 0 and v["duplicates"] == 0,
     f"{v['gaps']} gaps, {v['duplicates']} duplicates, {v.get('invalid', 0)} invalid"),
    ("peak RSS, last sixth vs minute before the first sixth", early > 0 and late <= early * 1.10,
     f"{late / 1024:.1f} MB vs {early / 1024:.1f} MB ({(late / early - 1) * 100 if early else 0:+.1f} %)"),
    (f"p99 every minute within {slo}", bool(p99s) and max(p99s) <= slo_ms,
     f"worst {max(p99s, default=0):.1f} ms (minute ending {worst['t_s'] / 60:.1f}), median {sorted(p99s)[len(p99s) // 2] if p99s else 0:.1f} ms"),
]
print(f"\n| soak {duration}, SLO {slo}: max {float(mx):,.0f}/s, run at {float(rate):,.0f}/s | result | figures |")
print("|---|---|---|")
for name, ok, fig in checks:
    print(f"| {name} | {'pass' if ok else 'FAIL'} | {fig} |")
print(f"| achieved rate | | {s['msgs_per_sec']:,.0f} readings/s, {s['mb_per_sec']:.1f} MB/s; latency p50 {s['latency_ms']['p50']} ms, p99 {s['latency_ms']['p99']} ms overall; retries {s.get('retries', 0)} |")
sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
EOF
