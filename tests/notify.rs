//! vigil's sd_notify client driven from outside: the test owns the datagram socket a
//! service manager would own, points `NOTIFY_SOCKET` (and `WATCHDOG_USEC`) at it, and
//! checks what arrives and in which order: `READY=1` only once every child has been
//! started, `STATUS=` on changes, `WATCHDOG=1` at about half of `WATCHDOG_USEC`,
//! `STOPPING=1` when SIGTERM starts the stop, and that children never inherit the
//! protocol's variables. Also `vigil exec` under a notify socket.
//!
//! No fixed sleeps: every receive has a deadline; the only timing assertions are wide
//! bounds on the watchdog interval.

#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// The manager's end of the notify protocol: a bound datagram socket in a test dir.
struct Manager {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl Manager {
    fn new(dir: &TestDir) -> Manager {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Manager { socket, path }
    }

    /// The next message, or `None` after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<(Instant, String)> {
        let mut buf = [0u8; 4096];
        try_wait_for(timeout, || match self.socket.recv(&mut buf) {
            Ok(len) => Some((
                Instant::now(),
                String::from_utf8_lossy(&buf[..len]).into_owned(),
            )),
            Err(_) => None,
        })
    }

    /// Receives until a message satisfies `pred`; returns it and everything before it.
    fn until(&self, d: &Daemon, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some((_, msg)) = self.recv(Duration::from_millis(200)) {
                let done = pred(&msg);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
        }
        panic!(
            "timed out waiting for {what}; messages so far: {seen:?}\n--- vigil stderr ---\n{}",
            d.stderr_text()
        );
    }
}

fn tree(dir: &TestDir) -> std::path::PathBuf {
    let child = test_child();
    let env_file = dir.join("env");
    dir.write(
        "vigil.toml",
        &format!(
            r#"
children = ["a", "b", "env"]
[process.a]
command = ["{child}", "--name", "a", "--events", "{events}"]
[process.b]
command = ["{child}", "--name", "b", "--events", "{events}"]
[process.env]
command = ["/bin/sh", "-c", "echo \"${{NOTIFY_SOCKET-unset}} ${{WATCHDOG_USEC-unset}} ${{WATCHDOG_PID-unset}}\" > {env_file}.tmp && mv {env_file}.tmp {env_file} && exec sleep 1000"]
"#,
            child = child.display(),
            events = dir.events().display(),
            env_file = env_file.display(),
        ),
    )
}

#[test]
fn ready_after_every_start_watchdog_at_half_the_timeout_stopping_on_sigterm() {
    let dir = TestDir::new();
    let manager = Manager::new(&dir);
    let config = tree(&dir);
    // 600 ms: a ping every 300 ms.
    let mut d = Daemon::builder()
        .args(["run".as_ref(), config.as_os_str()])
        .env("NOTIFY_SOCKET", &manager.path)
        .env("WATCHDOG_USEC", "600000")
        .spawn();

    let before_ready = manager.until(&d, "READY=1", |m| m.starts_with("READY=1"));
    // READY=1 only after vigil has started all three children: it says so in the
    // STATUS= it comes with (checked below), and its log shows the three starts (written
    // by the log writer thread, so possibly just after the datagram).
    d.wait_for("the three starts in the log", TIMEOUT, || {
        let log = d.stderr_text();
        ["a", "b", "env"]
            .iter()
            .all(|name| log.contains(&format!("started child={name} ")))
            .then_some(())
    });
    let ready = before_ready.last().unwrap();
    assert!(
        ready.contains("STATUS=3 of 3 processes running"),
        "READY=1 comes with the summary: {ready:?}"
    );
    assert!(
        before_ready.iter().all(|m| !m.contains("STOPPING")),
        "{before_ready:?}"
    );

    // Watchdog pings: count 5 and time them. Each was scheduled 300 ms after the one
    // before, so 4 gaps are at least 1.2 s of vigil's time; the receive times may
    // compress that by how late the first receive was, hence the wide lower bound.
    let mut pings = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while pings.len() < 5 && Instant::now() < deadline {
        if let Some((t, msg)) = manager.recv(Duration::from_millis(200)) {
            assert!(
                msg == "WATCHDOG=1" || msg.starts_with("STATUS="),
                "unexpected message while running: {msg:?}"
            );
            if msg == "WATCHDOG=1" {
                pings.push(t);
            }
        }
    }
    assert_eq!(pings.len(), 5, "5 watchdog pings within {TIMEOUT:?}");
    let span = pings[4] - pings[0];
    assert!(
        span >= Duration::from_millis(600),
        "4 watchdog intervals took only {span:?}: pings are sent faster than WATCHDOG_USEC/2"
    );
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap < Duration::from_secs(3),
            "a watchdog gap of {gap:?}, 10x the 300 ms interval"
        );
    }

    // Children never inherit the protocol's variables.
    let env = wait_for("the env child to report", TIMEOUT, || {
        std::fs::read_to_string(dir.join("env")).ok()
    });
    assert_eq!(env.trim(), "unset unset unset");

    d.signal_vigil(libc::SIGTERM);
    let rest = manager.until(&d, "STOPPING=1", |m| m.starts_with("STOPPING=1"));
    let stopping = rest.last().unwrap();
    assert!(stopping.contains("STATUS=stopping"), "{stopping:?}");
    assert!(rest.iter().all(|m| !m.contains("READY=1")), "{rest:?}");
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", d.stderr_text());
    // What follows STOPPING=1 is status only (the count of processes left), never READY.
    while let Some((_, msg)) = manager.recv(Duration::from_millis(100)) {
        assert!(
            msg == "WATCHDOG=1" || msg.starts_with("STATUS=stopping"),
            "after STOPPING=1: {msg:?}"
        );
    }
}

