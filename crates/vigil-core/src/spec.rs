//! The validated supervision tree: what the config means, with every default filled in.
//!
//! This module owns the *model* of a configuration. It is plain data: the
//! config loader (`vigil::config`) is the only producer, the engine
//! (`vigil_core`'s engine) and the runtime are consumers. It must never do I/O, read
//! a clock, or depend on tokio or nix, so that the pure core can use it.
//!
//! The tree is an arena: every supervisor and process is a [`Node`] in
//! [`Tree::nodes`], addressed by [`NodeId`]. The root supervisor is always
//! node 0 and is named [`ROOT_NAME`]. A supervisor's `children` list is its
//! start order; stop order is the reverse.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The name of the top-level supervisor (the file itself). Reserved: no child may use it.
pub const ROOT_NAME: &str = "root";

/// Index of a node (supervisor or process) in [`Tree::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The root supervisor.
    pub const ROOT: NodeId = NodeId(0);

    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A whole validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    /// Every node; `nodes[0]` is the root supervisor. Children come after their parent.
    pub nodes: Vec<Node>,
    /// Overall deadline for a requested stop (`shutdown_timeout` at the top level):
    /// when it passes, everything left is killed with SIGKILL. `None` waits for the
    /// per-child shutdown specs alone.
    pub shutdown_timeout: Option<Duration>,
    /// The operations interface: control socket, HTTP endpoints, termination message.
    pub ops: Ops,
}

impl Tree {
    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// Looks a node up by name (names are unique across the tree).
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| NodeId(i as u32))
    }

    /// The children of a supervisor in start order (empty for a process).
    pub fn children(&self, id: NodeId) -> &[NodeId] {
        match &self.node(id).kind {
            NodeKind::Supervisor(s) => &s.children,
            NodeKind::Process(_) => &[],
        }
    }

    /// All node ids.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len() as u32).map(NodeId)
    }
}

/// One supervisor or process.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique name, `[a-z0-9][a-z0-9_.-]*`, or [`ROOT_NAME`].
    pub name: String,
    /// The supervisor that owns this node; `None` only for the root.
    pub parent: Option<NodeId>,
    /// How the parent treats an exit of this node.
    pub restart: Restart,
    /// How the parent stops this node.
    pub shutdown: Shutdown,
    /// Whether this node's own exit can trigger the parent's `auto_shutdown`.
    pub significant: bool,
    /// Supervisor or process settings.
    pub kind: NodeKind,
}

impl Node {
    /// The supervisor settings, if this node is a supervisor.
    pub fn as_supervisor(&self) -> Option<&SupervisorSpec> {
        match &self.kind {
            NodeKind::Supervisor(s) => Some(s),
            NodeKind::Process(_) => None,
        }
    }

    /// The process settings, if this node is a process.
    pub fn as_process(&self) -> Option<&ProcessSpec> {
        match &self.kind {
            NodeKind::Process(p) => Some(p),
            NodeKind::Supervisor(_) => None,
        }
    }
}

/// What a node is.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "nodes are built once into the tree's arena; a few hundred bytes per process \
              cost nothing, and boxing would put every spec access behind a pointer"
)]
pub enum NodeKind {
    /// A supervisor of further nodes.
    Supervisor(SupervisorSpec),
    /// An OS process.
    Process(ProcessSpec),
}

/// Settings of a supervisor.
#[derive(Clone, Debug, PartialEq)]
pub struct SupervisorSpec {
    /// Which siblings are restarted with a child that exited.
    pub strategy: Strategy,
    /// Restarts allowed within `period`; one more and the supervisor gives up.
    pub intensity: u32,
    /// The sliding window for `intensity`. Never zero.
    pub period: Duration,
    /// Whether the exit of significant children shuts this supervisor down.
    pub auto_shutdown: AutoShutdown,
    /// Children in start order.
    pub children: Vec<NodeId>,
}

