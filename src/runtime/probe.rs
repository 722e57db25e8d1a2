//! Readiness and health checks of processes: the runtime half of `ready` and `health`.
//!
//! This module owns what the engine's [`Action::Watch`](crate::core::Action::Watch) and
//! [`Action::Unwatch`](crate::core::Action::Unwatch) ask for, and turns results into
//! [`Input::Ready`], [`Input::NotReady`] and [`Input::Unhealthy`]:
//!
//! - **Before a spawn** ([`Probes::prepare`]): a `notify_fd` pipe (vigil's end
//!   close-on-exec, the write end placed at descriptor N in the child by
//!   [`crate::os::sys`]); an `sd_notify` datagram socket with `SO_PASSCRED`, one per child,
//!   in a private runtime directory (a new `$TMPDIR/vigil-XXXXXX` from `mkdtemp`, mode
//!   0700, removed when vigil exits), named by `NOTIFY_SOCKET` in the child's environment.
//! - **After it** ([`Probes::spawned`]): a task reads the pipe until a newline (then
//!   closes it, as s6 does) or the socket's datagrams for as long as the child lives.
//!   A child's datagrams are hostile input: only those of the child or its process group
//!   count (by the kernel's credentials), each is at most [`NOTIFY_DATAGRAM_MAX`] bytes, at
//!   most [`NOTIFY_READS_PER_SEC`] are read per second, and what they say goes to the loop
//!   through a per-process [`Inbox`] (`READY=1`, the latest `STATUS=`, counts of refused
//!   datagrams) with at most one [`Msg::Notify`] queued, the `STATUS=` at most once per
//!   [`STATUS_INTERVAL`]; the loop logs it and keeps it for the status output.
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
//! # Calls that can block: two helper threads, never more
//!
//! Two things a check needs have no non-blocking form: looking a host name up
//! (`getaddrinfo`, for a `tcp` or `http` check that names a host) and a path's metadata
//! (`stat`, for a `file` check; it blocks for as long as a hung NFS or FUSE mount wants).
//! Neither runs on the loop's thread, and neither goes to tokio's blocking pool (up to 512
//! threads, one more for every lookup that outlives its check). Each has one [`Lane`]: a
//! thread (`vigil-resolve`, `vigil-stat`) started by its first job and a queue of at most
//! [`LANE_QUEUE`] jobs. The loop only queues a job and awaits its answer, so the check's
//! timeout bounds the try as before; a try that times out drops its answer, and a job
//! nobody waits for any more is skipped (and pruned from the queue). A lane whose call
//! hangs keeps its one thread: later tries queue behind it and fail by their timeout, or
//! at once with a message saying why when the queue is full. The other lane, `exec`
//! checks, IP addresses and everything else on the loop go on meanwhile. An IP address
//! (`127.0.0.1:6379`, `[::1]:80`, `http://10.0.0.5/`) is never given to the resolver.
//! The threads block every signal, so signals always reach the loop's thread. The whole
//! list of vigil's threads is in docs/threads.md.
//!
//! Must never: queue more than one message per `sd_notify` listener, act on a datagram from
//! outside the child's process group, wait for a process (only the reaper does), spawn
//! with `tokio::process`, poll without a configured interval, decide anything about
//! supervision, block the loop on a lookup or a `stat`, start more than one thread per
//! lane, or signal the process group of an `exec` check whose leader has been reaped (its
//! group id may be reused).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
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
    /// The `sd_notify` listener of a process has something in its [`Inbox`] (`READY=1`,
    /// the latest `STATUS=`, counts of refused datagrams). At most one is in the channel
    /// per listener: the next is sent only once the loop has emptied the inbox.
    Notify {
        /// The process.
        node: NodeId,
        /// Its pid (stale ones are dropped).
        pid: Pid,
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
    /// What the `sd_notify` listener has for the loop.
    inbox: Option<Arc<Mutex<Inbox>>>,
    /// The last `STATUS=` text.
    status: Option<String>,
}

/// Messages from probe tasks waiting for the loop. Each task has at most one in flight
/// (a check's result before its next try, a listener's wake-up while its inbox is
/// queued), so this bound is only reached with as many watched processes; a task then
/// waits for room, and nothing grows.
const QUEUE: usize = 256;

/// Every probe of the tree, owned by the loop.
pub struct Probes {
    tx: mpsc::Sender<Msg>,
    rx: mpsc::Receiver<Msg>,
    pending: HashMap<NodeId, Listener>,
    watched: HashMap<NodeId, Watched>,
    exec_pids: HashMap<Pid, oneshot::Sender<ExitStatus>>,
    runtime_dir: Option<PathBuf>,
    generation: u64,
    /// The two helper threads' lanes and the OS calls they make, shared with the tasks.
    helpers: Arc<Helpers>,
}

impl Default for Probes {
    fn default() -> Self {
        Self::new()
    }
}

impl Probes {
    /// No probes yet (and no helper thread until a check needs one).
    pub fn new() -> Self {
        Self::with_os(Arc::new(RealOs))
    }

