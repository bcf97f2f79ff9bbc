//! Determinism: the same seed gives the same readings whatever the cores, the split
//! into instances or the pacing.

use crate::common::{digest, run, seqs_per_device, stdout_readings, without_timestamps};

#[test]
fn the_same_seed_gives_the_same_readings_whatever_the_cores() {
    let args = [
        "--sink",
        "stdout",
        "--devices",
        "500",
        "--messages",
        "50000",
        "--seed",
        "3",
    ];
    let one = run(&[&args[..], &["--cores", "1"]].concat());
    let two = run(&[&args[..], &["--cores", "2", "--batch-size", "77"]].concat());
    assert!(one.status.success() && two.status.success());
    let (a, b) = (
        without_timestamps(stdout_readings(&one)),
        without_timestamps(stdout_readings(&two)),
    );
    assert_eq!(a.len(), 50_000);
    assert_eq!(
        digest(&a),
        digest(&b),
        "readings differ between --cores 1 and --cores 2"
    );
    assert!(a == b);
    let other_seed = run(&[
        "--sink",
        "stdout",
        "--devices",
        "500",
        "--messages",
        "50000",
        "--seed",
        "4",
    ]);
    assert!(without_timestamps(stdout_readings(&other_seed)) != a);
}

#[test]
fn instances_split_the_fleet_into_disjoint_slices_that_add_up_to_one_process() {
    let args = [
        "--sink",
        "stdout",
        "--devices",
        "500",
        "--messages",
        "50000",
        "--seed",
        "3",
    ];
    let whole = without_timestamps(stdout_readings(&run(&args)));
    let mut union = Vec::new();
    let mut ranges = Vec::new();
    for i in ["0", "1", "2"] {
        let out = run(&[&args[..], &["--instance-index", i, "--instance-count", "3"]].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let readings = stdout_readings(&out);
        let devices: Vec<u64> = seqs_per_device(&readings)
            .keys()
            .map(|id| id["device_".len()..].parse().unwrap())
            .collect();
        let (lo, hi) = (devices[0], *devices.last().unwrap());
        assert_eq!(
            devices.len() as u64,
            hi - lo + 1,
            "instance {i}: contiguous devices"
        );
        ranges.push((lo, hi));
        union.extend(without_timestamps(readings));
    }
    assert_eq!(ranges, vec![(0, 166), (167, 333), (334, 499)]);
    union.sort_unstable();
    assert_eq!(digest(&union), digest(&whole));
    assert!(union == whole, "three instances differ from one process");
    let bad = run(&[
        "--sink",
        "stdout",
        "--instance-index",
        "3",
        "--instance-count",
        "3",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--instance-index"));
}

#[test]
fn pacing_does_not_change_the_readings() {
    let args = [
        "--sink",
        "stdout",
        "--devices",
        "100",
        "--messages",
        "3000",
        "--seed",
        "9",
    ];
    let fast = without_timestamps(stdout_readings(&run(&args)));
    let paced = without_timestamps(stdout_readings(&run(
        &[&args[..], &["--rate", "6000"]].concat()
    )));
    assert_eq!(fast.len(), 3000);
    assert!(fast == paced, "--rate changed the readings");
}
