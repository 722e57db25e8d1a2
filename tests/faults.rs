//! Fault injection of the reliability suite (RELIABILITY.md, "Fault injection"): spawn
//! failures of every kind, at boot and later; descriptor and process limits reached;
//! children that ignore SIGTERM, stop themselves, escape their process group, close or
//! keep stdout, exit during vigil's shutdown, or flood a stdout nobody reads; vigil's own
//! stderr going away; signal storms during a restart storm; tight descriptor and memory
//! limits.
//!
//! What each must show: a clear log line, a failed start handled by the engine (exit 69
//! at boot, a counted failed restart later), and never a crash or hang of vigil: it
//! exits with one of its own codes, and nothing is left behind. Sizes of the storms:
//! `VIGIL_STORM_SIGNALS` (signals of each kind, default 2000). Tests that need root,
//! cgroups or `prlimit`/`setpriv` say so on stderr and return when those are missing.

#![allow(clippy::disallowed_methods)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A hang guard for whole scenarios (2 shared cores, debug builds).
const LONG: Duration = Duration::from_secs(60);

fn run_tree(dir: &TestDir, toml: &str) -> Daemon {
    let cfg = dir.write("vigil.toml", toml);
    vigil_in(dir)
        .program(vigil_bin())
        .arg("run")
        .arg(cfg)
        .spawn()
}

/// Waits until vigil's log contains `text`; returns the log.
fn wait_log(d: &Daemon, text: &str, timeout: Duration) -> String {
    d.wait_for(&format!("`{text}` in vigil's log"), timeout, || {
        let l = log(d);
        l.contains(text).then_some(l)
    })
}

/// Number of log lines containing `text`.
fn log_count(d: &Daemon, text: &str) -> usize {
    log(d).lines().filter(|l| l.contains(text)).count()
}

/// SIGTERM to vigil: exit 0 and no process left below it.
fn stop_clean(d: &mut Daemon) {
    let pid = d.pid();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(LONG), 0, "{}", log(d));
    let left: Vec<i32> = descendants(pid)
        .into_iter()
        .filter(|&p| is_alive(p))
        .collect();
    assert!(left.is_empty(), "left after vigil exited: {left:?}");
}

/// Whether an exit code is one vigil chose (not a crash: a signal or a Rust panic).
fn is_vigil_code(code: i32) -> bool {
    [0, 2, 69, 70, 75, 78].contains(&code)
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------
// Spawn failures

/// Each kind of spawn failure during the initial start: exit 69, a log line naming the
/// child, what failed and the fix; the sibling started before it is stopped.
#[test]
fn spawn_failures_at_boot_exit_69_with_a_clear_line() {
    let probe = TestDir::new();
    let not_exec = probe.write("not-executable", "#!/bin/sh\nexit 0\n");
    fs::set_permissions(&not_exec, fs::Permissions::from_mode(0o644)).unwrap();
    let not_exec = not_exec.display().to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing binary",
            "command = [\"/no/such/dir/vigil-missing\"]".into(),
            "command `/no/such/dir/vigil-missing` not found",
        ),
        (
            "missing binary in PATH",
            "command = [\"vigil-no-such-program\"]".into(),
            "command `vigil-no-such-program` not found in PATH",
        ),
        (
            "not executable",
            format!("command = [{}]", toml_str(&not_exec)),
            "cannot be executed (Permission denied",
        ),
        (
            "bad cwd",
            format!(
                "command = {}\ncwd = \"/no/such/dir/vigil-cwd\"",
                child_cmd(&probe, "bad", false, &[])
            ),
            "working directory `/no/such/dir/vigil-cwd` is not usable",
        ),
        (
            "unknown user",
            format!(
                "command = {}\nuser = \"no-such-user-vigil\"",
                child_cmd(&probe, "bad", false, &[])
            ),
            "unknown user `no-such-user-vigil`",
        ),
        (
            "unknown group",
            format!(
                "command = {}\ngroup = \"no-such-group-vigil\"",
                child_cmd(&probe, "bad", false, &[])
            ),
            "unknown group `no-such-group-vigil`",
        ),
    ];
    for (what, bad, expected) in cases {
        let dir = TestDir::new();
        let toml = format!(
            "children = [\"ok\", \"bad\"]\n{}\n[process.bad]\n{bad}\n",
            process(&dir, "ok", &[], "")
        );
        let mut d = run_tree(&dir, &toml);
        let code = d.wait_exit(LONG);
        let l = log(&d);
        assert_eq!(code, 69, "{what}: exit code\n{l}");
        let line = l
            .lines()
            .find(|x| x.contains(expected))
            .unwrap_or_else(|| panic!("{what}: no line with `{expected}`\n{l}"));
        assert!(
            line.contains("ERROR") && line.contains("bad:"),
            "{what}: {line}"
        );
        assert!(l.contains("initial start failed"), "{what}\n{l}");
        // `ok` was started, then stopped (perhaps before it wrote START).
        let started = logged(&l, "started");
        assert_eq!(logged_names(&l, "started"), strs(&["ok"]), "{what}\n{l}");
        assert!(!is_alive(started[0].1), "{what}: ok left running");
    }
}

