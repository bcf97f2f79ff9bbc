//! The `iotblast` binary: parse flags, run, print the summary, map the outcome to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use iotblast::cli::Args;
use iotblast::{report, Error, SinkConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (index 15 in both mimalloc v2 and v3's `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // librdkafka allocates and frees every message (its malloc is mimalloc's, see
    // Cargo.toml). mimalloc's default returns freed pages to the OS after 10 ms, so
    // under a steady load the same pages are zeroed and faulted in again and again
    // (~5% of all CPU in perf). One second keeps them for reuse while still giving
    // memory back after a burst. A MIMALLOC_PURGE_DELAY in the environment wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide option before any thread is started.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|f, r| {
            writeln!(
                f,
                "iotblast: {}: {}",
                r.level().as_str().to_lowercase(),
                r.args()
            )
        })
        .init();
    let json = args.json;
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("iotblast: error: {e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = iotblast::Shutdown::new();
    if let Err(e) = shutdown.install_signal_handlers() {
        eprintln!("iotblast: error: {}", Error::Signals(e));
        return ExitCode::from(1);
    }
    let summary = match iotblast::run(&config, shutdown) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("iotblast: error: {e:#}");
            return ExitCode::from(match e {
                Error::Config(_) => 2,
                _ => 1,
            });
        }
    };
    eprintln!("{}", report::summary_line(&summary));
    for (reason, n) in &summary.errors {
        eprintln!("  {n} failed: {reason}");
    }
    if json {
        let line = serde_json::to_string(&summary).expect("summary serialises");
        if matches!(config.sink, SinkConfig::Stdout) {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if summary.messages_failed > 0 || !summary.is_balanced() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
