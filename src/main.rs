//! The `iotblast` binary: parse the command line, run it with the library, and map the
//! outcome to an exit status (`Error::exit_code`; the README lists them).

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (index 15 in both mimalloc v2 and v3's `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// `mi_option_arena_eager_commit` (index 4 in mimalloc v2's `mi_option_e`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs from `.init_array`, before Rust's runtime or anything else in the process
/// allocates, because mimalloc reserves its arena at the first allocation and reads
/// this option then.
///
/// Why: an eagerly committed arena is purged by resetting pages (MADV_FREE) rather than
/// decommitting them, and Linux counts such pages as resident until memory runs short.
/// At 10k devices on the embedded mock, peak RSS was 220-230 MB with eager commit and
/// 147-162 MB without, at the same throughput (perf/RESULTS.md, issue #14). A
/// MIMALLOC_ARENA_EAGER_COMMIT in the environment wins.
extern "C" fn lazy_arena_commit() {
    // No std::env here: it may allocate. mimalloc reads its own environment variable
    // when the option is first used, unless it was set before.
    // SAFETY: getenv with a NUL-terminated name, before any thread exists.
    let set = unsafe { !libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() };
    if !set {
        // SAFETY: sets a process-wide option before any thread is started.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
}

#[used]
#[link_section = ".init_array"]
static LAZY_ARENA_COMMIT: extern "C" fn() = lazy_arena_commit;

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