/// Spawn failures after the initial start are failed restart attempts: logged, counted
/// in the child's restarts, retried after its backoff, and the child comes back once the
/// cause is fixed.
#[test]
fn spawn_failures_later_are_counted_and_retried() {
    let dir = TestDir::new();
    let bin = dir.join("bin/w");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(test_child(), &bin).unwrap();
    let work = dir.join("work");
    fs::create_dir_all(&work).unwrap();
    let events = dir.events().display().to_string();
    let toml = format!(
        "intensity = 1000\nperiod = \"60s\"\nchildren = [\"w\"]\n[process.w]\n\
         command = [{}, \"--events\", {}, \"--name\", \"w\"]\ncwd = {}\n\
         backoff = {{ initial = \"20ms\", max = \"200ms\" }}\n",
        toml_str(&bin.display().to_string()),
        toml_str(&events),
        toml_str(&work.display().to_string()),
    );
    let mut d = run_tree(&dir, &toml);
    let socket = d.socket().to_path_buf();
    wait_started(&dir, &["w"]);
    type Break = Box<dyn Fn()>;
    let b1 = bin.clone();
    let b2 = bin.clone();
    let b3 = bin.clone();
    let b4 = bin.clone();
    let w1 = work.clone();
    let w2 = work.clone();
    let child_bin = test_child();
    let cases: Vec<(&str, Break, Break, &str)> = vec![
        (
            "binary removed",
            Box::new(move || fs::remove_file(&b1).unwrap()),
            Box::new(move || {
                fs::copy(&child_bin, &b2).unwrap();
            }),
            "not found",
        ),
        (
            "execute permission removed",
            Box::new(move || fs::set_permissions(&b3, fs::Permissions::from_mode(0o644)).unwrap()),
            Box::new(move || fs::set_permissions(&b4, fs::Permissions::from_mode(0o755)).unwrap()),
            "cannot be executed",
        ),
        (
            "cwd removed",
            Box::new(move || fs::remove_dir(&w1).unwrap()),
            Box::new(move || fs::create_dir(&w2).unwrap()),
            "is not usable",
        ),
    ];
    for (what, break_it, fix_it, line) in cases {
        let ev = dir.read_events();
        let starts = ev.count("START", "w");
        let pid = *ev.starts("w").last().unwrap();
        let failures_before = log_count(&d, line);
        let restarts_before = status_node(&status_json_of(&socket), "w")["restarts"]
            .as_u64()
            .unwrap();
        break_it();
        kill(pid, libc::SIGKILL);
        // At least two failed attempts: the engine retries after the backoff.
        d.wait_for(&format!("{what}: two failed restarts"), LONG, || {
            (log_count(&d, line) >= failures_before + 2).then_some(())
        });
        let st = status_json_of(&socket);
        let node = status_node(&st, "w");
        assert!(
            node["restarts"].as_u64().unwrap() >= restarts_before + 2,
            "{what}: failed restarts are counted: {node}"
        );
        assert!(
            node["last_exit"]
                .as_str()
                .is_some_and(|s| s.contains("failed to start")),
            "{what}: {node}"
        );
        fix_it();
        dir.wait_events(&format!("{what}: w back"), LONG, |e| {
            e.count("START", "w") == starts + 1
        });
        assert!(d.is_running(), "{what}");
    }
    stop_clean(&mut d);
}

// ---------------------------------------------------------------------------------------
// Descriptor limits

