//! Clients of `[http] listen` and of the control socket as an attacker would be (issue 13,
//! finding 4), against a real vigil under `prlimit --nofile`: 1,100 idle TCP connections
//! at `nofile` 1024, then a child crash (it must be restarted: no EMFILE, no exit 75, and
//! `vigil status` and `/livez` still answer); 1,000 clients sending unfinished 380 KB
//! headers (vigil's peak RSS stays under [`RSS_BOUND_KB`]); the same idle flood on the
//! control socket; and at `nofile` 64, where the connection caps alone would exceed the
//! limit, the descriptor reserve keeps a restart possible.
//!
//! Everything is on 127.0.0.1 and every loop is bounded (a count and a deadline). The
//! figures (descriptors, RSS, connections served) are printed for RELIABILITY.md.

#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A hang guard for whole scenarios (2 shared cores, debug builds).
const LONG: Duration = Duration::from_secs(60);

/// The bound on vigil's peak RSS (`VmHWM`) under the slow-header flood.
const RSS_BOUND_KB: u64 = 20 * 1024;

fn have_prlimit() -> bool {
    Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Raises this test process's own descriptor limit to at least `n` (the floods need more
/// than 1,024 of them); false when the hard limit does not allow it.
fn raise_own_nofile(n: u64) -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return false;
    }
    if lim.rlim_cur >= n {
        return true;
    }
    if lim.rlim_max < n {
        return false;
    }
    lim.rlim_cur = n;
    // SAFETY: setrlimit reads the struct we own.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

/// Whether the test can run: `prlimit` is there and this process may hold `n` descriptors.
fn can_run(test: &str, n: u64) -> bool {
    if !have_prlimit() {
        skip_or_fail_on_ci(
            test,
            "run vigil under prlimit --nofile",
            "prlimit is not installed",
            "install util-linux",
        );
        return false;
    }
    if !raise_own_nofile(n) {
        skip_or_fail_on_ci(
            test,
            &format!("open {n} connections"),
            "the hard RLIMIT_NOFILE of the test is lower",
            &format!("run the tests with ulimit -Hn {n} or more"),
        );
        return false;
    }
    true
}

/// vigil under `prlimit --nofile=LIMIT:LIMIT` running child `w` (restarted after 20 ms)
/// with `[http] listen` on a free port of 127.0.0.1, plus the `extra` top-level TOML.
fn start(dir: &TestDir, limit: u32, extra: &str) -> (Daemon, SocketAddr) {
    let toml = format!(
        "children = [\"w\"]\n{extra}\n[http]\nlisten = \"127.0.0.1:0\"\n{}",
        process(dir, "w", &[], "backoff = { initial = \"20ms\" }")
    );
    let cfg = dir.write("vigil.toml", &toml);
    let d = vigil_in(dir)
        .program("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(vigil_bin())
        .arg("run")
        .arg(cfg)
        .spawn();
    let addr = d.wait_for("the http endpoints to listen", TIMEOUT, || {
        log(&d)
            .lines()
            .find(|l| l.contains("http endpoints listening"))
            .and_then(|l| log_field(l, "addr")?.parse().ok())
    });
    wait_started(dir, &["w"]);
    (d, addr)
}

/// `GET path` on a fresh connection (bounded in time): the status code, or the error.
fn get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut c =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    c.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    raw.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {raw:?}"))
}

/// `n` connections to `addr` that send nothing (a connect that does not complete within a
/// second is counted as failed and skipped).
fn idle_tcp(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, usize) {
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(c) => conns.push(c),
            Err(_) => failed += 1,
        }
    }
    (conns, failed)
}

/// The accept queue of the TCP socket listening on `addr` (`rx_queue` of its LISTEN line
/// in `/proc/net/tcp`): connections the kernel holds that vigil has not accepted yet.
fn accept_queue(addr: SocketAddr) -> Option<u64> {
    let want = format!("0100007F:{:04X}", addr.port());
    std::fs::read_to_string("/proc/net/tcp")
        .ok()?
        .lines()
        .skip(1)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 4 && f[1] == want && f[3] == "0A").then(|| {
                let rx = f[4].split(':').nth(1)?;
                u64::from_str_radix(rx, 16).ok()
            })?
        })
}

/// Bytes received on vigil's side of connections to `addr` that it has not read yet (the
/// `rx_queue` of every non-listening socket whose local address is `addr`).
fn unread_bytes(addr: SocketAddr) -> u64 {
    let want = format!("0100007F:{:04X}", addr.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() > 4 && f[1] == want && f[3] != "0A" {
                u64::from_str_radix(f[4].split(':').nth(1)?, 16).ok()
            } else {
                None
            }
        })
        .sum()
}

/// Waits until vigil has dealt with every queued connection on `addr` (or has logged that
/// it ran out of descriptors, as it did before the caps).
fn wait_flood_taken(d: &Daemon, addr: SocketAddr) {
    d.wait_for("vigil to take the queued connections", LONG, || {
        (accept_queue(addr) == Some(0) || log(d).contains("Too many open files")).then_some(())
    });
}

