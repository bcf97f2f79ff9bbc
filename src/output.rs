//! Writing to stdout and stderr without panicking. `print!` panics when stdout is closed
//! or full, and std's `Stdout` quietly treats a closed file descriptor as a sink, which
//! would count readings as delivered that went nowhere. Everything iotblast writes
//! itself goes through here instead.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use crate::error::Error;

/// File descriptor 1 as a file that reports every error (closed, broken pipe, full).
/// It never closes the descriptor.
pub struct RawStdout(ManuallyDrop<File>);

impl RawStdout {
    pub fn new() -> Self {
        // SAFETY: fd 1 is this process's stdout; ManuallyDrop keeps it open, and every
        // operation on a closed descriptor returns an error rather than misbehaving.
        Self(ManuallyDrop::new(unsafe { File::from_raw_fd(1) }))
    }
}

impl Default for RawStdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for RawStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether the process was started with stdout closed. Rust's runtime puts /dev/null,
/// opened read-write, on a closed standard descriptor before `main`, so that nothing
/// else can take it; a shell's `> /dev/null` opens it write-only. So read-write
/// /dev/null on descriptor 1 means it was closed.
pub fn stdout_closed() -> bool {
    if !is_open(1) {
        return true;
    }
    // SAFETY: fstat and fcntl(F_GETFL) only read the descriptor's state into `st`.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        let flags = libc::fcntl(1, libc::F_GETFL);
        libc::fstat(1, &mut st) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && libc::major(st.st_rdev) == 1
            && libc::minor(st.st_rdev) == 3
            && flags != -1
            && (flags & libc::O_ACCMODE) == libc::O_RDWR
    }
}

/// Whether file descriptor `fd` is open.
pub fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Writes `text` and a newline to stdout; a closed or full stdout is an error.
pub fn out(text: impl Display) -> Result<(), Error> {
    out_raw(&format!("{text}\n"))
}

/// Writes `text` to stdout as it is (no newline added).
pub fn out_raw(text: &str) -> Result<(), Error> {
    if stdout_closed() {
        return Err(Error::StdoutClosed);
    }
    RawStdout::new()
        .write_all(text.as_bytes())
        .map_err(Error::Output)
}

/// Writes a progress or summary line where `kafka-producer-perf-test` writes them:
/// stdout, or stderr when stdout carries the readings (`stdout_carries_readings`).
/// Errors are ignored, as for stderr: the final JSON summary is what reports them.
pub fn report(stdout_carries_readings: bool, text: impl Display) {
    if stdout_carries_readings {
        err(text);
    } else {
        let _ = out(text);
    }
}

/// Writes `text` and a newline to stderr. Errors are ignored: stderr is where they
/// would be reported, and the exit status still tells the outcome.
pub fn err(text: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}
