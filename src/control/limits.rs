//! Bounds on the clients of the control socket and of the HTTP endpoints, so that no client
//! (nor a thousand of them) can take the descriptors a restart needs or grow vigil's memory.
//!
//! One [`Pool`] holds the connections of both listeners, each listener at most its
//! `max_connections` (`[control] max_connections`, 16; `[http] max_connections`, 64). A
//! connection is *waiting* while it has not sent a complete request (on HTTP also between
//! two requests, and while its answer is written); it is *busy* while the loop answers it.
//! A connection accepted when its listener is full closes that listener's connection that
//! has been waiting longest, so idle or slow clients cannot lock out a `vigil status` or a
//! liveness probe; when every one is busy, the newcomer gets an answer saying so and is
//! closed at once. Nothing waits in the kernel's listen queue for long, and the
//! descriptors clients hold are at most the sum of the two caps.
//!
//! **The descriptor reserve.** A connection is also refused, or takes the place of the
//! connection of either listener that has waited longest, when accepting it leaves fewer
//! than [`reserve`] descriptors free below `RLIMIT_NOFILE` (read at every accept, so
//! `prlimit --pid` applies): a quarter of the limit, at most [`MAX_RESERVE`]; 256 at
//! `nofile` 1024, 16 at 64. The count is cheap: the kernel gives the lowest free
//! descriptor, so an accepted descriptor numbered `k` means at least `k + 1` are open;
//! where the kernel reports the number of open descriptors as the size of `/proc/self/fd`
//! (Linux 6.2 and later; one `stat`), that count is used too. Spawning a child, a check or
//! a log file therefore never fails because of clients.
//!
//! Refusals and closures are logged as one `WARN` line per listener at most every
//! [`LOG_EVERY`], with the counts since the last one (a timer logs what came after a line,
//! once that time is up).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;
use tracing::warn;

/// The most descriptors the reserve keeps free, whatever the limit.
pub const MAX_RESERVE: u64 = 256;

/// At most one line about refused or closed connections per listener in this time.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Descriptors kept free for children at the descriptor limit `limit`: a quarter of it,
/// at most [`MAX_RESERVE`].
pub fn reserve(limit: u64) -> u64 {
    (limit / 4).min(MAX_RESERVE)
}

/// Why a connection was not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every one of the `max_connections` connections is busy.
    Busy,
    /// Accepting it would leave fewer than the reserve of descriptors free, and no
    /// connection waits that it could replace.
    Descriptors,
}

/// The connections of every listener.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    table: Arc<Mutex<Table>>,
}

/// One listener's share of a [`Pool`].
#[derive(Clone, Debug)]
pub struct Clients {
    table: Arc<Mutex<Table>>,
    listener: usize,
}

#[derive(Debug, Default)]
struct Table {
    listeners: Vec<Listener>,
    next_id: u64,
    conns: Vec<Conn>,
}

#[derive(Debug)]
struct Listener {
    /// `http` or `control socket`, for the log.
    what: &'static str,
    /// The key that sets `cap`, for the log.
    key: &'static str,
    cap: usize,
    unlogged: Counts,
    last_log: Option<Instant>,
}

#[derive(Debug)]
struct Conn {
    id: u64,
    listener: usize,
    /// Since when it waits for a request; `None` while the loop answers it.
    waiting_since: Option<Instant>,
    /// How to close it; `None` until its task exists.
    abort: Option<AbortHandle>,
    /// Closed to make room; its task is ending.
    evicted: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    evicted: u64,
    busy: u64,
    descriptors: u64,
    /// The limit and the reserve, when descriptors were short for one of these.
    reserve: Option<(u64, u64)>,
}

impl Counts {
    fn any(&self) -> bool {
        self.evicted + self.busy + self.descriptors > 0
    }
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Pool {
        Pool::default()
    }

    /// A listener of at most `cap` connections; `what` and `key` name it and its setting
    /// in the log.
    pub fn listener(&self, what: &'static str, key: &'static str, cap: u32) -> Clients {
        let mut t = lock(&self.table);
        t.listeners.push(Listener {
            what,
            key,
            cap: (cap as usize).max(1),
            unlogged: Counts::default(),
            last_log: None,
        });
        Clients {
            table: Arc::clone(&self.table),
            listener: t.listeners.len() - 1,
        }
    }
}