/// vigil under `prlimit --nofile=N` for every N from 4 (below that the dynamic loader
/// itself fails) to 16: it exits with one of its own codes and an ERROR line saying what
/// ran out, or it runs the tree and stops cleanly. Never a crash: before tokio's unused
/// signal driver was dropped, N = 6 and 7 aborted vigil with a panic in tokio.
#[test]
fn descriptor_limit_at_boot_is_a_clean_failure() {
    if !have("prlimit") {
        eprintln!("skipping: prlimit is not installed");
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(&dir, "a", &[], ""),
        process(&dir, "b", &[], "")
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut outcomes = Vec::new();
    for n in 4..=16 {
        let limit = format!("--nofile={n}:{n}");
        let mut d = vigil_in(&dir)
            .program("prlimit")
            .arg(&limit)
            .arg(vigil_bin())
            .arg("run")
            .arg(&cfg)
            .spawn();
        let started = d.wait_for(&format!("nofile {n}: exit or a full start"), LONG, || {
            if d.stderr_text().contains("all children started") {
                return Some(true);
            }
            (!is_alive(d.pid())).then_some(false)
        });
        if started {
            d.signal_vigil(libc::SIGTERM);
        }
        let code = d.wait_exit(LONG);
        let l = log(&d);
        assert!(is_vigil_code(code), "nofile {n}: exit {code}\n{l}");
        if code != 0 {
            assert!(
                l.lines()
                    .any(|x| x.contains("ERROR") && x.contains("Too many open files")),
                "nofile {n}: exit {code} without a line naming the cause\n{l}"
            );
        }
        outcomes.push((n, code));
    }
    eprintln!("[nofile at boot] (limit, exit code): {outcomes:?}");
    assert_eq!(
        outcomes.last().map(|o| o.1),
        Some(0),
        "16 descriptors suffice"
    );
    assert!(
        outcomes.iter().any(|o| o.1 == 69),
        "a spawn that runs out of descriptors exits 69: {outcomes:?}"
    );
}

/// Descriptors run out later: a restart fails with EMFILE, is logged and counted, and
/// succeeds once descriptors are there again; the tree runs on. (Clients cannot take
/// them any more, see tests/hostile_clients.rs: vigil's soft limit is lowered under it
/// with `prlimit --pid` to its lowest free descriptor, then raised back.)
#[test]
fn descriptor_limit_later_is_a_counted_failed_restart() {
    if !have("prlimit") {
        eprintln!("skipping: prlimit is not installed");
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 1000\nperiod = \"60s\"\nchildren = [\"w\"]\n{}",
        process(
            &dir,
            "w",
            &[],
            "backoff = { initial = \"20ms\", max = \"100ms\" }"
        )
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program("prlimit")
        .arg("--nofile=256:256")
        .arg(vigil_bin())
        .arg("run")
        .arg(&cfg)
        .spawn();
    let socket = d.socket().to_path_buf();
    let ev = wait_started(&dir, &["w"]);
    d.wait_for("the socket", TIMEOUT, || socket.exists().then_some(()));
    let pid = d.pid().to_string();
    let set_soft = |n: usize| {
        let ok = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={n}:")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "prlimit --pid {pid} --nofile={n}:");
    };
    // The lowest descriptor vigil does not use: with the soft limit there, vigil can
    // open nothing more.
    let open: std::collections::HashSet<usize> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("vigil's descriptors")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let lowest_free = (0..).find(|n| !open.contains(n)).unwrap();
    set_soft(lowest_free);
    kill(ev.starts("w")[0], libc::SIGKILL);
    d.wait_for("two restarts failing for lack of descriptors", LONG, || {
        (log_count(&d, "out of resources (Too many open files") >= 2).then_some(())
    });
    set_soft(256);
    dir.wait_events("w back once descriptors are there", LONG, |e| {
        e.count("START", "w") == 2
    });
    let st = status_json_of(&socket);
    let restarts = status_node(&st, "w")["restarts"].as_u64().unwrap();
    assert!(
        restarts >= 3,
        "the kill and the failed attempts count: {st}"
    );
    stop_clean(&mut d);
}

/// `ulimit -n 64` with 200 children: vigil holds no descriptor per child, so the tree
/// starts, is stopped and started through the socket, and stops cleanly.
#[test]
fn low_descriptor_limit_with_many_children() {
    if !have("prlimit") {
        eprintln!("skipping: prlimit is not installed");
        return;
    }
    let dir = TestDir::new();
    let n = 200;
    let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let mut toml = format!(
        "children = [\"pool\"]\n[supervisor.pool]\nchildren = {}\n",
        toml_array(&names)
    );
    for name in &names {
        toml += &process(&dir, name, &[], "");
    }
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program("prlimit")
        .arg("--nofile=64:64")
        .arg(vigil_bin())
        .arg("run")
        .arg(&cfg)
        .spawn();
    let socket = d.socket().to_path_buf();
    d.wait_for("the tree to be ready", LONG, || {
        (vigil_client(&socket, &["wait-ready", "--timeout", "1s"]).0 == 0).then_some(())
    });
    let fds = proc_usage(d.pid()).unwrap().fds;
    eprintln!("[nofile 64] {n} children running, vigil holds {fds} descriptors");
    for verb in ["stop", "start", "restart"] {
        let (code, out, err) = vigil_client(&socket, &[verb, "pool"]);
        assert_eq!(code, 0, "{verb} pool: {out}{err}");
    }
    // Three runs of each (a child stopped at once may not have written START yet).
    let l = log(&d);
    let started = logged_names(&l, "started");
    for name in &names {
        assert_eq!(started.iter().filter(|n| *n == name).count(), 3, "{name}");
    }
    stop_clean(&mut d);
}

// ---------------------------------------------------------------------------------------
// Process limits

/// A cgroup v1 (or v2) directory made for one test, removed on drop.
struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// A new cgroup under the hierarchy with `controller`, below this process's own
    /// cgroup there; `None` (with the reason on stderr) when that is not possible.
    fn new(controller: &str, test: &str) -> Option<Cgroup> {
        if !is_root() {
            eprintln!("skipping {test}: needs root for a cgroup");
            return None;
        }
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let v1 = Path::new("/sys/fs/cgroup").join(controller);
        let (base, rel) = if v1.join("cgroup.procs").exists() {
            let rel = own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                ctrls
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| path.to_string())
            })?;
            (v1, rel)
        } else {
            let unified = Path::new("/sys/fs/cgroup");
            let ctrls = fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
            if !ctrls.split_whitespace().any(|c| c == controller) {
                eprintln!("skipping {test}: no {controller} cgroup controller here");
                return None;
            }
            let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            (unified.to_path_buf(), rel)
        };
        let path = base
            .join(rel.trim_start_matches('/'))
            .join(format!("vigil-test-{}-{test}", std::process::id()));
        match fs::create_dir(&path) {
            Ok(()) => Some(Cgroup { path }),
            Err(e) => {
                eprintln!(
                    "skipping {test}: cannot create the cgroup {}: {e}",
                    path.display()
                );
                None
            }
        }
    }

    fn set(&self, file: &str, value: &str) {
        fs::write(self.path.join(file), value)
            .unwrap_or_else(|e| panic!("write {value} to {file}: {e}"));
    }

    fn get(&self, file: &str) -> String {
        fs::read_to_string(self.path.join(file)).unwrap_or_default()
    }

    fn add(&self, pid: i32) {
        self.set("cgroup.procs", &pid.to_string());
    }

    /// A daemon builder that runs vigil inside this cgroup (a shell moves itself in,
    /// then execs vigil).
    fn vigil_in(&self, dir: &TestDir) -> DaemonBuilder {
        vigil_in(dir)
            .program("sh")
            .arg("-c")
            .arg("echo $$ > \"$0\" && exec \"$@\"")
            .arg(self.path.join("cgroup.procs"))
            .arg(vigil_bin())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Everything in it is gone by now (the Daemon was dropped first); retry briefly
        // while the kernel finishes removing exited tasks.
        try_wait_for(Duration::from_secs(5), || {
            fs::remove_dir(&self.path).is_ok().then_some(())
        });
    }
}

/// A pids cgroup at its limit during the initial start: the spawn fails with EAGAIN,
/// exit 69 with a line saying the limit was reached.
#[test]
fn process_limit_at_boot_exits_69() {
    let Some(cg) = Cgroup::new("pids", "pids-boot") else {
        return;
    };
    // vigil's two threads (the loop, vigil-stderr) and two children.
    cg.set("pids.max", "4");
    let dir = TestDir::new();
    let names = ["a", "b", "c", "d"];
    let mut toml = format!("children = {}\n", toml_array(&strs(&names)));
    for n in names {
        toml += &process(&dir, n, &[], "");
    }
    let cfg = dir.write("vigil.toml", &toml);
    {
        let mut d = cg.vigil_in(&dir).arg("run").arg(&cfg).spawn();
        assert_eq!(d.wait_exit(LONG), 69, "{}", log(&d));
        let l = log(&d);
        assert!(
            l.lines().any(|x| x.contains("ERROR")
                && x.contains("c: cannot start")
                && x.contains("out of resources (Resource temporarily unavailable")),
            "{l}"
        );
        // `a` and `b` were started, then stopped (perhaps before they wrote START).
        let started = logged(&l, "started");
        assert_eq!(logged_names(&l, "started"), strs(&["a", "b"]), "{l}");
        for (n, pid) in started {
            assert!(!is_alive(pid), "{n} left running");
        }
    }
}

