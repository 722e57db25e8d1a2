//! Tests of the test tooling itself: `vigil-test-child` driven directly (this test is its
//! parent and waits for it), and the `tests/common` harness (`Daemon` run on the test
//! child instead of vigil, events parsing, `/proc` helpers).
//!
//! Never: fixed sleeps. Every wait is a predicate with a deadline.

#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use common::*;

fn child(dir: &TestDir, args: &[&str]) -> Command {
    let mut c = Command::new(test_child());
    c.arg("--events")
        .arg(dir.events())
        .args(args)
        .stdin(Stdio::null());
    c
}

/// Waits for `c` with a deadline (our own child: `try_wait` is fine in tests).
fn wait_child(c: &mut ChildGuard) -> i32 {
    c.wait_exit(TIMEOUT)
}

fn run(dir: &TestDir, args: &[&str]) -> i32 {
    let mut c = ChildGuard::spawn(&mut child(dir, args));
    wait_child(&mut c)
}

/// Spawns the child and waits until its START event is written.
fn spawn_started(dir: &TestDir, name: &str, args: &[&str]) -> ChildGuard {
    let mut full = vec!["--name", name];
    full.extend_from_slice(args);
    let c = ChildGuard::spawn(&mut child(dir, &full));
    let pid = c.id() as i32;
    dir.wait_events("START", TIMEOUT, |e| e.starts(name).contains(&pid));
    c
}

#[test]
fn exit_code_and_event_format() {
    let dir = TestDir::new();
    let mut c = ChildGuard::spawn(&mut child(
        &dir,
        &["--name", "a", "--exit-after", "0", "--code", "7"],
    ));
    let pid = c.id() as i32;
    assert_eq!(wait_child(&mut c), 7);
    let ev = dir.read_events();
    assert_eq!(ev.lines().len(), 2, "{:?}", ev.lines());
    let start = ev.first("START", "a").expect("START");
    assert_eq!(start.pid, pid);
    // START <name> <pid> <pgid> <ppid> <t_ms>; std::process keeps our process group.
    assert_eq!(
        start.args,
        vec![
            nix::unistd::getpgrp().as_raw().to_string(),
            std::process::id().to_string()
        ]
    );
    assert_eq!(ev.exits("a"), vec![(pid, 7)]);
    assert!(ev.position("START", "a") < ev.position("EXIT", "a"));
    assert!(start.t_ms <= ev.first("EXIT", "a").unwrap().t_ms);
}

#[test]
fn exit_after_delay_runs_until_deadline() {
    let dir = TestDir::new();
    assert_eq!(
        run(&dir, &["--exit-after", "50", "--code", "3"]),
        3,
        "exit after 50 ms"
    );
    let ev = dir.read_events();
    let t0 = ev.first("START", "child").unwrap().t_ms;
    let t1 = ev.first("EXIT", "child").unwrap().t_ms;
    assert!(t1 - t0 >= 49, "exited after {} ms", t1 - t0);
}

#[test]
fn kill_self_dies_by_signal() {
    let dir = TestDir::new();
    assert_eq!(
        run(&dir, &["--exit-after", "0", "--kill-self", "KILL"]),
        128 + 9
    );
    assert_eq!(
        run(&dir, &["--exit-after", "0", "--kill-self", "SIGUSR1"]),
        128 + libc::SIGUSR1
    );
    let ev = dir.read_events();
    assert_eq!(ev.count("KILLSELF", "child"), 2);
    assert_eq!(ev.count("EXIT", "child"), 0);
}

#[test]
fn default_sigterm_kills_without_logging() {
    let dir = TestDir::new();
    let mut c = spawn_started(&dir, "t", &[]);
    kill(c.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut c), 128 + libc::SIGTERM);
    assert!(dir.read_events().signals("t").is_empty());
}

#[test]
fn on_term_exit_code() {
    let dir = TestDir::new();
    let mut c = spawn_started(&dir, "t", &["--on-term", "exit:5"]);
    kill(c.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut c), 5);
    let ev = dir.read_events();
    assert_eq!(ev.signals("t"), vec!["SIGTERM"]);
    assert!(ev.position("SIGNAL", "t") < ev.position("EXIT", "t"));
}

