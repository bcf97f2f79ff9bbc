#!/usr/bin/env bash
# Draws every plot of docs/data-model.md from iotblast's own output.
#
# Runs the release build with the stdout sink, simulated event time from
# 2026-01-01T00:00:00Z and a fixed seed, so the plots are a pure function of SEED (and
# ANOMALY_RATE), over the default fleet: 1000 devices, 125 in each of buildings A..H.
# The NDJSON is streamed through python3 (never stored) and drawn with gnuplot:
#
#   simulated-day.png   one day at --sample-interval 1m (1440 readings per device): one
#                       device's temperature, humidity, pressure, current, switch and
#                       battery, the readings an anomaly touched in red, and the fleet
#                       mean. The device is the one anomalies touched most that day
#                       (env DEVICE, e.g. device_000042, picks another).
#   simulated-week.png  the same device over 7 days at --sample-interval 10m (1008
#                       readings per device): the weather over days, the day cycle,
#                       battery drain.
#   building-day.png    the day above for five devices of building A and two of
#                       building E, with both buildings' means: devices of one building
#                       move together, buildings differ, the site shares its pressure.
#   alert-timeline.png  the alerts of a default run over one simulated day (the default
#                       sample interval, 3s: 28800 readings per device) per simulated
#                       hour, by sensor, split into alerts at an anomaly on that sensor
#                       (its onset, its course or the recovery right after) and the
#                       others. An alert is a change of a sensor's status from the
#                       device's previous reading (before the first, every sensor counts
#                       as normal), as iotblast's alerts topic carries them. Prints
#                       "alerts: N over M readings (X per 1000)" to stdout.
#
# Usage: scripts/plot-day.sh [OUT_DIR]   (default docs/img)
#   env: SEED (default 1); ANOMALY_RATE (default: iotblast's own); DEVICE.
# Needs cargo, python3 (standard library only), grep and gnuplot with the pngcairo
# terminal (gnuplot-nox is installed with apt-get when missing). Takes 2-3 minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
out_dir=${1:-docs/img}
seed=${SEED:-1}
device=${DEVICE:-auto}
devices=1000
start=2026-01-01T00:00:00Z

if ! command -v gnuplot >/dev/null; then
    echo "installing gnuplot-nox" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q gnuplot-nox >/dev/null; else sudo apt-get install -y -q gnuplot-nox >/dev/null; fi
fi

cargo build --release --quiet
bin=./target/release/iotblast
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out_dir"

# The defaults the alert timeline runs with, as this build has them.
default_setting() { "$bin" config default | awk -v key="$1:" '$1 == key && v == "" { v = $2 } END { print v }'; }
default_interval=$(default_setting sample_interval)
default_rate=$(default_setting anomaly_rate)
rate_args=()
if [ -n "${ANOMALY_RATE:-}" ]; then
    rate_args=(--anomaly-rate "$ANOMALY_RATE")
    rate_label=$ANOMALY_RATE
else
    rate_label="$default_rate (default)"
fi
# Readings a device makes in a day at the default interval (ms, s, m or h).
day_readings=$(python3 -c '
import re, sys
n, unit = re.fullmatch(r"([0-9.]+)(ms|s|m|h)", sys.argv[1]).groups()
print(round(86400 / (float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit])))
' "$default_interval")

# Readings of the whole fleet: $1 the sample interval, $2 readings per device.
readings() {
    "$bin" --sink stdout --quiet --seed "$seed" --devices "$devices" \
        --event-time simulated --start "$start" --sample-interval "$1" \
        --messages $((devices * $2)) ${rate_args[@]+"${rate_args[@]}"} 2>"$work/iotblast.err" ||
        { cat "$work/iotblast.err" >&2; return 1; }
}

cat >"$work/scan.py" <<'EOF'
"""Reads iotblast NDJSON on stdin, one pass, and writes gnuplot data files.

PREFIX-fleet.dat   t(s) and the fleet means: temperature humidity pressure current
                   (nulls skipped), switch share on, battery.
PREFIX-device.dat  t(s), the device's temperature humidity pressure current switch
                   battery, then the same six where an anomaly touched it (else NaN; a
                   dropout's null is marked at the last value read).
PREFIX-meta.gp     gnuplot variables: the device's label and each panel's anomaly title.
PREFIX.device      the device shown: --device, or the one anomalies touched most.
With --building-devices: PREFIX-building.dat, t(s) then those devices' four sensors
(current only while switched on), then the four means of each building in --buildings
(current over the devices switched on); PREFIX-building.gp their labels.
"""
import argparse
import json
import math
import sys
from array import array