impl Clients {
    /// Decides about the connection just accepted as descriptor `fd`: a place (closing
    /// the connection that has waited longest if there is no room), or why not. Call
    /// [`Handle::set_abort`] once its task is spawned.
    pub async fn admit(&self, fd: RawFd) -> Result<Slot, Refusal> {
        let short = descriptors_short(fd);
        let victim = {
            let mut t = lock(&self.table);
            let at_cap = t.count(self.listener) >= t.listeners[self.listener].cap;
            if short.is_none() && !at_cap {
                return Ok(t.insert(&self.table, self.listener));
            }
            // Full: one of this listener's; short of descriptors only: anyone's.
            let victim = t.oldest_waiting(at_cap.then_some(self.listener));
            let mut c = Counts {
                reserve: short,
                ..Counts::default()
            };
            let (blamed, refusal) = match (victim, short) {
                (Some(i), _) => {
                    c.evicted = 1;
                    (t.conns[i].listener, None)
                }
                (None, Some(_)) if !at_cap => {
                    c.descriptors = 1;
                    (self.listener, Some(Refusal::Descriptors))
                }
                (None, _) => {
                    c.busy = 1;
                    (self.listener, Some(Refusal::Busy))
                }
            };
            self.note(&mut t, blamed, c);
            if let Some(r) = refusal {
                return Err(r);
            }
            victim.and_then(|i| {
                t.conns[i].evicted = true;
                t.conns[i].abort.clone()
            })
        };
        // The victim's task is dropped (closing its descriptor) before this one goes on:
        // on the loop's one thread, an aborted task runs before a yielding one resumes.
        if let Some(h) = victim {
            h.abort();
        }
        tokio::task::yield_now().await;
        Ok(lock(&self.table).insert(&self.table, self.listener))
    }

    /// Counts a refusal or closure of `listener` and logs the counts: at once if nothing
    /// was logged in the last [`LOG_EVERY`], else from a timer when that time is up (one
    /// at most per listener).
    fn note(&self, t: &mut Table, listener: usize, c: Counts) {
        let l = &mut t.listeners[listener];
        let flush_pending = l.unlogged.any();
        l.unlogged.evicted += c.evicted;
        l.unlogged.busy += c.busy;
        l.unlogged.descriptors += c.descriptors;
        l.unlogged.reserve = c.reserve.or(l.unlogged.reserve);
        let now = Instant::now();
        match l.last_log {
            Some(last) if now.duration_since(last) < LOG_EVERY => {
                if !flush_pending {
                    let table = Arc::clone(&self.table);
                    tokio::spawn(async move {
                        tokio::time::sleep_until((last + LOG_EVERY).into()).await;
                        let mut t = lock(&table);
                        t.listeners[listener].last_log = Some(Instant::now());
                        t.listeners[listener].log();
                    });
                }
            }
            _ => {
                l.last_log = Some(now);
                l.log();
            }
        }
    }

    /// How many connections this listener serves (closed ones until their task has
    /// ended).
    pub fn len(&self) -> usize {
        lock(&self.table).count(self.listener)
    }

    /// Whether it serves none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // A panic while holding it cannot leave the table inconsistent (every change is one
    // push, remove or field write), so a poisoned lock is still usable.
    table.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    fn count(&self, listener: usize) -> usize {
        self.conns.iter().filter(|c| c.listener == listener).count()
    }

    fn insert(&mut self, table: &Arc<Mutex<Table>>, listener: usize) -> Slot {
        let id = self.next_id;
        self.next_id += 1;
        self.conns.push(Conn {
            id,
            listener,
            waiting_since: Some(Instant::now()),
            abort: None,
            evicted: false,
        });
        Slot(Handle {
            table: Arc::clone(table),
            id,
        })
    }

    /// The connection (of `listener`, or of any) that has been waiting for a request the
    /// longest, not one already closed nor one whose task is not there yet.
    fn oldest_waiting(&self, listener: Option<usize>) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.evicted && c.abort.is_some())
            .filter(|(_, c)| listener.is_none_or(|l| c.listener == l))
            .filter_map(|(i, c)| Some((i, c.waiting_since?)))
            .min_by_key(|&(_, since)| since)
            .map(|(i, _)| i)
    }

    fn conn(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }
}

impl Listener {
    /// Logs and clears the counts not logged yet.
    fn log(&mut self) {
        let n = std::mem::take(&mut self.unlogged);
        if !n.any() {
            return;
        }
        let mut what = Vec::new();
        if n.evicted > 0 {
            what.push(format!(
                "closed {} that had not sent a request, to make room for newer ones",
                n.evicted
            ));
        }
        if n.busy > 0 {
            what.push(format!("refused {} (every connection busy)", n.busy));
        }
        if n.descriptors > 0 {
            what.push(format!(
                "refused {} (no descriptor to spare)",
                n.descriptors
            ));
        }
        let reserve = n.reserve.map_or_else(String::new, |(limit, reserve)| {
            format!(
                ", and {reserve} of its {limit} descriptors (RLIMIT_NOFILE) are kept free for \
                 children"
            )
        });
        warn!(
            "{}: {} (at most {} connections: {}{reserve}; such lines come at most every {}s)",
            self.what,
            what.join("; "),
            self.cap,
            self.key,
            LOG_EVERY.as_secs()
        );
    }
}

/// A connection's place in the pool; dropping it (when the connection's task ends or is
/// aborted) frees the place.
#[derive(Debug)]
pub struct Slot(Handle);

