//! `vigil run` as PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`):
//! orphans reaped with none left a zombie, SIGCHLD coalescing under orphan storms (one
//! child storming in a restart loop, and many short trees), SIGTERM to PID 1 stopping a
//! nested tree in order, intensity exceeded (75), boot failure (69), a second SIGTERM
//! during a slow stop, SIGQUIT, and the sweep of a grandchild holding stdout.
//!
//! Skipped, with a notice, where `unshare` is not permitted. Pids in the events file and
//! in vigil's log are the namespace's (vigil is 1); the harness' `/proc` helpers take host
//! pids, so they are only used with [`Daemon::vigil_pid`]. Real processes, no fixed
//! sleeps: every wait is a predicate with a deadline.

#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------------------
// Helpers (the same tree-building helpers as tests/run.rs)
/// `vigil run vigil.toml` as PID 1 of a new PID namespace, started in `dir`.
fn pid1_tree(dir: &TestDir, toml: &str) -> Daemon {
    let path = dir.write("vigil.toml", toml);
    Daemon::builder()
        .in_pid_namespace(true)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("VIGIL_TEST_EVENTS")
        .env_remove("VIGIL_CONFIG")
        .arg("run")
        .arg(path)
        .spawn()
}

// ---------------------------------------------------------------------------------------
// Stop order, exit codes

#[test]
fn sigterm_to_pid1_stops_a_nested_tree_in_order_and_exits_0() {
    if !pid_namespaces_available("sigterm_to_pid1_stops_a_nested_tree_in_order_and_exits_0") {
        return;
    }
    let dir = TestDir::new();
    let mut toml = String::from(
        "children = [\"a\", \"s1\", \"d\"]\n\n\
         [supervisor.s1]\nchildren = [\"b\", \"s2\", \"c\"]\n\n\
         [supervisor.s2]\nstrategy = \"one_for_all\"\nchildren = [\"x\", \"y\"]\n",
    );
    for n in ["a", "b", "x", "y", "d"] {
        toml += &process(&dir, n, &["--on-term", "exit:0"], "");
    }
    toml += &process(&dir, "c", &["--on-term", "delay:150"], "");
    let start = ["a", "b", "x", "y", "c", "d"];
    let stop = ["d", "c", "y", "x", "b", "a"];
    let mut d = pid1_tree(&dir, &toml);
    let ev = wait_started(&dir, &start);
    let l = wait_logged(&d, "started", &start);
    assert!(l.contains("running as PID 1"), "{l}");
    assert_eq!(logged_names(&l, "started"), strs(&start), "{l}");
    // vigil is 1 and the parent of every child; the first child is 2.
    assert_eq!(ev.starts("a"), vec![2]);
    for n in start {
        assert_eq!(ev.first("START", n).unwrap().args[1], "1", "{n}'s parent");
    }
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    assert_eq!(signal_order(&ev), strs(&stop), "{:#?}", ev.lines());
    for w in stop.windows(2) {
        assert!(
            ev.position("EXIT", w[0]).unwrap() < ev.position("SIGNAL", w[1]).unwrap(),
            "{} dead before {} is signalled",
            w[0],
            w[1]
        );
    }
    let c_sig = ev.first("SIGNAL", "c").unwrap().t_ms;
    let y_sig = ev.first("SIGNAL", "y").unwrap().t_ms;
    assert!(y_sig >= c_sig + 150, "c at {c_sig}, y at {y_sig}");
    assert_eq!(logged_names(&log(&d), "stopped"), strs(&stop));
}

#[test]
fn intensity_exceeded_as_pid1_exits_75() {
    if !pid_namespaces_available("intensity_exceeded_as_pid1_exits_75") {
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 2\nperiod = \"30s\"\nchildren = [\"steady\", \"crasher\"]\n{}{}",
        process(&dir, "steady", &["--on-term", "exit:0"], ""),
        process(
            &dir,
            "crasher",
            &["--exit-after", "100", "--code", "1"],
            "backoff = \"none\""
        ),
    );
    let mut d = pid1_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 75);
    let ev = dir.read_events();
    assert_eq!(ev.starts("crasher").len(), 3, "{:?}", ev.lines());
    assert_eq!(ev.signals("steady"), vec!["SIGTERM"], "{:?}", ev.lines());
    assert!(log(&d).contains("root supervisor gave up"), "{}", log(&d));
}

#[test]
fn a_boot_failure_as_pid1_exits_69() {
    if !pid_namespaces_available("a_boot_failure_as_pid1_exits_69") {
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\", \"missing\", \"c\"]\n{}{}{}\n\
         [process.missing]\ncommand = [\"vigil-no-such-command\"]\n",
        process(&dir, "a", &["--on-term", "exit:0"], ""),
        process(&dir, "b", &["--on-term", "exit:0"], ""),
        process(&dir, "c", &["--on-term", "exit:0"], ""),
    );
    let mut d = pid1_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    let l = log(&d);
    assert_eq!(logged_names(&l, "started"), strs(&["a", "b"]), "{l}");
    assert_eq!(logged_names(&l, "stopped"), strs(&["b", "a"]), "{l}");
    assert!(l.contains("initial start failed"), "{l}");
    assert!(dir.read_events().starts("c").is_empty());
}

