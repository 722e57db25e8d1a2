//! `vigil run` driven from outside with real processes, vigil not PID 1 (so it is a child
//! subreaper): start and stop order of a nested tree, shutdown grace and brutal kill,
//! restarts, intensity, boot failure, bad config, grandchildren and process groups,
//! adopted orphans, `auto_shutdown`, the children's environment and initial state,
//! vigil's own cwd, JSON logs, `VIGIL_CONFIG` and `vigil check`.
//!
//! Each scenario is a TOML tree of `vigil-test-child` processes, actions (signals to
//! vigil or to a child), the events the children wrote and vigil's exit code. Real
//! processes, no fixed sleeps: every wait is a predicate with a deadline.
//!
//! Start order is read from vigil's log (`started child=NAME pid=N`, logged right after
//! each spawn): the children's own `START` lines can race each other, since vigil does
//! not wait for one child to be up before it spawns the next. Stop order is read from
//! the children's `SIGNAL` lines: vigil signals the next child only after the previous
//! one is dead, so those lines are strictly ordered.

#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

// ---------------------------------------------------------------------------------------
// Helpers: trees, running vigil, reading its log

/// Writes `toml` to `vigil.toml` in `dir` and returns its path.
fn write_config(dir: &TestDir, toml: &str) -> std::path::PathBuf {
    dir.write("vigil.toml", toml)
}

/// `vigil run vigil.toml` in `dir`.
fn run_tree(dir: &TestDir, toml: &str) -> Daemon {
    let path = write_config(dir, toml);
    vigil_in(dir).arg("run").arg(path).spawn()
}

/// A process started by a test without [`Daemon`]: on drop (a failing test), it and every
/// descendant are SIGKILLed, and so are `extra` pids (e.g. a grandchild in its own session).
struct Guard {
    child: Child,
    extra: Vec<i32>,
    stderr: std::path::PathBuf,
}

impl Guard {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let c = &mut self.child;
        let got = try_wait_for(timeout, || {
            c.try_wait()
                .expect("try_wait")
                .map(|st| st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
        });
        got.unwrap_or_else(|| {
            panic!(
                "vigil did not exit within {timeout:?}\n--- vigil stderr ---\n{}",
                self.stderr_text()
            )
        })
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            kill(self.pid(), libc::SIGSTOP);
            for p in descendants(self.pid()) {
                kill(p, libc::SIGKILL);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for &p in &self.extra {
            kill(p, libc::SIGKILL);
        }
        if std::thread::panicking() {
            eprintln!("--- vigil stderr ---\n{}", self.stderr_text());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Order

/// root: a, s1, d; s1: b, s2, c; s2: x, y. Every child exits 0 on SIGTERM; c takes 150 ms.
fn nested_tree(dir: &TestDir) -> String {
    let mut t = String::from(
        "strategy = \"one_for_one\"\nchildren = [\"a\", \"s1\", \"d\"]\n\n\
         [supervisor.s1]\nchildren = [\"b\", \"s2\", \"c\"]\n\n\
         [supervisor.s2]\nstrategy = \"one_for_all\"\nchildren = [\"x\", \"y\"]\n",
    );
    for n in ["a", "b", "x", "y", "d"] {
        t += &process(dir, n, &["--on-term", "exit:0"], "");
    }
    t += &process(dir, "c", &["--on-term", "delay:150"], "");
    t
}

const NESTED_START: [&str; 6] = ["a", "b", "x", "y", "c", "d"];
const NESTED_STOP: [&str; 6] = ["d", "c", "y", "x", "b", "a"];

#[test]
fn start_order_follows_children_and_sigterm_stops_in_reverse_depth_first() {
    let dir = TestDir::new();
    let mut d = run_tree(&dir, &nested_tree(&dir));
    wait_started(&dir, &NESTED_START);
    let l = wait_logged(&d, "started", &NESTED_START);
    assert_eq!(logged_names(&l, "started"), strs(&NESTED_START), "{l}");
    assert!(l.contains("all children started"), "{l}");
    // The pids vigil logged are the children that wrote START.
    let ev = dir.read_events();
    for (name, pid) in logged(&l, "started") {
        assert_eq!(ev.starts(&name), vec![pid], "{name}");
    }

    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "clean stop");
    let ev = dir.read_events();
    assert_eq!(signal_order(&ev), strs(&NESTED_STOP), "{:#?}", ev.lines());
    for n in NESTED_STOP {
        assert_eq!(ev.signals(n), vec!["SIGTERM"], "{n}");
        assert_eq!(ev.exits(n).len(), 1, "{n} exited by itself");
        assert_eq!(ev.starts(n).len(), 1, "{n} never restarted");
        assert!(!is_alive(ev.starts(n)[0]), "{n} is gone");
    }
    // Strictly one at a time: each child is signalled only once the previous one is dead.
    for w in NESTED_STOP.windows(2) {
        let prev_exit = ev.position("EXIT", w[0]).unwrap();
        let next_signal = ev.position("SIGNAL", w[1]).unwrap();
        assert!(prev_exit < next_signal, "{} before {}", w[0], w[1]);
    }
    // c took 150 ms to stop and y waited for it.
    let c_sig = ev.first("SIGNAL", "c").unwrap().t_ms;
    let y_sig = ev.first("SIGNAL", "y").unwrap().t_ms;
    assert!(y_sig >= c_sig + 150, "c at {c_sig}, y at {y_sig}");
    let l = log(&d);
    assert_eq!(logged_names(&l, "stopped"), strs(&NESTED_STOP), "{l}");
    assert!(l.contains("tree stopped"), "{l}");
}

#[test]
fn sigint_stops_the_tree_like_sigterm() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(
            &dir,
            "a",
            &["--on-int", "exit:0", "--on-term", "exit:9"],
            "stop_signal = \"SIGINT\""
        ),
        process(&dir, "b", &["--on-term", "exit:0"], ""),
    );
    let mut d = run_tree(&dir, &toml);
    wait_started(&dir, &["a", "b"]);
    d.signal_vigil(libc::SIGINT);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    assert_eq!(signal_order(&ev), strs(&["b", "a"]));
    // Each child got its own stop signal.
    assert_eq!(ev.signals("a"), vec!["SIGINT"]);
    assert_eq!(ev.signals("b"), vec!["SIGTERM"]);
    assert_eq!(ev.exits("a"), vec![(ev.starts("a")[0], 0)]);
}

// ---------------------------------------------------------------------------------------
// Shutdown grace, brutal kill, SIGQUIT

#[test]
fn a_child_ignoring_sigterm_is_killed_when_its_grace_ends() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"first\", \"stubborn\"]\n{}{}",
        process(&dir, "first", &["--on-term", "exit:0"], ""),
        process(
            &dir,
            "stubborn",
            &["--on-term", "ignore"],
            "shutdown = \"700ms\""
        ),
    );
    let mut d = run_tree(&dir, &toml);
    wait_started(&dir, &["first", "stubborn"]);
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0, "still a clean stop");
    let elapsed = t0.elapsed();
    let ev = dir.read_events();
    assert_eq!(ev.signals("stubborn"), vec!["SIGTERM"], "{:?}", ev.lines());
    assert!(ev.exits("stubborn").is_empty(), "it never exited by itself");
    assert!(!is_alive(ev.starts("stubborn")[0]));
    // `first` was stopped only after stubborn's grace had passed and it was killed.
    let s = ev.first("SIGNAL", "stubborn").unwrap().t_ms;
    let f = ev.first("SIGNAL", "first").unwrap().t_ms;
    assert!(f >= s + 690, "stubborn signalled at {s}, first at {f}");
    assert!(elapsed >= Duration::from_millis(690), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let l = log(&d);
    assert!(l.contains("did not stop within its shutdown grace"), "{l}");
    assert!(
        l.lines()
            .any(|x| x.contains("stopped child=stubborn") && x.contains("killed by SIGKILL")),
        "{l}"
    );
}

