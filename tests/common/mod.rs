//! Shared harness for vigil's integration tests (`mod common;` in each test file).
//!
//! It owns: locating the built binaries, per-test temporary directories, deadline waits,
//! parsing the events file written by `vigil-test-child` (`tests/helper/test_child.rs`),
//! running a vigil daemon (optionally as PID 1 of a fresh PID namespace) with its output
//! captured, and inspecting `/proc` for zombies and leftover processes.
//!
//! It must never: sleep a fixed time to "let things settle" (every wait is a predicate
//! with a deadline, see [`wait_for`]), or leave processes behind: [`Daemon`] kills vigil
//! and everything below it on drop.
//!
//! Test files that collect exit statuses of their own children need
//! `#![allow(clippy::disallowed_methods)]`; this module has it scoped to its own items.

#![allow(dead_code)]
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the built `vigil` binary.
pub fn vigil() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigil"))
}

/// Path of the built `vigil-test-child` binary.
pub fn test_child() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vigil-test-child"))
}

/// A generous default deadline for waits in tests (slow CI machines, 2 cores).
pub const TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Waiting

/// Polls `f` every ~5 ms until it returns `Some` or `timeout` passes; `None` on timeout.
pub fn try_wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `f` every ~5 ms until it returns `Some`; panics naming `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    try_wait_for(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

// ---------------------------------------------------------------------------------------
// Temporary directories

/// A per-test temporary directory, removed on drop.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// Creates a fresh empty directory.
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("vigil-test-")
                .tempdir()
                .expect("create a temporary directory for the test"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `name` inside the directory; returns the file's path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent directory in test dir");
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// Path of `name` inside the directory (not created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The events file for `vigil-test-child --events` (or `VIGIL_TEST_EVENTS`).
    pub fn events(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    /// Reads and parses the events file now.
    pub fn read_events(&self) -> Events {
        Events::read(&self.events())
    }

    /// Waits until `pred` holds for the events file; returns the events that satisfied it.
    /// On timeout the panic message includes the whole file.
    pub fn wait_events(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Events) -> bool,
    ) -> Events {
        let path = self.events();
        try_wait_for(timeout, || {
            let ev = Events::read(&path);
            pred(&ev).then_some(ev)
        })
        .unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {what}; events so far:\n{}",
                Events::read(&path).lines().join("\n")
            )
        })
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

// ---------------------------------------------------------------------------------------
// Events written by vigil-test-child

/// One parsed line `KIND NAME PID ARGS... T_MS` of the events file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the file (0-based), for order assertions.
    pub index: usize,
    /// `START`, `SIGNAL`, `EXIT`, ...
    pub kind: String,
    /// The `--name` of the process that wrote it.
    pub name: String,
    /// The pid of the process that wrote it.
    pub pid: i32,
    /// Fields between the pid and the timestamp (e.g. `["SIGTERM"]`, `["3"]`).
    pub args: Vec<String>,
    /// `CLOCK_REALTIME` milliseconds.
    pub t_ms: u128,
}

/// The events file of `vigil-test-child`, parsed. Lines are in file (= time) order.
#[derive(Clone, Debug, Default)]
pub struct Events {
    lines: Vec<String>,
    events: Vec<Event>,
}

impl Events {
    /// Reads `path`; a missing file is an empty list. A final line without a newline
    /// (never produced: each event is one write) is ignored.
    pub fn read(path: &Path) -> Events {
        let text = fs::read_to_string(path).unwrap_or_default();
        let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        if lines.last().is_some_and(|l| !l.ends_with('\n')) {
            lines.pop();
        }
        let lines: Vec<String> = lines
            .into_iter()
            .map(|l| l.trim_end_matches('\n').to_string())
            .collect();
        let events = lines
            .iter()
            .enumerate()
            .filter_map(|(index, l)| Self::parse(index, l))
            .collect();
        Events { lines, events }
    }

    fn parse(index: usize, line: &str) -> Option<Event> {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 4 {
            return None;
        }
        Some(Event {
            index,
            kind: f[0].to_string(),
            name: f[1].to_string(),
            pid: f[2].parse().ok()?,
            args: f[3..f.len() - 1].iter().map(|s| s.to_string()).collect(),
            t_ms: f[f.len() - 1].parse().ok()?,
        })
    }

    /// The raw lines, in order.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// All parsed events, in order.
    pub fn all(&self) -> &[Event] {
        &self.events
    }

    /// Events of `kind` written by processes named `name`, in order.
    pub fn of(&self, kind: &str, name: &str) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| e.kind == kind && e.name == name)
            .collect()
    }

    /// Pids of every `START` of `name`, in order (one per incarnation).
    pub fn starts(&self, name: &str) -> Vec<i32> {
        self.of("START", name).iter().map(|e| e.pid).collect()
    }

    /// Signal names (`SIGTERM`, `SIGRTMIN+3`) logged by `name`, in order.
    pub fn signals(&self, name: &str) -> Vec<String> {
        self.of("SIGNAL", name)
            .iter()
            .map(|e| e.args.first().cloned().unwrap_or_default())
            .collect()
    }

    /// `(pid, code)` of every `EXIT` of `name`, in order.
    pub fn exits(&self, name: &str) -> Vec<(i32, i32)> {
        self.of("EXIT", name)
            .iter()
            .filter_map(|e| Some((e.pid, e.args.first()?.parse().ok()?)))
            .collect()
    }

    /// Number of events of `kind` from `name`.
    pub fn count(&self, kind: &str, name: &str) -> usize {
        self.of(kind, name).len()
    }

    /// Distinct pids that wrote any event under `name`, in order of first appearance.
    pub fn pids_of(&self, name: &str) -> Vec<i32> {
        let mut v = Vec::new();
        for e in self.events.iter().filter(|e| e.name == name) {
            if !v.contains(&e.pid) {
                v.push(e.pid);
            }
        }
        v
    }

    /// The first event of `kind` from `name`.
    pub fn first(&self, kind: &str, name: &str) -> Option<&Event> {
        self.events
            .iter()
            .find(|e| e.kind == kind && e.name == name)
    }

    /// The last event of `kind` from `name`.
    pub fn last(&self, kind: &str, name: &str) -> Option<&Event> {
        self.events
            .iter()
            .rev()
            .find(|e| e.kind == kind && e.name == name)
    }

    /// File position of the first event of `kind` from `name` (for order assertions).
    pub fn position(&self, kind: &str, name: &str) -> Option<usize> {
        self.first(kind, name).map(|e| e.index)
    }
}

// ---------------------------------------------------------------------------------------
// /proc inspection

/// `(pid, ppid, state, pgid)` of one process, from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(i32, i32, char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid pgrp ...": comm may contain spaces and parentheses.
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgid = f.next()?.parse().ok()?;
    Some((pid, ppid, state, pgid))
}

fn all_stats() -> Vec<(i32, i32, char, i32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// Direct children of `pid` (host pids), zombies included.
pub fn children_of(pid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.1 == pid)
        .map(|s| s.0)
        .collect()
}

/// Every descendant of `pid` (host pids), zombies included.
pub fn descendants(pid: i32) -> Vec<i32> {
    let stats = all_stats();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for s in stats.iter().filter(|s| s.1 == p) {
            out.push(s.0);
            frontier.push(s.0);
        }
    }
    out
}

/// Zombie processes whose parent is `pid` (i.e. exited and not yet reaped by it).
pub fn zombie_children(pid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.1 == pid && s.2 == 'Z')
        .map(|s| s.0)
        .collect()
}

/// `pid`'s pid in the innermost PID namespace it belongs to (the last field of `NSpid:`
/// in `/proc/<pid>/status`), e.g. 1 for vigil as PID 1 of a namespace; `None` if gone.
pub fn innermost_pid(pid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.2 != 'Z')
}

/// Live (non-zombie) processes in process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.3 == pgid && s.2 != 'Z')
        .map(|s| s.0)
        .collect()
}

/// The `comm` of `pid` (e.g. `vigil`, `unshare`).
pub fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// Sends `sig` to `pid`; errors (e.g. already gone) are ignored.
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
}

/// The `unshare` arguments (before the program) that make a new PID namespace with its own
/// `/proc`: as root, `--pid` alone; as another user, where the kernel allows unprivileged
/// user namespaces, the same inside a new user namespace that maps the user to root.
pub const UNSHARE_FORMS: [&[&str]; 2] = [
    &["--pid", "--fork", "--mount-proc"],
    &[
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--mount-proc",
    ],
];

/// The first of `forms` that `probe` accepts, or every refusal (`; ` between forms).
/// `probe` runs `unshare FORM... true` and says why it failed.
pub fn choose_unshare_form(
    forms: &[&'static [&'static str]],
    mut probe: impl FnMut(&[&str]) -> Result<(), String>,
) -> Result<&'static [&'static str], String> {
    let mut refusals = Vec::new();
    for &form in forms {
        match probe(form) {
            Ok(()) => return Ok(form),
            Err(why) => refusals.push(format!("`unshare {} true`: {why}", form.join(" "))),
        }
    }
    Err(refusals.join("; "))
}

/// Runs `unshare FORM... true`: `Err` says how it failed (exit status and stderr).
fn probe_unshare(form: &[&str]) -> Result<(), String> {
    let out = Command::new("unshare")
        .args(form)
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run unshare (util-linux): {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        Err(format!("{} (nothing on stderr)", out.status))
    } else {
        Err(format!("{}: {stderr}", out.status))
    }
}

/// The [`UNSHARE_FORMS`] entry that works here, or why none does (probed once).
pub fn unshare_form() -> Result<&'static [&'static str], String> {
    static FORM: OnceLock<Result<&'static [&'static str], String>> = OnceLock::new();
    FORM.get_or_init(|| choose_unshare_form(&UNSHARE_FORMS, probe_unshare))
        .clone()
}

/// Whether vigil can be run as PID 1 of a new PID namespace here ([`unshare_form`]).
pub fn can_unshare() -> bool {
    unshare_form().is_ok()
}

/// A child process spawned by a test that is SIGKILLed and reaped on drop if still
/// running, so a failing assertion never leaks it. Derefs to [`Child`].
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `cmd` (panics if that fails).
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        ChildGuard(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")))
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Waits for the exit with a deadline: the exit code, or 128+signal.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        wait_for("a test child to exit", timeout, || {
            let st = self.0.try_wait().expect("try_wait on our own child")?;
            Some(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
        })
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running vigil

/// How to start a [`Daemon`]. Build with [`Daemon::builder`].
pub struct DaemonBuilder {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    cwd: Option<PathBuf>,
    in_pid_namespace: bool,
    unshare_form: Option<&'static [&'static str]>,
    stdin_null: bool,
    stdout_piped: bool,
}

impl DaemonBuilder {
    /// Appends one argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for vigil (the rest is inherited).
    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(mut self, k: impl Into<OsString>) -> Self {
        self.env_remove.push(k.into());
        self
    }

    /// Working directory for vigil.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Run vigil as PID 1 of a new PID namespace (`unshare FORM... --kill-child`, the
    /// form from [`unshare_form`]). The pid then held by [`Daemon::pid`] is unshare's;
    /// `unshare` forwards no signals, so use [`Daemon::signal_vigil`], which targets
    /// vigil's host pid. Call [`pid_namespaces_available`] first and return when it is false.
    pub fn in_pid_namespace(mut self, yes: bool) -> Self {
        self.in_pid_namespace = yes;
        self
    }

    /// With [`Self::in_pid_namespace`]: this entry of [`UNSHARE_FORMS`] instead of the one
    /// [`unshare_form`] picked.
    pub fn with_unshare_form(mut self, form: &'static [&'static str]) -> Self {
        self.unshare_form = Some(form);
        self
    }

    /// Give vigil a pipe as stdout (take its read end with [`Daemon::take_stdout`]) instead
    /// of a file.
    pub fn stdout_piped(mut self, yes: bool) -> Self {
        self.stdout_piped = yes;
        self
    }

    /// Give vigil `/dev/null` as stdin (the default) or inherit the test's stdin.
    pub fn stdin_null(mut self, yes: bool) -> Self {
        self.stdin_null = yes;
        self
    }

    /// Uses another program instead of vigil (e.g. to test the harness itself).
    pub fn program(mut self, p: impl Into<PathBuf>) -> Self {
        self.program = p.into();
        self
    }

    /// Starts the daemon with stdout and stderr captured to files.
    pub fn spawn(self) -> Daemon {
        let logs = tempfile::Builder::new()
            .prefix("vigil-daemon-")
            .tempdir()
            .expect("create a temporary directory for daemon logs");
        let stdout_path = logs.path().join("stdout");
        let stderr_path = logs.path().join("stderr");
        let stdout = fs::File::create(&stdout_path).expect("create daemon stdout file");
        let stderr = fs::File::create(&stderr_path).expect("create daemon stderr file");
        let mut cmd = if self.in_pid_namespace {
            let form = self.unshare_form.unwrap_or_else(|| {
                unshare_form().unwrap_or_else(|why| {
                    panic!(
                        "cannot run {} as PID 1 of a PID namespace: {why}\n\
                         (call pid_namespaces_available first)",
                        self.program.display()
                    )
                })
            });
            let mut c = Command::new("unshare");
            c.args(form).arg("--kill-child").arg(&self.program);
            c
        } else {
            Command::new(&self.program)
        };
        cmd.args(&self.args)
            .stdout(if self.stdout_piped {
                Stdio::piped()
            } else {
                Stdio::from(stdout)
            })
            .stderr(stderr)
            .stdin(if self.stdin_null {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        // Each vigil gets its own control socket (never the machine-wide default), unless
        // the test chose one itself.
        let socket = self
            .env
            .iter()
            .find(|(k, _)| k == "VIGIL_SOCKET")
            .map_or_else(
                || logs.path().join("control.sock"),
                |(_, v)| PathBuf::from(v),
            );
        if !self.env_remove.iter().any(|k| k == "VIGIL_SOCKET") {
            cmd.env("VIGIL_SOCKET", &socket);
        }
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));
        Daemon {
            child,
            socket,
            program: self.program,
            in_pid_namespace: self.in_pid_namespace,
            exit: None,
            kill_on_drop: Vec::new(),
            stdout_path,
            stderr_path,
            _logs: logs,
        }
    }
}

/// A running vigil (or unshare running vigil), its output captured to files.
///
/// On drop, if it still runs, vigil and all its descendants get SIGKILL and are waited
/// for; if the test is panicking, vigil's stderr is printed so the failure shows it.
pub struct Daemon {
    child: Child,
    socket: PathBuf,
    program: PathBuf,
    in_pid_namespace: bool,
    exit: Option<i32>,
    kill_on_drop: Vec<i32>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _logs: tempfile::TempDir,
}

impl Daemon {
    /// A builder for `vigil` with no arguments yet.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder {
            program: vigil(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            cwd: None,
            in_pid_namespace: false,
            unshare_form: None,
            stdin_null: true,
            stdout_piped: false,
        }
    }

    /// Starts `vigil ARGS...` (not in a PID namespace).
    pub fn spawn<I, S>(args: I) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::builder().args(args).spawn()
    }

    /// The pid of the process we spawned: vigil, or unshare with [`DaemonBuilder::in_pid_namespace`].
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// vigil's host pid. In a PID namespace: the child of unshare once it has exec'd vigil
    /// (waits for that, up to [`TIMEOUT`]).
    pub fn vigil_pid(&self) -> i32 {
        if !self.in_pid_namespace {
            return self.pid();
        }
        let unshare = self.pid();
        let want = self
            .program
            .file_name()
            .map(|s| s.to_string_lossy().chars().take(15).collect::<String>())
            .unwrap_or_default();
        self.wait_for("vigil to exec inside the PID namespace", TIMEOUT, || {
            children_of(unshare)
                .into_iter()
                .find(|&p| comm(p).is_some_and(|c| c == want || want.is_empty()))
        })
    }

    /// The host pid of the process vigil knows as `pid` (the pid in vigil's log, and in
    /// the events its children write): `pid` itself unless vigil runs in a PID namespace;
    /// there, the descendant of unshare whose innermost pid is `pid`. `None` once it is gone.
    pub fn host_pid(&self, pid: i32) -> Option<i32> {
        if !self.in_pid_namespace {
            return is_alive(pid).then_some(pid);
        }
        descendants(self.pid())
            .into_iter()
            .find(|&p| innermost_pid(p) == Some(pid) && is_alive(p))
    }

    /// The read end of vigil's stdout with [`DaemonBuilder::stdout_piped`] (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// SIGKILLs the host pid `pid` too when this is dropped, even after vigil has exited
    /// (e.g. a grandchild in its own session that a failing test might leave behind).
    pub fn kill_on_drop(&mut self, pid: i32) {
        self.kill_on_drop.push(pid);
    }

    /// The control socket this vigil was told to use (`$VIGIL_SOCKET`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `sig` to vigil itself (inside the namespace if any).
    ///
    /// As PID 1 of a namespace, vigil only receives signals it has a handler for, so wait
    /// until it is up (e.g. its first child wrote `START`) before signalling.
    pub fn signal_vigil(&self, sig: i32) {
        kill(self.vigil_pid(), sig);
    }

    /// Whether the spawned process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    fn poll_exit(&mut self) -> Option<i32> {
        if self.exit.is_none()
            && let Ok(Some(st)) = self.child.try_wait()
        {
            self.exit = Some(match (st.code(), st.signal()) {
                (Some(c), _) => c,
                (None, Some(s)) => 128 + s,
                _ => -1,
            });
        }
        self.exit
    }

    /// Waits for the spawned process to exit; its exit code, or 128+signal if killed.
    /// Panics after `timeout` with vigil's stderr in the message.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        match try_wait_for(timeout, || self.poll_exit()) {
            Some(c) => c,
            None => panic!(
                "vigil did not exit within {timeout:?}\n--- vigil stderr ---\n{}",
                self.stderr_text()
            ),
        }
    }

    /// Like [`wait_for`], but the panic message includes vigil's stderr.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
        try_wait_for(timeout, f).unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n--- vigil stderr ---\n{}",
                self.stderr_text()
            )
        })
    }

    /// Everything vigil wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Everything vigil (and children inheriting its stdout) wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.stdout_path).unwrap_or_default()).into_owned()
    }

    /// Path of the captured stdout file.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// Kills everything: SIGSTOPs vigil (and unshare) so nothing new is spawned or
    /// adopted, SIGKILLs every live descendant until none is left, then SIGKILLs vigil
    /// (and unshare) and waits for the spawned process.
    pub fn kill_all(&mut self) {
        if self.poll_exit().is_some() {
            return;
        }
        let top = self.pid();
        let mut tops = vec![top];
        if self.in_pid_namespace {
            tops.extend(children_of(top));
        }
        for &t in &tops {
            kill(t, libc::SIGSTOP);
        }
        try_wait_for(Duration::from_secs(1), || {
            tops.iter()
                .all(|&t| stat(t).is_none_or(|s| matches!(s.2, 'T' | 't' | 'Z' | 'X')))
                .then_some(())
        });
        for _ in 0..20 {
            let live: Vec<i32> = descendants(top)
                .into_iter()
                .filter(|p| !tops.contains(p) && is_alive(*p))
                .collect();
            if live.is_empty() {
                break;
            }
            for &p in &live {
                kill(p, libc::SIGKILL);
            }
            try_wait_for(Duration::from_millis(500), || {
                live.iter().all(|&p| !is_alive(p)).then_some(())
            });
        }
        for &t in tops.iter().rev() {
            kill(t, libc::SIGKILL);
        }
        let _ = self.child.wait();
        self.exit = self.exit.or(Some(128 + libc::SIGKILL));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill_all();
        for &p in &self.kill_on_drop {
            kill(p, libc::SIGKILL);
        }
        if std::thread::panicking() {
            eprintln!(
                "--- vigil stderr (pid {}) ---\n{}--- end vigil stderr ---",
                self.pid(),
                self.stderr_text()
            );
        }
    }
}

// ----- vigil's log lines -----

/// vigil's stderr (plain text: vigil colours its log only on a terminal).
pub fn log(d: &Daemon) -> String {
    d.stderr_text()
}

/// The value of `key=VALUE` in a human log line.
pub fn log_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let at = line.find(&pat)? + pat.len();
    line[at..].split(' ').next()
}

/// `(child, pid)` of every log line with message `msg` (`started`, `stopped`), in order.
pub fn logged(log: &str, msg: &str) -> Vec<(String, i32)> {
    let pat = format!(" {msg} child=");
    log.lines()
        .filter(|l| l.contains(&pat))
        .filter_map(|l| {
            let child = log_field(l, "child")?.to_string();
            let pid = log_field(l, "pid")?.parse().ok()?;
            Some((child, pid))
        })
        .collect()
}

/// Names in the order vigil logged `msg` for them.
pub fn logged_names(log: &str, msg: &str) -> Vec<String> {
    logged(log, msg).into_iter().map(|(n, _)| n).collect()
}

/// Waits until vigil has logged `msg` at least `expected.len()` times, then returns the
/// log. A child writes START as soon as it runs, which can be before vigil's own
/// `started` line: read the log through this, not right after an event.
pub fn wait_logged(d: &Daemon, msg: &str, expected: &[&str]) -> String {
    d.wait_for(
        &format!("{} `{msg}` lines", expected.len()),
        TIMEOUT,
        || {
            let l = log(d);
            (logged(&l, msg).len() >= expected.len()).then_some(l)
        },
    )
}

/// Names of the children that logged `SIGNAL`, in file order.
pub fn signal_order(ev: &Events) -> Vec<String> {
    ev.all()
        .iter()
        .filter(|e| e.kind == "SIGNAL")
        .map(|e| e.name.clone())
        .collect()
}

/// `["a", "b"]` as owned strings.
pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ----- trees of test children -----

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A TOML array of strings.
pub fn toml_array(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The `command` array for `vigil-test-child [--events EVENTS] --name NAME ARGS...`.
pub fn child_cmd(dir: &TestDir, name: &str, events: bool, args: &[&str]) -> String {
    let mut v = vec![test_child().display().to_string()];
    if events {
        v.push("--events".into());
        v.push(dir.events().display().to_string());
    }
    v.push("--name".into());
    v.push(name.into());
    v.extend(args.iter().map(|s| s.to_string()));
    toml_array(&v)
}

/// A `[process.NAME]` table running the test child with `args`, plus `extra` TOML lines.
/// `events` false leaves `--events` out (no events file).
pub fn process_with(dir: &TestDir, name: &str, events: bool, args: &[&str], extra: &str) -> String {
    format!(
        "\n[process.{name}]\ncommand = {}\n{extra}\n",
        child_cmd(dir, name, events, args)
    )
}

/// [`process_with`] writing events.
pub fn process(dir: &TestDir, name: &str, args: &[&str], extra: &str) -> String {
    process_with(dir, name, true, args, extra)
}

/// A builder for `vigil` in `dir` with a known log level and none of the variables the
/// tests set themselves inherited from the environment running the tests.
pub fn vigil_in(dir: &TestDir) -> DaemonBuilder {
    Daemon::builder()
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .env_remove("VIGIL_TEST_EVENTS")
        .env_remove("VIGIL_CONFIG")
}

/// Waits until every name in `names` has written `START` once.
pub fn wait_started(dir: &TestDir, names: &[&str]) -> Events {
    dir.wait_events(&format!("START of {names:?}"), TIMEOUT, |e| {
        names.iter().all(|n| e.count("START", n) >= 1)
    })
}

/// Whether the tests run on CI: `CI` set to anything but empty, `0` or `false` (.ci/run,
/// GitHub Actions and GitLab set `CI=true`). There a test that cannot run here fails
/// instead of skipping: see [`skip_or_fail_on_ci`].
pub fn on_ci() -> bool {
    ci_value_is_set(std::env::var_os("CI").as_deref())
}

/// [`on_ci`] for the value `v` of `CI`.
pub fn ci_value_is_set(v: Option<&std::ffi::OsStr>) -> bool {
    v.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// What to say when `test` cannot run here: `what` failed, `why` it matters (what goes
/// untested), and `fix`, how to make the test run.
pub fn cannot_run_message(test: &str, what: &str, why: &str, fix: &str) -> String {
    format!("{test} cannot run here: {what}.\nWhy it matters: {why}.\nFix: {fix}.")
}

/// For a test that cannot run here: on CI ([`on_ci`]) panics with
/// [`cannot_run_message`], since a skipped test would read as a pass; elsewhere writes a
/// SKIPPED notice to the real stderr (libtest does not capture it, so it shows in a
/// passing run) and returns, and the caller returns too.
pub fn skip_or_fail_on_ci(test: &str, what: &str, why: &str, fix: &str) {
    skip_or_fail(on_ci(), test, what, why, fix);
}

/// [`skip_or_fail_on_ci`] with whether this is CI given.
pub fn skip_or_fail(ci: bool, test: &str, what: &str, why: &str, fix: &str) {
    let msg = cannot_run_message(test, what, why, fix);
    if ci {
        panic!("{msg}\n(CI is set: on CI a test that cannot run fails instead of skipping.)");
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED (CI would fail it): {msg} ***\n"
    );
}

/// Whether `test` can run vigil as PID 1 of a new PID namespace ([`unshare_form`]);
/// when not, [`skip_or_fail_on_ci`] with the reason, and the test returns.
pub fn pid_namespaces_available(test: &str) -> bool {
    match unshare_form() {
        Ok(_) => true,
        Err(refusals) => {
            skip_or_fail_on_ci(
                test,
                &format!("`unshare` refused to make a PID namespace: {refusals}"),
                "this test checks vigil's duties as PID 1 (a container's init): reaping \
                 orphans, acting on signals the kernel drops at PID 1 without a handler, \
                 the final sweep; skipped, they go untested",
                "run the tests as root (as .ci/run does), or allow unprivileged user \
                 namespaces (`sysctl user.max_user_namespaces=15000`; on Debian \
                 `sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu \
                 `sysctl kernel.apparmor_restrict_unprivileged_userns=0`); in a container, \
                 give it CAP_SYS_ADMIN and a seccomp profile that permits unshare (e.g. \
                 `--privileged`)",
            );
            false
        }
    }
}