/// Settings of an OS process.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    /// argv; `command[0]` is looked up in `PATH` when it has no slash. Never empty.
    pub command: Vec<String>,
    /// The signal that asks the process to stop (sent to its process group).
    pub stop_signal: Signal,
    /// What happens, when the process exits, to the processes its exit orphaned.
    pub leftovers: Leftovers,
    /// Exit codes that count as a normal exit (OTP's `normal`). Default `[0]`.
    pub success_exit_codes: Vec<i32>,
    /// Variables set on top of the inherited environment, in file order.
    pub env: Vec<(String, String)>,
    /// Working directory; `None` is the directory vigil was started in.
    pub cwd: Option<PathBuf>,
    /// User to run as (name or numeric uid).
    pub user: Option<String>,
    /// Group to run as (name or numeric gid).
    pub group: Option<String>,
    /// Set the no_new_privs bit before exec (`no_new_privileges`): exec can then never
    /// grant more privileges (set-user-ID bits and file capabilities are ignored).
    pub no_new_privileges: bool,
    /// The capabilities the process keeps in its bounding set (`capabilities`); every
    /// other one is dropped before exec. `None`: vigil's own set is left alone.
    pub capabilities: Option<CapSet>,
    /// Delay before restarts.
    pub backoff: Backoff,
    /// When the process counts as started (`ready`); `None`: as soon as it is spawned.
    pub ready: Option<Box<ReadySpec>>,
    /// Liveness check while it runs (`health`); `None`: none.
    pub health: Option<Box<HealthSpec>>,
    /// Where the process's stdout and stderr go.
    pub output: Output,
}

/// What happens to the processes that a process's exit leaves behind (`leftovers` in the
/// config): descendants outside its process group (a helper that called `setsid`, a
/// daemonizing child) that the exit orphaned. What is left in the process group itself is
/// always SIGKILLed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Leftovers {
    /// They are stopped like the process: its `stop_signal`, then SIGKILL after its
    /// `shutdown` grace (the default).
    #[default]
    Stop,
    /// They are left running: for a process that hands work to a daemon on purpose.
    Keep,
}

impl Leftovers {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Leftovers::Stop => "stop",
            Leftovers::Keep => "keep",
        }
    }
}

/// Where a process's stdout and stderr go (`output` in the config). The runtime's
/// `output` module carries it out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// The child writes straight to vigil's stdout and stderr (the default).
    #[default]
    Inherit,
    /// Each line goes to vigil's stdout (or stderr) as `NAME | line`.
    Prefix,
    /// Both streams go to `/dev/null`.
    Null,
    /// Both streams go, line by line, to a file rotated by size.
    File(Box<FileOutput>),
}

/// `output = { file = ..., max_size = ..., keep = ..., allow_shared_directory = ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOutput {
    /// Absolute path (a relative one in the config is resolved against the config
    /// file's directory).
    pub path: PathBuf,
    /// Rotate before a write would make the file larger than this many bytes.
    pub max_size: u64,
    /// How many rotated files (`PATH.1` … `PATH.keep`) are kept. At least 1.
    pub keep: u32,
    /// Whether the file's directory may be writable by another user than root and
    /// vigil's (refused otherwise, since such a user could swap the file).
    pub allow_shared_directory: bool,
}

impl Output {
    /// The config spelling of the mode: `inherit`, `prefix`, `null` or `file`.
    pub fn mode(&self) -> &'static str {
        match self {
            Output::Inherit => "inherit",
            Output::Prefix => "prefix",
            Output::Null => "null",
            Output::File(_) => "file",
        }
    }
}

/// `bytes` with the largest binary unit that divides it exactly: `10MiB`, `1536B`.
pub fn humanize_size(bytes: u64) -> String {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

impl ProcessSpec {
    /// Whether an exit code counts as a normal exit.
    pub fn is_success(&self, code: i32) -> bool {
        self.success_exit_codes.contains(&code)
    }
}

/// OTP restart strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Restart only the child that exited.
    OneForOne,
    /// Stop all children (reverse order), then start all of them (in order).
    OneForAll,
    /// Stop the children started after the one that exited, then start it and them.
    RestForOne,
}

