//! vigil's own side of systemd's notify protocol (`sd_notify(3)`): a client that sends
//! datagrams to `$NOTIFY_SOCKET` when vigil runs as a `Type=notify` unit.
//!
//! What it sends, and when (the loop of `vigil run` decides when; `vigil exec` too):
//!
//! - `READY=1` once, when the initial start of the tree is complete (the engine's
//!   `Ready` action); `vigil exec` sends it once its child is spawned.
//! - `STATUS=...` when the one-line summary changes (only then: no repeats).
//! - `WATCHDOG=1` every `$WATCHDOG_USEC / 2`, from the event loop itself, so the pings
//!   stop when the loop stops turning. Only when `$WATCHDOG_USEC` is set and
//!   `$WATCHDOG_PID` is vigil's pid or absent (as `sd_watchdog_enabled(3)` says). This is
//!   the only periodic timer, and only the unit's `WatchdogSec=` asks for it.
//! - `STOPPING=1` once, when the stop of the tree begins (whatever its cause).
//!
//! Children never see the protocol's variables: [`CONSUMED_ENV`] is removed from every
//! child's environment (like `sd_notify(unset_environment=1)`), so a notify-aware child
//! cannot report itself ready in vigil's name.
//!
//! Must never: block the loop (the socket is non-blocking; a message that does not fit
//! is dropped and logged), fail vigil because the manager is gone, or send anything when
//! `$NOTIFY_SOCKET` is unset.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

/// The environment variables of the protocol. vigil consumes them; children never
/// inherit them.
pub const CONSUMED_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// A connection to the service manager's notify socket, or nothing (every method is then
/// a no-op).
#[derive(Debug)]
pub struct Notifier {
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// Half of `WATCHDOG_USEC`: how often `WATCHDOG=1` is sent.
    watchdog: Option<Duration>,
    /// When the next `WATCHDOG=1` is due.
    next_watchdog: Option<Instant>,
    /// The last `STATUS=` sent, so an unchanged summary is not sent again.
    status: String,
    ready_sent: bool,
    stopping_sent: bool,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { inner: None }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from vigil's environment.
    /// Without `NOTIFY_SOCKET` the notifier is disabled; a value vigil cannot use is
    /// logged (what is wrong and what vigil does instead), never fatal.
    pub fn from_env() -> Notifier {
        let var = |name| std::env::var_os(name);
        match Notifier::from_vars(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
            Instant::now(),
        ) {
            Ok(n) => n,
            Err(e) => {
                warn!("{e}; vigil will not notify the service manager");
                Notifier::disabled()
            }
        }
    }

    /// [`Notifier::from_env`] with the values given: the socket address, the watchdog
    /// timeout in microseconds and the pid it is meant for, vigil's own pid, and now.
    pub fn from_vars(
        socket: Option<&OsStr>,
        watchdog_usec: Option<&OsStr>,
        watchdog_pid: Option<&OsStr>,
        own_pid: u32,
        now: Instant,
    ) -> Result<Notifier, String> {
        let Some(socket_path) = socket.filter(|s| !s.is_empty()) else {
            return Ok(Notifier::disabled());
        };
        let addr = parse_addr(socket_path)?;
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| format!("cannot create a socket for NOTIFY_SOCKET: {e}"))?;
        let watchdog = watchdog_interval(watchdog_usec, watchdog_pid, own_pid);
        Ok(Notifier {
            inner: Some(Inner {
                socket,
                addr,
                watchdog,
                // The first ping goes out at once: the manager's watchdog runs from our start.
                next_watchdog: watchdog.map(|_| now),
                status: String::new(),
                ready_sent: false,
                stopping_sent: false,
            }),
        })
    }

    /// Whether `NOTIFY_SOCKET` was set and usable.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The interval between two `WATCHDOG=1`, if the manager asked for a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.inner.as_ref().and_then(|i| i.watchdog)
    }

    /// Sends `READY=1` (with a status line when given), once.
    pub fn ready(&mut self, status: Option<&str>) {
        let Some(inner) = &mut self.inner else { return };
        if inner.ready_sent {
            return;
        }
        inner.ready_sent = true;
        let mut msg = String::from("READY=1");
        if let Some(text) = status {
            inner.status = one_line(text);
            msg.push_str("\nSTATUS=");
            msg.push_str(&inner.status);
        }
        inner.send(&msg);
    }

    /// Sends `STATUS=text` if it differs from the last status sent.
    pub fn status(&mut self, text: &str) {
        let Some(inner) = &mut self.inner else { return };
        let text = one_line(text);
        if text == inner.status {
            return;
        }
        inner.send(&format!("STATUS={text}"));
        inner.status = text;
    }

    /// Sends `STOPPING=1` (with a status line), once.
    pub fn stopping(&mut self, status: &str) {
        let Some(inner) = &mut self.inner else { return };
        if inner.stopping_sent {
            return;
        }
        inner.stopping_sent = true;
        inner.status = one_line(status);
        let msg = format!("STOPPING=1\nSTATUS={}", inner.status);
        inner.send(&msg);
    }

    /// When the next `WATCHDOG=1` is due, if a watchdog is enabled.
    pub fn next_watchdog(&self) -> Option<Instant> {
        self.inner.as_ref().and_then(|i| i.next_watchdog)
    }

    /// Sends `WATCHDOG=1` if it is due at `now`, and schedules the next one.
    pub fn watchdog(&mut self, now: Instant) {
        let Some(inner) = &mut self.inner else { return };
        let (Some(interval), Some(due)) = (inner.watchdog, inner.next_watchdog) else {
            return;
        };
        if now < due {
            return;
        }
        inner.send("WATCHDOG=1");
        inner.next_watchdog = Some(now + interval);
    }

    /// Sleeps until the next `WATCHDOG=1` is due and sends it; never returns when no
    /// watchdog is enabled. Cancel-safe (for `select!`): nothing is sent unless the
    /// sleep completed.
    pub async fn watchdog_tick(&mut self) {
        match self.next_watchdog() {
            Some(due) => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                self.watchdog(tokio::time::Instant::now().into_std());
            }
            None => std::future::pending().await,
        }
    }
}

