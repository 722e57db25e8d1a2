//! The runtime of `vigil run`: the asynchronous shell around the loop's one handler.
//!
//! ```text
//!   signals (TERM INT QUIT PWR HUP USR1 USR2 CHLD) ─┐
//!   the engine's next deadline (one timer) ─────────┤
//!   probe results (Ready / HealthCheck / notify) ───┼─► LoopEvent ─► Loop::handle(now)
//!   control socket and HTTP queries ────────────────┘     (handle.rs: engine inputs,
//!                                                          each followed by its actions)
//! ```
//!
//! This module owns the order of start-up and shut-down: signal handlers are installed
//! and the control socket bound before the first spawn (a PID 1 drops signals it has no
//! handler for); then it waits for the next source to fire and hands it to
//! [`handle::Loop::handle`]; after the root has finished it sweeps what is left and
//! drains child output. It never decides anything about supervision (that is the
//! engine's), never waits for a process (the loop does, through `crate::os`), and never
//! polls: when idle it sleeps until a signal or the engine's next deadline.

pub mod handle;
mod metrics;
pub mod notify;
pub mod ops;
pub mod output;
mod postmortem;
pub mod probe;
pub mod stderr;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::core::Time;
use crate::exit;
use crate::os::{RealOs, signals, sweep};
use crate::spec::{Tree, humanize};
use handle::{Loop, LoopEvent};

/// How long descendants left after the tree has stopped get between SIGTERM and SIGKILL
/// (less when `shutdown_timeout` has less left).
pub const SWEEP_GRACE: Duration = Duration::from_secs(5);

/// How long vigil waits, once the tree and the sweep are done, for child output still in
/// flight to be written (less when `shutdown_timeout` has less left).
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// `vigil run`: load the tree, supervise it, and return vigil's exit code.
///
/// `exit_with` is `--exit-with NAME` ([`crate::config::apply_exit_with`]); a name the
/// file does not define is a usage error (exit 2). `socket` is `--socket` /
/// `$VIGIL_SOCKET`, which overrides `[control] socket`.
pub fn run_main(
    path: &Path,
    exit_with: Option<&str>,
    socket: Option<&Path>,
) -> Result<u8, exit::Error> {
    // First, before vigil opens anything of its own: what it inherited (closed once the
    // tree has started, so a parent waiting for EOF on a pipe it passed is not kept
    // waiting for vigil's whole life).
    let inherited = crate::os::sys::InheritedFds::snapshot().unwrap_or_else(|e| {
        warn!("cannot list inherited descriptors ({e}); they stay open while vigil runs");
        crate::os::sys::InheritedFds::default()
    });
    let mut loaded = crate::config::load(path).map_err(|e| exit::Error::Config(e.to_string()))?;
    if let Some(name) = exit_with
        && let Err(e) = crate::config::apply_exit_with(&mut loaded.tree, name)
    {
        return Err(exit::Error::Usage(format!(
            "{}: {e}\n  hint: give the name of a [process.NAME] or [supervisor.NAME] table",
            path.display()
        )));
    }
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| exit::Error::Internal(format!("cannot start the event loop: {e}")))?;
    runtime.block_on(run(loaded.tree, socket, exit_with.is_some(), inherited))
}