#[test]
fn brutal_kill_sends_only_sigkill() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"b\"]\n{}",
        process(
            &dir,
            "b",
            &["--log-signals", "--on-term", "exit:0", "--on-int", "exit:0"],
            "shutdown = \"brutal_kill\"",
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let pid = wait_started(&dir, &["b"]).starts("b")[0];
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    assert!(
        ev.signals("b").is_empty(),
        "no catchable signal: {:?}",
        ev.lines()
    );
    assert!(ev.exits("b").is_empty());
    assert!(!is_alive(pid));
    let l = log(&d);
    assert!(
        l.lines()
            .any(|x| x.contains("stopped child=b") && x.contains("killed by SIGKILL")),
        "{l}"
    );
}

#[test]
fn sigquit_kills_the_whole_tree_at_once() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(
            &dir,
            "a",
            &["--on-term", "ignore"],
            "shutdown = \"infinity\""
        ),
        process(&dir, "b", &["--on-term", "ignore"], "shutdown = \"30s\""),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["a", "b"]);
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGQUIT);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let after = dir.read_events();
    assert!(
        signal_order(&after).is_empty(),
        "no SIGTERM: {:?}",
        after.lines()
    );
    for n in ["a", "b"] {
        assert!(!is_alive(ev.starts(n)[0]), "{n}");
    }
}

#[test]
fn a_second_sigterm_during_a_slow_stop_kills_what_is_left() {
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
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["a", "slow"]);
    let first = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    dir.wait_events("slow to get SIGTERM", TIMEOUT, |e| {
        e.count("SIGNAL", "slow") == 1
    });
    // A repeat within vigil's repeat window (1 s) is the same request (coreutils
    // `timeout` sends two); only a later one escalates. Waiting out the window is what is
    // under test here, not a guess at how long something takes.
    std::thread::sleep(
        (first + Duration::from_millis(1100)).saturating_duration_since(Instant::now()),
    );
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let after = dir.read_events();
    // `a` was still waiting its turn: it gets SIGKILL, not its stop signal.
    assert!(after.signals("a").is_empty(), "{:?}", after.lines());
    assert!(after.exits("slow").is_empty());
    for n in ["a", "slow"] {
        assert!(!is_alive(ev.starts(n)[0]), "{n}");
    }
    assert!(log(&d).contains("second stop signal"), "{}", log(&d));
}

