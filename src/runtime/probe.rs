//! Readiness and health checks of processes: the runtime half of `ready` and `health`.
//!
//! This module owns what the engine's [`Action::Watch`](crate::core::Action::Watch) and
//! [`Action::Unwatch`](crate::core::Action::Unwatch) ask for, and turns results into
//! [`Input::Ready`], [`Input::NotReady`] and [`Input::Unhealthy`]:
//!
//! - **Before a spawn** ([`Probes::prepare`]): a `notify_fd` pipe (vigil's end
//!   close-on-exec, the write end placed at descriptor N in the child by
//!   [`crate::os::sys`]); an `sd_notify` datagram socket, one per child, in a private runtime
//!   directory (mode 0700, removed when vigil exits), named by `NOTIFY_SOCKET` in the
//!   child's environment.
//! - **After it** ([`Probes::spawned`]): a task reads the pipe until a newline (then
//!   closes it, as s6 does) or the socket's datagrams (`READY=1`; `STATUS=...` is logged
//!   and kept for the status output) for as long as the child lives.
//! - **Polled checks** (`tcp`, `http`, `exec`, `file`) run in one task per watched
//!   process, on tokio timers that exist only while the engine wants that process
//!   watched: a readiness check every `ready.interval` until it passes, a health check
//!   every `health.interval`. `tcp` connects with a timeout; `http` sends one GET with
//!   hyper's HTTP/1 client and wants a 2xx; `file` looks at the path's metadata; `exec`
//!   asks the loop to spawn the command through [`super::spawn`] (own process group,
//!   clean signal state, no leaked descriptors, the process's own `cwd`, `env`, `user`
//!   and `group`), and the loop's reaper completes it: its pid is in
//!   [`Probes::exec_exited`]'s map before it can exit, so it is never counted as an
//!   orphan. An `exec` check that outlives its timeout has its process group SIGKILLed.
//! - Consecutive failed health checks are counted here; the engine decides what they
//!   mean.
//!
//! Must never: wait for a process (only the reaper does), spawn with `tokio::process`,
//! poll without a configured interval, or decide anything about supervision.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::core::{Input, Pid, Probe};
use crate::spec::{Check, ExitStatus, NodeId, ProcessSpec, Signal};

/// The least time one try of a polled readiness check gets (more when `interval` is
/// longer), so a short interval does not fail every slow try.
pub const READY_TRY_MIN: Duration = Duration::from_secs(1);

/// What probe tasks tell the loop.
#[derive(Debug)]
pub enum Msg {
    /// One run of a polled check finished.
    Checked {
        /// The process.
        node: NodeId,
        /// The watch it belongs to (stale ones are dropped).
        generation: u64,
        /// Passed or not, with the reason when not.
        result: Result<(), String>,
    },
    /// The process said it is ready (a newline on its `notify_fd`, `READY=1`).
    Notified {
        /// The process.
        node: NodeId,
        /// Its pid (stale ones are dropped).
        pid: Pid,
    },
    /// `STATUS=` from an `sd_notify` process.
    Status {
        /// The process.
        node: NodeId,
        /// Its pid.
        pid: Pid,
        /// The text.
        text: String,
    },
    /// An `exec` check wants its command spawned.
    SpawnExec {
        /// The process whose check it is.
        node: NodeId,
        /// Answered with the pid and where its exit status will arrive, or the spawn error.
        reply: oneshot::Sender<Result<(Pid, oneshot::Receiver<ExitStatus>), String>>,
    },
}

/// What a process needs before it is spawned.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The spec to spawn with, when it differs (`NOTIFY_SOCKET` added).
    pub spec: Option<ProcessSpec>,
    /// The write end of the `notify_fd` pipe and the descriptor number it gets in the child.
    pub pass_fd: Option<(OwnedFd, i32)>,
}

impl Prepared {
    /// The `(vigil's fd, child's fd)` pair for [`super::spawn::SpawnOptions::pass_fd`].
    pub fn pass_fd_raw(&self) -> Option<(i32, i32)> {
        self.pass_fd.as_ref().map(|(fd, n)| (fd.as_raw_fd(), *n))
    }
}

/// A notification channel set up before the spawn, waiting for the pid.
enum Listener {
    Pipe(OwnedFd),
    Socket(std::os::unix::net::UnixDatagram, PathBuf),
}

#[derive(Default)]
struct Watched {
    pid: Pid,
    /// The current watch (ready or health), if any.
    probe: Option<Probe>,
    generation: u64,
    task: Option<JoinHandle<()>>,
    /// The notification listener (pipe reader or socket), for the child's life.
    listener: Option<JoinHandle<()>>,
    socket_path: Option<PathBuf>,
    /// The last `STATUS=` text.
    status: Option<String>,
}