#[test]
fn on_term_ignore_keeps_running() {
    let dir = TestDir::new();
    let mut c = spawn_started(&dir, "t", &["--on-term", "ignore"]);
    let pid = c.id() as i32;
    // One at a time: two pending SIGTERMs would coalesce into one delivery.
    kill(pid, libc::SIGTERM);
    dir.wait_events("first SIGTERM logged", TIMEOUT, |e| {
        e.signals("t").len() == 1
    });
    kill(pid, libc::SIGTERM);
    dir.wait_events("second SIGTERM logged", TIMEOUT, |e| {
        e.signals("t").len() == 2
    });
    assert!(c.try_wait().unwrap().is_none(), "still running");
    kill(pid, libc::SIGKILL);
    assert_eq!(wait_child(&mut c), 128 + 9);
}

#[test]
fn on_term_delay_then_exit_zero() {
    let dir = TestDir::new();
    let mut c = spawn_started(&dir, "t", &["--on-term", "delay:100"]);
    kill(c.id() as i32, libc::SIGTERM);
    assert_eq!(wait_child(&mut c), 0);
    let ev = dir.read_events();
    let sig = ev.first("SIGNAL", "t").unwrap().t_ms;
    let exit = ev.first("EXIT", "t").unwrap().t_ms;
    assert!(exit - sig >= 99, "exited {} ms after SIGTERM", exit - sig);
}

#[test]
fn on_term_die_and_on_int() {
    let dir = TestDir::new();
    let mut c = spawn_started(&dir, "t", &["--on-term", "die", "--on-int", "ignore"]);
    let pid = c.id() as i32;
    kill(pid, libc::SIGINT);
    dir.wait_events("SIGINT logged", TIMEOUT, |e| e.signals("t") == ["SIGINT"]);
    kill(pid, libc::SIGTERM);
    assert_eq!(wait_child(&mut c), 128 + libc::SIGTERM);
    assert_eq!(dir.read_events().signals("t"), vec!["SIGINT", "SIGTERM"]);
}

#[test]
fn log_signals_records_every_catchable_signal() {
    let dir = TestDir::new();
    let mut c = spawn_started(&dir, "s", &["--log-signals"]);
    let pid = c.id() as i32;
    let mut expected = Vec::new();
    for sig in 1..=31 {
        if matches!(
            sig,
            libc::SIGKILL | libc::SIGSTOP | libc::SIGCHLD | libc::SIGTERM | libc::SIGINT
        ) {
            continue;
        }
        expected.push(sig);
    }
    expected.push(libc::SIGRTMIN());
    expected.push(libc::SIGRTMIN() + 3);
    expected.push(libc::SIGRTMAX());
    // One at a time: standard signals sent together could coalesce.
    for (i, &sig) in expected.iter().enumerate() {
        kill(pid, sig);
        dir.wait_events("signal logged", TIMEOUT, |e| e.signals("s").len() == i + 1);
    }
    let got = dir.read_events().signals("s");
    assert!(got.contains(&"SIGHUP".to_string()), "{got:?}");
    assert!(got.contains(&"SIGUSR1".to_string()), "{got:?}");
    assert!(got.contains(&"SIGRTMIN".to_string()), "{got:?}");
    assert!(got.contains(&"SIGRTMIN+3".to_string()), "{got:?}");
    let max = format!("SIGRTMIN+{}", libc::SIGRTMAX() - libc::SIGRTMIN());
    assert!(got.contains(&max), "{got:?}");
    // SIGTERM is not handled without --on-term.
    kill(pid, libc::SIGTERM);
    assert_eq!(wait_child(&mut c), 128 + libc::SIGTERM);
}

#[test]
fn fail_invocations_counts_across_runs() {
    let dir = TestDir::new();
    let counter = dir.join("count");
    let counter = counter.to_str().unwrap();
    let codes: Vec<i32> = (0..6)
        .map(|_| {
            run(
                &dir,
                &[
                    "--invocation-file",
                    counter,
                    "--fail-invocations",
                    "2..4",
                    "--exit-after",
                    "0",
                ],
            )
        })
        .collect();
    assert_eq!(codes, vec![0, 1, 1, 1, 0, 0]);
    let ev = dir.read_events();
    assert_eq!(ev.starts("child").len(), 6);
    let n: Vec<String> = ev
        .of("INVOCATION", "child")
        .iter()
        .map(|e| e.args[0].clone())
        .collect();
    assert_eq!(n, vec!["1", "2", "3", "4", "5", "6"]);
}