#[test]
fn status_names_a_child_waiting_to_be_restarted() {
    let dir = TestDir::new();
    let manager = Manager::new(&dir);
    let config = dir.write(
        "vigil.toml",
        &format!(
            r#"
intensity = 1000
period = "1s"
children = ["steady", "flaky"]
[process.steady]
command = ["{child}", "--name", "steady"]
[process.flaky]
command = ["{child}", "--name", "flaky", "--exit-after", "0", "--code", "3"]
backoff = {{ initial = "300ms", max = "300ms", jitter = 0.0 }}
"#,
            child = test_child().display()
        ),
    );
    let mut d = Daemon::builder()
        .args(["run".as_ref(), config.as_os_str()])
        .env("NOTIFY_SOCKET", &manager.path)
        .spawn();
    let seen = manager.until(&d, "STATUS naming flaky", |m| {
        m.contains("STATUS=") && m.contains("restarting flaky")
    });
    assert!(
        seen.iter().any(|m| m.starts_with("READY=1")),
        "READY=1 comes first: {seen:?}"
    );
    // No watchdog without WATCHDOG_USEC.
    assert!(seen.iter().all(|m| m != "WATCHDOG=1"), "{seen:?}");
    d.signal_vigil(libc::SIGTERM);
    manager.until(&d, "STOPPING=1", |m| m.starts_with("STOPPING=1"));
    assert_eq!(d.wait_exit(TIMEOUT), 0, "{}", d.stderr_text());
}

#[test]
fn exec_is_ready_once_its_child_runs_and_stopping_on_sigterm() {
    let dir = TestDir::new();
    let manager = Manager::new(&dir);
    let events = dir.events();
    let mut d = Daemon::builder()
        .args(["exec".as_ref(), "--".as_ref(), test_child().as_os_str()])
        .args(["--name", "main", "--events"])
        .arg(&events)
        .env("NOTIFY_SOCKET", &manager.path)
        .env("WATCHDOG_USEC", "400000")
        .env("WATCHDOG_PID", d_pid_placeholder())
        .spawn();
    let seen = manager.until(&d, "READY=1", |m| m.starts_with("READY=1"));
    assert!(seen.last().unwrap().contains("STATUS=running "), "{seen:?}");
    dir.wait_events("main to start", TIMEOUT, |e| !e.starts("main").is_empty());
    d.signal_vigil(libc::SIGTERM);
    let rest = manager.until(&d, "STOPPING=1", |m| m.starts_with("STOPPING=1"));
    // WATCHDOG_PID named another process: no pings.
    assert!(
        seen.iter().chain(&rest).all(|m| m != "WATCHDOG=1"),
        "{seen:?} {rest:?}"
    );
    // The test child exits 0 on SIGTERM unless told otherwise; vigil exec passes it on.
    let code = d.wait_exit(TIMEOUT);
    assert!(code == 0 || code == 128 + libc::SIGTERM, "exit {code}");
}

/// A `WATCHDOG_PID` that is not vigil's (vigil gets a fresh pid; 1 is never it here).
fn d_pid_placeholder() -> &'static str {
    "1"
}