/// Every probe of the tree, owned by the loop.
pub struct Probes {
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    pending: HashMap<NodeId, Listener>,
    watched: HashMap<NodeId, Watched>,
    exec_pids: HashMap<Pid, oneshot::Sender<ExitStatus>>,
    runtime_dir: Option<PathBuf>,
    generation: u64,
}

impl Default for Probes {
    fn default() -> Self {
        Self::new()
    }
}

impl Probes {
    /// No probes yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Probes {
            tx,
            rx,
            pending: HashMap::new(),
            watched: HashMap::new(),
            exec_pids: HashMap::new(),
            runtime_dir: None,
            generation: 0,
        }
    }

    /// The next message from a probe task. Never ends (the loop holds a sender).
    pub async fn recv(&mut self) -> Msg {
        match self.rx.recv().await {
            Some(m) => m,
            None => std::future::pending().await,
        }
    }

    /// Sets up what `spec`'s readiness needs before it is spawned.
    pub fn prepare(&mut self, node: NodeId, spec: &ProcessSpec) -> io::Result<Prepared> {
        self.pending.remove(&node);
        let Some(ready) = &spec.ready else {
            return Ok(Prepared::default());
        };
        match ready.check {
            Check::NotifyFd(n) => {
                let (r, w) = crate::os::sys::pipe_cloexec()?;
                self.pending.insert(node, Listener::Pipe(r));
                Ok(Prepared {
                    spec: None,
                    pass_fd: Some((w, n)),
                })
            }
            Check::SdNotify => {
                let dir = self.runtime_dir()?;
                let path = dir.join(format!("notify-{}.sock", node.0));
                let _ = std::fs::remove_file(&path);
                let socket = std::os::unix::net::UnixDatagram::bind(&path)?;
                socket.set_nonblocking(true)?;
                let mut spec = spec.clone();
                spec.env.retain(|(k, _)| k != "NOTIFY_SOCKET");
                spec.env
                    .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
                self.pending.insert(node, Listener::Socket(socket, path));
                Ok(Prepared {
                    spec: Some(spec),
                    pass_fd: None,
                })
            }
            _ => Ok(Prepared::default()),
        }
    }

    /// The private directory of `sd_notify` sockets, created 0700 on first use.
    fn runtime_dir(&mut self) -> io::Result<PathBuf> {
        if let Some(d) = &self.runtime_dir {
            return Ok(d.clone());
        }
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("vigil-{}", std::process::id()));
        // A directory left by an earlier vigil with the same pid (a container restart).
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        self.runtime_dir = Some(dir.clone());
        Ok(dir)
    }

    /// Removes the runtime directory (at exit).
    pub fn cleanup(&mut self) {
        for (_, w) in self.watched.drain() {
            abort(w.task);
            abort(w.listener);
        }
        if let Some(d) = self.runtime_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// The spawn of `node` failed: drop what was prepared.
    pub fn spawn_failed(&mut self, node: NodeId) {
        if let Some(Listener::Socket(_, path)) = self.pending.remove(&node) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// `node` was spawned as `pid`: start listening on what [`Probes::prepare`] set up.
    pub fn spawned(&mut self, node: NodeId, pid: Pid) {
        let old = self.watched.remove(&node);
        if let Some(w) = old {
            abort(w.task);
            abort(w.listener);
        }
        let mut w = Watched {
            pid,
            ..Watched::default()
        };
        let tx = self.tx.clone();
        match self.pending.remove(&node) {
            Some(Listener::Pipe(fd)) => match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
                Ok(rx) => w.listener = Some(tokio::spawn(read_notify_fd(rx, node, pid, tx))),
                Err(e) => warn!("cannot watch the notify_fd pipe: {e}"),
            },
            Some(Listener::Socket(socket, path)) => {
                match tokio::net::UnixDatagram::from_std(socket) {
                    Ok(s) => w.listener = Some(tokio::spawn(read_sd_notify(s, node, pid, tx))),
                    Err(e) => warn!("cannot watch the notify socket: {e}"),
                }
                w.socket_path = Some(path);
            }
            None => {}
        }
        self.watched.insert(node, w);
    }

    /// A child process `pid` is gone: stop everything about it.
    pub fn child_exited(&mut self, pid: Pid) {
        let Some(node) = self
            .watched
            .iter()
            .find_map(|(n, w)| (w.pid == pid).then_some(*n))
        else {
            return;
        };
        if let Some(w) = self.watched.remove(&node) {
            abort(w.task);
            abort(w.listener);
            if let Some(p) = w.socket_path {
                let _ = std::fs::remove_file(p);
            }
        }
    }

    /// [`Action::Watch`](crate::core::Action::Watch).
    pub fn watch(&mut self, node: NodeId, pid: Pid, probe: Probe, spec: &ProcessSpec) {
        self.generation += 1;
        let generation = self.generation;
        let w = self.watched.entry(node).or_insert_with(|| Watched {
            pid,
            ..Watched::default()
        });
        abort(w.task.take());
        w.pid = pid;
        w.probe = Some(probe);
        w.generation = generation;
        let timing = match probe {
            Probe::Ready => spec.ready.as_ref().map(|r| Timing {
                check: r.check.clone(),
                first: Duration::ZERO,
                interval: r.interval,
                // A slow try (an exec check on a loaded machine) must not fail for ever
                // at a short interval; the readiness deadline bounds the whole wait.
                timeout: r.interval.max(READY_TRY_MIN).min(r.timeout),
                until_passed: true,
            }),
            Probe::Health => spec.health.as_ref().map(|h| Timing {
                check: h.check.clone(),
                first: h.interval,
                interval: h.interval,
                timeout: h.timeout,
                until_passed: false,
            }),
        };
        if let Some(t) = timing.filter(|t| t.check.is_polled()) {
            let tx = self.tx.clone();
            w.task = Some(tokio::spawn(poll(t, node, generation, tx)));
        }
    }

    /// [`Action::Unwatch`](crate::core::Action::Unwatch).
    pub fn unwatch(&mut self, node: NodeId) {
        if let Some(w) = self.watched.get_mut(&node) {
            abort(w.task.take());
            w.probe = None;
        }
    }

    /// The spec to spawn for `node`'s current `exec` check, if its current watch is one.
    pub fn exec_command(&self, node: NodeId, spec: &ProcessSpec) -> Option<ProcessSpec> {
        let check = match self.watched.get(&node)?.probe? {
            Probe::Ready => &spec.ready.as_ref()?.check,
            Probe::Health => &spec.health.as_ref()?.check,
        };
        match check {
            Check::Exec(argv) => Some(exec_spec(spec, argv)),
            _ => None,
        }
    }

    /// The last `STATUS=` text of `node`'s current process.
    pub fn status_text(&self, node: NodeId) -> Option<&str> {
        self.watched.get(&node).and_then(|w| w.status.as_deref())
    }

    /// Turns a probe message into an engine input, if it still matters. `SpawnExec` is the
    /// loop's job (it is answered with [`Probes::register_exec`]).
    pub fn input(&mut self, msg: Msg, name: &str) -> Option<Input> {
        match msg {
            Msg::Notified { node, pid } => {
                let w = self.watched.get(&node)?;
                (w.pid == pid && w.probe == Some(Probe::Ready)).then_some(Input::Ready { node })
            }
            Msg::Status { node, pid, text } => {
                let w = self.watched.get_mut(&node)?;
                if w.pid == pid {
                    info!(child = %name, status = %text, "status");
                    w.status = Some(text);
                }
                None
            }
            Msg::Checked {
                node,
                generation,
                result,
            } => {
                let w = self.watched.get_mut(&node)?;
                if w.generation != generation {
                    return None;
                }
                match (w.probe?, result) {
                    (Probe::Ready, Ok(())) => Some(Input::Ready { node }),
                    (Probe::Ready, Err(e)) => {
                        debug!(child = %name, "not ready yet: {e}");
                        None
                    }
                    // The engine counts failures in a row and decides what they mean.
                    (Probe::Health, Ok(())) => Some(Input::HealthCheck { node, passed: true }),
                    (Probe::Health, Err(e)) => {
                        warn!(child = %name, "health check failed: {e}");
                        Some(Input::HealthCheck {
                            node,
                            passed: false,
                        })
                    }
                }
            }
            Msg::SpawnExec { .. } => None,
        }
    }

    /// Registers a spawned `exec` check process: its exit completes the check.
    pub fn register_exec(&mut self, pid: Pid) -> oneshot::Receiver<ExitStatus> {
        let (tx, rx) = oneshot::channel();
        self.exec_pids.insert(pid, tx);
        rx
    }

    /// Whether `pid` is a running `exec` check.
    pub fn is_exec(&self, pid: Pid) -> bool {
        self.exec_pids.contains_key(&pid)
    }

    /// The reaper collected `pid`: when it is an `exec` check, completes it and returns true.
    pub fn exec_exited(&mut self, pid: Pid, status: ExitStatus) -> bool {
        match self.exec_pids.remove(&pid) {
            Some(tx) => {
                let _ = tx.send(status);
                true
            }
            None => false,
        }
    }
}