/// Kills `w`; it must come back (a second START) while vigil runs on.
fn crash_and_expect_restart(d: &mut Daemon, dir: &TestDir) {
    let ev = dir.read_events();
    let first = ev.starts("w")[0];
    kill(first, libc::SIGKILL);
    let back = try_wait_for(TIMEOUT, || {
        (dir.read_events().count("START", "w") >= 2).then_some(())
    });
    let l = log(d);
    assert!(
        back.is_some(),
        "w was not restarted after its crash (vigil running: {})\n{l}",
        d.is_running()
    );
    assert!(d.is_running(), "vigil exited\n{l}");
    assert!(
        !l.contains("Too many open files"),
        "vigil ran out of descriptors:\n{l}"
    );
}

fn status_answers(d: &Daemon) {
    if let Err(e) = status_ok(d.socket()) {
        panic!("status on the control socket: {e}\n{}", log(d));
    }
}

fn stop_clean(d: &mut Daemon) {
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(LONG), 0, "{}", log(d));
}

/// 1,100 idle TCP connections at `nofile` 1024 took every descriptor: the next restart
/// failed with EMFILE, counted against the intensity, and vigil exited 75. Now at most
/// `max_connections` (64) are held, the crash is restarted, `vigil status` answers, and
/// `/livez` answers from a fresh connection during the flood (the oldest connection that
/// has not sent a request makes room) and after it.
#[test]
fn idle_http_flood_at_nofile_1024_leaves_restarts_working() {
    if !can_run(
        "idle_http_flood_at_nofile_1024_leaves_restarts_working",
        4096,
    ) {
        return;
    }
    let dir = TestDir::new();
    let (mut d, addr) = start(&dir, 1024, "");
    let pid = d.pid();
    let base = proc_usage(pid).unwrap().fds;
    let (flood, failed) = idle_tcp(addr, 1100);
    wait_flood_taken(&d, addr);
    let held = proc_usage(pid).unwrap().fds;
    eprintln!(
        "[idle http flood, nofile 1024] {} connected ({failed} did not), vigil holds {held} \
         descriptors (was {base})",
        flood.len()
    );
    crash_and_expect_restart(&mut d, &dir);
    status_answers(&d);
    assert_eq!(get(addr, "/livez"), Ok(200), "/livez during the flood");
    assert!(
        held <= base + 64 + 2,
        "vigil holds {held} descriptors ({base} before the flood): more than the 64 \
         connections of the cap"
    );
    drop(flood);
    assert_eq!(get(addr, "/livez"), Ok(200), "/livez after the flood");
    stop_clean(&mut d);
}

