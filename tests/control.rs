//! The control socket and the client verbs against a running vigil: each operation end to
//! end (with `vigil-test-child` recording what happens to it), `status --json`, unknown
//! names, no daemon, the socket's mode, another uid refused (by the file mode and by the
//! peer-credential check), garbage requests, stale and live sockets, the post-mortem in
//! the termination message file.

#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn decode(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `client`, asserting exit 0; returns stdout.
fn ok(socket: &Path, args: &[&str]) -> String {
    let (code, out, err) = vigil_client(socket, args);
    assert_eq!(
        code, 0,
        "vigil {args:?}: exit {code}\nstdout: {out}\nstderr: {err}"
    );
    out
}

fn status_json(socket: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(socket, &["status", "--json"])).expect("status --json is JSON")
}

/// The state of `name` in a JSON status.
fn state_of(status: &serde_json::Value, name: &str) -> String {
    fn find<'a>(n: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
        if n["name"] == name {
            return Some(n);
        }
        n["children"].as_array()?.iter().find_map(|c| find(c, name))
    }
    find(&status["tree"], name)
        .and_then(|n| n["state"].as_str())
        .unwrap_or_else(|| panic!("{name} not in status {status}"))
        .to_string()
}

const CHILD: &[&str] = &["--log-signals", "--on-term", "die"];

/// root [a, app [b, c]] of test children that log signals and die of SIGTERM.
fn tree(dir: &TestDir, top: &str) -> String {
    format!("{top}\nchildren = [\"a\", \"app\"]\n[supervisor.app]\nchildren = [\"b\", \"c\"]\n")
        + &process(dir, "a", CHILD, "")
        + &process(dir, "b", CHILD, "")
        + &process(dir, "c", CHILD, "")
}

fn start(dir: &TestDir, toml: &str) -> Daemon {
    let path = dir.write("vigil.toml", toml);
    let d = vigil_in(dir).arg("run").arg(path).spawn();
    let (code, _, err) = vigil_client(d.socket(), &["wait-ready", "--timeout", "10s"]);
    assert_eq!(code, 0, "wait-ready at start: {err}\n{}", log(&d));
    d
}