/// Supervises `tree` until the root finishes; returns the exit code. `socket` overrides
/// the control socket's path; `exit_with`: `--exit-with` was given (an interrupted run
/// then exits 128 + the signal).
///
/// This is the loop's asynchronous shell: it waits for the next source to fire (signals,
/// the engine's deadline, probes, queries, the watchdog) and hands each as one
/// [`LoopEvent`] to the synchronous [`Loop::handle`].
pub async fn run(
    tree: Tree,
    socket: Option<&Path>,
    exit_with: bool,
    inherited: crate::os::sys::InheritedFds,
) -> Result<u8, exit::Error> {
    let start_dir = prepare_process();
    let mut signals = signals::Signals::new(signals::TREE_SIGNALS)
        .map_err(|e| exit::Error::Internal(format!("cannot install signal handlers: {e}")))?;
    // The control socket and HTTP endpoints listen before the first spawn.
    let (ops, mut queries) = ops::setup(&tree, socket)
        .map_err(|e| exit::Error::Unavailable(format!("{e}; nothing was started")))?;
    let children = tree.nodes.len() - 1;
    let mut lp = Loop::new(
        tree,
        Box::new(RealOs::new(start_dir)),
        ops,
        seed(),
        exit_with,
    );
    info!(pid = std::process::id(), children, "vigil starting");
    lp.start(now());
    // The first spawns are done, and children never get them (close-on-exec).
    inherited.close();
    let code = loop {
        if let Some(code) = lp.exit_code() {
            break code;
        }
        let deadline = lp.next_deadline();
        let event = tokio::select! {
            sig = signals.recv() => match sig {
                Ok(sig) => LoopEvent::Signal(sig),
                Err(e) => {
                    // Blind to exits and stop requests: the only safe thing left is to
                    // end everything (the sweep below fails its own read and kills).
                    error!(
                        "{e}: vigil can no longer see its children exit or a stop request; \
                         killing every child and exiting {}",
                        exit::INTERNAL
                    );
                    lp.kill_everything();
                    sweep::kill_all_now();
                    break exit::INTERNAL;
                }
            },
            () = sleep_until(deadline), if deadline.is_some() => LoopEvent::Deadline,
            msg = lp.probes.recv() => LoopEvent::Probe(msg),
            Some(q) = ops::recv(&mut queries) => LoopEvent::Query(q),
            // WATCHDOG=1 from the loop itself: it stops when the loop stops turning.
            () = lp.notify.watchdog_tick() => continue,
        };
        lp.handle(event, now());
    };
    lp.probes.cleanup();
    // No more answers: waiting clients hear that vigil is exiting; the socket goes.
    drop(queries);
    lp.close_ops();
    // The sweep's grace never outlasts `shutdown_timeout`: Kubernetes' grace period ends
    // the pod at that point anyway.
    let left = |cap: Duration| {
        lp.engine().stop_deadline().map_or(cap, |deadline| {
            cap.min(deadline.saturating_duration_since(now()))
        })
    };
    let grace = left(SWEEP_GRACE);
    // After SIGKILL, wait for the dead to be reaped within what is left of the timeout
    // (at least a moment, so that what SIGKILL ends is reaped, not left to the kernel).
    let wait_cap = left(sweep::KILL_WAIT).max(Duration::from_millis(100));
    sweep::sweep(&mut signals, grace, wait_cap, &mut |pid, status| {
        debug!(pid, %status, "reaped during sweep");
    })
    .await;
    // Child output still in pipes and queues; bounded, as stdout may never drain.
    let drain = left(OUTPUT_DRAIN);
    if tokio::time::timeout(drain, lp.os.finish_output())
        .await
        .is_err()
    {
        warn!(
            "child output not fully written within {}: stdout or stderr is not being read; the rest is dropped",
            humanize(drain)
        );
    }
    info!(
        code,
        orphans_reaped = lp.orphans_reaped(),
        log_lines_dropped = stderr::dropped_total(),
        "vigil exiting"
    );
    Ok(code)
}

/// Process-wide preparation before anything is spawned, shared by `vigil run` and
/// `vigil exec`. Returns the directory vigil was started in (children start there).
///
/// - Unblocks every signal: a mask inherited from vigil's parent would otherwise hold back
///   SIGCHLD and SIGTERM for ever (handlers never run for a blocked signal).
/// - Becomes a child subreaper when not PID 1, or says why it cannot, what that breaks,
///   and how to fix it.
/// - Marks inherited descriptors close-on-exec, so children get 0, 1 and 2 only.
/// - Changes to `/`, so vigil never pins the directory it was started in.
pub fn prepare_process() -> PathBuf {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    if let Err(e) = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        warn!(
            "cannot unblock inherited blocked signals ({e}); vigil may not see SIGCHLD or SIGTERM"
        );
    }
    if crate::os::sys::is_pid1() {
        info!("running as PID 1");
    } else if let Err(e) = crate::os::sys::set_child_subreaper() {
        warn!(
            "not running as PID 1 and cannot become a child subreaper ({e}): orphaned \
             descendants will be reparented elsewhere, so vigil can neither reap nor stop \
             them; run vigil as PID 1 (a container's entrypoint) or on Linux >= 3.4"
        );
    }
    if let Err(e) = crate::os::sys::mark_inherited_fds_cloexec() {
        warn!("cannot mark inherited descriptors close-on-exec ({e}); children may inherit them");
    }
    let start_dir = std::env::current_dir().unwrap_or_else(|e| {
        warn!("cannot read the current directory ({e}); children start in /");
        PathBuf::from("/")
    });
    if let Err(e) = std::env::set_current_dir("/") {
        warn!("cannot change directory to / ({e}); vigil keeps its start directory busy");
    }
    start_dir
}

/// The loop's clock: the origin of the engine's [`Time`], fixed at its first reading.
fn origin() -> tokio::time::Instant {
    static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(tokio::time::Instant::now)
}

/// Now, on the engine's clock (tokio's, so tests can pause it).
pub fn now() -> Time {
    Time::from_origin(tokio::time::Instant::now().saturating_duration_since(origin()))
}

/// Sleeps until `deadline`; for ever when there is none or it lies beyond what the
/// clock can represent (a saturated deadline means "never").
async fn sleep_until(deadline: Option<Time>) {
    match deadline.and_then(|d| origin().checked_add(d.since_origin())) {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Seed for the backoff jitter: differs between runs and between containers.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}