#[test]
fn shutdown_timeout_bounds_the_whole_stop() {
    let dir = TestDir::new();
    let toml = format!(
        "shutdown_timeout = \"600ms\"\nchildren = [\"a\", \"b\"]\n{}{}",
        process(
            &dir,
            "a",
            &["--on-term", "ignore"],
            "shutdown = \"infinity\""
        ),
        process(
            &dir,
            "b",
            &["--on-term", "ignore"],
            "shutdown = \"infinity\""
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["a", "b"]);
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let elapsed = t0.elapsed();
    assert!(elapsed >= Duration::from_millis(590), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // b was asked (and ignored it); a never got its turn before everything was killed.
    let after = dir.read_events();
    assert_eq!(after.signals("b"), vec!["SIGTERM"], "{:?}", after.lines());
    assert!(after.signals("a").is_empty(), "{:?}", after.lines());
    for n in ["a", "b"] {
        assert!(!is_alive(ev.starts(n)[0]), "{n}");
    }
}

// ---------------------------------------------------------------------------------------
// Restarts and intensity

#[test]
fn a_crashing_permanent_child_is_restarted() {
    let dir = TestDir::new();
    let inv = dir.join("invocations");
    let inv = inv.to_str().unwrap();
    let toml = format!(
        "children = [\"p\"]\n{}",
        process(
            &dir,
            "p",
            &[
                "--invocation-file",
                inv,
                "--fail-invocations",
                "1..1",
                "--on-term",
                "exit:0"
            ],
            "backoff = \"none\"",
        ),
    );
    let mut d = run_tree(&dir, &toml);
    // First incarnation exits 1 at once; the second stays up.
    let ev = dir.wait_events("the restart", TIMEOUT, |e| e.count("START", "p") == 2);
    let pids = ev.starts("p");
    assert_ne!(pids[0], pids[1], "a new process");
    assert_eq!(ev.exits("p"), vec![(pids[0], 1)]);
    // A crash by a signal (not vigil's) is restarted too.
    kill(pids[1], libc::SIGKILL);
    let ev = dir.wait_events("the second restart", TIMEOUT, |e| {
        e.count("START", "p") == 3
    });
    let third = ev.starts("p")[2];
    assert!(!pids.contains(&third));
    assert!(
        d.is_running(),
        "two restarts are within the default intensity"
    );
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    assert_eq!(
        ev.signals("p"),
        vec!["SIGTERM"],
        "only the last incarnation is stopped"
    );
    let l = log(&d);
    assert_eq!(l.matches("restart scheduled").count(), 2, "{l}");
    assert!(l.contains("killed by SIGKILL"), "{l}");
    let started: Vec<i32> = logged(&l, "started").into_iter().map(|(_, p)| p).collect();
    assert_eq!(started, ev.starts("p"));
}

#[test]
fn a_crash_loop_with_the_default_backoff_and_intensity_exits_75_within_a_second() {
    // Defaults: 3 restarts in 5 s, backoff 100 ms doubling (+/- 10%). A child that crashes
    // at once is restarted after ~0.1, 0.2 and 0.4 s; its fourth crash gives up.
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"crasher\"]\n{}",
        process(&dir, "crasher", &["--exit-after", "0", "--code", "1"], "")
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 75);
    let ev = dir.read_events();
    let starts = ev.of("START", "crasher");
    assert_eq!(starts.len(), 4, "{:?}", ev.lines());
    let gaps: Vec<u128> = starts.windows(2).map(|w| w[1].t_ms - w[0].t_ms).collect();
    // Each delay at least 90% of 100, 200, 400 ms (minus 1 ms of clock truncation), and
    // the whole loop over well within the 5 s window.
    for (gap, base) in gaps.iter().zip([100u128, 200, 400]) {
        assert!(*gap + 1 >= base * 9 / 10, "gaps {gaps:?}");
    }
    assert!(gaps.iter().sum::<u128>() < 3000, "gaps {gaps:?}");
    let l = log(&d);
    assert_eq!(l.matches("restart scheduled").count(), 3, "{l}");
}

#[test]
fn rest_for_one_restarts_the_children_started_after_the_crashed_one() {
    let dir = TestDir::new();
    let mut toml = String::from("strategy = \"rest_for_one\"\nchildren = [\"a\", \"b\", \"c\"]\n");
    for n in ["a", "b", "c"] {
        toml += &process(&dir, n, &["--on-term", "exit:0"], "backoff = \"none\"");
    }
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["a", "b", "c"]);
    kill(ev.starts("b")[0], libc::SIGKILL);
    let ev = dir.wait_events("b and c restarted", TIMEOUT, |e| {
        e.count("START", "b") == 2 && e.count("START", "c") == 2
    });
    assert_eq!(ev.starts("a").len(), 1, "a is untouched");
    assert!(ev.signals("a").is_empty());
    // c was stopped with its stop signal before b came back.
    assert_eq!(ev.signals("c"), vec!["SIGTERM"]);
    let l = wait_logged(&d, "started", &["a", "b", "c", "b", "c"]);
    assert_eq!(
        logged_names(&l, "started"),
        strs(&["a", "b", "c", "b", "c"]),
        "b, then c, started again in order: {l}"
    );
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    assert_eq!(
        signal_order(&ev),
        strs(&["c", "c", "b", "a"]),
        "{:?}",
        ev.lines()
    );
}

#[test]
fn a_stop_during_a_backoff_delay_starts_nothing_and_exits_at_once() {
    // `late` crashes and waits 30 s for its restart; `other` exits 7 when asked to stop.
    // Once vigil is stopping nothing is restarted, and the pending restart does not hold
    // the exit back.
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"other\", \"late\"]\n{}{}",
        process(&dir, "other", &["--on-term", "exit:7"], ""),
        process(
            &dir,
            "late",
            &["--exit-after", "50", "--code", "1"],
            "backoff = { initial = \"30s\", max = \"30s\", jitter = 0.0 }"
        ),
    );
    let mut d = run_tree(&dir, &toml);
    wait_started(&dir, &["other"]);
    d.wait_for("the restart to be scheduled", TIMEOUT, || {
        log(&d).contains("restart scheduled").then_some(())
    });
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(
        d.wait_exit(TIMEOUT),
        0,
        "a requested stop, whatever the children's codes"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let ev = dir.read_events();
    assert_eq!(
        ev.starts("late").len(),
        1,
        "not restarted: {:?}",
        ev.lines()
    );
    assert_eq!(
        ev.starts("other").len(),
        1,
        "not restarted after its exit 7"
    );
    assert_eq!(ev.exits("other"), vec![(ev.starts("other")[0], 7)]);
}

#[test]
fn a_transient_child_killed_by_a_foreign_sigterm_is_not_restarted() {
    // Death by a SIGTERM vigil did not send is a normal exit (OTP's `shutdown`); death by
    // SIGKILL is not.
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"t\", \"k\"]\n{}{}",
        process(
            &dir,
            "t",
            &[],
            "restart = \"transient\"\nbackoff = \"none\""
        ),
        process(
            &dir,
            "k",
            &["--on-term", "exit:0"],
            "restart = \"transient\"\nbackoff = \"none\""
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["t", "k"]);
    kill(ev.starts("t")[0], libc::SIGTERM);
    d.wait_for("t not restarted", TIMEOUT, || {
        log(&d).contains("not restarted").then_some(())
    });
    kill(ev.starts("k")[0], libc::SIGKILL);
    dir.wait_events("k restarted", TIMEOUT, |e| e.count("START", "k") == 2);
    let l = wait_logged(&d, "started", &["t", "k", "k"]);
    assert_eq!(logged_names(&l, "started"), strs(&["t", "k", "k"]), "{l}");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

#[test]
fn intensity_exceeded_exits_75_and_stops_the_others() {
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
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 75);
    let ev = dir.read_events();
    // Two restarts allowed; the third exit exceeds the intensity.
    assert_eq!(ev.starts("crasher").len(), 3, "{:?}", ev.lines());
    assert_eq!(ev.exits("crasher").len(), 3);
    assert_eq!(ev.starts("steady").len(), 1, "never restarted");
    // steady was up long before the give-up (crasher ran 3 x 100 ms), so it caught SIGTERM.
    assert_eq!(ev.signals("steady"), vec!["SIGTERM"], "{:?}", ev.lines());
    assert_eq!(ev.exits("steady").len(), 1);
    assert!(
        ev.position("EXIT", "steady") > ev.last("EXIT", "crasher").map(|e| e.index),
        "stopped after the last crash"
    );
    assert!(!is_alive(ev.starts("steady")[0]));
    let l = log(&d);
    assert!(l.contains("root supervisor gave up"), "{l}");
    assert!(l.contains("offender=crasher"), "{l}");
}

