#!/usr/bin/env bash
# Plots one simulated day from iotblast's own output: docs/img/simulated-day.png.
#
# Runs iotblast with the stdout sink (200 devices, one reading per simulated minute,
# 1440 readings each), then draws device 0's four analog sensors and its switch, with
# the fleet-wide mean on top and the readings an anomaly touched marked. Needs python3
# and gnuplot (installed with apt-get when missing).
#
# Usage: scripts/plot-day.sh [OUT.png]   (env: SEED, DEVICES, ANOMALY_RATE)
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-docs/img/simulated-day.png}
seed=${SEED:-1}
devices=${DEVICES:-200}
anomaly_rate=${ANOMALY_RATE:-0.01}

if ! command -v gnuplot >/dev/null; then
    echo "installing gnuplot-nox" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q gnuplot-nox >/dev/null; else sudo apt-get install -y -q gnuplot-nox >/dev/null; fi
fi

cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

./target/release/iotblast --sink stdout --quiet --seed "$seed" --devices "$devices" \
    --messages $((devices * 1440)) --sample-interval 1m --anomaly-rate "$anomaly_rate" \
    >"$work/readings.ndjson"

# Columns: hour, then for device 0 temperature humidity pressure current switch and the
# anomaly's target (0 none, 1-4 a sensor, 5 the switch), then the fleet means of the
# four sensors (nulls skipped).
python3 - "$work/readings.ndjson" "$work/day.dat" <<'EOF'
import json, sys
sensors = ["temperature", "humidity", "pressure", "current"]
sums, counts, dev0 = {}, {}, {}
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        seq = r["seq"]
        s = sums.setdefault(seq, [0.0] * 4)
        c = counts.setdefault(seq, [0] * 4)
        for i, name in enumerate(sensors):
            v = r["sensors"][name]["value"]
            if v is not None:
                s[i] += v
                c[i] += 1
        if r["device_id"].endswith("_000000"):
            vals = [r["sensors"][n]["value"] for n in sensors]
            target = r.get("anomaly", {}).get("target")
            hit = sensors.index(target) + 1 if target in sensors else (5 if target == "switch_status" else 0)
            dev0[seq] = (vals, int(r["sensors"]["switch_status"]["value"]), hit)
with open(sys.argv[2], "w") as out:
    for seq in sorted(sums):
        vals, switch, anomaly = dev0[seq]
        cells = ["NaN" if v is None else str(v) for v in vals]
        means = [str(s / c) if c else "NaN" for s, c in zip(sums[seq], counts[seq])]
        out.write(" ".join([str(seq / 60)] + cells + [str(switch), str(anomaly)] + means) + "\n")
EOF

mkdir -p "$(dirname "$out")"
gnuplot <<EOF
set terminal pngcairo size 1200,1300 font "sans,10"
set output "$out"
set multiplot layout 5,1 title noenhanced "iotblast: one simulated day (seed $seed, device_000000 and the mean of $devices devices; anomalies marked)"
set xrange [0:24]
set xtics 0,3,24
set grid
set key top left noenhanced
set datafile missing "NaN"
set lmargin 10
set ylabel "°C"
plot "$work/day.dat" u 1:2 w l lc rgb "#9ecae1" t "temperature, device 0", \
     "" u 1:(\$7 == 1 ? \$2 : 1/0) w p pt 7 ps 0.6 lc rgb "red" t "anomaly", \
     "" u 1:8 w l lw 2 lc rgb "#08519c" t "fleet mean"
set ylabel "%"
plot "$work/day.dat" u 1:3 w l lc rgb "#a1d99b" t "humidity, device 0", \
     "" u 1:(\$7 == 2 ? \$3 : 1/0) w p pt 7 ps 0.6 lc rgb "red" notitle, \
     "" u 1:9 w l lw 2 lc rgb "#006d2c" t "fleet mean"
set ylabel "hPa"
plot "$work/day.dat" u 1:4 w l lc rgb "#fdae6b" t "pressure, device 0", \
     "" u 1:(\$7 == 3 ? \$4 : 1/0) w p pt 7 ps 0.6 lc rgb "red" notitle, \
     "" u 1:10 w l lw 2 lc rgb "#a63603" t "fleet mean"
set ylabel "A"
plot "$work/day.dat" u 1:5 w l lc rgb "#bcbddc" t "current, device 0", \
     "" u 1:(\$7 == 4 ? \$5 : 1/0) w p pt 7 ps 0.6 lc rgb "red" notitle, \
     "" u 1:11 w l lw 2 lc rgb "#54278f" t "fleet mean"
set ylabel "switch"
set yrange [-0.2:1.2]
set ytics ("off" 0, "on" 1)
set xlabel "simulated hour (UTC)"
plot "$work/day.dat" u 1:6 w steps lc rgb "#636363" t "switch, device 0", \
     "" u 1:(\$7 == 5 ? \$6 : 1/0) w p pt 7 ps 0.6 lc rgb "red" t "chatter"
unset multiplot
EOF
echo "wrote $out" >&2