/// The pids limit reached later (the test moves two sleepers into vigil's cgroup, past
/// `pids.max`, which the kernel allows for moves): restarts fail with EAGAIN, are logged
/// and counted; once the sleepers are gone the child comes back.
#[test]
fn process_limit_later_is_a_counted_failed_restart() {
    let Some(cg) = Cgroup::new("pids", "pids-later") else {
        return;
    };
    cg.set("pids.max", "3");
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 1000\nperiod = \"60s\"\nchildren = [\"w\"]\n{}",
        process(
            &dir,
            "w",
            &[],
            "backoff = { initial = \"20ms\", max = \"100ms\" }"
        )
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = cg.vigil_in(&dir).arg("run").arg(&cfg).spawn();
    let socket = d.socket().to_path_buf();
    let ev = wait_started(&dir, &["w"]);
    let mut sleepers: Vec<ChildGuard> = (0..2)
        .map(|_| ChildGuard::spawn(Command::new(test_child()).args(["--name", "sleeper"])))
        .collect();
    for s in &sleepers {
        cg.add(s.pid());
    }
    kill(ev.starts("w")[0], libc::SIGKILL);
    d.wait_for("two restarts failing at the pids limit", LONG, || {
        (log_count(&d, "out of resources (Resource temporarily unavailable") >= 2).then_some(())
    });
    assert!(d.is_running());
    for s in &mut sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
    dir.wait_events("w back below the limit", LONG, |e| {
        e.count("START", "w") == 2
    });
    let st = status_json_of(&socket);
    assert!(
        status_node(&st, "w")["restarts"].as_u64().unwrap() >= 3,
        "{st}"
    );
    stop_clean(&mut d);
}

/// `RLIMIT_NPROC` (`prlimit --nproc`) for a vigil running as an unprivileged uid (the
/// kernel does not enforce it for root): the initial start fails with 69 and a clear line.
#[test]
fn nproc_limit_as_non_root_at_boot_exits_69() {
    if !is_root() || !have("setpriv") || !have("prlimit") {
        eprintln!("skipping: needs root, setpriv and prlimit to run vigil as another uid");
        return;
    }
    // A uid nothing else on the machine runs as, so its process count is vigil's alone.
    let uid = "64123";
    let dir = TestDir::new();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let names = ["a", "b", "c", "d"];
    let mut toml = format!(
        "children = {}\n[control]\nenabled = false\n",
        toml_array(&strs(&names))
    );
    for n in names {
        toml += &process_with(&dir, n, false, &[], "");
    }
    let cfg = dir.write("vigil.toml", &toml);
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
    let mut d = vigil_in(&dir)
        .env_remove("VIGIL_SOCKET")
        .program("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "prlimit",
            // vigil's two threads (the loop, vigil-stderr) and two children.
            "--nproc=4:4",
        ])
        .arg(vigil_bin())
        .arg("run")
        .arg(&cfg)
        .spawn();
    let code = d.wait_exit(LONG);
    let l = log(&d);
    assert_eq!(code, 69, "{l}");
    assert!(
        l.lines().any(|x| x.contains("c: cannot start")
            && x.contains("out of resources (Resource temporarily unavailable")),
        "{l}"
    );
}

// ---------------------------------------------------------------------------------------
// Children that misbehave

/// A child that ignores SIGTERM is SIGKILLed after its grace; vigil exits 0.
#[test]
fn child_ignoring_sigterm_is_killed_after_its_grace() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"stubborn\"]\n{}",
        process(
            &dir,
            "stubborn",
            &["--on-term", "ignore"],
            "shutdown = \"300ms\""
        )
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["stubborn"]);
    stop_clean(&mut d);
    assert!(log(&d).contains("did not stop within its shutdown grace; sent SIGKILL"));
    let after = dir.read_events();
    assert_eq!(after.signals("stubborn"), vec!["SIGTERM"]);
    assert!(!is_alive(ev.starts("stubborn")[0]));
}

/// Children that stop themselves with SIGSTOP are still running to vigil (no exit, no
/// restart). At shutdown vigil sends SIGCONT after the stop signal (as systemd does), so
/// both end at once: one with the default SIGTERM disposition dies of it, one that
/// catches it exits 0, even with `shutdown = "infinity"`. (Before SIGCONT was sent, the
/// stop signal stayed pending: each waited out its whole grace and was SIGKILLed, and
/// with `"infinity"` vigil waited for ever.)
#[test]
fn children_that_sigstop_themselves() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"plain\", \"catcher\"]\n{}{}",
        process(
            &dir,
            "plain",
            &["--sigstop-self"],
            "shutdown = \"infinity\""
        ),
        process(
            &dir,
            "catcher",
            &["--sigstop-self", "--on-term", "exit:0"],
            "shutdown = \"infinity\""
        )
    );
    let mut d = run_tree(&dir, &toml);
    let socket = d.socket().to_path_buf();
    let ev = dir.wait_events("both stopped themselves", TIMEOUT, |e| {
        e.count("STOPSELF", "plain") == 1 && e.count("STOPSELF", "catcher") == 1
    });
    for n in ["plain", "catcher"] {
        let pid = ev.starts(n)[0];
        wait_for(&format!("{n} in state T"), TIMEOUT, || {
            let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = s[s.rfind(')')? + 2..].chars().next()?;
            (state == 'T').then_some(())
        });
    }
    let st = status_json_of(&socket);
    for n in ["plain", "catcher"] {
        assert_eq!(status_node(&st, n)["state"], "running", "{st}");
        assert_eq!(status_node(&st, n)["restarts"], 0, "{st}");
    }
    stop_clean(&mut d);
    let l = log(&d);
    let after = dir.read_events();
    assert_eq!(after.exits("catcher").len(), 1, "{:?}", after.lines());
    assert!(
        l.lines()
            .any(|x| x.contains("stopped child=catcher") && x.contains("exit code 0")),
        "{l}"
    );
    assert!(
        l.lines()
            .any(|x| x.contains("stopped child=plain") && x.contains("SIGTERM")),
        "{l}"
    );
    assert!(!l.contains("SIGKILL"), "{l}");
}