#[test]
fn a_nested_supervisor_that_gives_up_is_restarted_by_its_parent() {
    // s1 (intensity 0) gives up on the first crash of `w`; the root restarts s1 (one of
    // its 5 restarts), which starts `w` again.
    let dir = TestDir::new();
    let inv = dir.join("invocations");
    let inv = inv.to_str().unwrap();
    let toml = format!(
        "intensity = 5\nchildren = [\"top\", \"s1\"]\n\n\
         [supervisor.s1]\nintensity = 0\nchildren = [\"w\", \"v\"]\n{}{}{}",
        process(&dir, "top", &["--on-term", "exit:0"], ""),
        process(
            &dir,
            "w",
            &[
                "--invocation-file",
                inv,
                "--fail-invocations",
                "1..1",
                "--on-term",
                "exit:0"
            ],
            "backoff = \"none\"",
        ),
        process(&dir, "v", &["--on-term", "exit:0"], ""),
    );
    let mut d = run_tree(&dir, &toml);
    // v may be stopped (by s1) before it wrote START, so count vigil's spawns.
    d.wait_for("s1 restarted", TIMEOUT, || {
        (logged_names(&log(&d), "started") == strs(&["top", "w", "v", "w", "v"])).then_some(())
    });
    let ev = dir.wait_events("w's second START", TIMEOUT, |e| e.count("START", "w") == 2);
    assert_eq!(ev.starts("top").len(), 1, "top is untouched");
    assert!(d.is_running());
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let l = log(&d);
    assert!(l.contains("gave up") && l.contains("supervisor=s1"), "{l}");
}

// ---------------------------------------------------------------------------------------
// Boot failure and bad config

#[test]
fn a_boot_failure_exits_69_and_stops_what_started() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\", \"missing\", \"c\"]\n{}{}{}\n[process.missing]\ncommand = [\"vigil-no-such-command\", \"--flag\"]\n",
        process(&dir, "a", &["--on-term", "exit:0"], ""),
        process(&dir, "b", &["--on-term", "exit:0"], ""),
        process(&dir, "c", &["--on-term", "exit:0"], ""),
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    let l = log(&d);
    let started = logged(&l, "started");
    assert_eq!(
        started.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"],
        "{l}"
    );
    // Stopped last-started-first. (Whether they caught SIGTERM depends on whether they
    // had installed their handler yet, so the order comes from vigil's log.)
    assert_eq!(logged_names(&l, "stopped"), strs(&["b", "a"]), "{l}");
    for (n, pid) in &started {
        assert!(!is_alive(*pid), "{n} is gone");
    }
    assert!(l.contains("vigil-no-such-command"), "{l}");
    assert!(l.contains("initial start failed"), "{l}");
    assert!(l.contains("offender=missing"), "{l}");
    let ev = dir.read_events();
    assert!(
        ev.starts("c").is_empty(),
        "nothing after the failure: {:?}",
        ev.lines()
    );
    assert_eq!(
        ev.signals("a").len() + ev.signals("b").len(),
        signal_order(&ev).len()
    );
    assert_eq!(
        signal_order(&ev)
            .iter()
            .filter(|n| *n == "a" || *n == "b")
            .count(),
        signal_order(&ev).len()
    );
}

#[test]
fn a_boot_failure_in_a_nested_supervisor_exits_69() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"s\", \"z\"]\n\n[supervisor.s]\nchildren = [\"b\", \"bad\"]\n{}{}{}\n[process.bad]\ncommand = [\"/no/such/dir/vigil-cmd\"]\n",
        process(&dir, "a", &["--on-term", "exit:0"], ""),
        process(&dir, "b", &["--on-term", "exit:0"], ""),
        process(&dir, "z", &["--on-term", "exit:0"], ""),
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    let l = log(&d);
    assert_eq!(logged_names(&l, "started"), strs(&["a", "b"]), "{l}");
    assert_eq!(logged_names(&l, "stopped"), strs(&["b", "a"]), "{l}");
    assert!(dir.read_events().starts("z").is_empty());
}

#[test]
fn a_bad_config_exits_78_and_starts_nothing() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(&dir, "a", &[], "restart = \"prmanent\""),
        process(&dir, "b", &[], "restrat = \"permanent\""),
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 78);
    let l = log(&d);
    assert!(l.contains("process.a.restart"), "{l}");
    assert!(l.contains("prmanent"), "{l}");
    assert!(
        l.contains("process.b.restrat"),
        "every error is reported: {l}"
    );
    assert!(l.contains("vigil.toml:"), "errors name the file: {l}");
    assert!(!dir.events().exists(), "nothing was started");
    assert!(logged(&l, "started").is_empty(), "{l}");

    // A missing file, and a TOML syntax error, are config errors too.
    let mut d = vigil_in(&dir)
        .arg("run")
        .arg(dir.join("no-such.toml"))
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 78);
    assert!(log(&d).contains("no-such.toml"), "{}", log(&d));
    let bad = dir.write("syntax.toml", "children = [\"a\"\n");
    let mut d = vigil_in(&dir).arg("run").arg(bad).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 78);
    assert!(!dir.events().exists());
}

// ---------------------------------------------------------------------------------------
// Grandchildren, process groups, orphans

#[test]
fn a_grandchild_holding_stdout_does_not_stall_the_stop() {
    // vigil's stdout is a pipe (as under `docker logs`); the grandchild, in its own
    // session, holds it open. vigil must still exit, and the sweep must remove the
    // grandchild, so the pipe reaches EOF.
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
    let cfg = write_config(&dir, &toml);
    let stderr = dir.join("vigil-stderr");
    let mut guard = Guard {
        child: Command::new(vigil())
            .arg("run")
            .arg(&cfg)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("VIGIL_TEST_EVENTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn vigil"),
        extra: Vec::new(),
        stderr,
    };
    let mut out = guard.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
        let _ = tx.send(());
    });
    let ev = dir.wait_events("GRANDCHILD", TIMEOUT, |e| e.count("GRANDCHILD", "c") == 1);
    let gc = ev.first("GRANDCHILD", "c").unwrap().pid;
    guard.extra.push(gc);
    let child = ev.starts("c")[0];
    assert_ne!(
        ev.first("GRANDCHILD", "c").unwrap().args[0],
        child.to_string(),
        "the grandchild left the child's process group"
    );
    let t0 = Instant::now();
    kill(guard.pid(), libc::SIGTERM);
    assert_eq!(guard.wait_exit(TIMEOUT), 0);
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert!(!is_alive(gc), "the sweep removed the grandchild");
    rx.recv_timeout(TIMEOUT)
        .expect("vigil's stdout reaches EOF once vigil and the grandchild are gone");
    let l = guard.stderr_text();
    assert!(l.contains("sweep") && l.contains("signalled=1"), "{l}");
}

