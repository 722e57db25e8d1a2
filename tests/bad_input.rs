//! Hostile and broken surroundings of `vigil run` (issue 13, findings 6 and 10), with real
//! processes:
//!
//! - vigil's stderr a pipe nobody reads: the loop goes on (status answers, a crash loop
//!   keeps restarting, SIGTERM stops vigil with 0 in time); log lines that do not fit the
//!   queue are dropped and counted, and said once the reader catches up;
//! - a config that is a FIFO, `/dev/zero` or too large: exit 78 at once, naming the file;
//! - `SIGPWR`, `SIGRTMIN+3`, `SIGRTMIN+4` (lxc-stop, systemd-nspawn, machinectl): stop
//!   requests, also as PID 1 where the kernel drops signals without a handler;
//! - `VIGIL_SOCKET=` and `VIGIL_CONFIG=` set but empty: unset;
//! - vigil's own variables (`VIGIL_CONFIG`, `VIGIL_SOCKET`, `LISTEN_*`) never reach a child.
//!
//! No fixed sleeps: every wait is a predicate with a deadline.

#![allow(clippy::disallowed_methods)]

mod common;

use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// A hang guard for whole scenarios (2 shared cores, debug builds).
const LONG: Duration = Duration::from_secs(60);

/// How long a command that must not hang gets.
const DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Helpers

/// Makes a FIFO and opens it for reading without blocking; the daemon's shell opens it
/// for writing.
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

/// Shrinks the pipe behind `f` to one page (4 KiB), so a few lines fill it.
fn shrink_pipe(f: &fs::File) -> usize {
    // SAFETY: F_SETPIPE_SZ on a descriptor we own; smaller than the default needs no
    // privilege.
    let size = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        size > 0,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    size as usize
}

