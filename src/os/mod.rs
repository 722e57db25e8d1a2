//! The OS seam of `vigil run`: everything the event loop does to processes goes through
//! the [`Os`] trait, so the loop's order of operations can be tested with a fake OS under
//! simulated time (`tests/loop_seam.rs`), batched exits and failed spawns included.
//!
//! What this module owns: turning an [`Action::Spawn`](crate::core::Action::Spawn) into a
//! process (through [`crate::runtime::output`] for its pipes), signalling process groups,
//! and draining exits through the one reaper ([`crate::os::reaper`]). It must never
//! decide anything about supervision, and never wait for a process except in
//! [`Os::peek_exit`] and [`Os::reap`].

pub mod dirfd;
pub mod procfs;
pub mod reaper;
pub mod signals;
pub mod spawn;
pub mod sweep;
pub mod sys;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use crate::core::Pid;
use crate::runtime::output;
use crate::spec::{ExitStatus, NodeId, ProcessSpec, Signal};

/// One process to start.
pub struct SpawnRequest<'a> {
    /// The node it is the process of.
    pub node: NodeId,
    /// Its name, for errors and output prefixes.
    pub name: &'a str,
    /// What to run.
    pub spec: &'a ProcessSpec,
    /// A readiness pipe to pass on: (vigil's descriptor, the number the child gets).
    pub pass_fd: Option<(i32, i32)>,
}

/// What the loop asks of the operating system.
pub trait Os {
    /// Starts the process of a node, leading a new process group, with its output set
    /// up. The pid must be returned before anything can reap it (invariant 2).
    fn spawn(&mut self, request: SpawnRequest<'_>) -> Result<Pid, String>;

    /// Starts an `exec` readiness or health check (output inherited).
    fn spawn_check(&mut self, name: &str, spec: &ProcessSpec) -> Result<Pid, String>;

    /// Sends `signal` to the process group led by `pid`.
    fn signal_group(&mut self, pid: Pid, signal: Signal) -> io::Result<()>;

    /// The next child that has exited, still a zombie: its pid and process group id
    /// cannot be reused until [`Os::reap`], so the loop may signal what is left of its
    /// group and carry out every action its exit causes first. `None`: no exit pending.
    fn peek_exit(&mut self) -> io::Result<Option<(Pid, ExitStatus)>>;

    /// Reaps the zombie [`Os::peek_exit`] returned.
    fn reap(&mut self, pid: Pid) -> io::Result<()>;

    /// Sends `signal` to a leftover: to the process group it leads, if it leads one (a
    /// `setsid` helper and what it started), else to the process alone.
    fn signal_leftover(&mut self, pid: Pid, signal: Signal) -> io::Result<()>;

    /// vigil's direct children now: the tree's processes, exec checks and adopted
    /// orphans alike (one read of `/proc`).
    fn children(&mut self) -> Vec<Pid>;

    /// What `/proc` says of `pid` (a zombie included).
    fn stat(&mut self, pid: Pid) -> Option<procfs::Stat>;

    /// Waits for child output still in flight to be written (called once, at the end).
    fn finish_output(&mut self) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// The real thing: `os::spawn`, `killpg`, `os::reaper`.
pub struct RealOs {
    output: Option<output::Outputs>,
    /// Where children start when they set no `cwd`.
    start_dir: PathBuf,
}

impl RealOs {
    /// The OS as `vigil run` sees it; children without `cwd` start in `start_dir`.
    pub fn new(start_dir: PathBuf) -> RealOs {
        RealOs {
            output: Some(output::Outputs::new()),
            start_dir,
        }
    }
}

impl Os for RealOs {
    fn spawn(&mut self, r: SpawnRequest<'_>) -> Result<Pid, String> {
        let options = spawn::SpawnOptions {
            pass_fd: r.pass_fd,
            ..Default::default()
        };
        let output = self.output.get_or_insert_with(output::Outputs::new);
        output.spawn(r.node, r.name, r.spec, &self.start_dir, options)
    }

    fn spawn_check(&mut self, name: &str, spec: &ProcessSpec) -> Result<Pid, String> {
        spawn::spawn(name, spec, &self.start_dir).map_err(|e| e.to_string())
    }

    fn signal_group(&mut self, pid: Pid, signal: Signal) -> io::Result<()> {
        crate::os::sys::killpg(pid, signal)
    }

    fn peek_exit(&mut self) -> io::Result<Option<(Pid, ExitStatus)>> {
        reaper::peek().map_err(io::Error::from)
    }

    fn reap(&mut self, pid: Pid) -> io::Result<()> {
        reaper::reap(pid).map_err(io::Error::from)
    }

    fn signal_leftover(&mut self, pid: Pid, signal: Signal) -> io::Result<()> {
        let leads_group = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
            .is_ok_and(|g| g.as_raw() == pid);
        if leads_group {
            crate::os::sys::killpg(pid, signal)
        } else {
            crate::os::sys::kill(pid, signal)
        }
    }

    fn children(&mut self) -> Vec<Pid> {
        procfs::children()
    }

    fn stat(&mut self, pid: Pid) -> Option<procfs::Stat> {
        procfs::stat(pid)
    }

    fn finish_output(&mut self) -> Pin<Box<dyn Future<Output = ()>>> {
        match self.output.take() {
            Some(output) => Box::pin(output.finish()),
            None => Box::pin(std::future::ready(())),
        }
    }
}
