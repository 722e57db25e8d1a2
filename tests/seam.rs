//! The seam issue's defects, each with real processes: what `tests/loop_seam.rs` and the
//! engine's simulated-time tests show in microseconds, shown here on the release path.

mod common;

use common::*;

fn write_tree(dir: &TestDir, toml: &str) -> std::path::PathBuf {
    dir.write("vigil.toml", toml)
}

/// Defect 4: coreutils `timeout` delivers its signal to vigil twice within microseconds
/// (to the child, then to its own process group). The duplicate must not cut the children's
/// grace short: `a` handles SIGTERM in 500 ms within a 5 s grace, and is not SIGKILLed.
#[test]
fn coreutils_timeout_does_not_defeat_the_grace() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(&dir, "a", &["--on-term", "delay:500"], "shutdown = \"5s\"")
    );
    let path = write_tree(&dir, &toml);
    let mut d = vigil_in(&dir)
        .program("timeout")
        .args(["--preserve-status", "-s", "TERM", "1"])
        .arg(vigil_bin())
        .arg("run")
        .arg(&path)
        .spawn();
    let code = d.wait_exit(TIMEOUT);
    let ev = dir.read_events();
    assert_eq!(ev.signals("a"), vec!["SIGTERM"], "{:?}", ev.lines());
    assert_eq!(ev.exits("a").len(), 1, "a ended by its own handler: {:?}", ev.lines());
    assert_eq!(code, 0, "{}", log(&d));
    assert!(log(&d).contains("repeated"), "{}", log(&d));
}

/// Defect 5: a `--exit-with` run stopped by a signal before its process ended is not a
/// pass: it exits 128 + the signal, as a shell does.
#[test]
fn an_interrupted_exit_with_run_exits_128_plus_the_signal() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = TestDir::new();
        let toml = format!(
            "children = [\"svc\", \"tests\"]\n{}{}",
            process(&dir, "svc", &[], ""),
            process(&dir, "tests", &[], ""),
        );
        let path = write_tree(&dir, &toml);
        let mut d = vigil_in(&dir)
            .args(["run", "--exit-with", "tests"])
            .arg(&path)
            .spawn();
        wait_started(&dir, &["svc", "tests"]);
        d.signal_vigil(sig);
        assert_eq!(d.wait_exit(TIMEOUT), code, "{}", log(&d));
    }
}

/// The same run, once its process has ended by itself, exits with that process's status.
#[test]
fn a_finished_exit_with_run_exits_with_its_status() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"svc\", \"tests\"]\n{}{}",
        process(&dir, "svc", &[], ""),
        process(&dir, "tests", &["--exit-after", "100", "--code", "3"], ""),
    );
    let path = write_tree(&dir, &toml);
    let mut d = vigil_in(&dir)
        .args(["run", "--exit-with", "tests"])
        .arg(&path)
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 3, "{}", log(&d));
}
