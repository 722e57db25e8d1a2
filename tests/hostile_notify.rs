//! Hostile `sd_notify` children (issue 13, findings 5 and 8), with real processes.
//!
//! - A child floods its `NOTIFY_SOCKET` with datagrams of many `STATUS=` lines for seconds:
//!   vigil's memory stays small and its log short (`STATUS=` coalesced, at most one logged
//!   per second), and the last `STATUS=` and the `READY=1` after the flood still arrive.
//! - A process outside the child's process group sends `READY=1` to the child's socket:
//!   ignored (and logged), the child is not ready. A process in the child's group is heard.
//! - Two vigils as PID 1 of two PID namespaces that share one temporary directory: each
//!   keeps its own socket directory, both start their `sd_notify` children, and each
//!   removes exactly its own directory at exit.
//!
//! No fixed sleeps: every wait is a predicate with a deadline.

#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// vigil's peak RSS under the flood may not pass this (it reached gigabytes before).
const FLOOD_RSS_MAX_KB: u64 = 32 * 1024;
/// vigil's log may grow by at most this much during the flood (it grew by megabytes per
/// second before: one line per `STATUS=` line).
const FLOOD_LOG_MAX_BYTES: usize = 64 * 1024;
/// How long the child floods.
const FLOOD_MS: u64 = 4000;

/// vigil on `toml`, with `TMPDIR` in `dir` (where its socket directory goes).
fn run_tree(dir: &TestDir, toml: &str) -> Daemon {
    let path = dir.write("vigil.toml", toml);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    vigil_in(dir)
        .env("TMPDIR", &tmp)
        .arg("run")
        .arg(path)
        .spawn()
}

/// Stops vigil with SIGTERM: its exit code, once it has removed its socket directory.
fn stop(mut d: Daemon, dir: &TestDir) -> i32 {
    assert_eq!(
        socket_dirs(&dir.join("tmp")).len(),
        1,
        "one socket directory"
    );
    d.signal_vigil(libc::SIGTERM);
    let code = d.wait_exit(TIMEOUT);
    let left = socket_dirs(&dir.join("tmp"));
    assert!(left.is_empty(), "left behind: {left:?}\n{}", log(&d));
    code
}

/// `NOTIFY_SOCKET` in the environment of the process with host pid `pid`.
fn notify_socket_of(pid: i32) -> PathBuf {
    let env = std::fs::read(format!("/proc/{pid}/environ")).expect("read the child's environ");
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
        .unwrap_or_else(|| panic!("no NOTIFY_SOCKET in the environment of {pid}"))
}

/// User plus system CPU time of `pid` in milliseconds (`/proc/PID/stat`, 100 ticks/s).
fn cpu_ms(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the `(comm)` field: state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() * 10
}

fn log_lines_with(log: &str, pat: &str) -> usize {
    log.lines().filter(|l| l.contains(pat)).count()
}

