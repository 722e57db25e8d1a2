//! `vigil run` driven from outside with real processes, vigil not PID 1 (so it is a child
//! subreaper): restarts, backoff and intensity, a nested supervisor giving up, boot
//! failure in a nested supervisor, bad config, process groups, the children's environment
//! and initial state, vigil's own cwd and signal state, JSON logs, `VIGIL_CONFIG` and
//! `vigil check`. What vigil does as PID 1 too (stop order, shutdown grace, stop signals,
//! exit codes, orphans, the final sweep) is in tests/run_pid1.rs, each scenario run both
//! as a subreaper and as PID 1.
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

/// A vigil started by a test without [`Daemon`] (to set up its signal state or
/// descriptors before exec): on drop (a failing test), it and every descendant are
/// SIGKILLed.
struct Guard {
    child: Child,
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
        if std::thread::panicking() {
            eprintln!("--- vigil stderr ---\n{}", self.stderr_text());
        }
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
// Process groups

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
        skip_or_fail_on_ci(
            "children_run_as_the_configured_user_and_group",
            "the tests do not run as root",
            "`user` and `group` (setuid, setgid and dropping root's groups before exec) \
             go untested",
            "run the tests as root (as .ci/run does)",
        );
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

// ---------------------------------------------------------------------------------------
// Command line: JSON logs, VIGIL_CONFIG, vigil check

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
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 4, "{text}");
    for (l, raw) in lines.iter().zip(text.lines()) {
        assert!(l.is_object(), "{raw}");
        assert!(l["level"].is_string(), "{raw}");
        assert!(l["message"].is_string(), "{raw}");
        assert!(l["timestamp"].is_string(), "{raw}");
    }
    let started = lines
        .iter()
        .find(|l| l["message"] == "started")
        .unwrap_or_else(|| panic!("no `started` line: {text}"));
    assert_eq!(started["child"], "a");
    assert_eq!(started["pid"], pid);
    assert!(
        lines.iter().any(|l| l["message"] == "vigil exiting"),
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
