//! The `iotblast` binary: parse flags, run (or a `config` subcommand), print the summary,
//! map the outcome to an exit code.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use iotblast::cli::{Cli, Command, ConfigCommand};
use iotblast::live::Live;
use iotblast::settings::{self, Settings};
use iotblast::sink::kafka;
use iotblast::{engine, reload, report, Error, SinkConfig};

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
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Config(c)) => config_command(c),
        None => run(cli.run),
    }
}

/// Logs go to stderr. RUST_LOG, when set, decides the filter; otherwise `log.level`
/// does, through `log`'s global maximum, which a reload can change.
fn init_logging(level: log::LevelFilter) {
    let rust_log = std::env::var_os("RUST_LOG").is_some();
    let mut b = if rust_log {
        env_logger::Builder::from_env(env_logger::Env::default())
    } else {
        let mut b = env_logger::Builder::new();
        b.filter_level(log::LevelFilter::Trace);
        b
    };
    b.format(|f, r| {
        writeln!(
            f,
            "iotblast: {}: {}",
            r.level().as_str().to_lowercase(),
            r.args()
        )
    })
    .init();
    if !rust_log {
        log::set_max_level(level);
    }
}

fn set_log_level(level: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        log::warn!("log.level {level} not applied: RUST_LOG is set and takes precedence");
        return Ok(());
    }
    let filter = settings::log_level(level).ok_or_else(|| format!("unknown level '{level}'"))?;
    log::set_max_level(filter);
    Ok(())
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("iotblast: error: {e}");
    ExitCode::from(2)
}

fn config_command(c: ConfigCommand) -> ExitCode {
    match c {
        ConfigCommand::Check { file } => {
            let checked = Settings::from_file(&file)
                .and_then(|s| s.to_config())
                .map_err(Error::from)
                .and_then(|c| match &c.sink {
                    SinkConfig::Kafka(k) => kafka::check_properties(k),
                    _ => Ok(()),
                });
            match checked {
                Ok(()) => {
                    eprintln!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                // Errors about the file itself already name it.
                Err(Error::Config(e)) if e.key == file.display().to_string() => config_error(e),
                Err(e) => config_error(format_args!("{}: {e}", file.display())),
            }
        }
        ConfigCommand::Print { config } => {
            match Settings::load(config.as_deref(), std::env::vars()) {
                Ok((s, warnings)) => {
                    for w in warnings {
                        eprintln!("iotblast: warn: {w}");
                    }
                    print!("{}", s.to_yaml());
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        ConfigCommand::Default => {
            print!("{}", settings::default_yaml_commented());
            ExitCode::SUCCESS
        }
    }
}

fn run(args: iotblast::cli::Args) -> ExitCode {
    let json = args.json;
    // The environment is read once: a reload re-applies this snapshot, so only the file
    // can change a running configuration.
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (config, settings, warnings) = match args.clone().into_config(env.clone()) {
        Ok(built) => built,
        Err(e) => return config_error(e),
    };
    init_logging(settings::log_level(&settings.log.level).unwrap_or(log::LevelFilter::Info));
    for w in warnings {
        log::warn!("{w}");
    }
    let shutdown = iotblast::Shutdown::new();
    if let Err(e) = shutdown.install_signal_handlers() {
        eprintln!("iotblast: error: {}", Error::Signals(e));
        return ExitCode::from(1);
    }
    let live = Arc::new(Live::new(engine::live_settings(&config)));
    let file = args.config.clone();
    let rebuild: reload::Rebuild = Box::new(move || args.settings(env.clone()).map(|(s, _, _)| s));
    let reloader = match reload::spawn(
        file,
        rebuild,
        settings,
        Arc::clone(&live),
        Arc::clone(&shutdown),
        Box::new(set_log_level),
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iotblast: error: {e}");
            return ExitCode::from(1);
        }
    };
    let result = engine::run_live(&config, Arc::clone(&shutdown), live);
    shutdown.request("run finished");
    reloader.join();
    let summary = match result {
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