    /// No probes yet, with `os` making the calls that can block or signal (tests pass a
    /// fake).
    fn with_os(os: Arc<dyn ProbeOs>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Probes {
            tx,
            rx,
            pending: HashMap::new(),
            watched: HashMap::new(),
            exec_pids: HashMap::new(),
            runtime_dir: None,
            generation: 0,
            helpers: Arc::new(Helpers {
                os,
                resolver: Lane::new(LaneKind::Resolve, LANE_QUEUE),
                stat: Lane::new(LaneKind::Stat, LANE_QUEUE),
            }),
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
                // Every datagram then carries its sender's pid, as the kernel knows it.
                use nix::sys::socket::{setsockopt, sockopt::PassCred};
                setsockopt(&socket, PassCred, &true).map_err(|e| {
                    let what = format!("cannot set SO_PASSCRED on {}: {e}", path.display());
                    io::Error::new(io::Error::from(e).kind(), what)
                })?;
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

    /// The private directory of `sd_notify` sockets, created on first use: a new
    /// `$TMPDIR/vigil-XXXXXX` of mode 0700 (`mkdtemp`), never a name another vigil could
    /// pick too (every PID 1 has pid 1), and never one that existed before.
    fn runtime_dir(&mut self) -> io::Result<PathBuf> {
        if let Some(d) = &self.runtime_dir {
            return Ok(d.clone());
        }
        let parent = std::env::temp_dir();
        let dir = nix::unistd::mkdtemp(&parent.join("vigil-XXXXXX")).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "cannot create a directory for its sd_notify socket in {}: {e} \
                     (set TMPDIR to a writable directory)",
                    parent.display()
                ),
            )
        })?;
        self.runtime_dir = Some(dir.clone());
        Ok(dir)
    }

    /// Stops every probe and removes the runtime directory (at exit, before the sweep).
    ///
    /// `exec` checks still running are SIGKILLed by group here, while their leaders are
    /// known not to be reaped; the aborted tasks then find their exit channel closed and
    /// signal nothing (the sweep reaps without telling [`Probes::exec_exited`]).
    pub fn cleanup(&mut self) {
        for (_, w) in self.watched.drain() {
            abort(w.task);
            abort(w.listener);
        }
        for (pid, _) in self.exec_pids.drain() {
            self.helpers.os.kill_group(pid);
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
                    Ok(s) => {
                        let inbox = Arc::new(Mutex::new(Inbox::default()));
                        let listener = SdNotify {
                            node,
                            pid,
                            inbox: inbox.clone(),
                            tx,
                        };
                        w.listener = Some(tokio::spawn(listener.run(s)));
                        w.inbox = Some(inbox);
                    }
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
            let helpers = self.helpers.clone();
            w.task = Some(tokio::spawn(poll(t, node, generation, tx, helpers)));
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
            Msg::Notify { node, pid } => {
                let w = self.watched.get_mut(&node)?;
                if w.pid != pid {
                    return None;
                }
                // Emptied (and `queued` cleared) before anything else: what arrives from
                // now on comes with the listener's next message.
                let got = std::mem::take(&mut *lock(w.inbox.as_ref()?));
                got.log_refused(name, pid);
                if let Some(text) = got.status {
                    if got.skipped > 0 {
                        info!(child = %name, status = %text, skipped = got.skipped, "status");
                    } else {
                        info!(child = %name, status = %text, "status");
                    }
                    w.status = Some(text);
                }
                (got.ready && w.probe == Some(Probe::Ready)).then_some(Input::Ready { node })
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

    /// The reaper collected `pid` (still a zombie): when it is an `exec` check, completes
    /// it and returns true. From here on the check's group is never signalled by a probe.
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

async fn poll(
    t: Timing,
    node: NodeId,
    generation: u64,
    tx: mpsc::Sender<Msg>,
    helpers: Arc<Helpers>,
) {
    if !t.first.is_zero() {
        tokio::time::sleep(t.first).await;
    }
    loop {
        let started = tokio::time::Instant::now();
        let run = run_check(&t.check, node, &tx, &helpers);
        let result = match tokio::time::timeout(t.timeout, run).await {
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
            .await
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
    tx: &mpsc::Sender<Msg>,
    helpers: &Helpers,
) -> Result<(), String> {
    match check {
        Check::Tcp(addr) => {
            let fail = |e: &dyn std::fmt::Display| format!("cannot connect to {addr}: {e}");
            let addrs = tcp_addrs(addr, helpers).await.map_err(|e| fail(&e))?;
            tokio::net::TcpStream::connect(&addrs[..])
                .await
                .map(drop)
                .map_err(|e| fail(&e))
        }
        Check::Http(url) => http_get(url, helpers).await,
        Check::File(path) => helpers
            .exists(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display())),
        Check::Exec(_) => {
            let (reply, answer) = oneshot::channel();
            tx.send(Msg::SpawnExec { node, reply })
                .await
                .map_err(|_| "vigil is exiting".to_string())?;
            let (pid, exited) = answer.await.map_err(|_| "vigil is exiting".to_string())??;
            // Killed by group if this future is dropped first (the try's timeout, an
            // Unwatch, the child's exit), unless it has been reaped meanwhile.
            let mut run = ExecRun {
                pid,
                exited,
                os: helpers.os.clone(),
                finished: false,
            };
            match run.exit().await? {
                ExitStatus::Code(0) => Ok(()),
                other => Err(format!("check command {other}")),
            }
        }
        Check::NotifyFd(_) | Check::SdNotify => std::future::pending().await,
    }
}

/// The addresses of a `tcp` check's `host:port`, split as std splits it (at the last
/// `:`); a name goes through the resolver thread, an IP address does not.
async fn tcp_addrs(addr: &str, helpers: &Helpers) -> Result<Vec<SocketAddr>, String> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or("invalid socket address: expected host:port")?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("invalid port {port:?}"))?;
    helpers.addrs(host, port).await
}

/// An `exec` check's process between its spawn and its exit status.
///
/// Dropped before the status arrived, it SIGKILLs the process group, but only while the
/// leader is known not to be reaped: the reaper hands the status over (to `exited`, in
/// [`Probes::exec_exited`]) while the leader is still a zombie and before it reaps it, on
/// the loop's thread, where this is dropped too. So a status waiting in `exited` means
/// "reaped, the group id may belong to someone else now", an empty open channel means
/// "not reaped", and a closed one means vigil stopped tracking it ([`Probes::cleanup`]
/// killed it then): only the second is signalled.
struct ExecRun {
    pid: Pid,
    exited: oneshot::Receiver<ExitStatus>,
    os: Arc<dyn ProbeOs>,
    /// The status was received.
    finished: bool,
}

impl ExecRun {
    async fn exit(&mut self) -> Result<ExitStatus, String> {
        let status = (&mut self.exited).await;
        self.finished = true;
        status.map_err(|_| "vigil is exiting".to_string())
    }
}

impl Drop for ExecRun {
    fn drop(&mut self) {
        use tokio::sync::oneshot::error::TryRecvError;
        if !self.finished && matches!(self.exited.try_recv(), Err(TryRecvError::Empty)) {
            self.os.kill_group(self.pid);
        }
    }
}

/// One `GET` with hyper's HTTP/1 client; 2xx passes.
async fn http_get(url: &str, helpers: &Helpers) -> Result<(), String> {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url}: no host"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let fail = |e: &dyn std::fmt::Display| format!("cannot connect to {authority}: {e}");
    let addrs = helpers
        .addrs(authority.host().trim_matches(['[', ']']), port)
        .await
        .map_err(|e| fail(&e))?;
    let stream = tokio::net::TcpStream::connect(&addrs[..])
        .await
        .map_err(|e| fail(&e))?;
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

// ---------------------------------------------------------------------------------------
// Blocking calls, on two helper threads

/// Jobs a lane holds at most (queued, not counting the one running): a try beyond that
/// fails at once. Each process has at most one try in flight, and jobs of tries that
/// timed out are pruned, so this fills only behind a call that hangs.
pub const LANE_QUEUE: usize = 64;

/// Stack of a helper thread: `getaddrinfo` with NSS modules needs some room; the pages
/// are only address space until touched.
const LANE_STACK: usize = 512 * 1024;

/// What probes ask of the OS that can block (a name lookup, a `stat`) or signal (an
/// `exec` check's group): the seam the unit tests replace with fakes.
trait ProbeOs: Send + Sync + 'static {
    /// `host`'s addresses with `port`, as std resolves `(host, port)` (`getaddrinfo`).
    /// Runs on the `vigil-resolve` thread.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
    /// Whether `path`'s metadata can be read (symbolic links followed). Runs on the
    /// `vigil-stat` thread.
    fn metadata(&self, path: &Path) -> io::Result<()>;
    /// SIGKILLs process group `pgid` (an `exec` check's). Runs on the loop's thread.
    fn kill_group(&self, pgid: Pid);
}

/// The real calls.
struct RealOs;

impl ProbeOs for RealOs {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        Ok((host, port).to_socket_addrs()?.collect())
    }

    fn metadata(&self, path: &Path) -> io::Result<()> {
        std::fs::metadata(path).map(drop)
    }

    fn kill_group(&self, pgid: Pid) {
        let _ = crate::os::sys::killpg(pgid, Signal::KILL);
    }
}