#[test]
fn each_operation_end_to_end() {
    let dir = TestDir::new();
    let mut d = start(&dir, &tree(&dir, "intensity = 0"));
    let s = d.socket().to_path_buf();
    wait_started(&dir, &["a", "b", "c"]);

    // status, human and JSON.
    let human = ok(&s, &["status"]);
    for name in ["root", "a", "app", "b", "c"] {
        assert!(human.contains(name), "{human}");
    }
    assert!(human.contains("ready"), "{human}");
    let st = status_json(&s);
    assert_eq!(st["ready"], true);
    assert_eq!(state_of(&st, "b"), "running");
    assert_eq!(st["tree"]["children"][1]["children"][0]["name"], "b");
    assert!(st["tree"]["children"][0]["pid"].as_i64().is_some());

    // stop b: SIGTERM, stopped, stays stopped (intensity 0: a counted restart would end
    // vigil), and the tree is no longer ready.
    assert_eq!(ok(&s, &["stop", "b"]).trim(), "b stopped");
    let ev = dir.read_events();
    assert_eq!(ev.signals("b"), strs(&["SIGTERM"]));
    assert_eq!(state_of(&status_json(&s), "b"), "stopped");
    let (code, _, err) = vigil_client(&s, &["wait-ready", "--timeout", "200ms"]);
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("b is stopped"), "{err}");
    assert_eq!(
        ok(&s, &["wait-ready", "a", "--timeout", "1s"]).trim(),
        "a is ready"
    );
    // Idempotent.
    assert_eq!(ok(&s, &["stop", "b"]).trim(), "b stopped");

    // start b: a new process.
    assert_eq!(ok(&s, &["start", "b"]).trim(), "b started");
    dir.wait_events("b's second start", TIMEOUT, |e| e.starts("b").len() == 2);
    let (code, _, err) = vigil_client(&s, &["start", "b"]);
    assert_eq!(code, 1);
    assert!(err.contains("already running"), "{err}");

    // restart a: SIGTERM, then a new start.
    assert_eq!(ok(&s, &["restart", "a"]).trim(), "a restarted");
    let ev = dir.wait_events("a's second start", TIMEOUT, |e| e.starts("a").len() == 2);
    let signalled = ev.position("SIGNAL", "a").expect("a was signalled");
    assert!(signalled < ev.last("START", "a").expect("a started").index);

    // signal: every process of the subtree.
    assert_eq!(
        ok(&s, &["signal", "app", "USR1"]).trim(),
        "sent SIGUSR1 to app (2 process groups)"
    );
    dir.wait_events("SIGUSR1 to b and c", TIMEOUT, |e| {
        e.signals("b").contains(&"SIGUSR1".to_string())
            && e.signals("c").contains(&"SIGUSR1".to_string())
    });
    let (code, _, err) = vigil_client(&s, &["signal", "a", "NOPE"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown signal"), "{err}");

    // stop and start a supervisor: its subtree, in order.
    let mark = dir.read_events().all().len();
    assert_eq!(ok(&s, &["stop", "app"]).trim(), "app stopped");
    let ev = dir.read_events();
    let stops: Vec<String> = ev.all()[mark..]
        .iter()
        .filter(|e| e.kind == "SIGNAL" && e.args[0] == "SIGTERM")
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(stops, strs(&["c", "b"]));
    let (code, _, err) = vigil_client(&s, &["start", "c"]);
    assert_eq!(code, 1);
    assert!(err.contains("supervisor app is not running"), "{err}");
    assert_eq!(ok(&s, &["start", "app"]).trim(), "app started");
    // In start order (vigil's log: two children's own START lines may race).
    // Started so far: a, b, c; b; a; then b, c.
    let l = d.wait_for("b and c logged as started", TIMEOUT, || {
        let l = log(&d);
        (logged_names(&l, "started").len() >= 7).then_some(l)
    });
    let started = logged_names(&l, "started");
    assert_eq!(started[started.len() - 2..], strs(&["b", "c"]));
    ok(&s, &["wait-ready", "--timeout", "10s"]);

    // Unknown name: named, with the known ones.
    let (code, _, err) = vigil_client(&s, &["stop", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("\"nope\"") && err.contains("a, app, b, c"),
        "{err}"
    );
    // The root is refused.
    let (code, _, err) = vigil_client(&s, &["stop", "root"]);
    assert_eq!(code, 1);
    assert!(err.contains("SIGTERM"), "{err}");

    // None of this counted against intensity 0: vigil still runs; a clean stop exits 0
    // and removes the socket.
    assert!(d.is_running());
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    assert!(!s.exists(), "the socket file is removed at exit");
    let (code, _, err) = vigil_client(&s, &["status"]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("no vigil is listening"), "{err}");
}

#[test]
fn no_daemon_listening() {
    let dir = TestDir::new();
    let s = dir.join("nothing.sock");
    for verb in [
        &["status"][..],
        &["stop", "a"],
        &["wait-ready", "--timeout", "100ms"],
    ] {
        let (code, _, err) = vigil_client(&s, verb);
        assert_eq!(code, 69, "{verb:?}: {err}");
        assert!(err.contains("no vigil is listening on"), "{err}");
    }
}

#[test]
fn socket_mode_peer_credentials_and_garbage() {
    let dir = TestDir::new();
    let d = start(&dir, &tree(&dir, ""));
    let s = d.socket().to_path_buf();
    let meta = std::fs::metadata(&s).expect("socket exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");
    assert_eq!(meta.uid(), nix_uid(), "owned by vigil's user");

    // Garbage, an unknown request, and an unknown field: clean error replies.
    for line in [
        "hello\n",
        "{\"op\":\"reboot\"}\n",
        "{\"op\":\"status\",\"x\":1}\n",
    ] {
        let reply = raw_request(&s, line);
        let v: serde_json::Value = serde_json::from_str(&reply).expect("reply is JSON");
        assert_eq!(v["ok"], false, "{reply}");
        assert_eq!(v["error"], "bad_request", "{reply}");
    }
    // Too long: refused after 64 KiB, without reading the rest.
    let long = format!("{{\"op\":\"stop\",\"name\":\"{}\"}}\n", "x".repeat(100_000));
    let reply = raw_request(&s, &long);
    assert!(
        reply.contains("\"bad_request\"") && reply.contains("longer than"),
        "{reply}"
    );
    // vigil still answers.
    ok(&s, &["status"]);

    if nix_uid() != 0 {
        skip_or_fail_on_ci(
            "socket_mode_peer_credentials_and_garbage (its other-uid part)",
            "the tests do not run as root, so no client can run as uid 65534",
            "that a client of another uid is refused goes untested",
            "run the tests as root (as .ci/run does)",
        );
        return;
    }
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new(vigil_for_any_uid());
        cmd.args(args).env("VIGIL_SOCKET", &s).uid(65534).gid(65534);
        decode(cmd.output().expect("run the client as uid 65534"))
    };
    // The file mode keeps another uid out (where the kernel enforces it; the
    // peer-credential check refuses it anyway).
    let parent = s.parent().unwrap();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, err) = as_nobody(&["status"]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    // With the mode opened up, the peer-credential check still refuses it.
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = as_nobody(&["stop", "a"]);
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("uid 65534 may not control"), "{err}");
    assert_eq!(state_of(&status_json(&s), "a"), "running");
    assert!(log(&d).contains("refused a client"), "{}", log(&d));
}