/// Bytes waiting in the pipe behind `f`.
fn queued(f: &fs::File) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a valid pointer.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// Reads `reader` (made blocking) until EOF on another thread, into the returned buffer.
fn drain_into(reader: fs::File) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    // SAFETY: clears O_NONBLOCK on a descriptor we own.
    unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, 0) };
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = out.clone();
    let t = std::thread::spawn(move || {
        let mut r = reader;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    (out, t)
}

/// Runs `cmd`; its exit code and output, or a panic naming `what` if it has not ended
/// within `deadline` (it is killed first).
fn run_within(what: &str, cmd: &mut Command, deadline: Duration) -> (i32, String, String) {
    let mut child = ChildGuard::spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let t0 = Instant::now();
    let code = try_wait_for(deadline, || child.try_wait().ok().flatten());
    let Some(status) = code else {
        let _ = child.kill();
        panic!("{what} did not end within {deadline:?}");
    };
    let (o, e) = reader.join().unwrap();
    eprintln!("[{what}] ended in {:.1?}", t0.elapsed());
    let code = status.code().unwrap_or(-1);
    (code, o, e)
}

/// `vigil status --json` against `socket`, which must answer within [`DEADLINE`].
fn status_within(socket: &Path) -> serde_json::Value {
    let (code, out, err) = run_within(
        "vigil status",
        Command::new(vigil_bin())
            .args(["status", "--json"])
            .env("VIGIL_SOCKET", socket)
            .env_remove("RUST_LOG"),
        DEADLINE,
    );
    assert_eq!(code, 0, "vigil status --json: exit {code}: {err}");
    serde_json::from_str(&out).expect("status --json is JSON")
}

/// A tree of one child that exits at once, restarted at once, for ever: vigil logs three
/// lines (exited, restart scheduled, started) every few milliseconds.
fn crash_loop(dir: &TestDir) -> String {
    format!(
        "intensity = 1000000000\nperiod = \"1s\"\nchildren = [\"crash\"]\n{}",
        process(
            dir,
            "crash",
            &["--exit-after", "0", "--code", "1"],
            "backoff = \"none\""
        )
    )
}

/// `vigil run CONFIG` with its stderr the FIFO at `stderr`.
fn run_with_stderr(dir: &TestDir, stderr: &Path, cfg: &Path) -> Daemon {
    vigil_in(dir)
        .program("sh")
        .arg("-c")
        .arg("exec \"$@\" 2> \"$0\"")
        .arg(stderr)
        .arg(vigil_bin())
        .arg("run")
        .arg(cfg)
        .spawn()
}

/// SIGTERM to vigil: exit 0 within [`DEADLINE`], nothing left below it; how long it took.
fn stop_within_deadline(d: &mut Daemon) -> Duration {
    let pid = d.pid();
    let t0 = Instant::now();
    d.signal_vigil(libc::SIGTERM);
    let code = d.wait_exit(DEADLINE);
    let took = t0.elapsed();
    assert_eq!(code, 0, "exit code after SIGTERM");
    let left: Vec<i32> = descendants(pid)
        .into_iter()
        .filter(|&p| is_alive(p))
        .collect();
    assert!(left.is_empty(), "left after vigil exited: {left:?}");
    took
}

// ---------------------------------------------------------------------------------------
// Finding 6: a stderr nobody reads

/// Fills vigil's stderr (a 4 KiB pipe nobody reads) with a crash loop's log lines.
/// Returns the daemon, the pipe's read end and the number of restarts so far.
fn fill_stderr(dir: &TestDir) -> (Daemon, fs::File, usize) {
    let (path, reader) = fifo(dir, "stderr");
    let size = shrink_pipe(&reader);
    let cfg = dir.write("vigil.toml", &crash_loop(dir));
    let d = run_with_stderr(dir, &path, &cfg);
    // 300 restarts are about 900 log lines, 90 KB: far more than the pipe holds. Before
    // the fix vigil stopped at about 15 restarts, blocked in write(2) on its stderr.
    dir.wait_events(
        "300 restarts of a crash loop logging to a full stderr",
        LONG,
        |e| e.count("START", "crash") >= 300,
    );
    let full = queued(&reader);
    assert!(
        full + 512 >= size,
        "the pipe is full ({full} of {size} bytes) and nobody reads it"
    );
    let starts = dir.read_events().count("START", "crash");
    (d, reader, starts)
}

/// Waits for 2,000 more restarts than `starts`: about 470 KB of log lines, more than the
/// 256 KiB vigil queues for its stderr, so lines are dropped from here on.
fn overflow_log_queue(dir: &TestDir, starts: usize) {
    dir.wait_events("2000 more restarts with stderr full", LONG, |e| {
        e.count("START", "crash") >= starts + 2000
    });
}

/// Finding 6: vigil's stderr is a pipe nobody reads (a stuck log collector). Its log lines
/// are dropped, never waited for: `vigil status` answers, the crash loop goes on, a storm
/// of SIGUSR1 (a status dump each) is handled, and SIGTERM stops vigil with 0 in time.
/// Before the fix, the loop blocked in write(2) on stderr after the first 4 KiB of lines:
/// no status, no restarts, SIGTERM ignored.
#[test]
fn a_stderr_nobody_reads_never_stalls_the_loop() {
    let dir = TestDir::new();
    let (mut d, reader, starts) = fill_stderr(&dir);
    let pid = d.vigil_pid();
    let st = status_within(d.socket());
    assert!(
        status_node(&st, "crash")["restarts"].as_u64().unwrap() >= 100,
        "{st}"
    );
    for _ in 0..200 {
        kill(pid, libc::SIGUSR1);
    }
    overflow_log_queue(&dir, starts);
    status_within(d.socket());
    let rss = proc_usage(pid).map_or(0, |u| u.hwm_kb);
    let took = stop_within_deadline(&mut d);
    eprintln!(
        "[unread stderr] {} restarts with a full 4 KiB stderr pipe; VmHWM {rss} KiB; \
         SIGTERM to exit 0 in {took:.1?}",
        dir.read_events().count("START", "crash")
    );
    drop(reader);
}

/// Finding 6, continued: once the reader catches up, vigil says how many log lines it
/// dropped, in a line of its own, and every line that arrives is whole (lines that were
/// queued are written entire, dropped ones are dropped entire). vigil's last lines are
/// written at exit.
#[test]
fn dropped_log_lines_are_counted_and_said_when_stderr_drains() {
    let dir = TestDir::new();
    let (mut d, reader, starts) = fill_stderr(&dir);
    overflow_log_queue(&dir, starts);
    let (text, reading) = drain_into(reader);
    let said = |t: &str| t.lines().any(|l| l.contains("log lines dropped"));
    d.wait_for("the dropped-lines notice", LONG, || {
        said(&String::from_utf8_lossy(&text.lock().unwrap())).then_some(())
    });
    stop_within_deadline(&mut d);
    wait_for("EOF on vigil's stderr", DEADLINE, || {
        reading.is_finished().then_some(())
    });
    let all = String::from_utf8_lossy(&text.lock().unwrap()).into_owned();
    let notice = all
        .lines()
        .find(|l| l.contains("log lines dropped"))
        .unwrap()
        .to_string();
    let n: u64 = log_field(&notice, "dropped")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a count in {notice:?}"));
    assert!(n > 0, "{notice}");
    // Every line is a whole log line: a timestamp, a level, a message.
    for l in all.lines() {
        assert!(
            l.starts_with("20") && (l.contains(" INFO ") || l.contains(" WARN ")),
            "a cut or mixed line: {l:?}"
        );
    }
    assert!(all.contains("vigil exiting"), "the last line is written");
    eprintln!("[unread stderr] then drained: {n} log lines dropped ({notice})");
}

// ---------------------------------------------------------------------------------------
// Finding 10: bad config files

/// `vigil check PATH` from `dir`, which must end within [`DEADLINE`], under a 1 GiB
/// address-space limit (so a config read without bound fails instead of eating the
/// machine).
/// Without `path`, the config comes from `VIGIL_CONFIG=config`.
fn check_within(what: &str, dir: &TestDir, path: Option<&Path>, config: &Path) -> (i32, String) {
    let mut cmd = Command::new(vigil_bin());
    cmd.arg("check").current_dir(dir.path());
    match path {
        Some(p) => cmd.arg(p).env_remove("VIGIL_CONFIG"),
        None => cmd.env("VIGIL_CONFIG", config),
    };
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let gib = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &gib);
            Ok(())
        });
    }
    let (code, _, err) = run_within(what, &mut cmd, DEADLINE);
    (code, err)
}

