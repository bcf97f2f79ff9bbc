#!/usr/bin/env bash
# Peak resident memory (the kernel's ru_maxrss, as /usr/bin/time -f %M reports it) of
# iotblast at its default settings on the embedded mock cluster, at 10,000 and at
# 1,000,000 devices, with the null sink alongside for reference (the generator alone).
# Each case runs ROUNDS times; the table gives the median and the largest. Issue #14's
# limits are 150 MB at 10k devices and 1 GB at 1M devices (decimal: 10^6 bytes); the script exits 1 if the
# largest run of either is above its limit.
#
# Usage: scripts/bench-memory.sh [rounds]     (default 3; prints a Markdown table)
# Environment: BIN (default target/release/iotblast, built here), EXTRA (more iotblast
# arguments for every run, e.g. "-X queue.buffering.max.kbytes=16384").
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/iotblast
fi
read -r -a extra <<< "${EXTRA:-}"

# Runs iotblast with the given arguments and prints "<peak RSS in KiB> <msgs/s>".
peak() {
  python3 - "$BIN" "$@" "${extra[@]}" <<'PY'
import json, resource, subprocess, sys
out = subprocess.run(sys.argv[1:] + ["--json", "-q"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
if out.returncode != 0:
    sys.exit(f"bench-memory.sh: {' '.join(sys.argv[1:])} exited {out.returncode}")
summary = json.loads(out.stdout.decode().splitlines()[-1])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, round(summary["msgs_per_sec"]))
PY
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Decimal megabytes (10^6 bytes), the stricter reading of the limits.
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k * 1024 / 1e6}'; }

declare -A runs=(
  [null10k]="--sink null --devices 10000 --messages 3000000"
  [mock10k]="--devices 10000 --messages 3000000"
  [mock1m]="--devices 1000000 --messages 5000000"
)
declare -A rss rate
for i in $(seq "$ROUNDS"); do
  for name in null10k mock10k mock1m; do
    read -r -a args <<< "${runs[$name]}"
    read -r kib per_s < <(peak "${args[@]}")
    rss[$name]+="$kib "
    rate[$name]+="$per_s "
    echo "round $i: $name $(mb "$kib") MB, $per_s msgs/s" >&2
  done
done

status=0
row() {  # name, limit in MB (or -)
  local med max
  med=$(tr ' ' '\n' <<< "${rss[$1]}" | grep . | median)
  max=$(tr ' ' '\n' <<< "${rss[$1]}" | grep . | sort -n | tail -1)
  local verdict="-"
  if [ "$2" != "-" ]; then
    if awk -v k="$max" -v l="$2" 'BEGIN {exit !(k * 1024 / 1e6 < l)}'; then verdict="below $2 MB"; else verdict="**above $2 MB**"; status=1; fi
  fi
  echo "| iotblast ${runs[$1]} | $(mb "$med") | $(mb "$max") | $verdict | $(tr ' ' '\n' <<< "${rate[$1]}" | grep . | median) |"
}
cat <<MD
| run ($ROUNDS rounds; defaults otherwise; ${EXTRA:-no extra arguments}) | peak RSS median, MB | largest, MB | limit | msgs/s (median) |
|---|---|---|---|---|
$(row null10k -)
$(row mock10k 150)
$(row mock1m 1000)
MD
exit $status