fn nix_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn raw_request(socket: &Path, line: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    // vigil may answer and close before reading everything (a request too long).
    let _ = c.write_all(line.as_bytes());
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn stale_socket_replaced_live_one_refused() {
    let dir = TestDir::new();
    let sock = dir.join("ctl.sock");
    // A socket file nobody listens on (a dead vigil's).
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let toml = tree(&dir, "");
    let path = dir.write("vigil.toml", &toml);
    let d = vigil_in(&dir)
        .env("VIGIL_SOCKET", &sock)
        .arg("run")
        .arg(&path)
        .spawn();
    ok(&sock, &["wait-ready", "--timeout", "10s"]);
    assert_eq!(d.socket(), sock.as_path());
    // A second vigil on the same socket: refused before it starts anything.
    let other = TestDir::new();
    let path2 = other.write("vigil.toml", &tree(&other, ""));
    let mut d2 = vigil_in(&other)
        .env("VIGIL_SOCKET", &sock)
        .arg("run")
        .arg(&path2)
        .spawn();
    assert_eq!(d2.wait_exit(TIMEOUT), 69);
    assert!(
        log(&d2).contains(&format!("another vigil is listening on {}", sock.display())),
        "{}",
        log(&d2)
    );
    assert!(other.read_events().all().is_empty(), "nothing was started");
    // The first one is unaffected.
    ok(&sock, &["status"]);
}

/// Like `supervisorctl` with `supervisord.conf`, a client without `--socket` or
/// `$VIGIL_SOCKET` connects to the `[control] socket` of `$VIGIL_CONFIG`; an invalid
/// config there is passed over for the default path.
#[test]
fn client_finds_the_socket_in_the_config() {
    let dir = TestDir::new();
    let sock = dir.join("from-config.sock");
    let toml =
        tree(&dir, "") + &format!("\n[control]\nsocket = {:?}\n", sock.display().to_string());
    let path = dir.write("vigil.toml", &toml);
    let d = vigil_in(&dir)
        .env_remove("VIGIL_SOCKET")
        .arg("run")
        .arg(&path)
        .spawn();
    wait_started(&dir, &["a", "b", "c"]);
    wait_logged(&d, "started", &["a", "b", "c"]);
    let by_config = |config: &Path| {
        decode(
            Command::new(vigil())
                .arg("status")
                .env("VIGIL_CONFIG", config)
                .env_remove("VIGIL_SOCKET")
                .env_remove("RUST_LOG")
                .output()
                .expect("run the vigil client"),
        )
    };
    let (code, out, err) = by_config(&path);
    assert_eq!(code, 0, "{err}\n{}", log(&d));
    assert!(out.contains("app"), "{out}");

    let invalid = dir.write("invalid.toml", &format!("{toml}\nbogus = 1\n"));
    let (code, _, err) = by_config(&invalid);
    if code != 0 {
        assert!(!err.contains("from-config.sock"), "{err}");
    }
}

#[test]
fn control_disabled() {
    let dir = TestDir::new();
    let toml = tree(&dir, "") + "\n[control]\nenabled = false\n";
    let path = dir.write("vigil.toml", &toml);
    let d = vigil_in(&dir).arg("run").arg(path).spawn();
    wait_started(&dir, &["a", "b", "c"]);
    wait_logged(&d, "started", &["a", "b", "c"]);
    assert!(!d.socket().exists());
    let (code, _, _) = vigil_client(d.socket(), &["status"]);
    assert_eq!(code, 69);
}

#[test]
fn termination_message_on_give_up() {
    let dir = TestDir::new();
    let term = dir.join("termination-log");
    let toml = format!(
        "intensity = 1\nperiod = \"30s\"\ntermination_log = {}\nchildren = [\"ok\", \"app\"]\n\
         [supervisor.app]\nintensity = 1\nperiod = \"30s\"\nchildren = [\"crash\"]\n",
        toml_str(&term.display().to_string())
    ) + &process(&dir, "ok", &[], "")
        + &process(
            &dir,
            "crash",
            &["--exit-after", "0", "--code", "3"],
            "backoff = \"none\"",
        );
    let path = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir).arg("run").arg(path).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 75);
    let report = std::fs::read_to_string(&term).expect("termination log written");
    assert!(report.len() <= 4096);
    assert!(
        report.starts_with("vigil: supervisor root gave up at "),
        "{report}"
    );
    assert!(
        report.contains("offender: app (supervisor, permanent)"),
        "{report}"
    );
    assert!(
        report.contains("gave up: restart intensity exceeded by crash"),
        "{report}"
    );
    assert!(
        report.contains("restarts counted by root in the last 30s: 1 (intensity 1)"),
        "{report}"
    );
    // The nested give-up that caused it, with the crashing process's exits.
    assert!(
        report.contains("before that, vigil: supervisor app gave up"),
        "{report}"
    );
    assert!(
        report.contains("offender: crash (process, permanent)"),
        "{report}"
    );
    assert!(report.contains("exit code 3"), "{report}");
    // Also in the log.
    assert!(
        log(&d).contains("post-mortem of supervisor root"),
        "{}",
        log(&d)
    );
}