#[test]
fn a_second_sigterm_to_pid1_during_a_slow_stop_kills_what_is_left() {
    if !pid_namespaces_available("a_second_sigterm_to_pid1_during_a_slow_stop_kills_what_is_left") {
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"slow\"]\n{}{}",
        process(&dir, "a", &["--on-term", "exit:0"], ""),
        process(
            &dir,
            "slow",
            &["--on-term", "ignore"],
            "shutdown = \"infinity\""
        ),
    );
    let mut d = pid1_tree(&dir, &toml);
    wait_started(&dir, &["a", "slow"]);
    d.signal_vigil(libc::SIGTERM);
    dir.wait_events("slow to get SIGTERM", TIMEOUT, |e| {
        e.count("SIGNAL", "slow") == 1
    });
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let ev = dir.read_events();
    assert!(
        ev.signals("a").is_empty(),
        "a is SIGKILLed: {:?}",
        ev.lines()
    );
    assert!(ev.exits("a").is_empty() && ev.exits("slow").is_empty());
    let l = log(&d);
    assert!(l.contains("second stop signal"), "{l}");
    assert!(
        l.lines()
            .any(|x| x.contains("stopped child=a") && x.contains("killed by SIGKILL")),
        "{l}"
    );
}

#[test]
fn pid1_acts_on_sighup_sigusr1_and_sigint() {
    if !pid_namespaces_available("pid1_acts_on_sighup_sigusr1_and_sigint") {
        return;
    }
    // The kernel drops signals without a handler sent to PID 1: each one vigil acts on
    // must arrive and do its documented thing.
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(
            &dir,
            "a",
            &["--on-int", "exit:0", "--on-term", "exit:9"],
            "stop_signal = \"INT\""
        )
    );
    let mut d = pid1_tree(&dir, &toml);
    wait_started(&dir, &["a"]);
    d.signal_vigil(libc::SIGHUP);
    d.wait_for("SIGHUP logged", TIMEOUT, || {
        log(&d).contains("SIGHUP").then_some(())
    });
    d.signal_vigil(libc::SIGUSR1);
    d.wait_for("status logged", TIMEOUT, || {
        log(&d).contains("node=a").then_some(())
    });
    assert!(d.is_running());
    d.signal_vigil(libc::SIGINT);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    assert_eq!(ev.signals("a"), vec!["SIGINT"], "{:?}", ev.lines());
    assert_eq!(ev.exits("a"), vec![(2, 0)]);
}

#[test]
fn sigquit_to_pid1_kills_the_tree_at_once() {
    if !pid_namespaces_available("sigquit_to_pid1_kills_the_tree_at_once") {
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(&dir, "a", &["--on-term", "ignore"], "shutdown = \"30s\""),
        process(&dir, "b", &["--on-term", "ignore"], "shutdown = \"30s\""),
    );
    let mut d = pid1_tree(&dir, &toml);
    wait_started(&dir, &["a", "b"]);
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGQUIT);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(signal_order(&dir.read_events()).is_empty());
}

#[test]
fn a_grandchild_in_its_own_session_is_swept_as_pid1() {
    if !pid_namespaces_available("a_grandchild_in_its_own_session_is_swept_as_pid1") {
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"c\"]\n{}",
        process(
            &dir,
            "c",
            &["--setsid-grandchild", "forever", "--on-term", "exit:0"],
            ""
        ),
    );
    let mut d = pid1_tree(&dir, &toml);
    dir.wait_events("GRANDCHILD", TIMEOUT, |e| e.count("GRANDCHILD", "c") == 1);
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    // The namespace dies with vigil anyway, so what shows the sweep at work is vigil's
    // log: one descendant signalled, and the exit well before the sweep's 5 s grace.
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let l = log(&d);
    assert!(l.contains("sweep") && l.contains("signalled=1"), "{l}");
    assert!(
        !l.contains("grace over"),
        "the grandchild went on SIGTERM: {l}"
    );
}

// ---------------------------------------------------------------------------------------
// Orphans and SIGCHLD coalescing

