//! The commands around a run: shell completions, the man page, `healthcheck` and
//! `--version`.

use std::time::{Duration, Instant};

use crate::common::free_port;
use crate::common::{run, signal, spawn, wait_with_limit};

#[test]
fn completions_are_valid_shell_and_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for word in ["verify", "report", "devices", "report-file"] {
            assert!(text.contains(word), "{shell} completions lack {word}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("iotblast.bash");
            std::fs::write(&file, &text).unwrap();
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .unwrap();
            assert!(check.status.success(), "bash -n: {check:?}");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is bad input");
}

#[test]
fn the_man_page_is_roff_with_every_flag() {
    let out = run(&["man"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(".ie") || text.contains(".TH iotblast"),
        "{text}"
    );
    for flag in [
        "devices",
        "report\\-file",
        "instance\\-index",
        "metrics\\-address",
    ] {
        assert!(text.contains(flag), "man page lacks {flag}");
    }
}

#[test]
fn version_names_librdkafka() {
    let out = run(&["--version"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "iotblast {} (librdkafka 2.",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

#[test]
fn healthcheck_passes_while_a_run_serves_healthz_and_fails_after() {
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/healthz");
    let child = spawn(&[
        "--duration",
        "60s",
        "--rate",
        "1000",
        "--http-address",
        &addr,
        "-q",
    ]);
    let t = Instant::now();
    loop {
        let out = run(&["healthcheck", "--url", &url, "--timeout", "1s"]);
        if out.status.success() {
            break;
        }
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never healthy: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(child.id(), "KILL");
    let _ = wait_with_limit(child, Duration::from_secs(10));
    let t = Instant::now();
    let out = run(&["healthcheck", "--url", &url, "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unhealthy") && err.contains(&url), "{err}");
    // Bad input is named.
    for (args, says) in [
        (vec!["--timeout", "2h"], "--timeout"),
        (vec!["--url", "ftp://x"], "--url"),
    ] {
        let mut all = vec!["healthcheck"];
        all.extend(args);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
    }
}