#[test]
fn an_sd_notify_flood_keeps_vigil_small_and_its_log_short() {
    let dir = TestDir::new();
    let flood = FLOOD_MS.to_string();
    let toml = format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(
            &dir,
            "a",
            &["--notify-flood", &flood, "--sd-notify", "READY=1"],
            "ready = { sd_notify = true, timeout = \"60s\" }"
        ),
        process(&dir, "b", &[], ""),
    );
    let d = run_tree(&dir, &toml);
    let vigil = d.vigil_pid();
    wait_started(&dir, &["a"]);
    let base = proc_usage(vigil).expect("vigil's /proc/PID/status");
    let log_before = log(&d).len();
    let cpu_before = cpu_ms(vigil);

    // The loop still answers while the flood runs.
    let asked = std::time::Instant::now();
    let status = status_json_of(d.socket());
    let answered = asked.elapsed();
    let during = dir.read_events().count("NOTIFYFLOOD", "a") == 0;
    assert_eq!(status_node(&status, "a")["ready"], false, "{status}");
    assert!(
        answered < TIMEOUT / 2,
        "vigil status took {answered:?} under the flood"
    );

    // Sample vigil's RSS until the flood is over, giving up as soon as it passes the bound.
    let mut peak_kb = base.rss_kb;
    let over = d.wait_for(
        "the flood to end (or vigil's RSS to pass the bound)",
        Duration::from_millis(FLOOD_MS) + TIMEOUT,
        || {
            let rss = proc_usage(vigil).map_or(0, |u| u.rss_kb);
            peak_kb = peak_kb.max(rss);
            if rss > FLOOD_RSS_MAX_KB {
                return Some(true);
            }
            (dir.read_events().count("NOTIFYFLOOD", "a") == 1).then_some(false)
        },
    );
    let hwm_kb = proc_usage(vigil).map_or(peak_kb, |u| u.hwm_kb);
    let cpu = cpu_ms(vigil) - cpu_before;
    assert!(
        !over && hwm_kb <= FLOOD_RSS_MAX_KB,
        "vigil grew to {peak_kb} KiB RSS ({hwm_kb} KiB peak) under an sd_notify flood \
         (bound {FLOOD_RSS_MAX_KB} KiB, {} KiB before)",
        base.rss_kb
    );

    // The flood's last STATUS= and the READY=1 after it arrive; b starts.
    wait_started(&dir, &["b"]);
    let l = d.wait_for("the last STATUS= logged", TIMEOUT, || {
        let l = log(&d);
        l.contains("status=flood done").then_some(l)
    });
    let ev = dir.read_events();
    let f = &ev.of("NOTIFYFLOOD", "a")[0];
    let grown = l.len() - log_before;
    let status_lines = log_lines_with(&l, "status child=a");
    eprintln!(
        "sd_notify flood: {} datagrams, {} bytes in {FLOOD_MS} ms; vigil RSS {} KiB before, \
         peak {hwm_kb} KiB; log +{grown} bytes, {status_lines} status lines; vigil CPU \
         {cpu} ms; `vigil status` answered in {answered:?} (during the flood: {during})",
        f.args[0], f.args[1], base.rss_kb
    );
    assert!(
        grown <= FLOOD_LOG_MAX_BYTES,
        "vigil's log grew by {grown} bytes under the flood (bound {FLOOD_LOG_MAX_BYTES})"
    );
    // At most one STATUS= logged per second: over the flood, plus up to a second for the
    // last datagrams to be read and one for the last STATUS= to be due, plus the first at
    // once, with room for a slow machine.
    let most = (FLOOD_MS / 1000) as usize + 4;
    assert!(
        (1..=most).contains(&status_lines),
        "{status_lines} status lines (at most {most}):\n{l}"
    );
    assert!(
        l.contains("skipped="),
        "the coalesced count is logged:\n{l}"
    );
    assert_eq!(stop(d, &dir), 0);
}

/// `a` (sd_notify readiness, says `STATUS=hello`, never `READY=1` itself) then `b`.
fn a_never_ready_then_b(dir: &TestDir) -> String {
    format!(
        "children = [\"a\", \"b\"]\n{}{}",
        process(
            dir,
            "a",
            &["--sd-notify", "STATUS=hello"],
            "ready = { sd_notify = true, timeout = \"60s\" }"
        ),
        process(dir, "b", &[], ""),
    )
}