fn abort(task: Option<JoinHandle<()>>) {
    if let Some(t) = task {
        t.abort();
    }
}

/// What a polled probe task runs.
struct Timing {
    check: Check,
    /// Delay before the first run.
    first: Duration,
    interval: Duration,
    /// Bound of one run.
    timeout: Duration,
    /// Stop after the first pass (readiness).
    until_passed: bool,
}

async fn poll(t: Timing, node: NodeId, generation: u64, tx: mpsc::UnboundedSender<Msg>) {
    if !t.first.is_zero() {
        tokio::time::sleep(t.first).await;
    }
    loop {
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(t.timeout, run_check(&t.check, node, &tx)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no answer within {}",
                crate::spec::humanize(t.timeout)
            )),
        };
        let passed = result.is_ok();
        if tx
            .send(Msg::Checked {
                node,
                generation,
                result,
            })
            .is_err()
            || (passed && t.until_passed)
        {
            return;
        }
        tokio::time::sleep_until(started + t.interval).await;
    }
}

async fn run_check(
    check: &Check,
    node: NodeId,
    tx: &mpsc::UnboundedSender<Msg>,
) -> Result<(), String> {
    match check {
        Check::Tcp(addr) => tokio::net::TcpStream::connect(addr.as_str())
            .await
            .map(drop)
            .map_err(|e| format!("cannot connect to {addr}: {e}")),
        Check::Http(url) => http_get(url).await,
        Check::File(path) => match std::fs::metadata(path) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        },
        Check::Exec(_) => {
            let (reply, answer) = oneshot::channel();
            tx.send(Msg::SpawnExec { node, reply })
                .map_err(|_| "vigil is exiting".to_string())?;
            let (pid, exited) = answer.await.map_err(|_| "vigil is exiting".to_string())??;
            // Killed by group if this future is dropped (the run's timeout, an Unwatch).
            let mut guard = KillOnDrop(Some(pid));
            let status = exited.await.map_err(|_| "vigil is exiting".to_string());
            guard.0 = None;
            match status? {
                ExitStatus::Code(0) => Ok(()),
                other => Err(format!("check command {other}")),
            }
        }
        Check::NotifyFd(_) | Check::SdNotify => std::future::pending().await,
    }
}