#[test]
fn a_process_group_member_dies_with_its_leader() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"leader\"]\n{}",
        process(
            &dir,
            "leader",
            &["--group-grandchild"],
            "backoff = \"none\""
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = dir.wait_events("GRANDCHILD", TIMEOUT, |e| {
        e.count("GRANDCHILD", "leader") == 1
    });
    let leader = ev.starts("leader")[0];
    let gc = ev.first("GRANDCHILD", "leader").unwrap();
    assert_eq!(
        gc.args[0],
        leader.to_string(),
        "same process group as its leader"
    );
    let gc = gc.pid;
    assert!(is_alive(gc));
    // The leader crashes; what is left of its group is killed, the leader restarted.
    kill(leader, libc::SIGKILL);
    d.wait_for("the grandchild to die with its leader", TIMEOUT, || {
        (!is_alive(gc)).then_some(())
    });
    let ev = dir.wait_events("the restart", TIMEOUT, |e| {
        e.count("GRANDCHILD", "leader") == 2
    });
    let gc2 = ev.last("GRANDCHILD", "leader").unwrap().pid;
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(!is_alive(gc2), "the stop signal went to the whole group");
    assert_eq!(group_members(ev.starts("leader")[1]), Vec::<i32>::new());
}

#[test]
fn orphans_are_reaped_and_never_counted_as_child_exits() {
    // intensity 0: a single counted exit would end the tree with 75.
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 0\nchildren = [\"parent\"]\n{}",
        process(
            &dir,
            "parent",
            &[
                "--orphans",
                "30",
                "--orphan-code",
                "1",
                "--on-term",
                "exit:0"
            ],
            ""
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let vigil = d.pid();
    let ev = dir.wait_events("30 orphans to exit", TIMEOUT, |e| {
        e.count("ORPHAN_EXIT", "parent") == 30
    });
    for e in ev.of("ORPHAN_EXIT", "parent") {
        assert_eq!(
            e.args[1],
            vigil.to_string(),
            "adopted by vigil (subreaper): {e:?}"
        );
    }
    d.wait_for("no zombies under vigil", TIMEOUT, || {
        zombie_children(vigil).is_empty().then_some(())
    });
    assert!(d.is_running(), "orphans' exits are not the child's");
    assert_eq!(ev.starts("parent").len(), 1);
    let alive: Vec<i32> = children_of(vigil);
    assert_eq!(
        alive,
        ev.starts("parent"),
        "only the child is left under vigil"
    );
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let l = log(&d);
    assert!(l.contains("orphans_reaped=30"), "{l}");
    assert!(
        !l.contains("restart scheduled") && !l.contains("gave up"),
        "{l}"
    );
}

// ---------------------------------------------------------------------------------------
// auto_shutdown

#[test]
fn a_significant_transient_child_ending_stops_the_tree_with_its_code() {
    let dir = TestDir::new();
    let toml = format!(
        "auto_shutdown = \"any_significant\"\nchildren = [\"steady\", \"job\"]\n{}{}",
        process(&dir, "steady", &["--on-term", "exit:0"], ""),
        process(
            &dir,
            "job",
            &["--exit-after", "300", "--code", "3"],
            "restart = \"transient\"\nsignificant = true\nsuccess_exit_codes = [0, 3]",
        ),
    );
    let mut d = run_tree(&dir, &toml);
    assert_eq!(d.wait_exit(TIMEOUT), 3, "the significant child's status");
    let ev = dir.read_events();
    assert_eq!(ev.exits("job").len(), 1);
    assert_eq!(ev.starts("job").len(), 1, "not restarted");
    // steady's START (handler installed) precedes job's EXIT, so it caught its SIGTERM.
    assert!(ev.position("START", "steady") < ev.position("EXIT", "job"));
    assert_eq!(ev.signals("steady"), vec!["SIGTERM"], "{:?}", ev.lines());
    assert!(!is_alive(ev.starts("steady")[0]));
    let l = log(&d);
    assert!(l.contains("significant child ended"), "{l}");
}

#[test]
fn a_significant_temporary_child_killed_by_a_signal_gives_128_plus_signal() {
    let dir = TestDir::new();
    let toml = format!(
        "auto_shutdown = \"any_significant\"\nchildren = [\"steady\", \"job\"]\n{}{}",
        process(&dir, "steady", &["--on-term", "exit:0"], ""),
        process(
            &dir,
            "job",
            &["--on-term", "exit:0"],
            "restart = \"temporary\"\nsignificant = true",
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["steady", "job"]);
    kill(ev.starts("job")[0], libc::SIGKILL);
    assert_eq!(d.wait_exit(TIMEOUT), 128 + libc::SIGKILL);
    let ev = dir.read_events();
    assert_eq!(ev.signals("steady"), vec!["SIGTERM"]);
    assert_eq!(ev.starts("job").len(), 1);
}

// ---------------------------------------------------------------------------------------
// The children's environment and initial state; vigil's own state

#[test]
fn children_get_env_overrides_and_cwd() {
    let dir = TestDir::new();
    let sub = dir.path().join("work dir");
    std::fs::create_dir(&sub).unwrap();
    let sub = sub.canonicalize().unwrap();
    let right = dir.events();
    // `c` gets no --events: the test child falls back to $VIGIL_TEST_EVENTS, which vigil
    // was started with pointing elsewhere and which `env` overrides.
    let wrong = dir.join("wrong-events");
    let c_cmd = toml_array(&strs(&[
        test_child().to_str().unwrap(),
        "--name",
        "c",
        "--report-cwd",
        "--on-term",
        "exit:0",
    ]));
    let sh_cmd = toml_array(&strs(&[
        "sh",
        "-c",
        "printf '%s|%s|%s\\n' \"$GREETING\" \"$FROM_VIGIL\" \"$OVERRIDDEN\" > env.txt; \
         exec \"$0\" --name sh --report-cwd --on-term exit:0",
        test_child().to_str().unwrap(),
    ]));
    let toml = format!(
        "children = [\"c\", \"sh\", \"home\"]\n\n\
         [process.c]\ncommand = {c_cmd}\ncwd = {}\nenv = {{ VIGIL_TEST_EVENTS = {} }}\n\n\
         [process.sh]\ncommand = {sh_cmd}\ncwd = {}\n\
         env = {{ GREETING = \"hello world\", OVERRIDDEN = \"new\", VIGIL_TEST_EVENTS = {} }}\n{}",
        toml_str(sub.to_str().unwrap()),
        toml_str(right.to_str().unwrap()),
        toml_str(sub.to_str().unwrap()),
        toml_str(right.to_str().unwrap()),
        process(&dir, "home", &["--report-cwd", "--on-term", "exit:0"], ""),
    );
    let cfg = write_config(&dir, &toml);
    let mut d = vigil_in(&dir)
        .env("VIGIL_TEST_EVENTS", &wrong)
        .env("FROM_VIGIL", "inherited")
        .env("OVERRIDDEN", "old")
        .arg("run")
        .arg(cfg)
        .spawn();
    let ev = dir.wait_events("CWD reports", TIMEOUT, |e| {
        ["c", "sh", "home"].iter().all(|n| e.count("CWD", n) == 1)
    });
    let sub_s = sub.display().to_string();
    // The path has a space, so the CWD line splits it in two fields.
    assert_eq!(ev.first("CWD", "c").unwrap().args.join(" "), sub_s);
    assert_eq!(ev.first("CWD", "sh").unwrap().args.join(" "), sub_s);
    // Without `cwd`: the directory vigil was started in, though vigil itself moved to /.
    let start_dir = dir.path().canonicalize().unwrap().display().to_string();
    assert_eq!(ev.first("CWD", "home").unwrap().args.join(" "), start_dir);
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/cwd", d.pid())).unwrap(),
        Path::new("/"),
        "vigil does not pin its start directory"
    );
    assert!(!wrong.exists(), "env overrides the inherited variable");
    let env_txt = std::fs::read_to_string(sub.join("env.txt")).expect("env.txt in cwd");
    assert_eq!(env_txt, "hello world|inherited|new\n");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

#[test]
fn children_run_as_the_configured_user_and_group() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping children_run_as_the_configured_user_and_group: needs root");
        return;
    }
    let dir = TestDir::new();
    // The child, running as nobody, must be able to enter the directory and write events.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let toml = format!(
        "children = [\"n\", \"g\"]\n{}{}",
        process(
            &dir,
            "n",
            &["--report-ids", "--on-term", "exit:0"],
            "user = \"65534\""
        ),
        process(
            &dir,
            "g",
            &["--report-ids", "--on-term", "exit:0"],
            "user = \"65534\"\ngroup = \"1234\""
        ),
    );
    let mut d = run_tree(&dir, &toml);
    let ev = dir.wait_events("IDS", TIMEOUT, |e| {
        e.count("IDS", "n") == 1 && e.count("IDS", "g") == 1
    });
    let ids = |n: &str| ev.first("IDS", n).unwrap().args.clone();
    let n = ids("n");
    assert_eq!(n[0], "uid=65534", "{n:?}");
    assert_eq!(n[1], "gid=65534", "the user's primary group: {n:?}");
    assert!(
        !n[2].split([',', '=']).any(|g| g == "0"),
        "root's groups dropped: {n:?}"
    );
    let g = ids("g");
    assert_eq!(g[0], "uid=65534", "{g:?}");
    assert_eq!(g[1], "gid=1234", "{g:?}");
    assert!(!g[2].split([',', '=']).any(|x| x == "0"), "{g:?}");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

#[test]
fn children_inherit_vigils_stdout_and_vigil_logs_to_stderr() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"out\"]\n{}",
        process(&dir, "out", &["--flood", "4000", "--on-term", "exit:0"], "")
    );
    let mut d = run_tree(&dir, &toml);
    dir.wait_events("FLOOD", TIMEOUT, |e| e.count("FLOOD", "out") == 1);
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let out = d.stdout_text();
    assert!(out.starts_with("out 0 xxx"), "{out:.200}");
    assert!(out.len() >= 4000, "{}", out.len());
    assert!(!out.contains("vigil starting"), "no log lines on stdout");
    assert!(log(&d).contains("vigil starting"));
}