/// A child that double-forks orphans which `setsid()` away from its process group: the
/// orphans survive the child's death (its group is killed, they are not in it), are
/// adopted by vigil (a subreaper), and the sweep at shutdown ends every one of them.
#[test]
fn setsid_orphans_are_adopted_and_swept() {
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 100\nperiod = \"60s\"\nchildren = [\"esc\"]\n{}",
        process(
            &dir,
            "esc",
            &["--setsid-orphans", "2"],
            // Kept, so that they stay adopted until the final sweep (by default they are
            // stopped as leftovers when `esc` exits: tests/seam.rs).
            "backoff = \"none\"\nleftovers = \"keep\""
        )
    );
    let mut d = run_tree(&dir, &toml);
    let vigil_pid = d.pid();
    for round in 1..=3 {
        let ev = dir.wait_events("the orphans of this run", TIMEOUT, |e| {
            e.count("START", "esc") == round && e.count("ESCAPED", "esc") == 2 * round
        });
        if round < 3 {
            kill(*ev.starts("esc").last().unwrap(), libc::SIGKILL);
        }
    }
    let ev = dir.read_events();
    let escaped: Vec<&Event> = ev.of("ESCAPED", "esc");
    for e in &escaped {
        // ESCAPED <name> <pid> <pgid> <sid>: its own group and session.
        assert_eq!(e.args[0], e.pid.to_string());
        assert_eq!(e.args[1], e.pid.to_string());
        assert!(is_alive(e.pid), "orphan {} died early", e.pid);
    }
    // Those of the dead runs are vigil's now.
    for e in &escaped[..4] {
        wait_for("the orphan to be adopted by vigil", TIMEOUT, || {
            children_of(vigil_pid).contains(&e.pid).then_some(())
        });
    }
    stop_clean(&mut d);
    for e in &escaped {
        assert!(!is_alive(e.pid), "orphan {} survived vigil", e.pid);
    }
}

/// Defect 3: a panic in `vigil run` exits 70 (the exit-code table), not 134 (release) or
/// 101 (debug), and SIGKILLs the process group of every live child first, so the
/// children and what they started in their groups are gone once vigil has exited. Uses
/// the test-only trigger of debug builds: with `VIGIL_TEST_PANIC_ON_EXIT_CODE=97`, vigil
/// panics when it reaps an exit with code 97 (where a panic of the engine's handling of
/// that exit would happen).
#[test]
fn a_panic_exits_70_and_kills_every_childs_group() {
    if !cfg!(debug_assertions) {
        eprintln!("skipping: the test-only panic trigger exists in debug builds only");
        return;
    }
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(&dir, "a", &["--group-grandchild"], ""),
        process(
            &dir,
            "b",
            &["--group-grandchild", "--on-term", "exit:97"],
            ""
        )
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .env("VIGIL_TEST_PANIC_ON_EXIT_CODE", "97")
        .arg("run")
        .arg(cfg)
        .spawn();
    let ev = dir.wait_events("both grandchildren", TIMEOUT, |e| {
        e.count("GRANDCHILD", "a") == 1 && e.count("GRANDCHILD", "b") == 1
    });
    let mut pids = vec![ev.starts("a")[0], ev.starts("b")[0]];
    pids.extend(["a", "b"].map(|n| ev.first("GRANDCHILD", n).unwrap().pid));
    // b exits 97 (to b alone: a SIGTERM to vigil would stop the tree first).
    kill(pids[1], libc::SIGTERM);
    assert_eq!(d.wait_exit(LONG), 70, "{}", log(&d));
    wait_for("every child and grandchild to be killed", TIMEOUT, || {
        pids.iter().all(|&p| !is_alive(p)).then_some(())
    });
    let l = log(&d);
    assert!(
        l.contains("vigil: internal error: panicked at")
            && l.contains("VIGIL_TEST_PANIC_ON_EXIT_CODE=97"),
        "{l}"
    );
    assert!(
        l.contains("sent SIGKILL to the process groups of 2 live children; exiting with 70"),
        "{l}"
    );
}

/// Opens a FIFO for reading without blocking; the daemon's shell opens it for writing.
fn fifo(dir: &TestDir, name: &str) -> (PathBuf, fs::File) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let c = std::ffi::CString::new(path.display().to_string()).unwrap();
    // SAFETY: mkfifo on a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .expect("open the fifo for reading");
    (path, reader)
}

/// Reads `reader` (made blocking) until EOF on another thread; the bytes read.
fn drain(reader: fs::File) -> std::thread::JoinHandle<u64> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    // SAFETY: clears O_NONBLOCK on a descriptor we own.
    unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, 0) };
    std::thread::spawn(move || {
        let mut r = reader;
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return total,
            }
        }
    })
}

/// Children that close their stdout, keep it open, or leave a grandchild in another
/// session holding it: vigil runs on, and after it exits nothing holds its stdout (the
/// reader sees EOF, as a container runtime's log reader must).
#[test]
fn children_closing_or_keeping_stdout() {
    let dir = TestDir::new();
    let (path, reader) = fifo(&dir, "stdout");
    let toml = format!(
        "children = [\"closer\", \"keeper\", \"holder\"]\n{}{}{}",
        process(&dir, "closer", &["--close-stdout"], ""),
        process(&dir, "keeper", &["--flood", "1000"], ""),
        process(&dir, "holder", &["--setsid-grandchild", "forever"], "")
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program("sh")
        .arg("-c")
        .arg("exec \"$@\" > \"$0\"")
        .arg(&path)
        .arg(vigil_bin())
        .arg("run")
        .arg(&cfg)
        .spawn();
    dir.wait_events("all three", TIMEOUT, |e| {
        e.count("CLOSED", "closer") == 1
            && e.count("FLOOD", "keeper") == 1
            && e.count("GRANDCHILD", "holder") == 1
    });
    // Read only now that vigil holds the write end (EOF before that would end the reader).
    let reading = drain(reader);
    let ev = dir.read_events();
    let grandchild = ev.of("GRANDCHILD", "holder")[0].pid;
    assert!(is_alive(ev.starts("closer")[0]), "closer runs on");
    stop_clean(&mut d);
    assert!(!is_alive(grandchild));
    wait_for("EOF on vigil's stdout", TIMEOUT, || {
        reading.is_finished().then_some(())
    });
    let bytes = reading.join().unwrap();
    assert!(bytes >= 1000, "keeper's output arrived: {bytes} bytes");
}

/// Children that exit on their own while vigil is stopping the tree are not restarted,
/// and vigil still exits 0 with nothing left.
#[test]
fn children_exiting_during_shutdown_are_not_restarted() {
    let dir = TestDir::new();
    let toml = format!(
        "children = [\"early1\", \"early2\", \"slow\"]\n{}{}{}",
        process(&dir, "early1", &[], ""),
        process(&dir, "early2", &["--on-term", "exit:3"], ""),
        process(
            &dir,
            "slow",
            &["--on-term", "delay:30000"],
            "shutdown = \"infinity\""
        )
    );
    let mut d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["early1", "early2", "slow"]);
    d.signal_vigil(libc::SIGTERM);
    dir.wait_events("slow to get SIGTERM", TIMEOUT, |e| {
        e.count("SIGNAL", "slow") == 1
    });
    // While vigil waits for `slow`, the other two end by themselves.
    kill(ev.starts("early1")[0], libc::SIGKILL);
    kill(ev.starts("early2")[0], libc::SIGTERM);
    dir.wait_events("early2 to exit", TIMEOUT, |e| {
        e.count("EXIT", "early2") == 1
    });
    wait_for("early1 to be reaped", TIMEOUT, || {
        (!is_alive(ev.starts("early1")[0])).then_some(())
    });
    d.wait_for("vigil to see early1's death", TIMEOUT, || {
        log(&d)
            .lines()
            .any(|l| l.contains("child=early1 pid=") && l.contains("killed by SIGKILL"))
            .then_some(())
    });
    // Then `slow` is let go: SIGKILL it too (its grace is infinite).
    kill(ev.starts("slow")[0], libc::SIGKILL);
    assert_eq!(d.wait_exit(LONG), 0, "{}", log(&d));
    let after = dir.read_events();
    for n in ["early1", "early2", "slow"] {
        assert_eq!(after.count("START", n), 1, "{n} was started again");
    }
    assert!(!log(&d).contains("restart scheduled"), "{}", log(&d));
}