impl Inner {
    fn send(&self, msg: &str) {
        match self.socket.send_to_addr(msg.as_bytes(), &self.addr) {
            Ok(_) => debug!(message = %msg.replace('\n', " "), "notified the service manager"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                warn!(message = %msg.replace('\n', " "), "notify socket is full; message dropped")
            }
            Err(e) => warn!(
                message = %msg.replace('\n', " "),
                "cannot notify the service manager on NOTIFY_SOCKET: {e}"
            ),
        }
    }
}

/// A path (`/run/systemd/notify`) or an abstract name (`@name`), as systemd sets it.
fn parse_addr(value: &OsStr) -> Result<SocketAddr, String> {
    let bytes = value.as_bytes();
    let shown = value.to_string_lossy();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(value)
            .map_err(|e| format!("NOTIFY_SOCKET={shown:?} is not a usable socket path ({e})")),
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..]).map_err(|e| {
                format!("NOTIFY_SOCKET={shown:?} is not a usable abstract socket name ({e})")
            })
        }
        _ => Err(format!(
            "NOTIFY_SOCKET={shown:?} is not supported: vigil speaks to a unix socket path \
             (starting with '/') or an abstract name (starting with '@')"
        )),
    }
}

/// Half of `WATCHDOG_USEC` when the watchdog is meant for `own_pid`, as
/// `sd_watchdog_enabled(3)` decides it; `None` (with a warning for a bad value) otherwise.
fn watchdog_interval(usec: Option<&OsStr>, pid: Option<&OsStr>, own_pid: u32) -> Option<Duration> {
    let usec = usec?.to_str();
    let Some(usec) = usec.and_then(|u| u.parse::<u64>().ok()).filter(|&u| u > 0) else {
        warn!(
            value = ?usec,
            "WATCHDOG_USEC is not a positive number of microseconds; no watchdog pings"
        );
        return None;
    };
    if let Some(pid) = pid {
        let pid = pid.to_str().and_then(|p| p.parse::<u32>().ok());
        if pid != Some(own_pid) {
            debug!(
                ?pid,
                own_pid, "WATCHDOG_PID names another process; no watchdog pings"
            );
            return None;
        }
    }
    Some(Duration::from_micros(usec) / 2)
}

/// A status is one line: newlines would start new `KEY=` assignments.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn disabled_without_notify_socket() {
        let n = Notifier::from_vars(None, os("1000000"), None, 7, Instant::now()).unwrap();
        assert!(!n.is_enabled());
        assert_eq!(n.next_watchdog(), None);
        let n = Notifier::from_vars(os(""), None, None, 7, Instant::now()).unwrap();
        assert!(!n.is_enabled());
    }

    #[test]
    fn rejects_other_address_kinds() {
        let e = Notifier::from_vars(os("vsock:2:1"), None, None, 7, Instant::now()).unwrap_err();
        assert!(
            e.contains("NOTIFY_SOCKET=\"vsock:2:1\" is not supported"),
            "{e}"
        );
    }

    #[test]
    fn watchdog_is_half_the_timeout_and_only_for_our_pid() {
        let half = Some(Duration::from_millis(500));
        assert_eq!(watchdog_interval(os("1000000"), None, 7), half);
        assert_eq!(watchdog_interval(os("1000000"), os("7"), 7), half);
        assert_eq!(watchdog_interval(os("1000000"), os("8"), 7), None);
        assert_eq!(watchdog_interval(os("0"), None, 7), None);
        assert_eq!(watchdog_interval(os("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, os("7"), 7), None);
    }

    #[test]
    fn sends_each_message_kind_in_order_without_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        let mut n =
            Notifier::from_vars(Some(path.as_os_str()), os("2000000"), None, 7, t0).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));
        n.watchdog(t0);
        n.watchdog(t0 + Duration::from_millis(10)); // not due yet
        n.ready(Some("2 of 2 processes running"));
        n.ready(None); // once only
        n.status("2 of 2 processes running"); // unchanged: not sent
        n.status("1 of 2 processes running\nrestarting web");
        n.watchdog(t0 + Duration::from_secs(1));
        n.stopping("stopping");
        n.stopping("stopping");
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(len) = server.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(
            got,
            [
                "WATCHDOG=1",
                "READY=1\nSTATUS=2 of 2 processes running",
                "STATUS=1 of 2 processes running restarting web",
                "WATCHDOG=1",
                "STOPPING=1\nSTATUS=stopping",
            ]
        );
    }

    #[test]
    fn abstract_addresses_work() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("vigil-notify-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let mut n =
            Notifier::from_vars(os(&format!("@{name}")), None, None, 7, Instant::now()).unwrap();
        n.ready(None);
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }
}