/// Parses a `SIGSTATE` event's `blk=HEX ign=HEX` fields.
fn sigstate(e: &Event) -> (u64, u64) {
    let f = |k: &str| {
        e.args
            .iter()
            .find_map(|a| a.strip_prefix(k))
            .map(|v| u64::from_str_radix(v, 16).expect("hex mask"))
            .unwrap_or_else(|| panic!("no {k} in {e:?}"))
    };
    (f("blk="), f("ign="))
}

#[test]
fn children_start_with_clean_signal_state_and_only_stdio() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"c\", \"d\"]\n{}{}",
        process(
            &dir,
            "c",
            &["--report-sigstate", "--report-fds", "--on-term", "exit:0"],
            ""
        ),
        // A restarted incarnation too (spawned later, from inside the running loop).
        process(
            &dir,
            "d",
            &["--report-sigstate", "--report-fds", "--on-term", "exit:0"],
            "backoff = \"none\""
        ),
    );
    let cfg = write_config(&dir, &toml);
    let held = std::fs::File::create(dir.join("held-open")).unwrap();
    let held_fd = std::os::fd::AsRawFd::as_raw_fd(&held);
    let stderr = dir.join("vigil-stderr");
    let mut cmd = Command::new(vigil());
    cmd.arg("run")
        .arg(&cfg)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("VIGIL_TEST_EVENTS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    // vigil starts with SIGHUP and SIGALRM ignored, SIGUSR1 and SIGALRM blocked, and fd 7
    // open without close-on-exec (a nohup'ed parent, a CI runner, a leaky launcher).
    // SAFETY: dup2, signal and sigprocmask are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(held_fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGALRM, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigaddset(&mut set, libc::SIGALRM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut guard = Guard {
        child: cmd.spawn().expect("spawn vigil"),
        extra: Vec::new(),
        stderr,
    };
    let ev = dir.wait_events("reports", TIMEOUT, |e| {
        e.count("FDS", "c") == 1 && e.count("FDS", "d") == 1
    });
    kill(ev.starts("d")[0], libc::SIGKILL);
    let ev = dir.wait_events("d restarted", TIMEOUT, |e| e.count("FDS", "d") == 2);
    let pipe_mask = 1u64 << (libc::SIGPIPE - 1);
    for (name, i) in [("c", 0), ("d", 0), ("d", 1)] {
        let fds = ev.of("FDS", name)[i];
        assert_eq!(fds.args, vec!["0,1,2"], "{name} #{i}: only stdio");
        let st = ev.of("SIGSTATE", name)[i];
        let (blk, ign) = sigstate(st);
        assert_eq!(blk, 0, "{name} #{i}: blocked mask {blk:x}");
        // The test child is a Rust program: its runtime ignores SIGPIPE before main.
        assert_eq!(ign & !pipe_mask, 0, "{name} #{i}: ignored mask {ign:x}");
    }
    // vigil still acts on SIGTERM and SIGHUP is logged, not fatal.
    kill(guard.pid(), libc::SIGHUP);
    guard_wait_log(&guard, "SIGHUP");
    kill(guard.pid(), libc::SIGTERM);
    assert_eq!(guard.wait_exit(TIMEOUT), 0);
    drop(held);
}