/// A copy of the vigil binary that any uid can run: the build's own copy may sit under a
/// directory only root can enter (a CI clone in a 0700 temporary directory), so tests
/// that run vigil as another user use this one. Made once per test process; copies left
/// by test processes that are gone are removed.
pub fn vigil_for_any_uid() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = std::env::temp_dir().join("vigil-any-uid");
        std::fs::create_dir_all(&dir).expect("create a directory for the vigil copy");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix("vigil-")
                .and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let bin = dir.join(format!("vigil-{}", std::process::id()));
        std::fs::copy(vigil(), &bin).expect("copy the vigil binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    })
    .clone()
}

// ----- reliability suite (tests/soak.rs, tests/faults.rs) -----

/// The vigil binary the reliability tests run: `$VIGIL_BIN` when set (e.g. a release
/// build for the full-size soak), else the one cargo built with the tests.
pub fn vigil_bin() -> PathBuf {
    std::env::var_os("VIGIL_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(vigil, PathBuf::from)
}

/// A size from the environment variable `var`, or `default` (the CI-short size).
pub fn env_size(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v}: not a whole number")),
        _ => default,
    }
}

/// What `/proc` says about one process's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcUsage {
    /// `VmRSS` in KiB.
    pub rss_kb: u64,
    /// `VmHWM` (peak RSS) in KiB.
    pub hwm_kb: u64,
    /// Entries in `/proc/<pid>/fd`.
    pub fds: usize,
    /// `Threads`.
    pub threads: u64,
}