/// 1,000 clients sending 380 KB of headers that never end took vigil from 3.4 MB to
/// 386 MB. Now a request head is at most 16 KiB (431, closed), at most 64 connections are
/// held, and vigil's peak RSS stays under [`RSS_BOUND_KB`]; `/livez` answers afterwards.
#[test]
fn slow_header_flood_keeps_rss_bounded() {
    if !can_run("slow_header_flood_keeps_rss_bounded", 4096) {
        return;
    }
    let dir = TestDir::new();
    let (mut d, addr) = start(&dir, 1024, "");
    let pid = d.pid();
    let before = proc_usage(pid).unwrap();
    const N: usize = 1000;
    const HEADER: usize = 380 * 1024;
    let (mut flood, failed) = idle_tcp(addr, N);
    let head = format!("GET /livez HTTP/1.1\r\nHost: {addr}\r\nX-Pad: ");
    let mut sent = vec![0usize; flood.len()];
    let mut done = vec![false; flood.len()];
    for c in &mut flood {
        c.set_nonblocking(true).unwrap();
    }
    let pad = vec![b'a'; 64 * 1024];
    // Write every header as far as vigil takes it: until all are sent, or refused
    // (vigil closed the connection), within a deadline.
    let deadline = Instant::now() + LONG;
    let mut refused = 0;
    while done.iter().any(|d| !d) && Instant::now() < deadline {
        let mut progress = false;
        for (i, c) in flood.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            let r = if sent[i] < head.len() {
                c.write(&head.as_bytes()[sent[i]..])
            } else {
                c.write(&pad[..(HEADER - sent[i]).min(pad.len())])
            };
            match r {
                Ok(n) => {
                    sent[i] += n;
                    progress |= n > 0;
                    done[i] = sent[i] >= HEADER;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    done[i] = true;
                    refused += 1;
                }
            }
        }
        if !progress {
            // Nothing could be written: wait for vigil to read (or close) some.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Measure once vigil has read (or dropped) all it was sent.
    d.wait_for("vigil to read what the flood sent", LONG, || {
        (unread_bytes(addr) == 0).then_some(())
    });
    let during = proc_usage(pid).unwrap();
    let total: usize = sent.iter().sum();
    eprintln!(
        "[slow header flood] {} clients ({failed} did not connect), {} MB of headers \
         written, {refused} closed by vigil; vigil RSS {} KiB before, {} KiB after, peak \
         {} KiB; {} descriptors (was {})",
        flood.len(),
        total / 1_000_000,
        before.rss_kb,
        during.rss_kb,
        during.hwm_kb,
        during.fds,
        before.fds
    );
    assert!(
        during.hwm_kb < RSS_BOUND_KB,
        "vigil's peak RSS is {} KiB under the flood (bound {RSS_BOUND_KB} KiB)",
        during.hwm_kb
    );
    assert_eq!(get(addr, "/livez"), Ok(200), "/livez during the flood");
    drop(flood);
    assert_eq!(get(addr, "/livez"), Ok(200), "/livez after the flood");
    assert!(d.is_running());
    stop_clean(&mut d);
}

/// The control socket gets the same: 1,100 idle connections at `nofile` 1024 leave a
/// restart working and `vigil status` answered (at most `[control] max_connections`, 16,
/// are held; the oldest that has not sent its request makes room for a new one).
#[test]
fn idle_control_flood_at_nofile_1024_leaves_restarts_working() {
    if !can_run(
        "idle_control_flood_at_nofile_1024_leaves_restarts_working",
        4096,
    ) {
        return;
    }
    let dir = TestDir::new();
    let (mut d, _) = start(&dir, 1024, "");
    let pid = d.pid();
    let base = proc_usage(pid).unwrap().fds;
    let socket = d.socket().to_path_buf();
    let flood = idle_unix(&socket, 1100);
    // Connections are accepted in order: once a later client is answered (or vigil has
    // run out of descriptors), the flood has been taken.
    d.wait_for("vigil to take the queued connections", LONG, || {
        (status_ok(&socket).is_ok() || log(&d).contains("Too many open files")).then_some(())
    });
    let held = proc_usage(pid).unwrap().fds;
    eprintln!(
        "[idle control flood, nofile 1024] {} connected, vigil holds {held} descriptors \
         (was {base})",
        flood.len()
    );
    crash_and_expect_restart(&mut d, &dir);
    status_answers(&d);
    assert!(
        held <= base + 16 + 2,
        "vigil holds {held} descriptors ({base} before the flood): more than the 16 \
         connections of the cap"
    );
    drop(flood);
    status_answers(&d);
    stop_clean(&mut d);
}

/// A connection to the control socket that does not block when vigil's listen queue is
/// full (retried for a second, then `None`).
fn connect_unix(path: &Path) -> Option<UnixStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let addr = UnixAddr::new(path).ok()?;
    try_wait_for(Duration::from_secs(1), || {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .ok()?;
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).ok()?;
        Some(UnixStream::from(fd))
    })
}

/// Up to `n` connections to the control socket that send nothing (stops at the first
/// that cannot connect: the listen queue stays full).
fn idle_unix(socket: &Path, n: usize) -> Vec<UnixStream> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let Some(c) = connect_unix(socket) else {
            break;
        };
        conns.push(c);
    }
    conns
}

/// A `status` request on a fresh control connection, bounded in time (`vigil status`
/// would wait for ever on a vigil that does not accept): whether it was answered `ok`.
fn status_ok(socket: &Path) -> Result<(), String> {
    let mut c = connect_unix(socket).ok_or("cannot connect")?;
    c.set_nonblocking(false).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    c.write_all(b"{\"op\":\"status\"}\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    c.read_to_string(&mut out).map_err(|e| e.to_string())?;
    if out.starts_with("{\"ok\":true") {
        Ok(())
    } else {
        Err(out)
    }
}

/// At `nofile` 64 the caps (64 HTTP and 16 control connections) exceed the limit: the
/// descriptor reserve (a quarter of the limit, at most 256) holds clients to 48
/// descriptors, so the restart after a crash still gets its descriptors, and a control
/// client is served while idle HTTP clients hold all they may.
#[test]
fn descriptor_reserve_at_nofile_64_keeps_restarts_working() {
    if !can_run(
        "descriptor_reserve_at_nofile_64_keeps_restarts_working",
        4096,
    ) {
        return;
    }
    let dir = TestDir::new();
    let (mut d, addr) = start(&dir, 64, "");
    let pid = d.pid();
    let base = proc_usage(pid).unwrap().fds;
    let (http, _) = idle_tcp(addr, 200);
    wait_flood_taken(&d, addr);
    let socket = d.socket().to_path_buf();
    let control = idle_unix(&socket, 40);
    // At the reserve, a new client takes the place of the connection of either listener
    // that has waited longest: the first try is answered.
    status_answers(&d);
    let held = proc_usage(pid).unwrap().fds;
    eprintln!(
        "[descriptor reserve, nofile 64] {} http and {} control connections, vigil holds \
         {held} descriptors (was {base})",
        http.len(),
        control.len()
    );
    assert!(held <= 64 - 16, "vigil holds {held} of its 64 descriptors");
    crash_and_expect_restart(&mut d, &dir);
    status_answers(&d);
    drop(http);
    drop(control);
    assert_eq!(get(addr, "/livez"), Ok(200), "/livez after the flood");
    stop_clean(&mut d);
}