/// The OS calls of probes and the lanes that run the blocking ones, shared by [`Probes`]
/// and its tasks.
struct Helpers {
    os: Arc<dyn ProbeOs>,
    /// `getaddrinfo` for `tcp` and `http` checks that name a host.
    resolver: Lane,
    /// `stat` for `file` checks.
    stat: Lane,
}

impl Helpers {
    /// `host`'s addresses with `port`: an IP address as it is (the resolver never sees
    /// it), a name looked up on the resolver thread.
    async fn addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let os = self.os.clone();
        let name = host.to_string();
        self.resolver
            .call(move || os.resolve(&name, port))
            .await
            .map_err(|e| format!("cannot look up {host:?}: {e}"))?
            .map_err(|e| e.to_string())
    }

    /// Whether `path` exists, asked on the stat thread.
    async fn exists(&self, path: &Path) -> Result<(), String> {
        let os = self.os.clone();
        let owned = path.to_path_buf();
        self.stat
            .call(move || os.metadata(&owned))
            .await?
            .map_err(|e| e.to_string())
    }
}

/// Which helper thread a lane has.
#[derive(Clone, Copy, Debug)]
enum LaneKind {
    Resolve,
    Stat,
}

impl LaneKind {
    fn thread_name(self) -> &'static str {
        match self {
            LaneKind::Resolve => "vigil-resolve",
            LaneKind::Stat => "vigil-stat",
        }
    }

    /// Why a try fails when `waiting` jobs fill the queue.
    fn full(self, waiting: usize) -> String {
        match self {
            LaneKind::Resolve => format!(
                "{waiting} earlier lookups are queued behind one the resolver has not \
                 answered, so this try fails at once; check the name servers \
                 (/etc/resolv.conf) or give an IP address"
            ),
            LaneKind::Stat => format!(
                "not checked: {waiting} earlier file checks are queued behind one the file \
                 system has not answered (a hung NFS or FUSE mount?), so this try fails at \
                 once; fix the mount or check a path on another file system"
            ),
        }
    }

    /// Why a try fails when the thread cannot be started.
    fn no_thread(self, e: &io::Error) -> String {
        match self {
            LaneKind::Resolve => format!(
                "cannot start the thread that looks host names up ({e}); raise the thread \
                 limit (ulimit -u, the cgroup's pids.max) or give an IP address"
            ),
            LaneKind::Stat => format!(
                "cannot start the thread that checks files ({e}); raise the thread limit \
                 (ulimit -u, the cgroup's pids.max)"
            ),
        }
    }
}

/// A job a lane's thread runs; skipped when nobody waits for its answer any more.
trait Job: Send {
    fn abandoned(&self) -> bool;
    fn run(self: Box<Self>);
}

/// A call whose answer goes back through a oneshot channel.
struct Call<F, T> {
    f: F,
    reply: oneshot::Sender<T>,
}

impl<F: FnOnce() -> T + Send, T: Send> Job for Call<F, T> {
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(self: Box<Self>) {
        let Call { f, reply } = *self;
        // The try may have timed out meanwhile: the answer is then dropped.
        let _ = reply.send(f());
    }
}

/// One helper thread, started by the first job, and its bounded queue.
///
/// The loop holds the lock only to prune and push, the thread only to pop, so the loop
/// never waits for a call. At most one thread per lane is ever alive: a new one starts
/// only when the last has returned (which it does when the lane is dropped, or if a job
/// panicked).
struct Lane {
    kind: LaneKind,
    capacity: usize,
    shared: Arc<LaneShared>,
}

struct LaneShared {
    state: Mutex<LaneState>,
    wake: Condvar,
}

#[derive(Default)]
struct LaneState {
    jobs: VecDeque<Box<dyn Job>>,
    /// The thread is alive (idle, or in a call that may never return).
    running: bool,
    /// The lane was dropped: the thread returns.
    closed: bool,
}

impl LaneShared {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lane {
    fn new(kind: LaneKind, capacity: usize) -> Lane {
        Lane {
            kind,
            capacity,
            shared: Arc::new(LaneShared {
                state: Mutex::new(LaneState::default()),
                wake: Condvar::new(),
            }),
        }
    }