/// A child floods a stdout nobody reads (a FIFO whose reader never reads, so the child
/// blocks in write): vigil, logging to a file, stays responsive (status answers, another
/// child's crash loop goes on), and stops the blocked child at shutdown.
#[test]
fn child_flooding_an_unread_stdout_does_not_stall_vigil() {
    let dir = TestDir::new();
    let (path, reader) = fifo(&dir, "stdout");
    let toml = format!(
        "intensity = 1000000\nperiod = \"1s\"\nchildren = [\"flood\", \"crash\"]\n{}{}",
        process(&dir, "flood", &["--flood", "1000000000"], ""),
        process(
            &dir,
            "crash",
            &["--exit-after", "0", "--code", "1"],
            "backoff = \"none\""
        )
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .env("RUST_LOG", "warn")
        .program("sh")
        .arg("-c")
        .arg("exec \"$@\" > \"$0\"")
        .arg(&path)
        .arg(vigil_bin())
        .arg("run")
        .arg(&cfg)
        .spawn();
    let socket = d.socket().to_path_buf();
    let ev = wait_started(&dir, &["flood"]);
    let flood = ev.starts("flood")[0];
    // The flood fills the pipe and blocks in write(2).
    wait_for("the flood to block on the full pipe", TIMEOUT, || {
        let wchan = fs::read_to_string(format!("/proc/{flood}/wchan")).ok()?;
        wchan.contains("pipe").then_some(())
    });
    let restarts = |st: &serde_json::Value| status_node(st, "crash")["restarts"].as_u64().unwrap();
    let first = restarts(&status_json_of(&socket));
    d.wait_for("crash restarts to go on", LONG, || {
        (restarts(&status_json_of(&socket)) >= first + 50).then_some(())
    });
    assert_eq!(
        dir.read_events().count("FLOOD", "flood"),
        0,
        "still blocked"
    );
    stop_clean(&mut d);
    drop(reader);
}

// ---------------------------------------------------------------------------------------
// vigil's own stderr going away

/// vigil's stderr is a pipe whose reader has gone (`vigil run ... 2>&1 | head`, a dead log
/// collector): its log lines are lost (EPIPE), and that is all. It kept supervising and
/// exits 0. Before the fix, tracing-subscriber reported the failed write with
/// `eprintln!`, which panicked on the same stderr: vigil died (101, or SIGABRT in release).
#[test]
fn closed_stderr_does_not_kill_vigil() {
    let dir = TestDir::new();
    let (path, reader) = fifo(&dir, "stderr");
    let toml = format!(
        "intensity = 1000000\nperiod = \"1s\"\nchildren = [\"crash\"]\n{}",
        process(
            &dir,
            "crash",
            &["--exit-after", "0", "--code", "1"],
            "backoff = \"none\""
        )
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program("sh")
        .arg("-c")
        .arg("exec \"$@\" 2> \"$0\"")
        .arg(&path)
        .arg(vigil_bin())
        .arg("run")
        .arg(&cfg)
        .spawn();
    let socket = d.socket().to_path_buf();
    wait_started(&dir, &["crash"]);
    drop(reader);
    // Every restart logs lines that now fail with EPIPE.
    let before = dir.read_events().count("START", "crash");
    dir.wait_events("100 more restarts", LONG, |e| {
        e.count("START", "crash") >= before + 100
    });
    assert!(d.is_running(), "vigil died on its broken stderr");
    assert!(status_json_of(&socket)["tree"].is_object());
    let pid = d.pid();
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(LONG), 0);
    assert!(descendants(pid).into_iter().all(|p| !is_alive(p)));
}

// ---------------------------------------------------------------------------------------
// A resolver and a file system that never answer

/// An `LD_PRELOAD` library for vigil in which `getaddrinfo` of a name containing
/// `.hang.test` and `statx` of a path containing `/hang/` never return (as with a DNS
/// server that drops queries and a hard NFS mount whose server is gone); every other call
/// goes to libc. std looks `statx` up by name precisely so that it can be interposed.
const HANG_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void hang(void) { for (;;) pause(); }

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    if (node && strstr(node, ".hang.test")) hang();
    return ((gai_fn)dlsym(RTLD_NEXT, "getaddrinfo"))(node, service, hints, res);
}

typedef int (*statx_fn)(int, const char *, int, unsigned int, void *);
int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf) {
    if (path && strstr(path, "/hang/")) hang();
    statx_fn real = (statx_fn)dlsym(RTLD_NEXT, "statx");
    if (real) return real(dirfd, path, flags, mask, buf);
    return (int)syscall(SYS_statx, dirfd, path, flags, mask, buf);
}
"#;