ANALOG = ("temperature", "humidity", "pressure", "current")
TARGETS = ANALOG + ("switch_status", "battery")
NAN = float("nan")

p = argparse.ArgumentParser()
p.add_argument("prefix")
p.add_argument("readings", type=int, help="readings per device")
p.add_argument("--device", default="auto")
p.add_argument("--building-devices", default="")
p.add_argument("--buildings", default="")
a = p.parse_args()
n = a.readings
pick = [d for d in a.building_devices.split(",") if d]
means_of = [b for b in a.buildings.split(",") if b]

# Fleet sums per seq: the 4 sensors, their counts, switch on, battery, readings.
fleet = [[0.0] * 11 for _ in range(n)]
times = [None] * n
# Building sums per seq: the 4 sensors (current while on) and their counts.
by_building = {b: [[0.0] * 8 for _ in range(n)] for b in means_of}
# Kept devices: 6 values per seq, the anomaly "kind:target" per seq, the location.
series, kinds, where = {}, {}, {}
touched, next_seq = {}, {}

for line in sys.stdin:
    r = json.loads(line)
    dev, seq, s = r["device_id"], r["seq"], r["sensors"]
    if seq >= n:
        continue
    if next_seq.get(dev, 0) != seq:
        sys.exit(f"{dev}: seq {seq} after {next_seq.get(dev, 0) - 1}: readings out of order")
    next_seq[dev] = seq + 1
    if times[seq] is None:
        times[seq] = r["timestamp"] / 1000
    an = r.get("anomaly")
    vals = [s[k]["value"] for k in ANALOG]
    on = 1.0 if s["switch_status"]["value"] else 0.0
    battery = r["device_info"]["battery"]
    f = fleet[seq]
    for i, v in enumerate(vals):
        if v is not None:
            f[i] += v
            f[4 + i] += 1
    f[8] += on
    f[9] += battery
    f[10] += 1
    b = r["location"]["building"]
    if b in by_building:
        m = by_building[b][seq]
        for i, v in enumerate(vals):
            if v is not None and (i < 3 or on):
                m[i] += v
                m[4 + i] += 1
    if an:
        touched[dev] = touched.get(dev, 0) + 1
    if a.device == "auto" or dev == a.device or dev in pick:
        if dev not in series:
            series[dev] = array("f", [NAN]) * (6 * n)
            kinds[dev] = [""] * n
            loc = r["location"]
            where[dev] = (loc["building"], loc["floor"], loc["room"])
        row = [NAN if v is None else v for v in vals] + [on, battery]
        series[dev][6 * seq:6 * seq + 6] = array("f", row)
        if an:
            kinds[dev][seq] = f'{an["kind"]}:{an["target"]}'

if not any(times):
    sys.exit("no readings")


def num(x):
    return "NaN" if x is None or math.isnan(x) else f"{x:.6g}"


def fmt(t, row):
    return " ".join([f"{t:.0f}"] + [num(x) for x in row]) + "\n"


with open(a.prefix + "-fleet.dat", "w") as out:
    for seq, f in enumerate(fleet):
        if f[10]:
            means = [f[i] / f[4 + i] if f[4 + i] else None for i in range(4)]
            out.write(fmt(times[seq], means + [f[8] / f[10], f[9] / f[10]]))

device = a.device
if device == "auto":
    # The device anomalies touched most (the lowest index on a tie), else the first.
    device = min(touched, key=lambda d: (-touched[d], d)) if touched else min(series)
if device not in series:
    sys.exit(f"no readings of {device}")

marks = {}
with open(a.prefix + "-device.dat", "w") as out:
    v, k = series[device], kinds[device]
    last = [NAN] * 6
    for seq in range(n):
        if times[seq] is None:
            continue
        row = list(v[6 * seq:6 * seq + 6])
        last = [x if not math.isnan(x) else y for x, y in zip(row, last)]
        hit = [NAN] * 6
        if k[seq]:
            kind, target = k[seq].split(":")
            i = TARGETS.index(target)
            hit[i] = last[i]
            marks.setdefault(i, [])
            if kind not in marks[i]:
                marks[i].append(kind)
        out.write(fmt(times[seq], row + hit))