#[test]
fn a_thousand_orphans_are_reaped_as_pid1_and_none_is_left_a_zombie() {
    if !pid_namespaces_available("a_thousand_orphans_are_reaped_as_pid1_and_none_is_left_a_zombie")
    {
        return;
    }
    // intensity 0: had one orphan's exit been taken for the child's, vigil would exit 75.
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 0\nchildren = [\"parent\"]\n{}",
        process(
            &dir,
            "parent",
            &[
                "--orphans",
                "1000",
                "--orphan-code",
                "1",
                "--on-term",
                "exit:0"
            ],
            ""
        ),
    );
    let mut d = pid1_tree(&dir, &toml);
    let vigil = d.vigil_pid();
    let ev = dir.wait_events("1000 orphans to exit", Duration::from_secs(30), |e| {
        e.count("ORPHAN_EXIT", "parent") == 1000
    });
    for e in ev.of("ORPHAN_EXIT", "parent") {
        assert_eq!(e.args[1], "1", "adopted by vigil, PID 1: {e:?}");
    }
    d.wait_for("no zombies under vigil", TIMEOUT, || {
        zombie_children(vigil).is_empty().then_some(())
    });
    assert!(d.is_running(), "orphans are not the child");
    assert_eq!(ev.starts("parent"), vec![2], "never restarted");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let l = log(&d);
    assert!(l.contains("orphans_reaped=1000"), "{l}");
    assert!(!l.contains("restart scheduled"), "{l}");
}

#[test]
fn a_child_storming_orphans_in_a_restart_loop_never_hangs_pid1() {
    if !pid_namespaces_available("a_child_storming_orphans_in_a_restart_loop_never_hangs_pid1") {
        return;
    }
    // Each incarnation releases 20 orphans that exit together with it: their SIGCHLDs
    // coalesce with the child's. vigil must see every child exit (or the loop stalls)
    // and reap every orphan. The child restarts at once, 300 times or more (about 3 s on 2 cores).
    const RESTARTS: usize = 300;
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 1000000\nperiod = \"1s\"\nchildren = [\"storm\"]\n{}",
        process(
            &dir,
            "storm",
            &["--orphan-storm", "20", "--exit-after", "0"],
            "backoff = \"none\""
        ),
    );
    let t0 = Instant::now();
    let mut d = pid1_tree(&dir, &toml);
    dir.wait_events("the restart loop", Duration::from_secs(30), |e| {
        e.count("START", "storm") > RESTARTS
    });
    let loop_time = t0.elapsed();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(TIMEOUT),
        0,
        "vigil stops while the storm goes on"
    );
    let l = log(&d);
    assert!(l.contains("tree stopped"), "{l}");
    let orphans: u64 = l
        .lines()
        .find(|x| x.contains("vigil exiting"))
        .and_then(|x| x.split(" orphans_reaped=").nth(1))
        .and_then(|x| x.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no orphans_reaped in {l}"));
    let exits = dir.read_events().count("ORPHAN_EXIT", "storm") as u64;
    // Orphans still alive at the stop are reaped by the sweep, not counted as adopted.
    assert!(orphans >= 20 * RESTARTS as u64 - 40, "{orphans} of {exits}");
    eprintln!("{RESTARTS}+ storm restarts in {loop_time:?}; {orphans} orphans reaped");
}

#[test]
fn short_trees_with_orphan_storms_never_hang_pid1() {
    if !pid_namespaces_available("short_trees_with_orphan_storms_never_hang_pid1") {
        return;
    }
    // The tree's only child is significant and temporary: it releases 20 orphans and exits
    // 5 at once (half the runs) or 3 ms later, so vigil stops the tree, sweeps and exits 5.
    // A lost SIGCHLD would hang a run until the deadline. 1000 runs, 4 at a time: about
    // 10 s on 2 cores.
    const RUNS: usize = 1000;
    const PARALLEL: usize = 4;
    let dir = TestDir::new();
    let trees: Vec<_> = ["0", "3"]
        .iter()
        .map(|exit_after| {
            let toml = format!(
                "auto_shutdown = \"any_significant\"\nchildren = [\"storm\"]\n{}",
                process_with(
                    &dir,
                    "storm",
                    false,
                    &[
                        "--orphan-storm",
                        "20",
                        "--exit-after",
                        exit_after,
                        "--code",
                        "5"
                    ],
                    "restart = \"temporary\"\nsignificant = true",
                ),
            );
            dir.write(&format!("storm-{exit_after}.toml"), &toml)
        })
        .collect();
    let t0 = Instant::now();
    for batch in 0..RUNS / PARALLEL {
        let mut running: Vec<Daemon> = (0..PARALLEL)
            .map(|i| {
                Daemon::builder()
                    .in_pid_namespace(true)
                    .current_dir(dir.path())
                    .env("RUST_LOG", "warn")
                    .env_remove("VIGIL_TEST_EVENTS")
                    .arg("run")
                    .arg(&trees[i % 2])
                    .spawn()
            })
            .collect();
        for (i, d) in running.iter_mut().enumerate() {
            assert_eq!(d.wait_exit(TIMEOUT), 5, "run {}", batch * PARALLEL + i);
        }
    }
    let took = t0.elapsed();
    eprintln!("{RUNS} short trees with orphan storms in {took:?}");
    assert!(took < Duration::from_secs(45), "{RUNS} runs took {took:?}");
}