#[test]
fn ready_from_a_process_outside_the_childs_group_is_ignored() {
    let dir = TestDir::new();
    let d = run_tree(&dir, &a_never_ready_then_b(&dir));
    let ev = wait_started(&dir, &["a"]);
    let a = ev.pids_of("a")[0];
    // a's listener is running once its own STATUS= is logged.
    d.wait_for("a's STATUS= logged", TIMEOUT, || {
        log(&d).contains("status=hello").then_some(())
    });
    let socket = notify_socket_of(a);

    // This test process is not in a's process group; neither is a process it starts.
    let forger = UnixDatagram::unbound().unwrap();
    forger
        .send_to(b"READY=1\nSTATUS=forged", &socket)
        .expect("send to a's NOTIFY_SOCKET");
    let me = std::process::id();
    let l = d.wait_for("the forged READY=1 refused (or b started)", TIMEOUT, || {
        let l = log(&d);
        let refused = l.contains("outside the child's process group");
        (refused || dir.read_events().count("START", "b") > 0).then_some(l)
    });
    assert_eq!(
        dir.read_events().count("START", "b"),
        0,
        "a READY=1 from pid {me}, outside a's process group, made a ready:\n{l}"
    );
    let line = l
        .lines()
        .find(|x| x.contains("outside the child's process group"))
        .unwrap();
    assert!(line.contains("child=a"), "{line}");
    assert_eq!(
        log_field(line, "sender"),
        Some(me.to_string().as_str()),
        "{line}"
    );
    assert!(!l.contains("forged"), "a forged STATUS= was taken:\n{l}");
    assert!(!l.contains("INFO ready child=a"), "{l}");
    let status = status_json_of(d.socket());
    assert_eq!(status_node(&status, "a")["ready"], false, "{status}");
    stop(d, &dir);
}

#[test]
fn ready_from_a_process_in_the_childs_group_is_heard() {
    let dir = TestDir::new();
    // sh (vigil's child, its group's leader) forks a helper that sends READY=1: another
    // pid, in the child's process group.
    let child = test_child().display().to_string();
    let events = dir.events().display().to_string();
    let toml = format!(
        r#"children = ["a", "b"]
[process.a]
command = ["sh", "-c", "\"$0\" --name helper --events \"$1\" --sd-notify READY=1 & wait", {}, {}]
ready = {{ sd_notify = true, timeout = "60s" }}
{}"#,
        toml_str(&child),
        toml_str(&events),
        process(&dir, "b", &[], ""),
    );
    let d = run_tree(&dir, &toml);
    let ev = wait_started(&dir, &["helper", "b"]);
    let helper = &ev.of("START", "helper")[0];
    // START <name> <pid> <pgid> <ppid>: another pid, in the group sh (its parent) leads.
    assert_ne!(helper.pid.to_string(), helper.args[0], "{:?}", ev.lines());
    assert_eq!(helper.args[0], helper.args[1], "{:?}", ev.lines());
    assert!(ev.position("READY", "helper") < ev.position("START", "b"));
    let l = log(&d);
    assert!(!l.contains("outside the child's process group"), "{l}");
    assert_eq!(stop(d, &dir), 0);
}

#[test]
fn an_oversized_datagram_is_refused_whole() {
    let dir = TestDir::new();
    // A helper in a's process group sends READY=1 in a datagram of over 4096 bytes, then a
    // runs on without ever being ready.
    let child = test_child().display().to_string();
    let events = dir.events().display().to_string();
    let big = format!("READY=1\\nSTATUS={}", "x".repeat(5000));
    let toml = format!(
        r#"children = ["a", "b"]
[process.a]
command = ["sh", "-c", "\"$0\" --name big --events \"$1\" --sd-notify \"$2\" --exit-after 0; exec \"$0\" --name a --events \"$1\"", {}, {}, {}]
ready = {{ sd_notify = true, timeout = "60s" }}
{}"#,
        toml_str(&child),
        toml_str(&events),
        toml_str(&big),
        process(&dir, "b", &[], ""),
    );
    let d = run_tree(&dir, &toml);
    let l = d.wait_for(
        "the oversized datagram refused (or b started)",
        TIMEOUT,
        || {
            let l = log(&d);
            let refused = l.contains("longer than 4096 bytes");
            (refused || dir.read_events().count("START", "b") > 0).then_some(l)
        },
    );
    let ev = dir.read_events();
    assert!(ev.count("READY", "big") == 1, "{:?}", ev.lines());
    assert_eq!(
        ev.count("START", "b"),
        0,
        "a READY=1 in a datagram over 4096 bytes made a ready:\n{l}"
    );
    assert!(
        !l.contains("xxxx"),
        "a part of the oversized datagram was taken:\n{l}"
    );
    let status = status_json_of(d.socket());
    assert_eq!(status_node(&status, "a")["ready"], false, "{status}");
    stop(d, &dir);
}