with open(a.prefix + "-meta.gp", "w") as out:
    b, floor, room = where[device]
    out.write(f'device = "{device} (building {b}, floor {floor}, room {room})"\n')
    for i in range(6):
        title = ("anomaly: " + ", ".join(marks[i])) if i in marks else ""
        out.write(f'mark{i + 1} = "{title}"\n')
with open(a.prefix + ".device", "w") as out:
    out.write(device + "\n")

if pick:
    with open(a.prefix + "-building.dat", "w") as out:
        for seq in range(n):
            if times[seq] is None:
                continue
            row = []
            for dev in pick:
                t, h, pr, c, on, _ = series[dev][6 * seq:6 * seq + 6]
                row += [t, h, pr, c if on else NAN]
            for b in means_of:
                m = by_building[b][seq]
                row += [m[i] / m[4 + i] if m[4 + i] else None for i in range(4)]
            out.write(fmt(times[seq], row))
    with open(a.prefix + "-building.gp", "w") as out:
        out.write(f"ndev = {len(pick)}\n")
        for j, dev in enumerate(pick):
            b, floor, _ = where[dev]
            out.write(f'dev{j + 1} = "{dev} ({b}, floor {floor})"\n')
EOF

cat >"$work/alerts.py" <<'EOF'
"""Counts alerts per simulated hour from the readings that are not quiet.

Reads, on stdin, only the readings with a status other than normal or an anomaly
label: every reading left out is quiet (all four sensors normal, no anomaly), so a
device's status before a reading is its last reading's when that was the one right
before, else all normal; and a device whose last reading was not all normal recovers
at the reading after it when that one was left out. Writes PREFIX-alerts.dat: per
hour "HH:00", then per sensor the alerts not at an anomaly on that sensor, then those
at one (the reading or the one before it carries an anomaly on the sensor). Prints
the totals.
"""
import json
import sys

