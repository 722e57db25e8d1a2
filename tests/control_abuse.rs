//! The control socket under bad input: garbage bytes, invalid UTF-8, JSON of the wrong
//! shape, requests over the size limit, truncated requests, clients that connect and send
//! nothing, hundreds of concurrent connections (at most `[control] max_connections` held),
//! connections that are all busy, and a client of another uid. Each one is refused with a
//! clean `bad_request`, `busy` (or `permission_denied`) answer or a closed connection,
//! other clients are served meanwhile, and afterwards `vigil status` works and the tree is
//! untouched (the children's pids are the ones from before).

#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// [`vigil_client`] with stdout and stderr together.
fn client(socket: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, err) = vigil_client(socket, args);
    (code, out + &err)
}

fn status_ok(socket: &Path) {
    let (code, out) = client(socket, &["status"]);
    assert_eq!(code, 0, "vigil status: {out}");
}

/// Sends `bytes`, closes the write side, reads the whole answer (bounded in time).
fn raw(socket: &Path, bytes: &[u8]) -> String {
    let mut c = UnixStream::connect(socket).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // vigil may answer and close before reading everything (a request too long).
    let _ = c.write_all(bytes);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8(out).expect("the answer is UTF-8")
}

/// The answer is one JSON line with `ok: false` and error `kind`.
fn assert_refused(reply: &str, kind: &str, what: &str) {
    assert!(
        reply.ends_with('\n') && reply.lines().count() == 1,
        "{what}: {reply:?}"
    );
    let v: serde_json::Value =
        serde_json::from_str(reply).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {reply:?}"));
    assert_eq!(v["ok"], false, "{what}: {reply}");
    assert_eq!(v["error"], kind, "{what}: {reply}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {reply}"
    );
}

const TAGS: [&str; 3] = ["2001", "2002", "2003"];

/// vigil running root [a, sup [b, c]] of `sleep`s; the daemon and the children's pids.
fn start(dir: &TestDir) -> (Daemon, Vec<i32>) {
    let mut toml =
        String::from("children = [\"a\", \"sup\"]\n[supervisor.sup]\nchildren = [\"b\", \"c\"]\n");
    for (name, tag) in ["a", "b", "c"].iter().zip(TAGS) {
        toml += &format!("\n[process.{name}]\ncommand = [\"sleep\", \"{tag}\"]\n");
    }
    let cfg = dir.write("vigil.toml", &toml);
    let d = vigil_in(dir).arg("run").arg(cfg).spawn();
    let (code, out) = client(d.socket(), &["wait-ready", "--timeout", "10s"]);
    assert_eq!(code, 0, "wait-ready: {out}\n{}", log(&d));
    let pids = pids(&d);
    (d, pids)
}

fn pids(d: &Daemon) -> Vec<i32> {
    TAGS.iter()
        .map(|tag| {
            let want = format!("sleep {tag} ");
            d.wait_for(&format!("sleep {tag}"), TIMEOUT, || {
                children_of(d.pid()).into_iter().find(|&p| {
                    is_alive(p)
                        && std::fs::read(format!("/proc/{p}/cmdline"))
                            .is_ok_and(|b| String::from_utf8_lossy(&b).replace('\0', " ") == want)
                })
            })
        })
        .collect()
}

/// After the abuse: vigil runs, answers, and the children are the same processes.
fn assert_untouched(d: &mut Daemon, before: &[i32]) {
    assert!(d.is_running(), "vigil exited:\n{}", log(d));
    status_ok(d.socket());
    assert_eq!(pids(d), before, "children's pids changed");
    assert!(before.iter().all(|&p| is_alive(p)));
    let l = log(d);
    assert!(!l.contains("panicked"), "{l}");
}

