//! Paces a worker to its share of `--rate` against an absolute schedule.
//!
//! Message `n` is due at `t0 + n / rate`. A worker that falls behind (a slow batch, a
//! late wake-up) catches up by sending without sleeping, so the long-run rate is exact
//! and short stalls do not lower it (the wrk2 model).

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    interval_ns: f64,
    sent: u64,
}

impl Pacer {
    /// A pacer for `rate` messages per second, starting now.
    pub fn new(rate: f64) -> Self {
        Self {
            start: Instant::now(),
            interval_ns: 1e9 / rate,
            sent: 0,
        }
    }

    /// Messages per second.
    pub fn rate(&self) -> f64 {
        1e9 / self.interval_ns
    }

    /// When the next message is due.
    #[inline]
    pub fn due(&self) -> Instant {
        self.start + Duration::from_nanos((self.sent as f64 * self.interval_ns) as u64)
    }

    /// Marks the next message as sent.
    #[inline]
    pub fn advance(&mut self) {
        self.sent += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_absolute() {
        let mut p = Pacer::new(1000.0);
        let t0 = p.due();
        for _ in 0..500 {
            p.advance();
        }
        assert_eq!(p.due() - t0, Duration::from_millis(500));
    }
}
