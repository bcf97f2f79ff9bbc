//! `iotblast report plot`: an SVG of one or more run reports over wall-clock time:
//! throughput (achieved against target) and latency percentiles, one line per instance
//! plus the merged total.
//!
//! The merged lines come from the instances' intervals put into common time bins (as
//! wide as the longest reporting interval, by each interval's midpoint): readings are
//! summed and the interval histograms added, so the merged latency is a true
//! percentile of all readings in the bin, not an average of percentiles.

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::error::{ConfigError, Error};
use crate::observe::report_file::{decode_histogram, read_all, RunReport};

const SIZE: (u32, u32) = (1100, 760);

/// One line of a chart.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
}

/// `iotblast report plot FILE... -o OUT`.
pub fn run_plot(files: &[PathBuf], out: &Path) -> Result<(), Error> {
    let reports = read_all(files)?;
    let (throughput, latency) = lines(&reports)?;
    draw(out, &throughput, &latency).map_err(|e| {
        Error::from(ConfigError::new(
            "-o",
            format!("cannot write '{}': {e}", out.display()),
        ))
    })?;
    crate::output::err(format_args!(
        "wrote {} ({} reports)",
        out.display(),
        reports.len()
    ));
    Ok(())
}

/// The throughput and latency lines of `reports`, time in seconds from the earliest start.
fn lines(reports: &[(PathBuf, RunReport)]) -> Result<(Vec<Line>, Vec<Line>), Error> {
    let t0 = reports
        .iter()
        .map(|(_, r)| r.started_unix_s)
        .fold(f64::INFINITY, f64::min);
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    let many = reports.len() > 1;
    for (i, (path, r)) in reports.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let color = RGBColor(color.0, color.1, color.2);
        let name = if many {
            format!("instance {}", r.instance_index)
        } else {
            path.file_name()
                .map_or("run".into(), |n| n.to_string_lossy().into_owned())
        };
        let (t, l) = instance_lines(&name, color, r, r.started_unix_s - t0);
        throughput.extend(t);
        latency.extend(l);
    }
    if many {
        let (rate, p99, target) = merged(reports, t0)?;
        throughput.push(Line {
            label: "merged achieved".into(),
            points: rate,
            color: BLACK,
        });
        if let Some(t) = target {
            throughput.push(Line {
                label: "merged target".into(),
                points: t,
                color: RGBColor(128, 128, 128),
            });
        }
        latency.push(Line {
            label: "merged p99".into(),
            points: p99,
            color: BLACK,
        });
    }
    Ok((throughput, latency))
}

/// One instance's throughput lines (achieved, target) and latency lines (p50, p99),
/// its times shifted by `offset` seconds.
fn instance_lines(
    name: &str,
    color: RGBColor,
    r: &RunReport,
    offset: f64,
) -> (Vec<Line>, Vec<Line>) {
    let at = |t_s: f64| offset + t_s;
    let dim = RGBColor(color.0 / 2, color.1 / 2, color.2 / 2);
    let mut throughput = vec![Line {
        label: format!("{name} achieved"),
        points: r
            .intervals
            .iter()
            .map(|iv| (at(iv.t_s), iv.readings_per_sec))
            .collect(),
        color,
    }];
    // Each interval's target, so that a reloaded rate shows where it changed.
    let target: Vec<(f64, f64)> = r
        .intervals
        .iter()
        .filter_map(|iv| iv.target_per_sec.map(|t| (at(iv.t_s), t)))
        .collect();
    if !target.is_empty() {
        throughput.push(Line {
            label: format!("{name} target"),
            points: target,
            color: dim,
        });
    }
    let acked = || r.intervals.iter().filter(|iv| iv.readings_delivered > 0);
    let latency = vec![
        Line {
            label: format!("{name} p50"),
            points: acked().map(|iv| (at(iv.t_s), iv.latency_ms.p50)).collect(),
            color: dim,
        },
        Line {
            label: format!("{name} p99"),
            points: acked().map(|iv| (at(iv.t_s), iv.latency_ms.p99)).collect(),
            color,
        },
    ];
    (throughput, latency)
}

/// Merged readings per second and p99 latency (ms) per time bin, and the summed target.
#[allow(clippy::type_complexity)]
fn merged(
    reports: &[(PathBuf, RunReport)],
    t0: f64,
) -> Result<(Vec<(f64, f64)>, Vec<(f64, f64)>, Option<Vec<(f64, f64)>>), Error> {
    let width = reports
        .iter()
        .flat_map(|(_, r)| r.intervals.iter().map(|iv| iv.interval_s))
        .fold(0.0, f64::max)
        .max(0.1);
    let end = reports
        .iter()
        .filter_map(|(_, r)| r.intervals.last().map(|iv| r.started_unix_s - t0 + iv.t_s))
        .fold(0.0, f64::max);
    let bins = (end / width).ceil().max(1.0) as usize;
    let mut readings = vec![0u64; bins];
    // Per bin, each instance's latest target.
    let mut targets = vec![vec![None; reports.len()]; bins];
    let mut hist: Vec<Histogram<u64>> = (0..bins)
        .map(|_| crate::deliver::stats::histogram())
        .collect();
    for (i, (path, r)) in reports.iter().enumerate() {
        for iv in &r.intervals {
            let mid = r.started_unix_s - t0 + iv.t_s - iv.interval_s / 2.0;
            let b = ((mid / width).floor().max(0.0) as usize).min(bins - 1);
            readings[b] += iv.readings_sent;
            if iv.target_per_sec.is_some() {
                targets[b][i] = iv.target_per_sec;
            }
            if let Some(text) = &iv.latency_hdr {
                let h = decode_histogram(text, "intervals[].latency_hdr")
                    .map_err(|m| ConfigError::new(path.display().to_string(), m))?;
                hist[b]
                    .add(&h)
                    .map_err(|e| ConfigError::new(path.display().to_string(), format!("{e:?}")))?;
            }
        }
    }
    let x = |b: usize| (b as f64 + 0.5) * width;
    let rate = (0..bins)
        .map(|b| (x(b), readings[b] as f64 / width))
        .collect();
    let p99 = (0..bins)
        .filter(|&b| !hist[b].is_empty())
        .map(|b| (x(b), hist[b].value_at_quantile(0.99) as f64 / 1000.0))
        .collect();
    let target: Vec<(f64, f64)> = (0..bins)
        .filter(|&b| targets[b].iter().any(Option::is_some))
        .map(|b| (x(b), targets[b].iter().flatten().sum()))
        .collect();
    Ok((rate, p99, (!target.is_empty()).then_some(target)))
}

fn draw(out: &Path, throughput: &[Line], latency: &[Line]) -> Result<(), String> {
    let root = SVGBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2);
    chart(&top, "Throughput (readings/s)", "readings/s", throughput)?;
    chart(
        &bottom,
        "Latency from when each reading was due (ms)",
        "ms",
        latency,
    )?;
    root.present().map_err(|e| e.to_string())
}

fn chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    lines: &[Line],
) -> Result<(), String> {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all()
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(0.0, f64::max)
        * 1.1;
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max.max(1e-3))
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("seconds since the first instance started")
        .y_desc(unit)
        .draw()
        .map_err(|e| e.to_string())?;
    for l in lines {
        let color = l.color;
        c.draw_series(LineSeries::new(
            l.points.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label(&l.label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}
