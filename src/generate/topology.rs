//! Splits the fleet across worker threads and assigns cores.
//!
//! Each worker owns one contiguous range of device indices; remainders go to the first
//! workers, so ranges differ by at most one device. With `--messages N` across `D`
//! devices, device `i` emits `N / D` readings, plus one if `i < N % D`: the set of
//! readings is then the same whatever the number of workers.

use std::ops::Range;

use crate::config::Run;

/// One worker's share of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    pub index: usize,
    pub devices: Range<u64>,
    /// The core to pin to; `None` runs unpinned.
    pub core: Option<usize>,
}

/// The plan for a whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub workers: Vec<WorkerPlan>,
    /// Things the user should know (more workers than cores, more workers than devices).
    pub warnings: Vec<String>,
}

/// Splits the device range `devices` across `cores` workers, pinning worker `i` to
/// `core_ids[i]` while there are cores left.
pub fn plan(devices: Range<u64>, cores: usize, core_ids: &[usize]) -> Plan {
    let mut warnings = Vec::new();
    let first = devices.start;
    let devices = devices.end - devices.start;
    let mut n = cores.max(1);
    if n as u64 > devices {
        warnings.push(format!(
            "--cores {n} exceeds --devices {devices}; running {devices} workers"
        ));
        n = devices as usize;
    }
    if n > core_ids.len() {
        warnings.push(format!(
            "--cores {n} exceeds the {} available cores; workers {}..{} run unpinned",
            core_ids.len(),
            core_ids.len(),
            n - 1
        ));
    }
    let workers = split(devices, n)
        .into_iter()
        .enumerate()
        .map(|(index, r)| WorkerPlan {
            index,
            devices: r.start + first..r.end + first,
            core: core_ids.get(index).copied(),
        })
        .collect();
    Plan { workers, warnings }
}

/// The devices this process simulates: its instance's slice of the fleet.
pub fn instance_devices(run: &Run) -> Range<u64> {
    let r = &run.settings.run;
    split(run.devices(), r.instance_count as usize)[r.instance_index as usize].clone()
}

/// This instance's share of the fleet, and so of the fleet's rate: its devices over all.
pub fn instance_share(run: &Run) -> f64 {
    let mine = instance_devices(run);
    (mine.end - mine.start) as f64 / run.devices().max(1) as f64
}

/// `0..total` in `parts` contiguous ranges whose lengths differ by at most one.
pub fn split(total: u64, parts: usize) -> Vec<Range<u64>> {
    let parts = parts.max(1) as u64;
    let (base, rem) = (total / parts, total % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + u64::from(i < rem);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// How many readings each device emits when the run is capped at `messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Readings every device emits.
    pub per_device: u64,
    /// Devices `0..extra` emit one more.
    pub extra: u64,
}

impl Quota {
    pub fn new(messages: u64, devices: u64) -> Self {
        Self {
            per_device: messages / devices,
            extra: messages % devices,
        }
    }

    /// Readings device `i` emits.
    pub fn of(&self, device: u64) -> u64 {
        self.per_device + u64::from(device < self.extra)
    }

    /// The devices of `range` that emit a reading with sequence number `seq`.
    pub fn active(&self, range: &Range<u64>, seq: u64) -> Range<u64> {
        if seq < self.per_device {
            range.clone()
        } else if seq == self.per_device {
            range.start..range.end.min(self.extra).max(range.start)
        } else {
            range.start..range.start
        }
    }

    /// Total readings for the devices in `range`.
    pub fn total(&self, range: &Range<u64>) -> u64 {
        let extra = range.end.min(self.extra).saturating_sub(range.start);
        self.per_device * (range.end - range.start) + extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_contiguous_and_balanced() {
        for (total, parts) in [(10, 3), (100, 7), (5, 5), (1_000_000, 6), (7, 1)] {
            let rs = split(total, parts);
            assert_eq!(rs.len(), parts);
            assert_eq!(rs[0].start, 0);
            assert_eq!(rs.last().unwrap().end, total);
            assert!(rs.windows(2).all(|w| w[0].end == w[1].start));
            let lens: Vec<u64> = rs.iter().map(|r| r.end - r.start).collect();
            assert!(
                lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1,
                "{lens:?}"
            );
            assert!(
                lens.windows(2).all(|w| w[0] >= w[1]),
                "remainder goes first"
            );
        }
    }

    #[test]
    fn more_workers_than_cores_or_devices_warns() {
        let p = plan(0..10, 4, &[0, 1]);
        assert_eq!(p.workers.len(), 4);
        assert_eq!(p.workers[1].core, Some(1));
        assert_eq!(p.workers[2].core, None);
        assert!(p.warnings[0].contains("exceeds the 2 available cores"));
        let p = plan(0..3, 8, &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(p.workers.len(), 3);
        assert!(p.warnings[0].contains("exceeds --devices 3"));
        // An instance's slice keeps global device indices.
        let p = plan(100..200, 3, &[0, 1, 2]);
        let ranges: Vec<_> = p.workers.iter().map(|w| w.devices.clone()).collect();
        assert_eq!(ranges, vec![100..134, 134..167, 167..200]);
    }

    #[test]
    fn quota_spreads_messages_like_the_spec() {
        let q = Quota::new(20_003, 1000);
        assert_eq!((q.of(0), q.of(2), q.of(3), q.of(999)), (21, 21, 20, 20));
        let total: u64 = (0..1000).map(|d| q.of(d)).sum();
        assert_eq!(total, 20_003);
        // The per-range totals and the per-seq active sets agree with `of`, for any split.
        for parts in [1, 2, 3, 7] {
            let mut sum = 0;
            for r in split(1000, parts) {
                assert_eq!(q.total(&r), r.clone().map(|d| q.of(d)).sum::<u64>());
                let mut by_seq = 0;
                for seq in 0..=q.per_device + 1 {
                    by_seq += q.active(&r, seq).count() as u64;
                }
                assert_eq!(by_seq, q.total(&r));
                sum += by_seq;
            }
            assert_eq!(sum, 20_003);
        }
    }
}
