//! Bad command-line input: bad flags and bad or busy listen addresses get a specific
//! error and a non-zero exit.

use std::time::{Duration, Instant};

use crate::common::run;

#[test]
fn bad_flags_get_a_specific_error_and_a_non_zero_exit() {
    // Flag errors exit 2 (clap's convention), and so does a property librdkafka rejects,
    // checked before anything starts and reported with librdkafka's own message.
    for (args, code, want) in [
        (
            &["--devices", "0"][..],
            2,
            "--devices: must be between 1 and 10000000, got 0",
        ),
        (
            &["--cores", "0"][..],
            2,
            "--cores: must be between 1 and 1024, got 0",
        ),
        (
            &["--duration", "-5s"][..],
            2,
            "--duration: must not be negative",
        ),
        (
            &["--no-such-flag"][..],
            2,
            "unexpected argument '--no-such-flag'",
        ),
        (
            &["-X", "no.such.property=1"][..],
            2,
            "No such configuration property: \"no.such.property\"",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[test]
fn a_bad_or_busy_listen_address_is_a_clear_error() {
    let bad = run(&[
        "--sink",
        "null",
        "--messages",
        "10",
        "--metrics-address",
        "localhost",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--metrics-address: must be IP:port"), "{err}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let t = Instant::now();
    let busy = run(&[
        "--sink",
        "null",
        "--duration",
        "30s",
        "--http-address",
        &addr,
    ]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        err.contains(&format!("http.address: cannot listen on {addr}")),
        "{err}"
    );
}
