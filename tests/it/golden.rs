//! Guards the readings themselves: a fixed run must give byte-identical readings
//! (timestamps aside) across refactors, so a change to the model or the encoder that
//! alters output cannot slip through unnoticed.
//!
//! The hash is reproducible from a shell:
//! `iotblast --sink stdout --devices 500 --messages 50000 --seed 3 | sed -E 's/"timestamp":[0-9]+,//' | LC_ALL=C sort | sha256sum`
//! A deliberate change to the readings updates `GOLDEN` in the same commit, with
//! the reason in its message.

use std::process::Command;

use sha2::{Digest, Sha256};

/// SHA-256 of the run's readings without timestamps, sorted bytewise, one per line.
const GOLDEN: &str = "be8376ea0b59e32b3b729f3b58e62cf89918139d42f4c6f01e2108942946ae97";

/// Removes `"timestamp":<digits>,` (the only wall-clock field) from one reading.
fn without_timestamp(line: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"\"timestamp\":";
    let Some(at) = line.windows(FIELD.len()).position(|w| w == FIELD) else {
        return line.to_vec();
    };
    let digits = line[at + FIELD.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = at + FIELD.len() + digits + 1; // and the comma after it
    [&line[..at], &line[end..]].concat()
}

#[test]
fn a_fixed_seed_gives_byte_identical_readings() {
    let out = Command::new(env!("CARGO_BIN_EXE_iotblast"))
        .args([
            "--sink",
            "stdout",
            "--devices",
            "500",
            "--messages",
            "50000",
            "--seed",
            "3",
        ])
        .output()
        .expect("spawn iotblast");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<Vec<u8>> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(without_timestamp)
        .collect();
    assert_eq!(lines.len(), 50_000);
    lines.sort_unstable();
    let mut h = Sha256::new();
    for l in &lines {
        h.update(l);
        h.update(b"\n");
    }
    let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(got, GOLDEN, "the readings of a fixed run changed");
}