/// SIGKILLs the process group of an `exec` check that is abandoned before it exits.
struct KillOnDrop(Option<Pid>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = crate::os::sys::killpg(pid, Signal::KILL);
        }
    }
}

/// One `GET` with hyper's HTTP/1 client; 2xx passes.
async fn http_get(url: &str) -> Result<(), String> {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url}: no host"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host().trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let conn = tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::USER_AGENT, "vigil")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let result = match sender.send_request(request).await {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("{url} answered {}", resp.status())),
        Err(e) => Err(format!("{url}: {e}")),
    };
    conn.abort();
    result
}

async fn read_notify_fd(
    rx: tokio::net::unix::pipe::Receiver,
    node: NodeId,
    pid: Pid,
    tx: mpsc::UnboundedSender<Msg>,
) {
    use tokio::io::AsyncReadExt;
    let mut rx = rx;
    let mut buf = [0u8; 256];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => return, // Closed without a newline: its exit fails the start.
            Ok(n) if buf[..n].contains(&b'\n') => {
                let _ = tx.send(Msg::Notified { node, pid });
                return; // s6 closes the pipe after the newline, and so does vigil.
            }
            Ok(_) => {}
        }
    }
}

async fn read_sd_notify(
    socket: tokio::net::UnixDatagram,
    node: NodeId,
    pid: Pid,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok(n) = socket.recv(&mut buf).await else {
            return;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        for line in text.lines() {
            let sent = if line == "READY=1" {
                tx.send(Msg::Notified { node, pid })
            } else if let Some(s) = line.strip_prefix("STATUS=") {
                tx.send(Msg::Status {
                    node,
                    pid,
                    text: s.to_string(),
                })
            } else {
                Ok(())
            };
            if sent.is_err() {
                return;
            }
        }
    }
}

/// The spec an `exec` check of `spec` runs with: its argv, the process's cwd, env and
/// credentials, and nothing of its readiness.
pub fn exec_spec(spec: &ProcessSpec, argv: &[String]) -> ProcessSpec {
    let mut s = spec.clone();
    s.command = argv.to_vec();
    s.ready = None;
    s.health = None;
    s
}