#[test]
fn garbage_wrong_shapes_and_truncated_requests_are_refused() {
    let dir = TestDir::new();
    let (mut d, before) = start(&dir);
    let s = d.socket().to_path_buf();
    let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty line", b"\n".to_vec()),
        ("text", b"hello\n".to_vec()),
        ("binary", (0u8..=255).rev().chain([b'\n']).collect()),
        ("NUL bytes", b"\0\0\0\0\n".to_vec()),
        (
            "invalid UTF-8",
            b"{\"op\":\"stop\",\"name\":\"\xff\xfe\"}\n".to_vec(),
        ),
        (
            "lone surrogate",
            b"{\"op\":\"stop\",\"name\":\"\\ud800\"}\n".to_vec(),
        ),
        ("array", b"[\"status\"]\n".to_vec()),
        ("array of a stop", b"[\"stop\",\"a\"]\n".to_vec()),
        ("number", b"42\n".to_vec()),
        ("string", b"\"status\"\n".to_vec()),
        ("null", b"null\n".to_vec()),
        ("no op", b"{}\n".to_vec()),
        ("op not a string", b"{\"op\":1}\n".to_vec()),
        ("unknown op", b"{\"op\":\"reboot\"}\n".to_vec()),
        ("missing name", b"{\"op\":\"stop\"}\n".to_vec()),
        (
            "name not a string",
            b"{\"op\":\"stop\",\"name\":[1]}\n".to_vec(),
        ),
        ("unknown field", b"{\"op\":\"status\",\"x\":1}\n".to_vec()),
        (
            "duplicate field",
            b"{\"op\":\"stop\",\"name\":\"a\",\"name\":\"b\"}\n".to_vec(),
        ),
        (
            "negative timeout",
            b"{\"op\":\"wait_ready\",\"timeout_ms\":-1}\n".to_vec(),
        ),
        (
            "huge timeout",
            b"{\"op\":\"wait_ready\",\"timeout_ms\":1e400}\n".to_vec(),
        ),
        (
            "two objects",
            b"{\"op\":\"status\"}{\"op\":\"status\"}\n".to_vec(),
        ),
        ("deep nesting", deep.into_bytes()),
        ("truncated", b"{\"op\":\"sto".to_vec()),
        (
            "truncated after a key",
            b"{\"op\":\"stop\",\"name\":".to_vec(),
        ),
        ("only whitespace", b"   \t  ".to_vec()),
    ];
    for (what, bytes) in &cases {
        let reply = raw(&s, bytes);
        assert_refused(&reply, "bad_request", what);
    }
    // Requests of the right shape naming nothing, or absurd values: refused by the loop.
    for (what, line, kind) in [
        (
            "unknown name",
            "{\"op\":\"stop\",\"name\":\"ghost\"}\n",
            "unknown_name",
        ),
        (
            "name with NUL",
            "{\"op\":\"restart\",\"name\":\"a\\u0000\"}\n",
            "unknown_name",
        ),
        (
            "max timeout, unknown name",
            "{\"op\":\"wait_ready\",\"name\":\"ghost\",\"timeout_ms\":18446744073709551615}\n",
            "unknown_name",
        ),
    ] {
        assert_refused(&raw(&s, line.as_bytes()), kind, what);
    }
    let reply = raw(
        &s,
        b"{\"op\":\"signal\",\"name\":\"a\",\"signal\":\"SIGFOO\"}\n",
    );
    assert!(reply.contains("\"ok\":false"), "unknown signal: {reply}");
    let reply = raw(
        &s,
        b"{\"op\":\"signal\",\"name\":\"a\",\"signal\":\"KILL\\n\"}\n",
    );
    assert!(
        reply.contains("\"ok\":false"),
        "signal with a newline: {reply}"
    );
    // A client that closes mid-line without reading.
    for _ in 0..20 {
        let mut c = UnixStream::connect(&s).expect("connect");
        let _ = c.write_all(b"{\"op\":\"stop\",\"na");
        drop(c);
    }
    assert_untouched(&mut d, &before);
}