/// Builds [`HANG_SHIM`] in `dir` with the system's C compiler; `None` (said on stderr)
/// when there is none.
fn hang_shim(dir: &TestDir) -> Option<PathBuf> {
    if !have("cc") {
        eprintln!(
            "skipping: no C compiler (`cc`) to build the LD_PRELOAD library that hangs lookups"
        );
        return None;
    }
    let src = dir.write("hang.c", HANG_SHIM);
    let lib = dir.join("hang.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc failed to build the shim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(lib)
}

/// The names of `pid`'s threads right now (`/proc/PID/task/*/comm`).
fn thread_names(pid: i32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim_end().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Failed health checks vigil logged for `name` whose reason contains `why`.
fn failed_checks(log: &str, name: &str, why: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("health check failed") && l.contains(why))
        .filter(|l| log_field(l, "child") == Some(name))
        .count()
}

/// R5 end to end: lookups that never return (five tcp and http checks naming hosts) and
/// a `stat` that never returns (a file check) cost vigil exactly its two helper threads,
/// however many tries time out; meanwhile checks by IP address and `exec` checks keep
/// running, SIGUSR1 is answered, and SIGTERM stops the tree with exit 0. Before, the
/// `stat` ran on the loop's thread and vigil ignored every signal from then on.
#[test]
fn hung_lookups_and_stat_block_neither_the_loop_nor_add_threads() {
    let dir = TestDir::new();
    let Some(shim) = hang_shim(&dir) else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port();
    let every = "interval = \"50ms\", timeout = \"100ms\", failures = 100000";
    let hung_file = toml_str(&dir.join("hang/ready").display().to_string());
    let mut checks: Vec<(&str, String)> = (1..=4)
        .map(|i| ("tcp", format!("\"db{i}.hang.test:5432\"")))
        .collect();
    checks.push(("http", "\"http://web.hang.test:8080/healthz\"".into()));
    checks.push(("file", hung_file));
    checks.push(("tcp", format!("\"127.0.0.1:{closed}\"")));
    checks.push(("exec", "[\"false\"]".into()));
    let names: Vec<String> = (0..checks.len()).map(|i| format!("c{i}")).collect();
    let mut toml = format!("children = {}\n", toml_array(&names));
    for (name, (kind, value)) in names.iter().zip(&checks) {
        let health = format!("health = {{ {kind} = {value}, {every} }}");
        toml += &process(&dir, name, &[], &health);
    }
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program(vigil_bin())
        .env("LD_PRELOAD", &shim)
        .arg("run")
        .arg(&cfg)
        .spawn();
    let pid = d.pid();
    let (hung, alive) = names.split_at(6);
    // From here on the process is vigil (exec'd), not the test's fork of itself.
    wait_log(&d, "vigil starting", TIMEOUT);

    // Many tries of every check: the hung ones time out, the others fail for their own
    // reasons (a closed port, `false`), which shows they still run.
    let documented = ["vigil", "vigil-resolve", "vigil-stat", "vigil-stderr"];
    let mut most = 0;
    d.wait_for("10 failed tries of every check", LONG, || {
        let threads = thread_names(pid);
        most = most.max(threads.len());
        for t in &threads {
            assert!(
                documented.contains(&t.as_str()),
                "vigil has a thread docs/threads.md does not list: {t:?} (all: {threads:?})"
            );
        }
        let l = log(&d);
        (hung
            .iter()
            .all(|n| failed_checks(&l, n, "no answer within 100ms") >= 10)
            && alive.iter().all(|n| failed_checks(&l, n, "") >= 10))
        .then_some(())
    });
    assert!(most <= documented.len(), "{most} threads");
    let mut threads = thread_names(pid);
    threads.sort();
    assert_eq!(
        threads,
        ["vigil", "vigil-resolve", "vigil-stat", "vigil-stderr"]
    );
    let l = log(&d);
    assert!(
        failed_checks(&l, "c6", &format!("cannot connect to 127.0.0.1:{closed}")) >= 10,
        "{l}"
    );

    // Signals still reach the loop while both helpers are stuck.
    d.signal_vigil(libc::SIGUSR1);
    wait_log(&d, "signal=SIGUSR1", TIMEOUT);
    stop_clean(&mut d);
    assert!(log(&d).contains("orphans_reaped=0"), "{}", log(&d));
}

// ---------------------------------------------------------------------------------------
// Signal storms

/// Sends `sig` to `pid` `n` times from a new thread.
fn storm(pid: i32, sig: i32, n: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..n {
            // SAFETY: kill(2) has no memory-safety preconditions.
            if unsafe { libc::kill(pid, sig) } != 0 {
                return;
            }
        }
    })
}

/// Thousands of SIGCHLD, SIGHUP and SIGUSR1 in a burst during a restart storm, then
/// thousands of SIGTERM: vigil keeps restarting through the burst (no exit lost, the
/// steady child untouched), then stops and exits 0 with nothing left. Every START of the
/// crashing child has its EXIT, but for the run killed at the stop; vigil's restart count
/// is the children's.
#[test]
fn signal_storm_during_a_restart_storm() {
    let n = env_size("VIGIL_STORM_SIGNALS", 2000);
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 4000000000\nperiod = \"1s\"\nchildren = [\"steady\", \"crash\"]\n{}{}",
        process(&dir, "steady", &[], ""),
        process(
            &dir,
            "crash",
            &["--exit-after", "0", "--code", "1"],
            "backoff = \"none\""
        )
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .program(vigil_bin())
        .env("RUST_LOG", "info")
        .arg("run")
        .arg(&cfg)
        .spawn();
    let pid = d.pid();
    let socket = d.socket().to_path_buf();
    let ev = wait_started(&dir, &["steady", "crash"]);
    let steady = ev.starts("steady")[0];
    let t0 = Instant::now();
    let senders: Vec<_> = [libc::SIGCHLD, libc::SIGHUP, libc::SIGUSR1]
        .into_iter()
        .map(|s| storm(pid, s, n))
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let burst = t0.elapsed();
    // The restart storm goes on after the burst: no exit was lost.
    let after_burst = dir.read_events().count("START", "crash");
    dir.wait_events("restarts after the burst", LONG, |e| {
        e.count("START", "crash") >= after_burst + 20
    });
    assert!(is_alive(steady));
    let st = status_json_of(&socket);
    assert_eq!(status_node(&st, "steady")["restarts"], 0);
    let hups = wait_log(&d, "SIGHUP: configuration reload", TIMEOUT);
    let hups = hups.lines().filter(|l| l.contains("SIGHUP:")).count();
    let usr1 = log(&d)
        .lines()
        .filter(|l| l.contains("status signal=SIGUSR1"))
        .count();
    // Then a burst of SIGTERM: the first stops the tree, a second kills what is left.
    let terms = storm(pid, libc::SIGTERM, n);
    let code = d.wait_exit(LONG);
    terms.join().unwrap();
    let l = log(&d);
    assert_eq!(code, 0, "{}", &l[l.len().saturating_sub(4000)..]);
    assert!(descendants(pid).into_iter().all(|p| !is_alive(p)));
    assert!(!is_alive(steady));
    let ev = dir.read_events();
    let starts = ev.count("START", "crash");
    let exits = ev.count("EXIT", "crash");
    let scheduled = l
        .lines()
        .filter(|x| x.contains("restart scheduled child=crash"))
        .count();
    eprintln!(
        "[signal storm] {n} each of SIGCHLD, SIGHUP, SIGUSR1 sent in {burst:.1?}; vigil logged \
         {hups} SIGHUP and {usr1} SIGUSR1 (coalesced); crash: {starts} STARTs, {exits} EXITs, \
         {scheduled} restarts scheduled by vigil"
    );
    assert!(hups >= 1 && usr1 >= 1);
    assert!(
        exits == starts || exits + 1 == starts,
        "{starts} vs {exits}"
    );
    // Each exit before the stop scheduled a restart that started (backoff none); an exit
    // just before the stop may have scheduled one the stop then cancelled.
    assert!(
        scheduled + 1 == starts || scheduled == starts,
        "vigil's count ({scheduled}) against the child's record ({starts} STARTs)"
    );
}