impl Slot {
    /// A handle to mark the connection busy or waiting, and to give its task.
    pub fn handle(&self) -> Handle {
        self.0.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = lock(&self.0.table);
        t.conns.retain(|c| c.id != self.0.id);
    }
}

/// Refers to a connection's place without owning it.
#[derive(Clone, Debug)]
pub struct Handle {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Handle {
    /// Lets a full listener close this connection's task while it waits for a request.
    pub fn set_abort(&self, abort: AbortHandle) {
        if let Some(c) = lock(&self.table).conn(self.id) {
            c.abort = Some(abort);
        }
    }

    /// Marks the connection busy (the loop is answering it) until the guard is dropped;
    /// then it waits again (for its next request, or for its answer to be read).
    pub fn busy(&self) -> Busy {
        if let Some(c) = lock(&self.table).conn(self.id) {
            c.waiting_since = None;
        }
        Busy(self.clone())
    }
}

/// See [`Handle::busy`].
#[derive(Debug)]
pub struct Busy(Handle);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.0.table).conn(self.0.id) {
            c.waiting_since = Some(Instant::now());
        }
    }
}

/// The non-blocking reads and writes of tokio's sockets.
pub trait TryIo: AsRawFd {
    /// Writes what the socket takes now.
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize>;
    /// Reads what is there now.
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl TryIo for tokio::net::TcpStream {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        tokio::net::TcpStream::try_write(self, buf)
    }
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        tokio::net::TcpStream::try_read(self, buf)
    }
}

impl TryIo for tokio::net::UnixStream {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        tokio::net::UnixStream::try_write(self, buf)
    }
    fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        tokio::net::UnixStream::try_read(self, buf)
    }
}

/// What a refused connection may have sent that is discarded before it is closed.
const REFUSED_DRAIN: usize = 64 * 1024;

/// For a connection that is not served: writes `answer` if the socket takes it now,
/// half-closes, and discards what the client has already sent (at most
/// [`REFUSED_DRAIN`] bytes, without waiting), so that closing it does not reset the
/// connection before the client reads the answer. Never waits; the caller then drops it.
pub fn refuse(stream: &impl TryIo, answer: &[u8]) {
    let _ = stream.try_write(answer);
    let _ = nix::sys::socket::shutdown(stream.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < REFUSED_DRAIN {
        match stream.try_read(&mut buf) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// `Some((limit, reserve))` when the connection accepted as `fd` leaves fewer than
/// [`reserve`] descriptors free below `RLIMIT_NOFILE`.
fn descriptors_short(fd: RawFd) -> Option<(u64, u64)> {
    let (limit, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    let reserve = reserve(limit);
    // The lowest free descriptor was `fd`: every one below it is open.
    let by_number = u64::try_from(fd).unwrap_or(0) + 1;
    // Linux 6.2 and later report the number of open descriptors here (0 before).
    let counted = std::fs::metadata("/proc/self/fd").map_or(0, |m| m.len());
    let open = by_number.max(counted);
    (open.saturating_add(reserve) > limit).then_some((limit, reserve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_a_quarter_of_the_limit_up_to_256() {
        assert_eq!(reserve(24), 6);
        assert_eq!(reserve(64), 16);
        assert_eq!(reserve(1024), 256);
        assert_eq!(reserve(1 << 20), 256);
        assert_eq!(reserve(0), 0);
    }

    /// Admits one connection on `clients` whose task never ends by itself.
    async fn open(clients: &Clients) -> Result<(Handle, tokio::task::JoinHandle<()>), Refusal> {
        let slot = clients.admit(0).await?;
        let h = slot.handle();
        let task = tokio::spawn(async move {
            let _slot = slot;
            std::future::pending::<()>().await;
        });
        h.set_abort(task.abort_handle());
        Ok((h, task))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_listener_closes_its_oldest_waiting_connection() {
        let pool = Pool::new();
        let clients = pool.listener("test", "[test] max_connections", 2);
        let other = pool.listener("other", "[other] max_connections", 2);
        let (oh, otask) = open(&other).await.expect("room");
        let (h0, t0) = open(&clients).await.expect("room");
        let (_h1, t1) = open(&clients).await.expect("room");
        // The first is busy: the second (waiting) is the one closed, not the other
        // listener's (which waits longer).
        let busy = h0.busy();
        let (h2, _t2) = open(&clients).await.expect("room made");
        assert!(t1.is_finished(), "the waiting one was closed");
        assert!(!t0.is_finished() && !otask.is_finished());
        assert_eq!(clients.len(), 2);
        // Both busy now: refused.
        let _b2 = h2.busy();
        assert_eq!(open(&clients).await.err(), Some(Refusal::Busy));
        drop(busy);
        drop(oh);
        assert_eq!(other.len(), 1);
    }
}