/// Finding 10: a FIFO as the config (nobody writes it) is refused at once with exit 78,
/// naming the file and what a config must be; `vigil run` starts nothing; a client verb
/// that looks at `$VIGIL_CONFIG` for the socket does not hang on it either. Before: `vigil
/// check` and `vigil run` blocked in open(2) for ever, silently.
#[test]
fn a_fifo_as_the_config_is_refused_at_once() {
    let dir = TestDir::new();
    let (path, _reader) = fifo(&dir, "vigil.toml");
    // Opened for reading elsewhere too: even then nobody ever writes it.
    let (code, err) = check_within("vigil check FIFO", &dir, Some(&path), &path);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    let (code, _, err) = run_within(
        "vigil run FIFO",
        Command::new(vigil_bin())
            .arg("run")
            .arg(&path)
            .env("VIGIL_SOCKET", dir.join("control.sock")),
        DEADLINE,
    );
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(!dir.join("control.sock").exists(), "nothing was started");

    // It only has to end: with no vigil listening on the default socket, exit 69.
    run_within(
        "vigil status with VIGIL_CONFIG=FIFO",
        Command::new(vigil_bin())
            .arg("status")
            .env_remove("VIGIL_SOCKET")
            .env("VIGIL_CONFIG", &path)
            .env("XDG_RUNTIME_DIR", dir.path()),
        DEADLINE,
    );
}