ANALOG = ("temperature", "humidity", "pressure", "current")
NORMAL = ("normal",) * 4
prefix, interval_s, n, devices = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
hours = int(-(-n * interval_s // 3600))
counts = [[[0, 0] for _ in ANALOG] for _ in range(hours)]
state = {}  # device: (seq, statuses, anomaly target)


def alert(seq, was, now, was_target, target):
    for i, k in enumerate(ANALOG):
        if now[i] != was[i]:
            counts[int(seq * interval_s // 3600)][i][target == k or was_target == k] += 1


def recover(seq, was, was_target):
    """The quiet reading after `seq`, if there is one, turns every sensor normal."""
    if seq + 1 < n:
        alert(seq + 1, was, NORMAL, was_target, None)


for line in sys.stdin:
    r = json.loads(line)
    dev, seq = r["device_id"], r["seq"]
    if seq >= n:
        continue
    now = tuple(r["sensors"][k]["status"] for k in ANALOG)
    target = r["anomaly"]["target"] if "anomaly" in r else None
    was, was_target = NORMAL, None
    if dev in state:
        last, last_status, last_target = state[dev]
        if seq <= last:
            sys.exit(f"{dev}: seq {seq} after {last}: readings out of order")
        if seq == last + 1:
            was, was_target = last_status, last_target
        else:
            recover(last, last_status, last_target)
    alert(seq, was, now, was_target, target)
    state[dev] = (seq, now, target)
for last, last_status, last_target in state.values():
    recover(last, last_status, last_target)

with open(prefix + "-alerts.dat", "w") as out:
    for hour, row in enumerate(counts):
        out.write(f"{hour:02d}:00 " + " ".join(str(row[i][at]) for at in (0, 1) for i in range(4)) + "\n")
total = sum(c for row in counts for s in row for c in s)
at = sum(s[1] for row in counts for s in row)
readings = n * devices
print(f"alerts: {total} over {readings} readings ({1000 * total / readings:.3g} per 1000)")
by = ", ".join(f"{k} {sum(sum(row[i]) for row in counts)}" for i, k in enumerate(ANALOG))
print(f"  by sensor: {by}; {at} at anomalies", file=sys.stderr)
EOF

t0=$SECONDS
echo "one day, a reading a minute: $devices devices x 1440 readings" >&2
readings 1m 1440 | python3 "$work/scan.py" "$work/day" 1440 --device "$device" \
    --building-devices device_000000,device_000006,device_000040,device_000080,device_000120,device_000500,device_000540 \
    --buildings A,E
device=$(cat "$work/day.device")
echo "one week, a reading every 10 minutes: $devices devices x 1008 readings ($device)" >&2
readings 10m 1008 | python3 "$work/scan.py" "$work/week" 1008 --device "$device"
echo "alerts of one default day, a reading every $default_interval: $devices devices x $day_readings readings" >&2
interval_s=$(python3 -c 'import sys; print(86400 / int(sys.argv[1]))' "$day_readings")
readings "$default_interval" "$day_readings" |
    LC_ALL=C grep -F -e '"status":"warning"' -e '"status":"error"' -e '"status":"offline"' -e '"anomaly":' |
    python3 "$work/alerts.py" "$work/alerts" "$interval_s" "$day_readings" "$devices"

# Six panels of one device over a span (day or week).
cat >"$work/panels.gp" <<'EOF'
set grid
set key top left horizontal noenhanced opaque box
set lmargin 11
set rmargin 9
# Room above the data for the key (NaN, a null or the current of a device switched
# off, breaks a line).
set offsets 0, 0, graph 0.25, 0
set xdata time
set timefmt "%s"
dev = dir."/".span."-device.dat"
fl = dir."/".span."-fleet.dat"
load dir."/".span."-meta.gp"
# The red marks of column c, titled t; none when no anomaly touched that panel.
pts(c, t) = t eq "" ? "" : sprintf(", dev u 1:%d w p lc rgb '#e31a1c' pt 7 ps 0.7 t '%s'", c, t)
set ylabel "temperature (°C)"
m = pts(8, mark1)
plot dev u 1:2 w l lc rgb "#6baed6" t "device", \
     fl u 1:2 w l lw 2 lc rgb "#08519c" t "fleet mean (1000 devices)" @m
set ylabel "humidity (%)"
m = pts(9, mark2)
plot dev u 1:3 w l lc rgb "#74c476" t "device", \
     fl u 1:3 w l lw 2 lc rgb "#006d2c" t "fleet mean" @m
set ylabel "pressure (hPa)"
m = pts(10, mark3)
plot dev u 1:4 w l lc rgb "#fd8d3c" t "device", \
     fl u 1:4 w l lw 2 lc rgb "#a63603" t "fleet mean" @m
set ylabel "current (A)"
m = pts(11, mark4)
plot dev u 1:5 w l lc rgb "#9e9ac8" t "device (0 while switched off)", \
     fl u 1:5 w l lw 2 lc rgb "#54278f" t "fleet mean" @m
set ylabel "switch"
set offsets 0, 0, 0, 0
set yrange [-0.15:1.45]
set ytics ("off" 0, "on" 1)
set y2range [-15:145]
set y2tics 0,25,100 format "%g %%"
set y2label "fleet share on"
m = pts(12, mark5)
plot dev u 1:6 w steps lc rgb "#636363" t "device", \
     fl u 1:(100 * column(6)) axes x1y2 w l lw 2 lc rgb "#000000" t "fleet share on (right axis)" @m
unset y2tics
unset y2label
set autoscale y
set ytics auto
set offsets 0, 0, graph 0.25, 0
set ylabel "battery (%)"
set xlabel xl
m = pts(13, mark6)
plot dev u 1:7 w steps lc rgb "#969696" t "device", \
     fl u 1:7 w l lw 2 lc rgb "#252525" t "fleet mean" @m
EOF

cat >"$work/simulated-day.png.gp" <<'EOF'
span = "day"
load dir."/day-meta.gp"
set terminal pngcairo size 1200,1500 font "sans,10"
set output out
set multiplot layout 6,1 title noenhanced sprintf("iotblast: one simulated day, 2026-01-01, a reading a minute (seed %s, anomaly rate %s)\n%s against the mean of 1000 devices; red: readings an anomaly touched", seed, rate, device)
set format x "%H:%M"
set xtics 3 * 3600
set mxtics 3
xl = "simulated time, 2026-01-01 (UTC)"
load dir."/panels.gp"
unset multiplot
EOF

cat >"$work/simulated-week.png.gp" <<'EOF'
span = "week"
load dir."/week-meta.gp"
set terminal pngcairo size 1200,1500 font "sans,10"
set output out
set multiplot layout 6,1 title noenhanced sprintf("iotblast: one simulated week, 2026-01-01 to 01-08, a reading every 10 minutes (seed %s, anomaly rate %s)\n%s against the mean of 1000 devices; red: readings an anomaly touched", seed, rate, device)
set format x "%a %d %b"
set xtics 86400
set mxtics 4
xl = "simulated time, 2026 (UTC; minor tics every 6 hours)"
load dir."/panels.gp"
unset multiplot
EOF

cat >"$work/building-day.png.gp" <<'EOF'
set terminal pngcairo size 1200,1300 font "sans,10"
set output out
load dir."/day-building.gp"
set multiplot layout 4,1 title noenhanced sprintf("iotblast: one simulated day, 2026-01-01, a reading a minute (seed %s): devices of building A (blue) and E (red)\nthin: single devices (building, floor); thick: mean of the building's 125 devices", seed)
set grid
set lmargin 11
set rmargin 34
set key outside right top vertical noenhanced
set xdata time
set timefmt "%s"
set format x "%H:%M"
set xtics 3 * 3600
set mxtics 3
f = dir."/day-building.dat"
array colour[7] = ["#08306b", "#2171b5", "#4292c6", "#6baed6", "#9ecae1", "#cb181d", "#fb6a4a"]
# Column of device j's sensor i (1..4), and of building k's mean (k = 1 A, 2 E).
dc(j, i) = 1 + 4 * (j - 1) + i
bc(k, i) = 1 + 4 * ndev + 4 * (k - 1) + i
units = "°C % hPa A"
names = "temperature humidity pressure current"
do for [i = 1:4] {
    set ylabel sprintf("%s (%s)", word(names, i), word(units, i))
    if (i == 4) {
        set ylabel "current while switched on (A)"
        set xlabel "simulated time, 2026-01-01 (UTC)"
    }
    plot for [j = 1:ndev] f u 1:dc(j, i) w l lw 1 lc rgb colour[j] t value(sprintf("dev%d", j)), \
         f u 1:bc(1, i) w l lw 3 lc rgb "#000000" t "building A mean", \
         f u 1:bc(2, i) w l lw 3 lc rgb "#67000d" dt 2 t "building E mean"
}
unset multiplot
EOF

cat >"$work/alert-timeline.png.gp" <<'EOF'
set terminal pngcairo size 1200,600 font "sans,10"
set output out
set title noenhanced sprintf("iotblast: alerts (status changes) per simulated hour of a default run over 2026-01-01\n1000 devices, a reading every %s, seed %s, anomaly rate %s\nhatched: at an anomaly on that sensor (its onset, course, or the recovery right after); solid: the signal itself crossing a threshold", interval, seed, rate)
set style data histograms
set style histogram rowstacked
set boxwidth 0.8 relative
set key outside right top vertical noenhanced
set rmargin 30
set grid ytics
set ylabel "alerts per hour"
set xlabel "simulated hour, 2026-01-01 (UTC)"
set yrange [0:*]
set xtics nomirror
f = dir."/alerts-alerts.dat"
array colour[4] = ["#2171b5", "#238b45", "#d94801", "#6a51a3"]
names = "temperature humidity pressure current"
plot for [i = 1:4] f u (column(1 + i)):xtic(int(column(0)) % 3 == 0 ? strcol(1) : "") \
         fs solid 0.85 border lc rgb colour[i] lc rgb colour[i] t word(names, i), \
     for [i = 1:4] f u (column(5 + i)) fs pattern 4 border lc rgb colour[i] lc rgb colour[i] \
         t word(names, i)." at anomaly"
EOF

for png in simulated-day.png simulated-week.png building-day.png alert-timeline.png; do
    gnuplot -e "dir='$work'; out='$out_dir/$png'; seed='$seed'; rate='$rate_label'; interval='$default_interval'" "$work/$png.gp"
    echo "wrote $out_dir/$png" >&2
done
echo "done in $((SECONDS - t0)) s" >&2