// ---------------------------------------------------------------------------------------
// Memory

/// A memory cgroup with little room: a child that allocates past it is OOM-killed by the
/// kernel (SIGKILL), vigil logs the exit, counts and restarts it, and itself survives
/// with the steady sibling untouched.
#[test]
fn memory_cgroup_oom_kills_the_hog_not_vigil() {
    let Some(cg) = Cgroup::new("memory", "memory") else {
        return;
    };
    let limit = 64u64 << 20;
    let v1 = cg.path.join("memory.limit_in_bytes").exists();
    if v1 {
        cg.set("memory.limit_in_bytes", &limit.to_string());
    } else {
        cg.set("memory.max", &limit.to_string());
        cg.set("memory.swap.max", "0");
    }
    let dir = TestDir::new();
    let toml = format!(
        "intensity = 100\nperiod = \"60s\"\nchildren = [\"steady\", \"hog\"]\n{}{}",
        process(&dir, "steady", &[], ""),
        process(
            &dir,
            "hog",
            &["--hog", "256"],
            "backoff = { initial = \"20ms\", max = \"100ms\" }"
        )
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = cg.vigil_in(&dir).arg("run").arg(&cfg).spawn();
    let socket = d.socket().to_path_buf();
    let ev = wait_started(&dir, &["steady"]);
    d.wait_for("three OOM kills of hog", LONG, || {
        let st = status_json_of(&socket);
        (status_node(&st, "hog")["restarts"].as_u64()? >= 3).then_some(())
    });
    let st = status_json_of(&socket);
    let hog = status_node(&st, "hog");
    let oom_kills = if v1 {
        cg.get("memory.oom_control")
    } else {
        cg.get("memory.events")
    };
    let usage = proc_usage(d.pid()).unwrap();
    eprintln!(
        "[memory cgroup] limit {} MiB: hog {hog}; vigil RSS {} KiB; {}",
        limit >> 20,
        usage.rss_kb,
        oom_kills.replace('\n', ", ")
    );
    assert!(
        log(&d)
            .lines()
            .any(|l| l.contains("child=hog") && l.contains("SIGKILL")),
        "{}",
        log(&d)
    );
    assert!(is_alive(ev.starts("steady")[0]));
    assert_eq!(status_node(&st, "steady")["restarts"], 0);
    stop_clean(&mut d);
}

/// Issue 13, finding 7: a child SIGKILL cannot end (frozen by the cgroup v1 freezer: it
/// dies only once thawed) no longer holds vigil for ever. With `shutdown_timeout = "1s"`,
/// vigil SIGKILLs it at 1 s, abandons it 1 s later with its pid, state and wait channel in
/// the log, and exits. Before, vigil waited for ever whatever the timeout said.
#[test]
fn an_unkillable_child_does_not_hold_vigil_past_shutdown_timeout() {
    let test = "an_unkillable_child_does_not_hold_vigil_past_shutdown_timeout";
    let Some(cg) = Cgroup::new("freezer", test) else {
        skip_or_fail_on_ci(
            test,
            "no cgroup freezer can be made here (needs root and the freezer controller)",
            "the test freezes a child so that SIGKILL cannot end it",
            "run as root on a host with the cgroup v1 freezer (or v2 cgroup.freeze)",
        );
        return;
    };
    let dir = TestDir::new();
    let toml = format!(
        "shutdown_timeout = \"1s\"\nchildren = [\"stuck\"]\n{}",
        process(
            &dir,
            "stuck",
            &["--on-term", "ignore"],
            "shutdown = \"30s\""
        )
    );
    let mut d = run_tree(&dir, &toml);
    let ev = dir.wait_events("stuck to start", TIMEOUT, |e| {
        e.count("START", "stuck") == 1
    });
    let pid = ev.starts("stuck")[0];
    cg.add(pid);
    // v1: freezer.state; v2: cgroup.freeze.
    let v1 = cg.path.join("freezer.state").exists();
    if v1 {
        cg.set("freezer.state", "FROZEN");
    } else {
        cg.set("cgroup.freeze", "1");
    }
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    let code = d.wait_exit(Duration::from_secs(15));
    let took = t0.elapsed();
    // Thaw: the pending SIGKILL then ends it.
    if v1 {
        cg.set("freezer.state", "THAWED");
    } else {
        cg.set("cgroup.freeze", "0");
    }
    try_wait_for(TIMEOUT, || (!is_alive(pid)).then_some(()));
    assert_eq!(code, 0, "{}", log(&d));
    assert!(
        took < Duration::from_secs(5),
        "exited after {took:?}\n{}",
        log(&d)
    );
    assert!(log(&d).contains("abandoned"), "{}", log(&d));
}