impl Strategy {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        }
    }
}

/// OTP restart types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted, whatever the exit.
    Permanent,
    /// Restarted only after an abnormal exit.
    Transient,
    /// Never restarted; removed once it exits.
    Temporary,
}

impl Restart {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Permanent => "permanent",
            Restart::Transient => "transient",
            Restart::Temporary => "temporary",
        }
    }
}

/// OTP `auto_shutdown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoShutdown {
    /// Significant children are not allowed.
    Never,
    /// Shut down when any significant child exits by itself and is not restarted.
    AnySignificant,
    /// Shut down when every significant child has exited.
    AllSignificant,
}

impl AutoShutdown {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoShutdown::Never => "never",
            AutoShutdown::AnySignificant => "any_significant",
            AutoShutdown::AllSignificant => "all_significant",
        }
    }
}

/// How a node is stopped (OTP shutdown spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGKILL at once (to the process group; for a supervisor, to its whole subtree).
    BrutalKill,
    /// The stop signal, then SIGKILL when the grace has passed.
    Timeout(Duration),
    /// The stop signal, then wait for as long as it takes.
    Infinity,
}

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shutdown::BrutalKill => f.write_str("brutal_kill"),
            Shutdown::Infinity => f.write_str("infinity"),
            Shutdown::Timeout(d) => write!(f, "{}", humanize(*d)),
        }
    }
}

/// Restart delay schedule (vigil's addition to OTP).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backoff {
    /// Restart at once, as OTP does.
    None,
    /// `initial * multiplier^n`, capped at `max`, with +/- `jitter` (a fraction), where `n`
    /// counts consecutive restarts; `n` goes back to 0 once the child has run `reset_after`.
    Exponential {
        /// Delay before the first restart.
        initial: Duration,
        /// Upper bound of the delay.
        max: Duration,
        /// Growth factor per consecutive restart (>= 1).
        multiplier: f64,
        /// Random spread as a fraction of the delay, in `[0, 1)`.
        jitter: f64,
        /// Uptime after which the schedule starts again from `initial`.
        reset_after: Duration,
    },
}

impl Backoff {
    /// The default schedule: 100 ms doubling to 5 s, 10% jitter, reset after 10 s of uptime.
    ///
    /// Chosen so that with the default intensity (3 in 5 s) a child that crashes at once
    /// exhausts the budget within a second (0.1 + 0.2 + 0.4 s) and the container exits 75,
    /// handing the long-term backoff to the kubelet's CrashLoopBackOff, while a child that
    /// crashes now and then is back within 100 ms.
    pub const DEFAULT: Backoff = Backoff::Exponential {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
        multiplier: 2.0,
        jitter: 0.1,
        reset_after: Duration::from_secs(10),
    };
}

/// A Linux signal number, as the engine sees it (no nix in the core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signal(pub i32);

impl Signal {
    /// SIGHUP.
    pub const HUP: Signal = Signal(1);
    /// SIGINT.
    pub const INT: Signal = Signal(2);
    /// SIGQUIT.
    pub const QUIT: Signal = Signal(3);
    /// SIGKILL.
    pub const KILL: Signal = Signal(9);
    /// SIGTERM.
    pub const TERM: Signal = Signal(15);
    /// SIGCONT (Linux numbering; `vigil`'s tests check it against libc).
    pub const CONT: Signal = Signal(18);

    /// `SIGTERM`-style name, or the number for signals without one (real-time signals).
    pub fn name(self) -> String {
        match SIGNAL_NAMES.iter().find(|(_, n)| *n == self.0) {
            Some((name, _)) => (*name).to_string(),
            None => format!("signal {}", self.0),
        }
    }

