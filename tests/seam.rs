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
    assert_eq!(
        ev.exits("a").len(),
        1,
        "a ended by its own handler: {:?}",
        ev.lines()
    );
    // (Whether vigil saw two signals or one depends on the kernel coalescing them.)
    assert_eq!(code, 0, "{}", log(&d));
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

/// Pids of vigil's children whose command line is exactly `argv`.
fn children_running(vigil: i32, argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") || fields.get(1) != Some(&vigil.to_string().as_str()) {
            continue;
        }
        if std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .as_deref()
            == Some(&want[..])
        {
            out.push(pid);
        }
    }
    out
}

fn leftover_tree(keep: bool) -> String {
    let keep = if keep { "leftovers = \"keep\"\n" } else { "" };
    format!(
        "intensity = 100\nperiod = \"60s\"\nchildren = [\"app\"]\n\n[process.app]\n\
         command = [\"sh\", \"-c\", \"setsid sleep 1000 & sleep 0.3; exit 1\"]\n\
         backoff = \"none\"\nshutdown = \"2s\"\n{keep}"
    )
}

/// Defect 6: a helper that leaves the child's process group (`setsid`) is orphaned to
/// vigil when the child exits; it is stopped with the child's stop signal instead of
/// piling up over restarts (6 were left after 8 restarts before).
#[test]
fn leftovers_of_an_exit_are_stopped() {
    let dir = TestDir::new();
    let path = write_tree(&dir, &leftover_tree(false));
    let mut d = vigil_in(&dir).arg("run").arg(&path).spawn();
    let vigil = d.vigil_pid();
    d.wait_for("6 starts of app", TIMEOUT, || {
        (log(&d).matches("started child=app").count() >= 6).then_some(())
    });
    // At most the current incarnation's helper (and the one its exit is being stopped).
    let left = children_running(vigil, &["sleep", "1000"]);
    assert!(
        left.len() <= 2,
        "{} helpers left: {left:?}\n{}",
        left.len(),
        log(&d)
    );
    assert!(
        log(&d).contains("exit left processes behind"),
        "{}",
        log(&d)
    );
    d.signal_vigil(libc::SIGTERM);
    d.wait_exit(TIMEOUT);
}

/// `leftovers = "keep"`: they are left running (and listed as adopted orphans).
#[test]
fn leftovers_keep_leaves_them_running() {
    let dir = TestDir::new();
    let path = write_tree(&dir, &leftover_tree(true));
    let mut d = vigil_in(&dir).arg("run").arg(&path).spawn();
    let vigil = d.vigil_pid();
    d.wait_for("3 helpers kept", TIMEOUT, || {
        (children_running(vigil, &["sleep", "1000"]).len() >= 3).then_some(())
    });
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    // The final sweep still stops them when vigil exits.
}