/// `pid`'s RSS, peak RSS, open descriptors and threads, or `None` if it is gone.
pub fn proc_usage(pid: i32) -> Option<ProcUsage> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(ProcUsage {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
        fds,
        threads: field("Threads:")?,
    })
}

/// Runs the client verb `vigil ARGS` (the binary of [`vigil_bin`]) against `socket`:
/// `(exit code, stdout, stderr)`.
pub fn vigil_client(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(vigil_bin())
        .args(args)
        .env("VIGIL_SOCKET", socket)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run the vigil client");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `vigil status --json` of the vigil listening on `socket`, parsed.
pub fn status_json_of(socket: &Path) -> serde_json::Value {
    let (code, out, err) = vigil_client(socket, &["status", "--json"]);
    assert_eq!(code, 0, "vigil status --json: exit {code}: {err}");
    serde_json::from_str(&out).expect("status --json is JSON")
}

/// The node called `name` in a JSON status (`{"tree": {...}}`).
pub fn status_node<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    fn find<'a>(n: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
        if n["name"] == name {
            return Some(n);
        }
        n["children"].as_array()?.iter().find_map(|c| find(c, name))
    }
    find(&status["tree"], name).unwrap_or_else(|| panic!("{name} not in status {status}"))
}

/// Counts lines of the events file `path` by kind and name without keeping them (for
/// files of millions of lines): `(kind, name) -> count`.
pub fn count_events(path: &Path) -> std::collections::HashMap<(String, String), u64> {
    let text = fs::read(path).unwrap_or_default();
    let mut m = std::collections::HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let mut f = line.split(|&b| b == b' ');
        if let (Some(k), Some(n)) = (f.next(), f.next()) {
            *m.entry((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(n).into_owned(),
            ))
            .or_insert(0) += 1;
        }
    }
    m
}

/// How many of `pid`'s descriptors are connected unix stream sockets (control-socket
/// clients being served, in vigil's case): `/proc/<pid>/fd` against `/proc/net/unix`.
pub fn connected_unix_sockets(pid: i32) -> usize {
    let table = fs::read_to_string("/proc/net/unix").unwrap_or_default();
    // Num RefCount Protocol Flags Type St Inode [Path]; Type 0001 = stream, St 03 = connected.
    let connected: std::collections::HashSet<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 7 && f[4] == "0001" && f[5] == "03").then(|| f[6].to_string())
        })
        .collect();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .filter(|inode| connected.contains(inode))
        .count()
}

/// [`proc_usage`] once `pid` serves no control-socket client (a client that has just
/// exited may still be held for a moment while vigil closes its side). `base` is
/// [`connected_unix_sockets`] of `pid` before any client connected (tokio's own signal
/// socket pair counts there).
pub fn quiet_usage(pid: i32, base: usize) -> ProcUsage {
    wait_for("vigil to close its client connections", TIMEOUT, || {
        if connected_unix_sockets(pid) > base {
            return None;
        }
        let u = proc_usage(pid)?;
        (connected_unix_sockets(pid) <= base).then_some(u)
    })
}