    /// Parses `SIGTERM`, `TERM` or `15` (any case for names).
    pub fn parse(s: &str) -> Option<Signal> {
        if let Ok(n) = s.parse::<i32>() {
            return (1..=64).contains(&n).then_some(Signal(n));
        }
        let upper = s.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        SIGNAL_NAMES
            .iter()
            .find(|(name, _)| &name[3..] == bare)
            .map(|(_, n)| Signal(*n))
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Linux (x86_64, aarch64) signal names and numbers.
pub const SIGNAL_NAMES: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// A set of Linux capabilities, bit `n` for capability number `n` (`capabilities(7)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapSet(pub u64);

impl CapSet {
    /// The empty set.
    pub const EMPTY: CapSet = CapSet(0);

    /// Whether capability number `cap` is in the set.
    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    /// The set with capability number `cap` (below 64) added.
    pub fn with(self, cap: u32) -> CapSet {
        debug_assert!(cap < 64);
        CapSet(self.0 | (1u64 << (cap & 63)))
    }

    /// The number of a capability named `CAP_NET_BIND_SERVICE` or `NET_BIND_SERVICE`,
    /// in any case; `None` for a name Linux does not have.
    pub fn parse_name(name: &str) -> Option<u32> {
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        CAPABILITY_NAMES
            .iter()
            .position(|n| *n == bare)
            .map(|i| i as u32)
    }

    /// `CAP_NAME` for each capability in the set, by number.
    pub fn names(self) -> Vec<String> {
        (0..64u32)
            .filter(|&c| self.contains(c))
            .map(|c| match CAPABILITY_NAMES.get(c as usize) {
                Some(n) => format!("CAP_{n}"),
                None => format!("capability {c}"),
            })
            .collect()
    }
}

/// The Linux capability names (`capabilities(7)`, up to Linux 6.x), without the `CAP_`
/// prefix; the index is the capability's number.
pub const CAPABILITY_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The operations interface (top-level `[control]`, `[http]` and `termination_log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ops {
    /// `[control] enabled`: whether vigil listens on a control socket (default true).
    pub control_enabled: bool,
    /// `[control] socket`: the socket's path; `None` is the default (see `vigil::control`).
    pub control_socket: Option<PathBuf>,
    /// `[control] max_connections`: control connections served at once.
    pub control_max_connections: u32,
    /// `[http] listen`: where the HTTP endpoints listen; `None` (the default) starts none.
    pub http_listen: Option<std::net::SocketAddr>,
    /// `[http] max_connections`: HTTP connections served at once.
    pub http_max_connections: u32,
    /// `termination_log`: where the root's post-mortem goes; `None` is
    /// [`Ops::DEFAULT_TERMINATION_LOG`], written only if it already exists and is writable.
    pub termination_log: Option<PathBuf>,
}

impl Ops {
    /// Kubernetes' default `terminationMessagePath`.
    pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";
    /// The default of `[control] max_connections`.
    pub const DEFAULT_CONTROL_MAX_CONNECTIONS: u32 = 16;
    /// The default of `[http] max_connections`.
    pub const DEFAULT_HTTP_MAX_CONNECTIONS: u32 = 64;
    /// The largest `max_connections` accepted in either table.
    pub const MAX_CONNECTIONS_LIMIT: u32 = 4096;
}

impl Default for Ops {
    fn default() -> Self {
        Ops {
            control_enabled: true,
            control_socket: None,
            control_max_connections: Self::DEFAULT_CONTROL_MAX_CONNECTIONS,
            http_listen: None,
            http_max_connections: Self::DEFAULT_HTTP_MAX_CONNECTIONS,
            termination_log: None,
        }
    }
}

/// How a process ended, as reported by the reaper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signaled(Signal),
}

impl ExitStatus {
    /// The shell convention: the code itself, or 128 + the signal number, mod 256.
    pub fn shell_code(self) -> u8 {
        match self {
            ExitStatus::Code(c) => (c & 0xff) as u8,
            ExitStatus::Signaled(s) => ((128 + s.0) & 0xff) as u8,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signaled(s) => write!(f, "killed by {s}"),
        }
    }
}

/// Formats a duration the way the config spells it (`5s`, `100ms`, `1m 30s`).
pub fn humanize(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_round_trip() {
        for (name, n) in SIGNAL_NAMES {
            assert_eq!(Signal::parse(name), Some(Signal(*n)));
            assert_eq!(Signal::parse(&name[3..].to_lowercase()), Some(Signal(*n)));
            assert_eq!(Signal(*n).name(), *name);
        }
        assert_eq!(Signal::parse("SIGNOPE"), None);
        assert_eq!(Signal::parse("0"), None);
        assert_eq!(
            Signal::parse("34").map(|s| s.name()),
            Some("signal 34".into())
        );
    }

    #[test]
    fn capability_names_round_trip() {
        assert_eq!(
            CAPABILITY_NAMES.len(),
            41,
            "CAP_LAST_CAP is 40 since Linux 5.9"
        );
        for (i, name) in CAPABILITY_NAMES.iter().enumerate() {
            assert_eq!(CapSet::parse_name(name), Some(i as u32));
            assert_eq!(CapSet::parse_name(&format!("cap_{name}")), Some(i as u32));
            assert_eq!(
                CapSet::EMPTY.with(i as u32).names(),
                vec![format!("CAP_{name}")]
            );
        }
        assert_eq!(CapSet::parse_name("CAP_NET_BIND_SERVICE"), Some(10));
        assert_eq!(CapSet::parse_name("NET_BIND_SERVIC"), None);
        assert_eq!(CapSet::parse_name("CAP_"), None);
        assert!(CapSet(1 << 10).contains(10) && !CapSet(1 << 10).contains(64));
    }

    #[test]
    fn shell_codes() {
        assert_eq!(ExitStatus::Code(3).shell_code(), 3);
        assert_eq!(ExitStatus::Code(256 + 7).shell_code(), 7);
        assert_eq!(ExitStatus::Signaled(Signal::KILL).shell_code(), 137);
        assert_eq!(ExitStatus::Signaled(Signal::TERM).shell_code(), 143);
    }
}

/// How vigil learns that a process is ready, or checks that it is healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// s6's protocol: the process writes a newline to this descriptor (3 or more).
    NotifyFd(i32),
    /// systemd's protocol: `READY=1` on the datagram socket named by `NOTIFY_SOCKET`.
    SdNotify,
    /// A TCP connection to `host:port` succeeds.
    Tcp(String),
    /// A GET of this `http://` URL answers 2xx.
    Http(String),
    /// This command (argv, no shell) exits 0.
    Exec(Vec<String>),
    /// This path exists.
    File(PathBuf),
}

impl Check {
    /// The config key of the kind (`notify_fd`, `sd_notify`, `tcp`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Check::NotifyFd(_) => "notify_fd",
            Check::SdNotify => "sd_notify",
            Check::Tcp(_) => "tcp",
            Check::Http(_) => "http",
            Check::Exec(_) => "exec",
            Check::File(_) => "file",
        }
    }

    /// Whether vigil runs this check on a timer (the process does nothing special).
    pub fn is_polled(&self) -> bool {
        !matches!(self, Check::NotifyFd(_) | Check::SdNotify)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::NotifyFd(n) => write!(f, "notify_fd = {n}"),
            Check::SdNotify => write!(f, "sd_notify = true"),
            Check::Tcp(a) => write!(f, "tcp = {a:?}"),
            Check::Http(u) => write!(f, "http = {u:?}"),
            Check::Exec(argv) => write!(f, "exec = {argv:?}"),
            Check::File(p) => write!(f, "file = {:?}", p.display().to_string()),
        }
    }
}

/// `ready = { KIND = ..., timeout, interval }` on a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadySpec {
    /// What "ready" means.
    pub check: Check,
    /// How long the process has to become ready; then its start has failed.
    pub timeout: Duration,
    /// Time between the starts of two tries of a polled check.
    pub interval: Duration,
}

/// `health = { KIND = ..., interval, timeout, failures }` on a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    /// The check (a polled kind).
    pub check: Check,
    /// Time between two checks.
    pub interval: Duration,
    /// How long one check may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive failed checks after which the process is stopped and restarted.
    pub failures: u32,
}
