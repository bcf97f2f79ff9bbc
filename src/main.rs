//! The `iotblast` binary: parse the command line, run it with the library, and map the
//! outcome to an exit status (`Error::exit_code`; the README lists them).

use std::process::ExitCode;

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
    let invocation = iotblast::config::flags::parse();
    match iotblast::execute(invocation) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.needs_message() {
                iotblast::output::err(format_args!("iotblast: error: {}", e.chain()));
            }
            ExitCode::from(e.exit_code())
        }
    }
}