/// The `vigil-*` directories in `tmp`, each with the sockets in it.
fn socket_dirs(tmp: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut dirs: Vec<(PathBuf, Vec<String>)> = std::fs::read_dir(tmp)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("vigil-"))
                .map(|e| {
                    let socks = std::fs::read_dir(e.path())
                        .map(|r| {
                            r.flatten()
                                .map(|s| s.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    (e.path(), socks)
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[test]
fn two_vigils_as_pid1_sharing_tmp_both_start_their_sd_notify_children() {
    let test = "two_vigils_as_pid1_sharing_tmp_both_start_their_sd_notify_children";
    if !pid_namespaces_available(test) {
        return;
    }
    let dir = TestDir::new();
    // The /tmp both containers share.
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let go = dir.join("go");
    let child = test_child().display().to_string();
    let events = dir.events().display().to_string();

    // A's a1 sends READY=1 only once told to, after B has set up its own socket.
    let a = format!(
        r#"children = ["a1", "a2"]
[process.a1]
command = ["sh", "-c", "while [ ! -e \"$1\" ]; do sleep 0.05; done; exec \"$0\" --name a1 --events \"$2\" --sd-notify READY=1", {}, {}, {}]
ready = {{ sd_notify = true, timeout = "8s" }}
{}"#,
        toml_str(&child),
        toml_str(&go.display().to_string()),
        toml_str(&events),
        process(&dir, "a2", &[], ""),
    );
    let b = format!(
        "children = [\"b1\", \"b2\"]\n{}{}",
        process(
            &dir,
            "b1",
            &["--sd-notify", "READY=1"],
            "ready = { sd_notify = true }"
        ),
        process(&dir, "b2", &[], ""),
    );
    let start = |name: &str, toml: &str| {
        let path = dir.write(name, toml);
        vigil_in(&dir)
            .in_pid_namespace(true)
            .env("TMPDIR", &tmp)
            .arg("run")
            .arg(path)
            .spawn()
    };
    let mut va = start("a.toml", &a);
    va.wait_for("A's socket directory", TIMEOUT, || {
        (socket_dirs(&tmp).iter().any(|(_, s)| !s.is_empty())).then_some(())
    });
    let mut vb = start("b.toml", &b);
    wait_started(&dir, &["b1", "b2"]);

    std::fs::write(&go, "").unwrap();
    wait_for("A's a2 started, or A exited", TIMEOUT, || {
        (dir.read_events().count("START", "a2") > 0 || !va.is_running()).then_some(())
    });
    assert!(
        dir.read_events().count("START", "a2") > 0,
        "A's a1 could not notify (the other vigil took its socket directory); A exited {:?}\n\
         --- A ---\n{}\n--- B ---\n{}",
        (!va.is_running()).then(|| va.wait_exit(TIMEOUT)),
        log(&va),
        log(&vb)
    );
    let dirs = socket_dirs(&tmp);
    assert_eq!(dirs.len(), 2, "one directory each: {dirs:?}");

    // Each removes exactly its own directory at exit.
    let a_dir = notify_socket_of(va.host_pid(dir.read_events().pids_of("a1")[0]).unwrap());
    let a_dir = a_dir.parent().unwrap().to_path_buf();
    va.signal_vigil(libc::SIGTERM);
    assert_eq!(va.wait_exit(TIMEOUT), 0, "{}", log(&va));
    let left = socket_dirs(&tmp);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0].0, a_dir, "A removed B's directory and left its own");
    assert!(!left[0].1.is_empty(), "B's socket is still there: {left:?}");
    vb.signal_vigil(libc::SIGTERM);
    assert_eq!(vb.wait_exit(TIMEOUT), 0, "{}", log(&vb));
    assert_eq!(socket_dirs(&tmp), vec![], "B's directory left behind");
}