#[test]
fn oversized_requests_are_refused() {
    let dir = TestDir::new();
    let (mut d, before) = start(&dir);
    let s = d.socket().to_path_buf();
    // Just over the limit, with and without a newline, and one with a valid prefix.
    let limit = 64 * 1024;
    for (what, bytes) in [
        ("64 KiB + 1 of x", vec![b'x'; limit + 1]),
        (
            "64 KiB + 1 with newline",
            [vec![b' '; limit], b"\n".to_vec()].concat(),
        ),
        (
            "valid request padded",
            format!("{{\"op\":\"stop\",\"name\":\"{}\"}}\n", "a".repeat(limit)).into_bytes(),
        ),
    ] {
        let reply = raw(&s, &bytes);
        assert_refused(&reply, "bad_request", what);
        assert!(reply.contains("longer than"), "{what}: {reply}");
    }
    // A request exactly at the limit is read (and refused for its content, not its size).
    let at_limit = [vec![b' '; limit - 16], b"{\"op\":\"status\"}\n".to_vec()].concat();
    assert_eq!(at_limit.len(), limit);
    let reply = raw(&s, &at_limit);
    assert!(
        reply.contains("\"ok\":true"),
        "a request of exactly 64 KiB: {reply:.200}"
    );
    // A 16 MiB stream: vigil stops reading; the client sees an answer or a closed socket.
    let mut c = UnixStream::connect(&s).expect("connect");
    c.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let chunk = vec![b'y'; 1024 * 1024];
    for _ in 0..16 {
        if c.write_all(&chunk).is_err() {
            break;
        }
    }
    drop(c);
    assert_untouched(&mut d, &before);
}

#[test]
fn silent_clients_time_out_while_others_are_served() {
    let dir = TestDir::new();
    let (mut d, before) = start(&dir);
    let s = d.socket().to_path_buf();
    // Clients that connect and send nothing (or half a line) and keep the connection.
    let started = Instant::now();
    let mut silent: Vec<UnixStream> = (0..10)
        .map(|i| {
            let mut c = UnixStream::connect(&s).expect("connect");
            if i % 2 == 1 {
                c.write_all(b"{\"op\":").unwrap();
            }
            c
        })
        .collect();
    // Meanwhile others are answered at once (well before the 5 s read timeout).
    for _ in 0..5 {
        status_ok(&s);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served while others are silent"
    );
    // Each silent client gets a clean answer when its time is up, then the socket closes.
    for c in &mut silent {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read the timeout answer");
        assert_refused(&out, "bad_request", "silent client");
        assert!(out.contains("no complete request within"), "{out}");
    }
    assert_untouched(&mut d, &before);
}

