//! Logs go to stderr as `iotblast: <level>: <message>`. RUST_LOG, when set, decides the
//! filter; otherwise `log.level` does, through `log`'s global maximum, which a reload
//! can change.

use std::io::Write;

use crate::config::settings::log_level;

/// Installs the logger with `level` (unless RUST_LOG is set).
pub fn init(level: log::LevelFilter) {
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

/// Applies a new `log.level` (a reload), or says why it cannot.
pub fn set_level(level: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        log::warn!("log.level {level} not applied: RUST_LOG is set and takes precedence");
        return Ok(());
    }
    let filter = log_level(level).ok_or_else(|| format!("unknown level '{level}'"))?;
    log::set_max_level(filter);
    Ok(())
}