    /// Runs `f` on the lane's thread and awaits its answer. Dropping the future abandons
    /// the call: the answer, if it ever comes, is discarded.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Box::new(Call { f, reply }))?;
        answer.await.map_err(|_| {
            format!(
                "the {} thread ended without answering",
                self.kind.thread_name()
            )
        })
    }

    /// Queues `job`, starting the thread if none is alive. Never blocks on the thread.
    fn submit(&self, job: Box<dyn Job>) -> Result<(), String> {
        let mut state = self.shared.lock();
        state.jobs.retain(|j| !j.abandoned());
        if state.jobs.len() >= self.capacity {
            return Err(self.kind.full(state.jobs.len()));
        }
        if !state.running {
            self.start().map_err(|e| self.kind.no_thread(&e))?;
            state.running = true;
        }
        state.jobs.push_back(job);
        drop(state);
        self.shared.wake.notify_one();
        Ok(())
    }

    fn start(&self) -> io::Result<()> {
        let shared = self.shared.clone();
        // The thread inherits this mask: every signal blocked, so the kernel always
        // delivers vigil's signals to the loop's thread, never to one stuck in a call.
        let _blocked = crate::os::sys::BlockedSignals::all();
        std::thread::Builder::new()
            .name(self.kind.thread_name().into())
            .stack_size(LANE_STACK)
            .spawn(move || serve(&shared))
            .map(drop)
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.jobs.clear();
        drop(state);
        self.shared.wake.notify_all();
    }
}

/// A lane's thread: runs jobs in order, skipping abandoned ones, until the lane is dropped.
fn serve(shared: &LaneShared) {
    /// Marks the thread gone however it ends, so the next job may start another.
    struct Gone<'a>(&'a LaneShared);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            self.0.lock().running = false;
        }
    }
    let _gone = Gone(shared);
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if state.closed {
                    return;
                }
                match state.jobs.pop_front() {
                    Some(job) if job.abandoned() => {}
                    Some(job) => break job,
                    None => {
                        state = shared
                            .wake
                            .wait(state)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                }
            }
        };
        job.run();
    }
}

async fn read_notify_fd(
    rx: tokio::net::unix::pipe::Receiver,
    node: NodeId,
    pid: Pid,
    tx: mpsc::Sender<Msg>,
) {
    use tokio::io::AsyncReadExt;
    let mut rx = rx;
    let mut buf = [0u8; 256];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => return, // Closed without a newline: its exit fails the start.
            Ok(n) if buf[..n].contains(&b'\n') => {
                let _ = tx.send(Msg::Notified { node, pid }).await;
                return; // s6 closes the pipe after the newline, and so does vigil.
            }
            Ok(_) => {}
        }
    }
}

/// Bytes of one `sd_notify` datagram vigil reads, as systemd (`NOTIFY_BUFFER_MAX`): a
/// longer one is refused whole.
pub const NOTIFY_DATAGRAM_MAX: usize = 4096;

/// Datagrams vigil reads from one process's `sd_notify` socket per second at most, so a
/// flood costs vigil little CPU (honest use is a few per second).
pub const NOTIFY_READS_PER_SEC: u32 = 1000;

/// A process's `STATUS=` is handed to the loop (and logged) at most once per this; the
/// changes in between are counted (`skipped=`), and the latest is handed over when due.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// What an `sd_notify` listener has for the loop: whatever a process sends, at most one of
/// each, so a flood costs a few bytes here and one message in the channel.
#[derive(Debug, Default)]
struct Inbox {
    /// A [`Msg::Notify`] for this inbox is in the channel: no second one is sent.
    queued: bool,
    /// `READY=1` arrived.
    ready: bool,
    /// The latest `STATUS=` (at most one per [`STATUS_INTERVAL`]).
    status: Option<String>,
    /// `STATUS=` changes superseded by a later one, never logged.
    skipped: u64,
    /// Refused since the last report: datagrams from a process outside the child's process
    /// group, and the last such sender.
    foreign: u64,
    foreign_pid: Pid,
    /// Refused: the kernel gave no sender (another PID namespace), or descriptors came
    /// along and were discarded with the credentials.
    unknown: u64,
    /// Refused: longer than [`NOTIFY_DATAGRAM_MAX`].
    oversized: u64,
}

impl Inbox {
    /// Anything refused to report.
    fn has_refused(&self) -> bool {
        self.foreign + self.unknown + self.oversized > 0
    }

    /// Warns about the datagrams refused (on the loop, at most once per
    /// [`STATUS_INTERVAL`] per process).
    fn log_refused(&self, name: &str, pid: Pid) {
        if self.foreign > 0 {
            warn!(
                child = %name, pid, sender = self.foreign_pid, count = self.foreign,
                "ignored sd_notify messages from a process outside the child's process group \
                 (only the child and its process group may notify)"
            );
        }
        if self.unknown > 0 {
            warn!(
                child = %name, pid, count = self.unknown,
                "ignored sd_notify messages whose sender is unknown (another PID namespace) \
                 or that carried descriptors"
            );
        }
        if self.oversized > 0 {
            warn!(
                child = %name, pid, count = self.oversized,
                "ignored sd_notify messages longer than {NOTIFY_DATAGRAM_MAX} bytes"
            );
        }
    }
}

fn lock(inbox: &Mutex<Inbox>) -> MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One datagram as read from an `sd_notify` socket.
enum Datagram {
    /// From an accepted sender: `READY=1` or not, its last `STATUS=` and how many came
    /// before that one in the same datagram.
    Said {
        ready: bool,
        status: Option<String>,
        earlier: u64,
    },
    /// From a process outside the child's process group.
    Foreign(Pid),
    /// No sender to check (see [`Inbox::unknown`]).
    Unknown,
    /// Longer than [`NOTIFY_DATAGRAM_MAX`].
    Oversized,
}

/// The listener of one process's `sd_notify` socket, for the life of the process.
struct SdNotify {
    node: NodeId,
    /// The child: it and the members of its process group (whose id is its pid) may
    /// notify, nobody else.
    pid: Pid,
    inbox: Arc<Mutex<Inbox>>,
    tx: mpsc::Sender<Msg>,
}

