//! One shared stop signal: set by SIGINT/SIGTERM, by `--duration`, or by a sink that can
//! no longer write. Checked once per batch and while a worker sleeps, never per message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Why a run stopped: a fixed vocabulary, the summary's `stop_reason` (README lists it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StopReason {
    /// Every device sent its share of `run.messages`.
    #[serde(rename = "messages")]
    Messages,
    /// `run.duration` passed.
    #[serde(rename = "duration")]
    Duration,
    /// SIGINT or SIGTERM.
    #[serde(rename = "signal")]
    Signal,
    /// The reader of `--sink stdout` went away.
    #[serde(rename = "stdout closed")]
    StdoutClosed,
    /// The run could not go on (an endpoint or a thread failed).
    #[serde(rename = "error")]
    Error,
    /// `run.find_max_rate`'s search finished.
    #[serde(rename = "search done")]
    SearchDone,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Messages => "messages",
            StopReason::Duration => "duration",
            StopReason::Signal => "signal",
            StopReason::StdoutClosed => "stdout closed",
            StopReason::Error => "error",
            StopReason::SearchDone => "search done",
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Says what a run abandoned, for a second signal that ends it at once.
pub type AbortReport = Box<dyn Fn() -> String + Send>;

#[derive(Default)]
pub struct Shutdown {
    requested: AtomicBool,
    /// Set from the signal handler (which may only store to an atomic).
    signalled: Arc<AtomicBool>,
    /// True until the run is producing: a signal before then exits at once with 130,
    /// since there is nothing to flush (waiting up to --connect-timeout for brokers
    /// would ignore the user).
    starting: Arc<AtomicBool>,
    at: Mutex<Option<(Instant, StopReason)>>,
    abort_report: Mutex<Option<AbortReport>>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("requested", &self.requested)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl Shutdown {
    pub fn new() -> Arc<Self> {
        let s = Self::default();
        s.starting.store(true, Ordering::Relaxed);
        Arc::new(s)
    }

    /// The run is producing: from now on a first signal stops it cleanly.
    pub fn started(&self) {
        self.starting.store(false, Ordering::Relaxed);
    }

    /// Routes SIGINT and SIGTERM here. During start-up a signal exits at once with
    /// status 130; once running, the first one stops the run cleanly, and a second one
    /// while the first is being handled exits at once with 130, for a user who does not
    /// want to wait for the flush, after printing what it abandons (`on_abort`).
    pub fn install_signal_handlers(self: &Arc<Self>) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        for sig in [SIGINT, SIGTERM] {
            flag::register_conditional_shutdown(sig, 130, Arc::clone(&self.starting))?;
            flag::register(sig, Arc::clone(&self.signalled))?;
        }
        // The second signal is handled on a thread, not in the handler, because the
        // report it prints needs locks and allocation.
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("iotblast-signals".into())
            .spawn(move || {
                for (n, _) in signals.forever().enumerate() {
                    if n >= 1 {
                        me.abort();
                    }
                }
            })?;
        Ok(())
    }

    /// What to print if a second signal ends the run at once.
    pub fn on_abort(&self, report: AbortReport) {
        *self.abort_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    /// Prints the abort report and exits with 130 without running destructors, which
    /// would wait for the flush the user declined.
    fn abort(&self) -> ! {
        if let Some(report) = self
            .abort_report
            .try_lock()
            .ok()
            .and_then(|r| r.as_ref().map(|f| f()))
        {
            crate::output::err(format_args!(
                "iotblast: second signal, exiting now: {report}"
            ));
        }
        // SAFETY: _exit ends the process at once; nothing here relies on what it skips.
        unsafe { libc::_exit(130) }
    }

    /// Asks every thread to stop; the first reason wins.
    pub fn request(&self, reason: StopReason) {
        let mut at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        if at.is_none() {
            *at = Some((Instant::now(), reason));
        }
        self.requested.store(true, Ordering::Release);
    }

    /// True once a stop was requested or a signal arrived.
    #[inline]
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire) || self.signalled.load(Ordering::Relaxed)
    }

    /// Turns a pending signal into a recorded request; the main loop calls this.
    pub fn take_signal(&self) -> bool {
        if self.signalled.load(Ordering::Relaxed) && !self.requested.load(Ordering::Acquire) {
            self.request(StopReason::Signal);
            return true;
        }
        false
    }

    /// Why the run stopped, if it was asked to.
    pub fn reason(&self) -> Option<StopReason> {
        let at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        at.as_ref().map(|(_, r)| *r)
    }

    /// What is left of `grace` after a stop request: all of it if none was made. The
    /// flush at the end gets this, so a stopped run ends within one flush timeout.
    pub fn grace_left(&self, grace: Duration) -> Duration {
        let at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        at.as_ref()
            .map_or(grace, |(t, _)| grace.saturating_sub(t.elapsed()))
    }

    /// True when a stop was requested more than `grace` ago: time to stop waiting
    /// on a full producer queue and count the rest as failed.
    pub fn past_grace(&self, grace: Duration) -> bool {
        let at = self.at.lock().unwrap_or_else(|p| p.into_inner());
        at.as_ref().is_some_and(|(t, _)| t.elapsed() > grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_wins_and_grace_runs_from_it() {
        let s = Shutdown::new();
        assert!(!s.is_requested() && !s.past_grace(Duration::ZERO));
        s.request(StopReason::Duration);
        s.request(StopReason::Signal);
        assert!(s.is_requested());
        assert_eq!(s.reason(), Some(StopReason::Duration));
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.past_grace(Duration::from_millis(1)));
        assert!(!s.past_grace(Duration::from_secs(60)));
    }
}