/// 500 connections at once, all idle: vigil holds at most `[control] max_connections`
/// (16) of them, each newcomer closing the one that has waited longest without a request,
/// so a fresh client is still served. When they all send a request afterwards, the ones
/// still held are answered and the others find their connection closed (never a hang).
#[test]
fn five_hundred_concurrent_connections() {
    let dir = TestDir::new();
    let (mut d, before) = start(&dir);
    let s = d.socket().to_path_buf();
    let base = proc_usage(d.pid()).unwrap().fds;
    let mut conns: Vec<UnixStream> = (0..500)
        .map(|_| UnixStream::connect(&s).expect("connect"))
        .collect();
    // All 500 are open and idle; a fresh client is still served (it is accepted after
    // all of them).
    status_ok(&s);
    let held = proc_usage(d.pid()).unwrap().fds;
    assert!(
        held <= base + 16,
        "vigil holds {held} descriptors ({base} before): more than the 16 connections of \
         the cap"
    );
    let mut answered = 0;
    for c in &mut conns {
        let _ = c.write_all(b"{\"op\":\"status\"}\n");
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = Vec::new();
        match c.read_to_end(&mut out) {
            Ok(_) if out.is_empty() => {}
            Ok(_) => {
                let out = String::from_utf8(out).expect("UTF-8");
                let v: serde_json::Value =
                    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{i}: {e}: {out:?}"));
                assert_eq!(v["ok"], true, "connection {i}: {out}");
                answered += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    eprintln!(
        "[500 idle control connections] vigil held {held} descriptors (was {base}); {answered} answered afterwards"
    );
    assert!(
        (1..=16).contains(&answered),
        "{answered} of the 500 were answered; vigil holds at most 16"
    );
    // 500 that connect and hang up at once.
    for _ in 0..500 {
        drop(UnixStream::connect(&s).expect("connect"));
    }
    assert_untouched(&mut d, &before);
}

/// When all 16 connections are busy (`wait-ready` requests for a stopped child), a
/// newcomer is answered `busy` at once (`vigil status` exits 69 and names the setting);
/// once they are answered, clients are served again.
#[test]
fn busy_connections_refuse_newcomers() {
    let dir = TestDir::new();
    let (mut d, _) = start(&dir);
    let s = d.socket().to_path_buf();
    let (code, out) = client(&s, &["stop", "a"]);
    assert_eq!(code, 0, "stop a: {out}");
    let wait = b"{\"op\":\"wait_ready\",\"name\":\"a\",\"timeout_ms\":5000}\n";
    // One more waiter per try, until a client is refused (a try that is served took the
    // place of a waiter whose request vigil had not read yet).
    let mut waiters = Vec::new();
    let busy = d.wait_for("a client refused as busy", TIMEOUT, || {
        let mut c = UnixStream::connect(&s).ok()?;
        c.write_all(wait).ok()?;
        waiters.push(c);
        let (code, out) = client(&s, &["status"]);
        (code == 69).then_some(out)
    });
    assert!(
        busy.contains("[control] max_connections") && busy.contains("try again"),
        "{busy}"
    );
    let reply = raw(&s, b"{\"op\":\"status\"}\n");
    assert_refused(&reply, "busy", "a client while 16 wait");
    // The waiters are answered when their time is up (or were closed to make room).
    for (i, c) in waiters.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = Vec::new();
        match c.read_to_end(&mut out) {
            Ok(_) if out.is_empty() => {}
            Ok(_) => assert_refused(
                &String::from_utf8(out).expect("UTF-8"),
                "timed_out",
                &format!("waiter {i}"),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("waiter {i}: {e}"),
        }
    }
    status_ok(&s);
    assert!(d.is_running());
}

#[test]
fn another_uid_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root to run a client as uid 65534");
        return;
    }
    let dir = TestDir::new();
    let (mut d, before) = start(&dir);
    let s = d.socket().to_path_buf();
    let parent = s.parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let out = Command::new(vigil_for_any_uid())
            .args(args)
            .env("VIGIL_SOCKET", &s)
            .env_remove("RUST_LOG")
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run the client as uid 65534");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The socket's mode (0600) keeps uid 65534 out.
    let (code, err) = as_nobody(&["stop", "a"]);
    assert_eq!(code, 77, "{err}");
    // With the mode opened, the peer-credential check refuses every verb, garbage too.
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o666)).unwrap();
    for verb in [
        &["stop", "a"][..],
        &["restart", "sup"],
        &["signal", "b", "KILL"],
        &["start", "c"],
        &["status"],
    ] {
        let (code, err) = as_nobody(verb);
        assert_eq!(code, 77, "{verb:?}: {err}");
        assert!(err.contains("uid 65534 may not control"), "{verb:?}: {err}");
    }
    assert_untouched(&mut d, &before);
    assert!(log(&d).contains("refused a client"), "{}", log(&d));
}

/// The deepest tree the config allows (50 supervisors, the root included) runs, and its
/// status is readable by `vigil status` (the JSON nests two levels per supervisor, and
/// serde_json reads 128); restarting the top of it works.
#[test]
fn deepest_allowed_tree_is_served() {
    let dir = TestDir::new();
    let mut toml = String::from("children = [\"s0\"]\n");
    for i in 0..49 {
        toml += &format!("[supervisor.s{i}]\nchildren = [\"s{}\"]\n", i + 1);
    }
    toml += "[process.s49]\ncommand = [\"sleep\", \"2049\"]\n";
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir).arg("run").arg(cfg).spawn();
    let (code, out) = client(d.socket(), &["wait-ready", "--timeout", "10s"]);
    assert_eq!(code, 0, "wait-ready: {out}\n{}", log(&d));
    let (code, out) = client(d.socket(), &["status", "--json"]);
    assert_eq!(code, 0, "status --json: {out}");
    assert!(out.contains("\"s49\""), "{out}");
    let (code, out) = client(d.socket(), &["restart", "s0"]);
    assert_eq!(code, 0, "restart s0: {out}");
    status_ok(d.socket());
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}