#[test]
fn vigil_acts_on_signals_it_was_started_with_blocked() {
    // A launcher that execs vigil with SIGCHLD, SIGTERM and SIGUSR1 blocked (the mask
    // survives exec). vigil must still reap and restart its children, and stop on
    // SIGTERM: it acts on these signals, so it has to unblock them.
    let dir = TestDir::new();
    let inv = dir.join("invocations");
    let toml = format!(
        "children = [\"p\"]\n{}",
        process(
            &dir,
            "p",
            &[
                "--invocation-file",
                inv.to_str().unwrap(),
                "--fail-invocations",
                "1..1",
                "--on-term",
                "exit:0",
            ],
            "backoff = \"none\"",
        ),
    );
    let cfg = write_config(&dir, &toml);
    let stderr = dir.join("vigil-stderr");
    let mut cmd = Command::new(vigil());
    cmd.arg("run")
        .arg(&cfg)
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("VIGIL_TEST_EVENTS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    // SAFETY: sigprocmask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGCHLD, libc::SIGTERM, libc::SIGUSR1] {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut guard = Guard {
        child: cmd.spawn().expect("spawn vigil"),
        extra: Vec::new(),
        stderr,
    };
    let first = dir.wait_events("p's first exit", TIMEOUT, |e| e.count("EXIT", "p") == 1);
    let first = first.starts("p")[0];
    // The first incarnation exited 1: vigil must reap it (no zombie) and restart it.
    // Short waits: when this fails, it fails in 9 s rather than 30.
    const WAIT: Duration = Duration::from_secs(3);
    let vigil = guard.pid();
    let reaped = try_wait_for(WAIT, || {
        (!zombie_children(vigil).contains(&first)).then_some(())
    });
    let restarted = try_wait_for(WAIT, || {
        (dir.read_events().count("START", "p") == 2).then_some(())
    });
    kill(vigil, libc::SIGTERM);
    let stopped = try_wait_for(WAIT, || guard.child.try_wait().expect("try_wait"));
    assert!(
        reaped.is_some() && restarted.is_some() && stopped.is_some(),
        "started with SIGCHLD/SIGTERM blocked: reaped the crashed child: {}, restarted it: {}, \
         stopped on SIGTERM: {}\n--- vigil stderr ---\n{}",
        reaped.is_some(),
        restarted.is_some(),
        stopped.is_some(),
        guard.stderr_text()
    );
    assert_eq!(stopped.unwrap().code(), Some(0));
}

fn guard_wait_log(g: &Guard, what: &str) {
    try_wait_for(TIMEOUT, || g.stderr_text().contains(what).then_some(()))
        .unwrap_or_else(|| panic!("no `{what}` in vigil's log:\n{}", g.stderr_text()));
}

#[test]
fn sighup_and_sigusr1_do_not_disturb_the_tree() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(&dir, "a", &["--on-term", "exit:0", "--log-signals"], "")
    );
    let mut d = run_tree(&dir, &toml);
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
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let ev = dir.read_events();
    assert_eq!(
        ev.signals("a"),
        vec!["SIGTERM"],
        "nothing forwarded: {:?}",
        ev.lines()
    );
}

// ---------------------------------------------------------------------------------------
// Command line: JSON logs, VIGIL_CONFIG, vigil check