#[test]
fn socket_in_a_directory_others_can_write_is_refused() {
    let dir = TestDir::new();
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.write("vigil.toml", &tree(&dir, ""));
    let mut d = vigil_in(&dir)
        .env("VIGIL_SOCKET", open.join("ctl.sock"))
        .arg("run")
        .arg(&path)
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    assert!(log(&d).contains("its directory is not safe"), "{}", log(&d));
    assert!(dir.read_events().all().is_empty(), "nothing was started");
}

#[test]
fn wait_ready_and_status_follow_a_ready_check() {
    let dir = TestDir::new();
    let flag = dir.join("r-is-ready");
    let toml = String::from("children = [\"r\"]\n")
        + &process(
            &dir,
            "r",
            CHILD,
            &format!(
                "ready = {{ file = {}, timeout = \"30s\" }}",
                toml_str(&flag.to_string_lossy())
            ),
        );
    let path = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir).arg("run").arg(path).spawn();
    let s = d.socket().to_path_buf();
    wait_started(&dir, &["r"]);
    // Running, but its ready check has not passed: not ready, and the reason names it.
    let (code, _, err) = vigil_client(&s, &["wait-ready", "r", "--timeout", "300ms"]);
    assert_eq!(code, 75, "{err}\n{}", log(&d));
    assert!(err.contains('r'), "{err}");
    let st = status_json(&s);
    assert_eq!(st["ready"], false, "{st}");
    assert_eq!(state_of(&st, "r"), "running");
    // The check passes: wait-ready returns, status says ready.
    std::fs::write(&flag, "").unwrap();
    assert_eq!(
        ok(&s, &["wait-ready", "r", "--timeout", "10s"]).trim(),
        "r is ready"
    );
    assert_eq!(status_json(&s)["ready"], true);
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}