/// Finding 10: `/dev/zero` (endless) and a regular file larger than 4 MiB are refused at
/// once with exit 78, naming the file and the limit. Before: `/dev/zero` was read until
/// memory ran out (3.4 GB in 5 s; here the 1 GiB limit makes that an abort), and the
/// large file was accepted.
#[test]
fn endless_and_oversized_configs_are_refused() {
    let dir = TestDir::new();
    let zero = Path::new("/dev/zero");
    let (code, err) = check_within("vigil check /dev/zero", &dir, Some(zero), zero);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file (a character device)"),
        "{err}"
    );
    // Through $VIGIL_CONFIG, as a container would set it.
    let (code, err) = check_within("VIGIL_CONFIG=/dev/zero vigil check", &dir, None, zero);
    assert_eq!(code, 78, "{err}");

    let mut big = crash_loop(&dir);
    let comment = format!("# {}\n", "x".repeat(1022));
    while big.len() <= 4 * 1024 * 1024 {
        big.push_str(&comment);
    }
    let path = dir.write("big.toml", &big);
    let (code, err) = check_within("vigil check big.toml", &dir, Some(&path), &path);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("big.toml") && err.contains("larger than 4 MiB"),
        "{err}"
    );
    // The limit itself is fine, and a symlink to a config is followed (ConfigMaps).
    big.truncate(4 * 1024 * 1024 - comment.len());
    let ok = dir.write("ok.toml", &big);
    let link = dir.join("link.toml");
    std::os::unix::fs::symlink(&ok, &link).unwrap();
    let (code, err) = check_within("vigil check link.toml", &dir, Some(&link), &link);
    assert_eq!(code, 0, "{err}");
}

// ---------------------------------------------------------------------------------------
// Finding 10: stop signals of container managers

/// The stop requests of lxc-stop (`SIGPWR`) and of systemd-nspawn / machinectl
/// (`SIGRTMIN+3` halt, `SIGRTMIN+4` poweroff; 37 and 38 as glibc numbers them).
fn manager_stop_signals() -> [(i32, &'static str); 3] {
    [
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGRTMIN() + 3, "signal 37"),
        (libc::SIGRTMIN() + 4, "signal 38"),
    ]
}

fn stops_on_manager_signals(pid1: bool) {
    for (sig, name) in manager_stop_signals() {
        let dir = TestDir::new();
        let cfg = dir.write(
            "vigil.toml",
            &format!(
                "children = [\"a\"]\n{}",
                process(&dir, "a", &["--on-term", "exit:0"], "")
            ),
        );
        let mut d = vigil_in(&dir)
            .in_pid_namespace(pid1)
            .arg("run")
            .arg(&cfg)
            .spawn();
        wait_started(&dir, &["a"]);
        // The handler is installed before the first spawn, so it is there now.
        d.signal_vigil(sig);
        let code = d.wait_exit(DEADLINE);
        let l = log(&d);
        assert_eq!(code, 0, "{name}: {l}");
        assert!(
            l.contains(&format!("stopping the tree signal={name}")),
            "{name}: {l}"
        );
        let ev = dir.read_events();
        assert_eq!(
            ev.signals("a"),
            ["SIGTERM"],
            "{name}: a got its stop signal"
        );
    }
}

/// Finding 10: SIGPWR, SIGRTMIN+3 and SIGRTMIN+4 stop the tree like SIGTERM (exit 0,
/// children stopped in order). Before: not PID 1, their default action killed vigil on
/// the spot (exit 128 + N), leaving the children to their parent-death signal.
#[test]
fn container_manager_stop_signals_stop_the_tree() {
    stops_on_manager_signals(false);
}

/// The same as PID 1 of a PID namespace, where a signal without a handler is dropped by
/// the kernel. Before: ignored; lxc-stop and machinectl poweroff waited for their timeout
/// and then killed the container.
#[test]
fn container_manager_stop_signals_stop_the_tree_as_pid1() {
    if !pid_namespaces_available("container_manager_stop_signals_stop_the_tree_as_pid1") {
        return;
    }
    stops_on_manager_signals(true);
}