/// A minimal JSON value, enough to validate vigil's log lines.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, k: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(key, _)| key == k).map(|(_, v)| v),
            _ => None,
        }
    }

    fn str(&self, k: &str) -> Option<&str> {
        match self.get(k)? {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Parses one complete JSON document; `Err` says where it is not JSON.
fn parse_json(s: &str) -> Result<Json, String> {
    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.b.len() && b" \t\r\n".contains(&self.b[self.i]) {
                self.i += 1;
            }
        }
        fn err<T>(&self, what: &str) -> Result<T, String> {
            Err(format!("{what} at byte {}", self.i))
        }
        fn lit(&mut self, l: &str, v: Json) -> Result<Json, String> {
            if self.b[self.i..].starts_with(l.as_bytes()) {
                self.i += l.len();
                Ok(v)
            } else {
                self.err("bad literal")
            }
        }
        fn string(&mut self) -> Result<String, String> {
            self.i += 1; // opening quote
            let mut out = Vec::new();
            while self.i < self.b.len() {
                let c = self.b[self.i];
                self.i += 1;
                match c {
                    b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                    b'\\' => {
                        let e = *self.b.get(self.i).ok_or("truncated escape")?;
                        self.i += 1;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e),
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'u' => {
                                let h = self.b.get(self.i..self.i + 4).ok_or("short \\u")?;
                                let h = std::str::from_utf8(h).map_err(|e| e.to_string())?;
                                let n = u32::from_str_radix(h, 16).map_err(|e| e.to_string())?;
                                self.i += 4;
                                let ch = char::from_u32(n).unwrap_or('\u{fffd}');
                                out.extend(ch.to_string().bytes());
                            }
                            _ => return self.err("bad escape"),
                        }
                    }
                    c if c < 0x20 => return self.err("control character in string"),
                    c => out.push(c),
                }
            }
            self.err("unterminated string")
        }
        fn value(&mut self) -> Result<Json, String> {
            self.ws();
            let Some(&c) = self.b.get(self.i) else {
                return self.err("unexpected end");
            };
            match c {
                b'{' => {
                    self.i += 1;
                    let mut m = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Json::Obj(m));
                    }
                    loop {
                        self.ws();
                        if self.b.get(self.i) != Some(&b'"') {
                            return self.err("expected a key");
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.b.get(self.i) != Some(&b':') {
                            return self.err("expected :");
                        }
                        self.i += 1;
                        let v = self.value()?;
                        m.push((k, v));
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Json::Obj(m));
                            }
                            _ => return self.err("expected , or }"),
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    let mut v = Vec::new();
                    self.ws();
                    if self.b.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Json::Arr(v));
                    }
                    loop {
                        v.push(self.value()?);
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Json::Arr(v));
                            }
                            _ => return self.err("expected , or ]"),
                        }
                    }
                }
                b'"' => self.string().map(Json::Str),
                b't' => self.lit("true", Json::Bool(true)),
                b'f' => self.lit("false", Json::Bool(false)),
                b'n' => self.lit("null", Json::Null),
                _ => {
                    let start = self.i;
                    while self.i < self.b.len() && b"+-0123456789.eE".contains(&self.b[self.i]) {
                        self.i += 1;
                    }
                    std::str::from_utf8(&self.b[start..self.i])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .map(Json::Num)
                        .ok_or_else(|| format!("bad number at byte {start}"))
                }
            }
        }
    }
    let mut p = P {
        b: s.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.b.len() {
        return p.err("trailing characters");
    }
    Ok(v)
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(&dir, "a", &["--on-term", "exit:0"], "")
    );
    let cfg = write_config(&dir, &toml);
    let mut d = vigil_in(&dir)
        .args(["--log-format", "json", "run"])
        .arg(cfg)
        .spawn();
    let pid = wait_started(&dir, &["a"]).starts("a")[0];
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    let text = d.stderr_text();
    assert!(!text.contains('\u{1b}'), "no colour codes: {text}");
    let lines: Vec<Json> = text
        .lines()
        .map(|l| parse_json(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for (l, raw) in lines.iter().zip(text.lines()) {
        assert!(matches!(l, Json::Obj(_)), "{raw}");
        assert!(l.str("level").is_some(), "{raw}");
        assert!(l.str("message").is_some(), "{raw}");
        assert!(l.str("timestamp").is_some(), "{raw}");
    }
    let started = lines
        .iter()
        .find(|l| l.str("message") == Some("started"))
        .unwrap_or_else(|| panic!("no `started` line: {text}"));
    assert_eq!(started.str("child"), Some("a"));
    assert_eq!(started.get("pid"), Some(&Json::Num(f64::from(pid))));
    assert!(
        lines
            .iter()
            .any(|l| l.str("message") == Some("vigil exiting")),
        "{text}"
    );
}

#[test]
fn vigil_config_is_used_when_no_path_is_given() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\"]\n{}",
        process(&dir, "a", &["--on-term", "exit:0"], "")
    );
    let cfg = write_config(&dir, &toml);
    let mut d = vigil_in(&dir).env("VIGIL_CONFIG", &cfg).arg("run").spawn();
    wait_started(&dir, &["a"]);
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert_eq!(dir.read_events().signals("a"), vec!["SIGTERM"]);

    // An explicit path wins over VIGIL_CONFIG.
    let mut d = vigil_in(&dir)
        .env("VIGIL_CONFIG", dir.join("no-such.toml"))
        .arg("run")
        .arg(&cfg)
        .spawn();
    dir.wait_events("a second START", TIMEOUT, |e| e.count("START", "a") == 2);
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);

    // VIGIL_CONFIG pointing nowhere: a config error naming the file.
    let mut d = vigil_in(&dir)
        .env("VIGIL_CONFIG", dir.join("no-such.toml"))
        .arg("run")
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 78);
    assert!(log(&d).contains("no-such.toml"), "{}", log(&d));
}

#[test]
fn vigil_check_prints_the_tree_and_starts_nothing() {
    let dir = TestDir::new();
    let toml = format!(
        "strategy = \"one_for_all\"\nintensity = 7\nperiod = \"9s\"\nchildren = [\"a\", \"s\"]\n\n\
         [supervisor.s]\nstrategy = \"rest_for_one\"\nchildren = [\"b\"]\n{}{}",
        process(
            &dir,
            "a",
            &[],
            "restart = \"transient\"\nshutdown = \"250ms\""
        ),
        process(&dir, "b", &[], "stop_signal = \"INT\""),
    );
    let cfg = write_config(&dir, &toml);
    let out = Command::new(vigil())
        .arg("check")
        .arg(&cfg)
        .env_remove("VIGIL_CONFIG")
        .output()
        .expect("run vigil check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every effective setting, defaults filled in (the exact layout is the config
    // fixtures' business; here: the values and the nesting order).
    for want in [
        "one_for_all",
        "rest_for_one",
        "9s",
        "250ms",
        "transient",
        "permanent",
        "SIGINT",
        "SIGTERM",
        "5s",
        test_child().to_str().unwrap(),
    ] {
        assert!(stdout.contains(want), "no `{want}` in:\n{stdout}");
    }
    assert!(stdout.contains('7'), "{stdout}");
    let a = stdout.find("\"--name\", \"a\"").expect("a's command");
    let s = stdout.find("rest_for_one").unwrap();
    let b = stdout.find("\"--name\", \"b\"").expect("b's command");
    assert!(a < s && s < b, "a, then s with b inside:\n{stdout}");
    assert!(!dir.events().exists(), "nothing was started");

    // Through VIGIL_CONFIG, and an invalid file: 78 with every error.
    let out = Command::new(vigil())
        .arg("check")
        .env("VIGIL_CONFIG", &cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let bad = dir.write("bad.toml", "children = [\"x\"]\nintensity = -1\n");
    let out = Command::new(vigil())
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("nothing was started"), "{stderr}");
    assert!(stderr.contains("intensity"), "{stderr}");
}
