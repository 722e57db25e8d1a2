//! vigil's stderr under `vigil run`: one writer thread, `vigil-stderr`, writes everything
//! vigil puts there, its own log lines and the `NAME | line` stderr lines of `output =
//! "prefix"` children, in the order they were queued. Nothing else writes to fd 2 (but
//! the panic hook, `crate::fatal`, which writes directly).
//!
//! # Why a thread
//!
//! vigil's stderr is shared with its parent and with `inherit` children, so it stays
//! blocking (see `runtime::output`): a write to it can block for as long as nobody reads
//! it (a stuck log collector, a full pipe, a stopped terminal). Written by the loop, one
//! log line would then stop everything: reaping, `vigil status`, SIGTERM. So the loop and
//! every other thread only queue; the writer blocks on `write(2)` alone.
//!
//! # Bounds, and what is dropped
//!
//! - **Log lines** never wait. They are queued whole (one tracing event, formatted, is one
//!   entry) while the queued log lines hold less than [`LOG_QUEUE_BYTES`] (256 KiB); a
//!   line that does not fit is dropped and counted, as is a line whose write fails (a
//!   closed stderr). Once a write succeeds again and the queue is at most half full, the
//!   writer logs `N log lines dropped` (field `dropped`, and `total` since start), so a
//!   gap in the log is always marked. [`dropped_total`] is the count since start.
//! - **Child batches** (prefix mode) wait instead: a reader takes one of
//!   [`crate::runtime::output::QUEUE`] permits before queueing a batch and the writer
//!   gives it back once the batch is written, so a stuck stderr stops the readers, then
//!   the children's pipes fill and the children block: backpressure, as on stdout.
//!
//! Whole entries are written with one `write_all` under std's stderr lock, so a log line
//! and a child's line never interleave mid-line.
//!
//! # Lifetime
//!
//! [`start`] starts the thread once (it is idempotent), with every signal blocked, so
//! signals are always delivered to the loop's thread. It runs until vigil exits. At the
//! end, [`drain`] gives what is queued a bounded time to be written: it returns as soon as
//! the queue is empty, or once the writer has made no progress for the given patience (a
//! stderr nobody reads never drains; vigil then exits without those lines).
//!
//! Must never: make a logging call wait for stderr, hold the lock while writing, or grow
//! without bound.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, oneshot};

/// At most this many bytes of log lines wait for the writer; beyond, lines are dropped.
pub const LOG_QUEUE_BYTES: usize = 256 * 1024;

/// How long vigil waits at exit for a writer that makes no progress ([`drain`]).
pub const EXIT_PATIENCE: Duration = Duration::from_secs(1);

/// Log lines dropped since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The one writer, once [`start`] has run.
static WRITER: OnceLock<Result<&'static Stderr, String>> = OnceLock::new();

/// What the writer writes next.
enum Item {
    /// Log lines (consecutive ones share an item) and how many there are.
    Log { bytes: Vec<u8>, lines: u64 },
    /// A batch of a child's prefixed lines; it holds one of the permits.
    Child(Vec<u8>),
    /// Everything queued before it has been written (or failed).
    Mark(oneshot::Sender<()>),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Item>,
    /// Bytes of log lines queued or being written.
    log_bytes: usize,
    /// Log lines dropped since the last notice.
    dropped: u64,
    /// Writes done so far (progress, for [`drain`]).
    written: u64,
    /// The writer holds an item it has not finished.
    busy: bool,
    /// The writer sleeps on `work` (only then is a wake-up worth a system call).
    waiting: bool,
    /// Threads in [`drain`] (only then is `progress` worth notifying).
    draining: usize,
}

/// The queue in front of vigil's stderr.
pub struct Stderr {
    state: Mutex<State>,
    /// Something was queued (the writer waits on it).
    work: Condvar,
    /// A write ended, or the writer went idle ([`drain`] waits on it).
    progress: Condvar,
    /// Child batches allowed in the queue.
    permits: Semaphore,
}

/// Starts the writer thread, once; later calls return the same writer (or the same
/// error: the thread could not be started, and the caller writes directly instead).
pub fn start() -> Result<&'static Stderr, String> {
    WRITER
        .get_or_init(|| {
            let s: &'static Stderr = Box::leak(Box::new(Stderr {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                progress: Condvar::new(),
                permits: Semaphore::new(crate::runtime::output::QUEUE),
            }));
            // The thread inherits the mask: every signal goes to the loop's thread.
            let blocked = crate::os::sys::BlockedSignals::all();
            let spawned = std::thread::Builder::new()
                .name("vigil-stderr".into())
                .stack_size(128 * 1024)
                .spawn(move || s.run());
            drop(blocked);
            spawned.map(|_| s).map_err(|e| {
                format!(
                    "cannot start the thread that writes vigil's stderr ({e}); raise the \
                     thread limit (ulimit -u, the cgroup's pids.max)"
                )
            })
        })
        .clone()
}

/// The writer, if [`start`] succeeded.
pub fn get() -> Option<&'static Stderr> {
    WRITER.get().and_then(|r| r.as_ref().ok().copied())
}