// ---------------------------------------------------------------------------------------
// Finding 10: vigil's environment variables

/// Finding 10: `VIGIL_SOCKET=` and `VIGIL_CONFIG=` set but empty count as unset: `vigil
/// run` and `vigil status` find the socket of the config. Before: every command exited 2
/// ("a value is required for '--socket <PATH>'").
#[test]
fn empty_vigil_socket_and_config_are_unset() {
    let dir = TestDir::new();
    let socket = dir.join("from-config.sock");
    let toml = format!(
        "children = [\"a\"]\n[control]\nsocket = {}\n{}",
        toml_str(&socket.display().to_string()),
        process(&dir, "a", &[], "")
    );
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .env("VIGIL_SOCKET", "")
        .env("VIGIL_CONFIG", &cfg)
        .arg("run")
        .spawn();
    wait_started(&dir, &["a"]);
    let (code, out, err) = run_within(
        "vigil status with VIGIL_SOCKET=",
        Command::new(vigil_bin())
            .arg("status")
            .env("VIGIL_SOCKET", "")
            .env("VIGIL_CONFIG", &cfg),
        DEADLINE,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('a'), "{out}");
    let (code, _, err) = run_within(
        "vigil check with VIGIL_CONFIG=",
        Command::new(vigil_bin())
            .arg("check")
            .env("VIGIL_CONFIG", "")
            .current_dir(dir.path()),
        DEADLINE,
    );
    // No config given: the default path, named as such (not an empty name).
    assert_eq!(code, 78, "{err}");
    assert!(err.starts_with("error: /etc/vigil/vigil.toml: "), "{err}");
    stop_within_deadline(&mut d);
}

/// Finding 10: vigil's own variables never reach a child: `VIGIL_CONFIG`, `VIGIL_SOCKET`,
/// and socket activation's `LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES` (vigil passes no
/// listening socket on, so a child would look for descriptors that are not there). A
/// process's `env` can still set them on purpose. Before: all of them leaked.
#[test]
fn vigils_own_variables_do_not_reach_children() {
    let dir = TestDir::new();
    let own = [
        "VIGIL_CONFIG",
        "VIGIL_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
    ];
    let env_of = |name: &str, extra: &str| {
        let out = dir.join(&format!("{name}.env"));
        let script = format!(
            "env > {0}.tmp && mv {0}.tmp {0} && exec sleep 600",
            out.display()
        );
        (
            out,
            format!(
                "\n[process.{name}]\ncommand = {}\n{extra}\n",
                toml_array(&["sh".into(), "-c".into(), script])
            ),
        )
    };
    let (plain, p) = env_of("plain", "");
    let (asked, q) = env_of(
        "asked",
        "env = { LISTEN_FDS = \"7\", VIGIL_CONFIG = \"mine\" }",
    );
    let cfg = dir.write(
        "vigil.toml",
        &format!("children = [\"plain\", \"asked\"]\n{p}{q}"),
    );
    let mut d = vigil_in(&dir)
        .env("VIGIL_CONFIG", &cfg)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "web")
        .env("KEPT_BY_VIGIL", "yes")
        .arg("run")
        .spawn();
    let read = |p: &Path| {
        d.wait_for("a child's environment", DEADLINE, || {
            fs::read_to_string(p).ok()
        })
    };
    let (plain, asked) = (read(&plain), read(&asked));
    let names = |env: &str| -> Vec<String> {
        env.lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect()
    };
    for v in own {
        assert!(
            !names(&plain).contains(&v.to_string()),
            "{v} leaked:\n{plain}"
        );
    }
    assert!(plain.contains("KEPT_BY_VIGIL=yes"), "{plain}");
    assert!(asked.contains("LISTEN_FDS=7"), "{asked}");
    assert!(asked.contains("VIGIL_CONFIG=mine"), "{asked}");
    assert!(
        !names(&asked).contains(&"LISTEN_PID".to_string()),
        "{asked}"
    );
    stop_within_deadline(&mut d);
}
