//! Guards the progress display: a bounded run on a terminal shows a live bar on stderr
//! (percent, rate, ETA); anywhere else progress stays in plain lines.

use std::process::Command;

use crate::common::run;

#[test]
fn a_bounded_run_on_a_terminal_shows_a_bar_and_plain_output_shows_none() {
    // `script` (util-linux) runs the command on a pseudo-terminal and records it.
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("typescript");
    let cmd = format!(
        "'{}' --sink null --messages 500000 --report-interval 500ms",
        env!("CARGO_BIN_EXE_iotblast")
    );
    let status = Command::new("script")
        .args(["-qec", &cmd])
        .arg(&record)
        .status()
        .expect("script (util-linux) runs the command on a terminal");
    assert!(status.success());
    let screen = String::from_utf8_lossy(&std::fs::read(&record).unwrap()).into_owned();
    assert!(screen.contains("% ["), "no bar drawn:\n{screen}");
    assert!(screen.contains("/500,000 readings"), "{screen}");
    assert!(screen.contains("/s, ETA "), "{screen}");
    assert!(!screen.contains("panicked"), "{screen}");

    let plain = run(&[
        "--sink",
        "null",
        "--messages",
        "200000",
        "--report-interval",
        "100ms",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(!text.contains("ETA"), "a bar without a terminal:\n{text}");
    assert!(text.contains("records sent"), "{text}");
}