#[test]
fn reports_describe_inherited_state() {
    let dir = TestDir::new();
    let mut c = child(
        &dir,
        &[
            "--report-sigstate",
            "--report-fds",
            "--report-cwd",
            "--report-ids",
            "--exit-after",
            "0",
        ],
    );
    c.current_dir(dir.path());
    // SAFETY: signal(2) and close_range(2) are async-signal-safe; they run in the forked
    // child before exec. close_range drops fds the test runner itself may have inherited.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let mut c = ChildGuard::spawn(&mut c);
    assert_eq!(wait_child(&mut c), 0);
    let ev = dir.read_events();
    let st = ev.first("SIGSTATE", "child").expect("SIGSTATE");
    assert_eq!(st.args[0], "blk=0000000000000000");
    let ign = u64::from_str_radix(st.args[1].strip_prefix("ign=").unwrap(), 16).unwrap();
    assert_ne!(
        ign & (1 << (libc::SIGUSR1 - 1)),
        0,
        "SIGUSR1 ignored: {ign:x}"
    );
    assert_eq!(ev.first("FDS", "child").unwrap().args, vec!["0,1,2"]);
    let cwd = dir.path().canonicalize().unwrap();
    assert_eq!(
        ev.first("CWD", "child").unwrap().args,
        vec![cwd.to_str().unwrap()]
    );
    let ids = &ev.first("IDS", "child").unwrap().args;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    assert_eq!(ids[0], format!("uid={uid}"));
}

#[test]
fn orphans_outlive_their_parent() {
    let dir = TestDir::new();
    assert_eq!(
        run(
            &dir,
            &[
                "--orphans",
                "3",
                "--orphan-code",
                "4",
                "--orphan-exit-after",
                "10",
                "--exit-after",
                "0",
            ]
        ),
        0
    );
    let ev = dir.wait_events("3 orphans exited", TIMEOUT, |e| {
        e.count("ORPHAN_EXIT", "child") == 3
    });
    assert_eq!(ev.count("ORPHAN", "child"), 3);
    let child_pid = ev.starts("child")[0];
    for e in ev.of("ORPHAN_EXIT", "child") {
        assert_eq!(e.args[0], "4");
        assert_ne!(e.args[1], child_pid.to_string(), "reparented away");
    }
}