impl SdNotify {
    /// Reads datagrams as they come (so the socket's queue never blocks a well-behaved
    /// sender for long) and keeps only what the loop needs: `READY=1` goes to the loop at
    /// once; the latest `STATUS=` and the counts of refused datagrams at most once per
    /// [`STATUS_INTERVAL`].
    async fn run(self, socket: tokio::net::UnixDatagram) {
        use tokio::io::Interest;
        use tokio::time::Instant;
        let fd = socket.as_raw_fd();
        let mut buf = vec![0u8; NOTIFY_DATAGRAM_MAX];
        let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        // Held back until `due`: the latest STATUS= and what was refused.
        let mut held = Inbox::default();
        let mut last_status: Option<String> = None;
        let mut due = Instant::now();
        // Datagrams read in the current second: past the limit, the rest wait in the
        // socket's queue (10 by default), and a sender that floods waits in its `send`.
        let (mut window, mut reads) = (Instant::now(), 0u32);
        loop {
            let pending = held.status.is_some() || held.has_refused();
            let throttled = reads >= NOTIFY_READS_PER_SEC;
            let got = tokio::select! {
                got = socket.async_io(Interest::READABLE, || {
                    recv_datagram(fd, &mut buf, &mut cmsg, self.pid)
                }), if !throttled => got,
                () = tokio::time::sleep_until(window + Duration::from_secs(1)), if throttled => {
                    (window, reads) = (Instant::now(), 0);
                    continue;
                }
                () = tokio::time::sleep_until(due), if pending => {
                    if !self.hand_over(std::mem::take(&mut held), false).await {
                        return;
                    }
                    due = Instant::now() + STATUS_INTERVAL;
                    continue;
                }
            };
            let now = Instant::now();
            if now >= window + Duration::from_secs(1) {
                (window, reads) = (now, 0);
            }
            reads += 1;
            match got {
                Ok(Datagram::Said {
                    ready,
                    status,
                    earlier,
                }) => {
                    held.skipped += earlier;
                    // Only a change counts: the same text again is nothing new.
                    if let Some(text) = status.filter(|t| last_status.as_ref() != Some(t)) {
                        last_status = Some(text.clone());
                        if held.status.replace(text).is_some() {
                            held.skipped += 1;
                        }
                    }
                    if ready && !self.hand_over(Inbox::default(), true).await {
                        return;
                    }
                }
                Ok(Datagram::Foreign(sender)) => {
                    held.foreign += 1;
                    held.foreign_pid = sender;
                }
                Ok(Datagram::Unknown) => held.unknown += 1,
                Ok(Datagram::Oversized) => held.oversized += 1,
                Err(e) => {
                    warn!(pid = self.pid, "cannot read the sd_notify socket: {e}");
                    return;
                }
            }
            if now >= due && (held.status.is_some() || held.has_refused()) {
                if !self.hand_over(std::mem::take(&mut held), false).await {
                    return;
                }
                due = now + STATUS_INTERVAL;
            }
        }
    }

    /// Moves `held` (and `ready`) into the inbox and wakes the loop unless a wake-up is
    /// already queued. False when the loop is gone.
    async fn hand_over(&self, held: Inbox, ready: bool) -> bool {
        let wake = {
            let mut inbox = lock(&self.inbox);
            inbox.ready |= ready;
            if let Some(text) = held.status {
                // Not taken yet: the loop never logs the one it replaces.
                if inbox.status.replace(text).is_some() {
                    inbox.skipped += 1;
                }
            }
            inbox.skipped += held.skipped;
            inbox.foreign += held.foreign;
            if held.foreign > 0 {
                inbox.foreign_pid = held.foreign_pid;
            }
            inbox.unknown += held.unknown;
            inbox.oversized += held.oversized;
            !std::mem::replace(&mut inbox.queued, true)
        };
        !wake
            || self
                .tx
                .send(Msg::Notify {
                    node: self.node,
                    pid: self.pid,
                })
                .await
                .is_ok()
    }
}

/// Reads one datagram (non-blocking) with its sender's credentials and checks the sender:
/// `child` itself, or a process whose process group is `child`'s (its group's id is its
/// pid). Descriptors sent along are never installed: `cmsg` only has room for the
/// credentials, so the kernel discards them (and the datagram is refused).
fn recv_datagram(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
    cmsg: &mut [u8],
    child: Pid,
) -> io::Result<Datagram> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut iov = [io::IoSliceMut::new(buf)];
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
    let msg = recvmsg::<()>(fd, &mut iov, Some(cmsg), flags).map_err(io::Error::from)?;
    let (len, truncated) = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
    let sender = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
            _ => None,
        })
    });
    if truncated {
        return Ok(Datagram::Oversized);
    }
    let sender = match sender {
        Some(p) if p > 0 => p,
        _ => return Ok(Datagram::Unknown),
    };
    if sender != child {
        let group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(sender)));
        if group.map(nix::unistd::Pid::as_raw) != Ok(child) {
            return Ok(Datagram::Foreign(sender));
        }
    }
    let text = String::from_utf8_lossy(&buf[..len]);
    let mut ready = false;
    let mut status = None;
    let mut earlier = 0;
    for line in text.lines() {
        if line == "READY=1" {
            ready = true;
        } else if let Some(s) = line.strip_prefix("STATUS=") {
            earlier += u64::from(status.replace(s).is_some());
        }
    }
    Ok(Datagram::Said {
        ready,
        status: status.map(str::to_string),
        earlier,
    })
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

#[cfg(test)]
mod tests {
    //! The helper lanes and the `exec` kill rule, with a fake [`ProbeOs`] whose lookups
    //! and `stat`s block until the test opens a gate, on the test's current-thread
    //! runtime (the loop's shape). Every wait is a predicate with a deadline.

    use super::*;
    use crate::spec::{Backoff, HealthSpec};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread::ThreadId;
    use std::time::Instant;

    /// Longest any wait of these tests may take; a fake call blocked longer returns anyway
    /// (so a broken lane fails the test instead of hanging it).
    const DEADLINE: Duration = Duration::from_secs(10);

