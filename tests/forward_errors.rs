//! Startup errors are one clear sentence on stderr and a non-zero exit, never a panic.

mod support;

use std::time::Duration;
use support::*;

fn assert_clean_failure(done: &Finished, must_mention: &[&str]) {
    assert!(
        !done.status.success(),
        "expected failure:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    assert!(
        !done.stderr.contains("panicked"),
        "panic instead of an error:\n{}",
        done.stderr
    );
    let last = done.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("rampart: error: "),
        "last stderr line: {last:?}\n{}",
        done.stderr
    );
    for m in must_mention {
        assert!(last.contains(m), "{last:?} does not mention {m:?}");
    }
}

#[test]
fn unknown_vdev_is_reported_with_its_name() {
    let t = tag("eu");
    let mut args: Vec<String> = [
        "--inside",
        "net_doesnotexist0",
        "--outside",
        "net_null1",
        "--",
    ]
    .map(String::from)
    .to_vec();
    args.extend(eal_args(&t));
    let done = Appliance::spawn(&args).wait_exit(Duration::from_secs(60));
    assert_clean_failure(&done, &["net_doesnotexist0"]);
}

#[test]
fn bad_config_value_names_the_field() {
    let t = tag("ec");
    let dir = TempDir::new(&t);
    let cfg = dir.path("bad.toml");
    std::fs::write(
        &cfg,
        "[[pairs]]\ninside = \"net_null0\"\noutside = \"net_null1\"\n[queues]\nrx_desc = 1000\n",
    )
    .unwrap();
    let args = vec!["--config".to_string(), cfg.display().to_string()];
    let done = Appliance::spawn(&args).wait_exit(Duration::from_secs(30));
    assert_clean_failure(&done, &["queues.rx_desc", "1000"]);

    std::fs::write(
        &cfg,
        "[[pairs]]\ninside = \"net_null0\"\noutside = \"net_null1\"\nworkerz = 3\n",
    )
    .unwrap();
    let done = Appliance::spawn(&args).wait_exit(Duration::from_secs(30));
    assert_clean_failure(&done, &["workerz", "bad.toml"]);
}

#[test]
fn too_many_workers_for_the_lcores() {
    let t = tag("ew");
    let mut args: Vec<String> = [
        "--inside",
        "net_null0",
        "--outside",
        "net_null1",
        "--workers",
        "4",
        "--",
    ]
    .map(String::from)
    .to_vec();
    args.extend(eal_args(&t));
    let done = Appliance::spawn(&args).wait_exit(Duration::from_secs(60));
    assert_clean_failure(&done, &["workers.count is 4"]);
}

#[test]
fn check_validates_and_prints_the_config() {
    let args: Vec<String> = [
        "--inside",
        "net_null0",
        "--outside",
        "net_null1",
        "--workers",
        "2",
        "--check",
    ]
    .map(String::from)
    .to_vec();
    let done = Appliance::spawn(&args).wait_exit(Duration::from_secs(30));
    assert!(done.status.success(), "{}", done.stderr);
    assert!(
        done.stdout.contains("configuration is valid") && done.stdout.contains("count = 2"),
        "{}",
        done.stdout
    );
}
