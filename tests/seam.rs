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

/// Pids of vigil's live (not zombie) children whose command line (NUL-separated) `keep`s.
fn vigil_children_where(vigil: i32, keep: impl Fn(&[u8]) -> bool) -> Vec<i32> {
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
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| keep(&c)) {
            out.push(pid);
        }
    }
    out
}

/// Pids of vigil's children whose command line is exactly `argv`.
fn children_running(vigil: i32, argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    vigil_children_where(vigil, |cmdline| cmdline == &want[..])
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

/// Pids of vigil's live children running the test child named `name`.
fn live_named(vigil: i32, name: &str) -> Vec<i32> {
    vigil_children_where(vigil, |cmdline| {
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.windows(2)
            .any(|w| w[0] == b"--name" && w[1] == name.as_bytes())
    })
}

/// Defect 1, with real processes: `a` and `c` SIGKILLed together (one SIGCHLD for both),
/// 30 times. Before spawns carried tokens, `a` had two live processes within 60 rounds.
#[test]
fn two_exits_in_one_drain_never_run_two_processes_for_one_child() {
    let dir = TestDir::new();
    let mut toml = String::from(
        "strategy = \"one_for_all\"\nintensity = 1000\nperiod = \"60s\"\nchildren = [\"s1\", \"c\"]\n\
         [supervisor.s1]\nintensity = 1000\nperiod = \"60s\"\nchildren = [\"b\", \"a\"]\n",
    );
    for name in ["a", "b", "c"] {
        toml += &process(&dir, name, &[], "backoff = \"none\"\nshutdown = \"1s\"");
    }
    let path = write_tree(&dir, &toml);
    let mut d = vigil_in(&dir).arg("run").arg(&path).spawn();
    let vigil = d.vigil_pid();
    let one_each = |d: &Daemon| {
        d.wait_for("one live process for each of a, b, c", TIMEOUT, || {
            let pids: Vec<Vec<i32>> = ["a", "b", "c"]
                .iter()
                .map(|n| live_named(vigil, n))
                .collect();
            pids.iter()
                .all(|p| p.len() == 1)
                .then(|| (pids[0][0], pids[2][0]))
        })
    };
    let mut seen_two = 0;
    for _ in 0..30 {
        let (a, c) = one_each(&d);
        kill(a, libc::SIGKILL);
        kill(c, libc::SIGKILL);
        // While the tree restarts, never two of `a` at once.
        for _ in 0..50 {
            if live_named(vigil, "a").len() > 1 {
                seen_two += 1;
            }
        }
        one_each(&d);
    }
    assert_eq!(seen_two, 0, "two live processes for a\n{}", log(&d));
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

/// Defect 2: the longest grace the config accepts (365 days) runs and stops without a
/// panic (it panicked with "overflow when adding duration to instant" before durations
/// were capped and the engine's clock saturated).
#[test]
fn the_longest_accepted_grace_stops_without_a_panic() {
    let dir = TestDir::new();
    let toml = format!(
        "shutdown_timeout = \"365d\"\nchildren = [\"a\"]\n{}",
        process(&dir, "a", &["--on-term", "exit:0"], "shutdown = \"365d\"")
    );
    let path = write_tree(&dir, &toml);
    let mut d = vigil_in(&dir).arg("run").arg(&path).spawn();
    wait_started(&dir, &["a"]);
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", log(&d));
    assert!(!log(&d).contains("panicked"), "{}", log(&d));
}