#[test]
fn orphans_land_on_pid1_of_a_namespace() {
    if !pid_namespaces_available("orphans_land_on_pid1_of_a_namespace") {
        return;
    }
    let dir = TestDir::new();
    // The test child is PID 1 in the namespace, so it adopts the orphans itself.
    let mut d = Daemon::builder()
        .program(test_child())
        .in_pid_namespace(true)
        .args(["--name", "init", "--events"])
        .arg(dir.events())
        .args(["--orphan-storm", "5", "--on-term", "exit:0"])
        .spawn();
    let ev = dir.wait_events("5 orphans exited", TIMEOUT, |e| {
        e.count("ORPHAN_EXIT", "init") == 5
    });
    for e in ev.of("ORPHAN_EXIT", "init") {
        assert_eq!(e.args[1], "1", "adopted by PID 1: {e:?}");
    }
    assert_eq!(ev.of("START", "init")[0].pid, 1);
    // The orphans are zombies of the (non-reaping) test child.
    let init = d.vigil_pid();
    d.wait_for("5 zombies under PID 1", TIMEOUT, || {
        (zombie_children(init).len() == 5).then_some(())
    });
    d.signal_vigil(libc::SIGTERM);
    // util-linux unshare mirrors the child's exit status.
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

#[test]
fn grandchildren_process_groups() {
    let dir = TestDir::new();
    let mut c = spawn_started(
        &dir,
        "g",
        &["--group-grandchild", "--setsid-grandchild", "forever"],
    );
    let pid = c.id() as i32;
    let ev = dir.wait_events("2 grandchildren", TIMEOUT, |e| {
        e.count("GRANDCHILD", "g") == 2
    });
    let pgid = ev.first("START", "g").unwrap().args[0].clone();
    let gc = ev.of("GRANDCHILD", "g");
    let in_group: Vec<_> = gc.iter().filter(|e| e.args[0] == pgid).collect();
    let own_session: Vec<_> = gc
        .iter()
        .filter(|e| e.args[0] == e.pid.to_string())
        .collect();
    assert_eq!((in_group.len(), own_session.len()), (1, 1), "{gc:?}");
    assert_eq!(children_of(pid).len(), 2);
    for e in gc {
        kill(e.pid, libc::SIGKILL);
    }
    kill(pid, libc::SIGKILL);
    wait_child(&mut c);
}

#[test]
fn fork_kill_loop_reaps_everything() {
    let dir = TestDir::new();
    assert_eq!(
        run(&dir, &["--fork-kill-loop", "50", "--exit-after", "0"]),
        0
    );
    assert_eq!(
        dir.read_events().first("FORKKILL", "child").unwrap().args,
        vec!["50"]
    );
}

#[test]
fn flood_writes_numbered_lines() {
    let dir = TestDir::new();
    let mut c = ChildGuard(
        child(
            &dir,
            &[
                "--name",
                "f",
                "--flood",
                "100000",
                "--line-len",
                "50",
                "--exit-after",
                "0",
            ],
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(wait_child(&mut c), 0);
    assert!(out.len() >= 100_000 && out.len() < 100_050, "{}", out.len());
    for (i, line) in out.lines().enumerate() {
        assert_eq!(line.len(), 49);
        assert!(line.starts_with(&format!("f {i} x")), "{line}");
    }
}

#[test]
fn readiness_fd_and_touch() {
    let dir = TestDir::new();
    // O_CLOEXEC: children of concurrent tests must not inherit the write end (no EOF).
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let touch = dir.join("ready");
    let mut cmd = child(&dir, &["--ready-fd", "3", "--ready-after", "20", "--touch"]);
    cmd.arg(&touch);
    let wfd = w.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; runs in the forked child before exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut c = ChildGuard::spawn(&mut cmd);
    drop(w);
    let mut r = std::fs::File::from(r);
    let mut got = String::new();
    // EOF once the child closed fd 3 after writing.
    r.read_to_string(&mut got).unwrap();
    assert_eq!(got, "\n");
    assert!(touch.exists());
    let ev = dir.read_events();
    let start = ev.first("START", "child").unwrap().t_ms;
    assert!(ev.first("READY", "child").unwrap().t_ms - start >= 19);
    kill(c.id() as i32, libc::SIGKILL);
    wait_child(&mut c);
}

#[test]
fn events_env_var_is_the_default() {
    let dir = TestDir::new();
    let mut c = ChildGuard(
        Command::new(test_child())
            .env("VIGIL_TEST_EVENTS", dir.events())
            .args(["--name", "env", "--exit-after", "0"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(wait_child(&mut c), 0);
    assert_eq!(dir.read_events().count("EXIT", "env"), 1);
}

#[test]
fn usage_errors_exit_2() {
    let dir = TestDir::new();
    let mut c = ChildGuard(
        child(&dir, &["--bogus"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert_eq!(wait_child(&mut c), 2);
}

#[test]
fn daemon_harness_captures_and_kills() {
    let dir = TestDir::new();
    let mut d = Daemon::builder()
        .program(test_child())
        .env("VIGIL_TEST_EVENTS", dir.events())
        .args(["--name", "d", "--group-grandchild", "--flood", "100"])
        .spawn();
    let ev = dir.wait_events("grandchild", TIMEOUT, |e| e.count("GRANDCHILD", "d") == 1);
    let gc = ev.first("GRANDCHILD", "d").unwrap().pid;
    assert!(d.is_running());
    // The child writes its GRANDCHILD event before its flood: wait for the output.
    d.wait_for("the flood on stdout", TIMEOUT, || {
        d.stdout_text().starts_with("d 0 ").then_some(())
    });
    // Read /proc until it settles: a scan can catch a process mid-fork or mid-exit.
    wait_for("the grandchild to be the only descendant", TIMEOUT, || {
        (descendants(d.pid()) == vec![gc]).then_some(())
    });
    d.kill_all();
    assert!(!d.is_running());
    wait_for("grandchild gone", TIMEOUT, || (!is_alive(gc)).then_some(()));
}

#[test]
fn daemon_wait_exit_reports_code_and_signal() {
    let mut d = Daemon::builder()
        .program(test_child())
        .args(["--exit-after", "0", "--code", "9"])
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 9);
    let mut d = Daemon::builder()
        .program(test_child())
        .args(["--exit-after", "0", "--kill-self", "HUP"])
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 128 + libc::SIGHUP);
}

#[test]
fn zombie_children_sees_unreaped_exits() {
    let dir = TestDir::new();
    let mut c = ChildGuard::spawn(&mut child(&dir, &["--exit-after", "0"]));
    let pid = c.id() as i32;
    let me = std::process::id() as i32;
    wait_for("the child to become our zombie", TIMEOUT, || {
        zombie_children(me).contains(&pid).then_some(())
    });
    assert_eq!(wait_child(&mut c), 0);
    assert!(!zombie_children(me).contains(&pid));
}