/// Log lines dropped since start (a stderr that could not keep up, or failed).
pub fn dropped_total() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// At exit: waits until everything queued is written, or until the writer has made no
/// progress for `patience`. Returns at once without a writer.
pub fn drain(patience: Duration) {
    if let Some(s) = get() {
        s.drain(patience);
    }
}

impl Stderr {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one log line (a formatted event), or drops and counts it if the queue is
    /// full. Never waits for stderr.
    pub fn log(&self, line: Vec<u8>) {
        if line.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.log_bytes + line.len() > LOG_QUEUE_BYTES {
            st.dropped += 1;
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.log_bytes += line.len();
        match st.queue.back_mut() {
            Some(Item::Log { bytes, lines }) => {
                bytes.extend_from_slice(&line);
                *lines += 1;
            }
            _ => st.queue.push_back(Item::Log {
                bytes: line,
                lines: 1,
            }),
        }
        // Only a sleeping writer needs a wake-up (a system call); a busy one finds the
        // line when it looks at the queue again.
        let wake = st.waiting;
        drop(st);
        if wake {
            self.work.notify_one();
        }
    }

    /// Queues a batch of a child's lines, first waiting for room (backpressure).
    pub async fn put(&self, batch: Vec<u8>) {
        // The semaphore is never closed; the writer gives the permit back.
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
        self.lock().queue.push_back(Item::Child(batch));
        self.work.notify_one();
    }

    /// Resolves once everything queued before the call has been written (or has failed).
    /// Never resolves while stderr is stuck: await it with a timeout.
    pub async fn flushed(&self) {
        let (tx, rx) = oneshot::channel();
        self.lock().queue.push_back(Item::Mark(tx));
        self.work.notify_one();
        let _ = rx.await;
    }

    fn drain(&self, patience: Duration) {
        let mut st = self.lock();
        st.draining += 1;
        if st.waiting && !st.queue.is_empty() {
            self.work.notify_one();
        }
        let mut last = (st.written, Instant::now());
        while st.busy || !st.queue.is_empty() {
            if st.written != last.0 {
                last = (st.written, Instant::now());
            }
            let Some(left) = patience.checked_sub(last.1.elapsed()) else {
                st.draining -= 1;
                return;
            };
            st = self
                .progress
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.draining -= 1;
    }

    /// The writer thread.
    fn run(&self) {
        loop {
            let item = {
                let mut st = self.lock();
                loop {
                    if let Some(item) = st.queue.pop_front() {
                        st.busy = true;
                        break item;
                    }
                    st.busy = false;
                    if st.draining > 0 {
                        self.progress.notify_all();
                    }
                    st.waiting = true;
                    st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                    st.waiting = false;
                }
            };
            let (bytes, lines) = match item {
                Item::Mark(done) => {
                    let _ = done.send(());
                    continue;
                }
                Item::Log { bytes, lines } => (bytes, Some(lines)),
                Item::Child(bytes) => (bytes, None),
            };
            let ok = io::stderr().lock().write_all(&bytes).is_ok();
            let notice = {
                let mut st = self.lock();
                st.written += 1;
                if let Some(lines) = lines {
                    st.log_bytes -= bytes.len();
                    if !ok {
                        st.dropped += lines;
                        DROPPED.fetch_add(lines, Ordering::Relaxed);
                    }
                }
                if ok && st.dropped > 0 && st.log_bytes <= LOG_QUEUE_BYTES / 2 {
                    std::mem::take(&mut st.dropped)
                } else {
                    0
                }
            };
            if lines.is_none() {
                self.permits.add_permits(1);
            }
            if self.lock().draining > 0 {
                self.progress.notify_all();
            }
            if notice > 0 {
                // Queued like any other line (the lock is not held here).
                tracing::warn!(
                    dropped = notice,
                    total = dropped_total(),
                    "{notice} log lines dropped: vigil's stderr was not read fast enough \
                     (vigil never waits for it)"
                );
            }
        }
    }
}

/// The tracing writer of `vigil run`: each event, formatted, goes to the writer's queue
/// as one line.
pub struct LogLines(pub &'static Stderr);

/// One formatted event, queued when dropped.
pub struct LogLine {
    to: &'static Stderr,
    bytes: Vec<u8>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogLines {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            to: self.0,
            bytes: Vec::new(),
        }
    }
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        self.to.log(std::mem::take(&mut self.bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Stderr {
        Stderr {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            permits: Semaphore::new(2),
        }
    }

    #[test]
    fn log_lines_beyond_the_bound_are_dropped_and_counted_never_waited_for() {
        let s = queue();
        let line = vec![b'x'; 1000];
        let fit = LOG_QUEUE_BYTES / line.len();
        for _ in 0..fit + 10 {
            s.log(line.clone());
        }
        let st = s.lock();
        assert_eq!(st.dropped, 10);
        assert_eq!(st.log_bytes, fit * line.len());
        // Consecutive lines share one item.
        assert_eq!(st.queue.len(), 1);
        match &st.queue[0] {
            Item::Log { lines, .. } => assert_eq!(*lines, fit as u64),
            _ => panic!("a log item"),
        }
    }

    #[test]
    fn drain_gives_up_without_progress() {
        let s = queue();
        s.log(b"line\n".to_vec());
        let t0 = Instant::now();
        s.drain(Duration::from_millis(50));
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