    /// A gate a fake call waits at until the test opens it.
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
        /// Calls inside the gate right now.
        inside: AtomicUsize,
        /// A call gave up waiting after [`DEADLINE`].
        gave_up: AtomicBool,
    }

    impl Gate {
        fn new(open: bool) -> Gate {
            Gate {
                open: Mutex::new(open),
                cv: Condvar::new(),
                inside: AtomicUsize::new(0),
                gave_up: AtomicBool::new(false),
            }
        }

        fn pass(&self) {
            self.inside.fetch_add(1, Ordering::SeqCst);
            let open = self.open.lock().unwrap();
            let (open, _) = self.cv.wait_timeout_while(open, DEADLINE, |o| !*o).unwrap();
            if !*open {
                self.gave_up.store(true, Ordering::SeqCst);
            }
            drop(open);
            self.inside.fetch_sub(1, Ordering::SeqCst);
        }

        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    /// One call the fake saw: what, its argument, and the thread it ran on.
    #[derive(Clone, Debug)]
    struct Seen {
        what: &'static str,
        arg: String,
        thread: ThreadId,
        thread_name: Option<String>,
    }

    struct Fake {
        resolve_gate: Gate,
        stat_gate: Gate,
        /// What a lookup answers once through its gate.
        answer: Mutex<Vec<SocketAddr>>,
        seen: Mutex<Vec<Seen>>,
        kills: Mutex<Vec<Pid>>,
    }

    impl Fake {
        fn new(resolve_open: bool, stat_open: bool) -> Arc<Fake> {
            Arc::new(Fake {
                resolve_gate: Gate::new(resolve_open),
                stat_gate: Gate::new(stat_open),
                answer: Mutex::new(Vec::new()),
                seen: Mutex::new(Vec::new()),
                kills: Mutex::new(Vec::new()),
            })
        }

        fn see(&self, what: &'static str, arg: String) {
            let t = std::thread::current();
            self.seen.lock().unwrap().push(Seen {
                what,
                arg,
                thread: t.id(),
                thread_name: t.name().map(str::to_owned),
            });
        }

        fn seen(&self, what: &str) -> Vec<Seen> {
            let seen = self.seen.lock().unwrap();
            seen.iter().filter(|s| s.what == what).cloned().collect()
        }

        fn kills(&self) -> Vec<Pid> {
            self.kills.lock().unwrap().clone()
        }
    }

    impl ProbeOs for Fake {
        fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
            self.see("resolve", format!("{host}:{port}"));
            self.resolve_gate.pass();
            Ok(self.answer.lock().unwrap().clone())
        }

        fn metadata(&self, path: &Path) -> io::Result<()> {
            self.see("stat", path.display().to_string());
            self.stat_gate.pass();
            Ok(())
        }

        fn kill_group(&self, pgid: Pid) {
            self.kills.lock().unwrap().push(pgid);
        }
    }

    fn probes(fake: &Arc<Fake>) -> Probes {
        Probes::with_os(fake.clone())
    }

    fn health(check: Check, interval_ms: u64, timeout_ms: u64) -> ProcessSpec {
        ProcessSpec {
            command: vec!["true".into()],
            stop_signal: Signal::TERM,
            leftovers: Default::default(),
            success_exit_codes: vec![0],
            env: vec![],
            cwd: None,
            user: None,
            group: None,
            no_new_privileges: false,
            capabilities: None,
            backoff: Backoff::None,
            ready: None,
            health: Some(Box::new(HealthSpec {
                check,
                interval: Duration::from_millis(interval_ms),
                timeout: Duration::from_millis(timeout_ms),
                failures: 1000,
            })),
            output: Default::default(),
        }
    }

    /// Waits (yielding to the runtime) until `f` holds; panics naming `what` after
    /// [`DEADLINE`].
    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The next message of a probe task.
    async fn next(probes: &mut Probes) -> Msg {
        tokio::time::timeout(DEADLINE, probes.recv())
            .await
            .expect("a probe message within the deadline")
    }

    /// Results of polled checks per node, collected until `done` holds.
    async fn collect(
        probes: &mut Probes,
        mut done: impl FnMut(&HashMap<NodeId, Vec<Result<(), String>>>) -> bool,
    ) -> HashMap<NodeId, Vec<Result<(), String>>> {
        let mut results: HashMap<NodeId, Vec<Result<(), String>>> = HashMap::new();
        let deadline = Instant::now() + DEADLINE;
        while !done(&results) {
            assert!(Instant::now() < deadline, "timed out: {results:?}");
            if let Msg::Checked { node, result, .. } = next(probes).await {
                results.entry(node).or_default().push(result);
            }
        }
        results
    }

    /// A listener on 127.0.0.1 that answers every request with an empty 200, from a
    /// thread of its own, for as long as the test binary runs.
    fn http_ok_server() -> SocketAddr {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        addr
    }

    fn passes(results: &HashMap<NodeId, Vec<Result<(), String>>>, node: NodeId) -> usize {
        results
            .get(&node)
            .map_or(0, |r| r.iter().filter(|r| r.is_ok()).count())
    }

    fn failures(results: &HashMap<NodeId, Vec<Result<(), String>>>, node: NodeId) -> usize {
        results
            .get(&node)
            .map_or(0, |r| r.iter().filter(|r| r.is_err()).count())
    }

    #[tokio::test]
    async fn ip_addresses_never_reach_the_resolver_and_names_do_on_its_thread() {
        let fake = Fake::new(true, true);
        *fake.answer.lock().unwrap() = vec!["127.0.0.1:8080".parse().unwrap()];
        let p = probes(&fake);
        let h = &p.helpers;
        for (addr, want) in [
            ("127.0.0.1:6379", "127.0.0.1:6379"),
            ("[::1]:5432", "[::1]:5432"),
            ("::1:5432", "[::1]:5432"),
        ] {
            let got = tcp_addrs(addr, h).await.unwrap();
            assert_eq!(got, vec![want.parse::<SocketAddr>().unwrap()], "{addr}");
        }
        for host in ["10.0.0.5", "::1", "fe80::1"] {
            let got = h.addrs(host, 80).await.unwrap();
            assert_eq!(got, vec![SocketAddr::new(host.parse().unwrap(), 80)]);
        }
        assert!(
            fake.seen("resolve").is_empty(),
            "{:?}",
            fake.seen("resolve")
        );

        let got = tcp_addrs("localhost:8080", h).await.unwrap();
        assert_eq!(got, vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
        let seen = fake.seen("resolve");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].arg, "localhost:8080");
        assert_eq!(seen[0].thread_name.as_deref(), Some("vigil-resolve"));
        assert_ne!(seen[0].thread, std::thread::current().id());
    }

    #[tokio::test]
    async fn a_hung_lookup_holds_one_thread_and_fails_tries_by_their_timeout() {
        let server = http_ok_server();
        let port = server.port();
        let fake = Fake::new(false, true);
        *fake.answer.lock().unwrap() = vec![server];
        let mut p = probes(&fake);
        let named: Vec<NodeId> = (1..=6).map(NodeId).collect();
        for &n in &named {
            let check = if n.0 % 2 == 0 {
                Check::Http(format!("http://hung-{}.test:{port}/", n.0))
            } else {
                Check::Tcp(format!("hung-{}.test:{port}", n.0))
            };
            p.watch(n, 100 + n.0 as Pid, Probe::Health, &health(check, 20, 30));
        }
        let by_ip = NodeId(50);
        let ip_check = Check::Tcp(format!("127.0.0.1:{port}"));
        p.watch(by_ip, 150, Probe::Health, &health(ip_check, 20, 1000));

        // Several intervals with the resolver hung: every try of a named check fails by
        // its timeout, the IP check keeps passing, and one lookup is all that ever runs.
        let results = collect(&mut p, |r| {
            named.iter().all(|&n| failures(r, n) >= 3) && passes(r, by_ip) >= 3
        })
        .await;
        for &n in &named {
            for r in &results[&n] {
                let e = r.as_ref().unwrap_err();
                assert!(e.contains("no answer within"), "{e}");
            }
        }
        assert_eq!(fake.resolve_gate.inside.load(Ordering::SeqCst), 1);
        assert_eq!(fake.seen("resolve").len(), 1, "{:?}", fake.seen("resolve"));
        assert!(p.helpers.resolver.shared.lock().jobs.len() <= named.len());

        // The resolver answers again: the queued tries go through, still on that thread.
        fake.resolve_gate.open();
        collect(&mut p, |r| named.iter().all(|&n| passes(r, n) >= 1)).await;
        let seen = fake.seen("resolve");
        assert!(seen.len() > named.len(), "{seen:?}");
        assert!(seen.iter().all(|s| s.thread == seen[0].thread), "{seen:?}");
        assert_eq!(seen[0].thread_name.as_deref(), Some("vigil-resolve"));
        assert!(!fake.resolve_gate.gave_up.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_hung_stat_stops_neither_other_checks_nor_signals() {
        use crate::runtime::signals::Signals;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = Fake::new(true, false);
        let mut p = probes(&fake);
        let file = NodeId(1);
        let tcp = NodeId(2);
        let hung = Check::File("/mnt/hung/ready".into());
        p.watch(file, 101, Probe::Health, &health(hung, 20, 30));
        let ip = Check::Tcp(listener.local_addr().unwrap().to_string());
        p.watch(tcp, 102, Probe::Health, &health(ip, 20, 1000));
        // A real-time signal nothing else in this test binary uses.
        let sig = Signal(libc::SIGRTMIN() + 9);
        let mut signals = Signals::new(&[sig]).unwrap();
        let me = std::process::id() as Pid;

        let mut results: HashMap<NodeId, Vec<Result<(), String>>> = HashMap::new();
        let mut signalled = false;
        let mut got_signal = false;
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !(got_signal && failures(&results, file) >= 3 && passes(&results, tcp) >= 3) {
            if !signalled && failures(&results, file) >= 1 {
                // The stat is stuck by now: a signal must still get through.
                crate::os::sys::kill(me, sig).unwrap();
                signalled = true;
            }
            tokio::select! {
                msg = p.recv() => if let Msg::Checked { node, result, .. } = msg {
                    results.entry(node).or_default().push(result);
                },
                s = signals.recv() => {
                    assert_eq!(s.unwrap(), sig);
                    got_signal = true;
                }
                () = tokio::time::sleep_until(deadline) => panic!("timed out: {results:?}"),
            }
        }
        for r in &results[&file] {
            let e = r.as_ref().unwrap_err();
            assert!(e.starts_with("no answer within"), "{e}");
        }
        // All of that happened while the one stat was still stuck, on its own thread.
        assert_eq!(fake.stat_gate.inside.load(Ordering::SeqCst), 1);
        assert!(!fake.stat_gate.gave_up.load(Ordering::SeqCst));
        let seen = fake.seen("stat");
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].thread_name.as_deref(), Some("vigil-stat"));

        fake.stat_gate.open();
        collect(&mut p, |r| passes(r, file) >= 1).await;
    }

    #[tokio::test]
    async fn a_full_lane_refuses_at_once_and_prunes_abandoned_jobs() {
        let lane = Arc::new(Lane::new(LaneKind::Stat, 2));
        let gate = Arc::new(Gate::new(false));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let job = |id: u32| {
            let (gate, ran) = (gate.clone(), ran.clone());
            move || {
                ran.lock().unwrap().push(id);
                gate.pass();
                id
            }
        };
        let spawn = |id: u32| {
            let (lane, f) = (lane.clone(), job(id));
            tokio::spawn(async move { lane.call(f).await })
        };
        let queued = |lane: &Lane| lane.shared.lock().jobs.len();
        let a = spawn(1);
        until("job 1 running", || gate.inside.load(Ordering::SeqCst) == 1).await;
        let b = spawn(2);
        let c = spawn(3);
        until("jobs 2 and 3 queued", || queued(&lane) == 2).await;

        let refused = lane.call(job(4)).await.unwrap_err();
        assert!(
            refused.starts_with("not checked: 2 earlier file checks are queued behind one"),
            "{refused}"
        );
        assert!(refused.contains("hung NFS or FUSE mount"), "{refused}");

        // A try that gave up frees its place.
        b.abort();
        assert!(b.await.unwrap_err().is_cancelled());
        let e = spawn(5);
        until("job 5 queued in 2's place", || {
            let state = lane.shared.lock();
            state.jobs.len() == 2 && !state.jobs.iter().any(|j| j.abandoned())
        })
        .await;

        gate.open();
        assert_eq!(a.await.unwrap(), Ok(1));
        assert_eq!(c.await.unwrap(), Ok(3));
        assert_eq!(e.await.unwrap(), Ok(5));
        assert_eq!(
            *ran.lock().unwrap(),
            vec![1, 3, 5],
            "2 was abandoned, 4 refused"
        );
    }

    /// Watches `node` (pid 4242) with an `exec` health check and answers its spawn with
    /// `exec_pid`; returns once the check awaits that process's exit.
    async fn exec_check_running(fake: &Arc<Fake>, p: &mut Probes, exec_pid: Pid) {
        let spec = health(Check::Exec(vec!["true".into()]), 1, 10_000);
        p.watch(NodeId(1), 4242, Probe::Health, &spec);
        match next(p).await {
            Msg::SpawnExec { node, reply } => {
                assert_eq!(node, NodeId(1));
                let exited = p.register_exec(exec_pid);
                reply.send(Ok((exec_pid, exited))).unwrap();
            }
            other => panic!("expected SpawnExec, got {other:?}"),
        }
        // The running check holds one more reference to the OS (test, helpers, it).
        until("the check awaiting its exit", || {
            Arc::strong_count(fake) == 3
        })
        .await;
    }

    #[tokio::test]
    async fn an_exec_check_reaped_before_its_task_is_dropped_is_never_signalled() {
        let fake = Fake::new(true, true);
        let mut p = probes(&fake);
        exec_check_running(&fake, &mut p, 7001).await;
        // One drain of the reaper: the check's exit, then its process's (which aborts
        // the check's task before it has seen the status).
        assert!(p.exec_exited(7001, ExitStatus::Code(0)));
        p.child_exited(4242);
        until("the check's task dropped", || Arc::strong_count(&fake) == 2).await;
        assert_eq!(
            fake.kills(),
            Vec::<Pid>::new(),
            "a reaped group was signalled"
        );
    }

    #[tokio::test]
    async fn an_exec_check_abandoned_before_its_exit_is_killed_once() {
        let fake = Fake::new(true, true);
        let mut p = probes(&fake);
        exec_check_running(&fake, &mut p, 7002).await;
        p.unwatch(NodeId(1));
        until("the check's task dropped", || Arc::strong_count(&fake) == 2).await;
        assert_eq!(fake.kills(), vec![7002]);
        // Its exit is still the check's (not an orphan), and nothing is signalled again.
        assert!(p.exec_exited(7002, ExitStatus::Signaled(Signal::KILL)));
        assert_eq!(fake.kills(), vec![7002]);
    }

    #[tokio::test]
    async fn cleanup_kills_running_exec_checks_and_their_aborted_tasks_do_not_again() {
        let fake = Fake::new(true, true);
        let mut p = probes(&fake);
        exec_check_running(&fake, &mut p, 7003).await;
        p.cleanup();
        assert_eq!(
            fake.kills(),
            vec![7003],
            "killed while known to be unreaped"
        );
        // The sweep may reap it now without telling the probes; the task, dropped later,
        // must not signal the group again.
        until("the check's task dropped", || Arc::strong_count(&fake) == 2).await;
        assert_eq!(fake.kills(), vec![7003]);
        assert!(!p.exec_exited(7003, ExitStatus::Signaled(Signal::KILL)));
    }

    #[tokio::test]
    async fn an_exec_check_that_exits_in_time_passes_and_signals_nothing() {
        let fake = Fake::new(true, true);
        let mut p = probes(&fake);
        exec_check_running(&fake, &mut p, 7004).await;
        assert!(p.exec_exited(7004, ExitStatus::Code(0)));
        match next(&mut p).await {
            Msg::Checked { result, .. } => assert_eq!(result, Ok(())),
            other => panic!("expected Checked, got {other:?}"),
        }
        p.unwatch(NodeId(1));
        until("the check's task dropped", || Arc::strong_count(&fake) == 2).await;
        assert_eq!(fake.kills(), Vec::<Pid>::new());
    }

    /// A process sends `STATUS=` datagrams as fast as the socket takes them, then
    /// `READY=1` and a last `STATUS=`: at no time is more than one message queued for the
    /// loop, the loop hears `READY=1`, and the last `STATUS=` is the one kept.
    #[tokio::test]
    async fn an_sd_notify_flood_queues_one_message_and_keeps_the_latest_status() {
        use crate::spec::ReadySpec;
        let node = NodeId(1);
        let mut spec = health(Check::SdNotify, 1000, 1000);
        spec.health = None;
        spec.ready = Some(Box::new(ReadySpec {
            check: Check::SdNotify,
            timeout: DEADLINE,
            interval: Duration::from_millis(100),
        }));
        let mut p = Probes::new();
        let prepared = p.prepare(node, &spec).unwrap();
        let spec = prepared.spec.clone().unwrap();
        let path = spec
            .env
            .iter()
            .find_map(|(k, v)| (k == "NOTIFY_SOCKET").then(|| v.clone()))
            .unwrap();
        // This test process is the "child": its datagrams carry its own pid.
        let me = std::process::id() as Pid;
        p.spawned(node, me);
        p.watch(node, me, Probe::Ready, &spec);

        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        sender.set_nonblocking(true).unwrap();
        let mut most_queued = 0;
        let send = |msg: &[u8]| sender.send_to(msg, &path);
        for i in 0..1500 {
            let msg = format!("STATUS=a {i}\nSTATUS=b {i}");
            loop {
                match send(msg.as_bytes()) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            most_queued = most_queued.max(p.rx.len());
        }
        for msg in ["READY=1", "STATUS=last"] {
            while let Err(e) = send(msg.as_bytes()) {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut ready = 0;
        let mut taken = 0;
        while p.status_text(node) != Some("last") {
            most_queued = most_queued.max(p.rx.len());
            let msg = next(&mut p).await;
            assert!(matches!(msg, Msg::Notify { .. }), "{msg:?}");
            taken += 1;
            if let Some(input) = p.input(msg, "a") {
                assert!(matches!(input, Input::Ready { node: n } if n == node));
                ready += 1;
            }
        }
        p.cleanup();
        assert_eq!(most_queued, 1, "messages queued for the loop at once");
        assert_eq!(ready, 1, "READY=1 heard once");
        // One message per hand-over: a few per second, not one per datagram.
        assert!(taken <= 10, "{taken} messages for 1,502 datagrams");
    }
}
