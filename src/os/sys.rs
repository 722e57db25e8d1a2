//! Thin wrappers over the system calls vigil needs that have no safe equivalent.
//!
//! This is the only module allowed `unsafe` (the crate denies it everywhere else).
//! Each wrapper does one thing, documents its contract, and every `unsafe` block says
//! why it is sound in a `// SAFETY:` comment.
//!
//! Two groups of functions live here:
//!
//! - **Parent side** ([`is_pid1`], [`set_child_subreaper`], [`mark_inherited_fds_cloexec`],
//!   [`InheritedFds`], [`kill`], [`killpg`], [`BlockedSignals`], [`register_signal_pipe`],
//!   ...): ordinary calls made by vigil itself. The signal handler and the functions the
//!   panic hook uses ([`write_stderr`], [`killpg`] of a group > 1, [`exit_now`])
//!   allocate nothing and take no lock.
//! - **Child side** ([`install_pre_exec`] and the [`ChildSetup`] it runs): code that runs
//!   in the forked child between `fork` and `exec`. It must only call async-signal-safe
//!   functions and must never allocate, lock or panic: everything it needs (group lists,
//!   ids) is computed before the fork.
//!
//! Must never: wait for children (except through [`waitid_exited`], whose only caller is
//! `os::reaper`), set any signal to `SIG_IGN`, or block signals process-wide for
//! longer than a spawn.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};

use crate::spec::{ExitStatus, Signal};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};

/// A process id, as the kernel and the engine (`crate::core`) spell it.
pub type Pid = libc::pid_t;

/// Whether vigil is process 1 of its PID namespace (the container's init).
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// Makes vigil a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphaned descendants are
/// re-parented to vigil instead of to the namespace's init, so vigil can reap them.
///
/// Needed when vigil is not PID 1 (a systemd unit, `docker run --init`-less setups with
/// `shareProcessNamespace`). Fails only on kernels older than 3.4.
pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Marks every descriptor >= 3 close-on-exec, so that nothing vigil inherited from its
/// own parent (a socket, a pipe held by a CI runner, Docker's sync pipe) leaks into the
/// children it starts.
///
/// Uses `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` (Linux 5.11), and falls back to
/// listing `/proc/self/fd` on older kernels. Call once at startup.
pub fn mark_inherited_fds_cloexec() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only sets a flag on
    // descriptors, so no Rust-owned descriptor is invalidated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EPERM) => {}
        _ => return Err(err),
    }
    // Fallback: collect first, then mark (the directory stream holds a descriptor too).
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|&fd| fd >= 3)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD only read and set the descriptor flag; a descriptor
        // that was closed meanwhile (the read_dir stream) just returns EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

/// Descriptors >= 3 that vigil inherited from its parent, listed by
/// [`InheritedFds::snapshot`] before vigil opens anything of its own, so that
/// [`InheritedFds::close`] can later close exactly those and never one of vigil's.
#[derive(Debug, Default)]
pub struct InheritedFds {
    fds: Vec<RawFd>,
}

impl InheritedFds {
    /// Lists the descriptors >= 3 open right now (from `/proc/self/fd`). Call it first
    /// thing, while vigil has opened nothing that it keeps and runs one thread: every
    /// descriptor listed is then one it inherited, owned by no Rust value.
    pub fn snapshot() -> io::Result<InheritedFds> {
        // Collect first: the directory stream holds a descriptor of its own, which is
        // closed once `read_dir` is dropped and must not be listed.
        let listed: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .map_err(|e| io::Error::new(e.kind(), format!("cannot list /proc/self/fd: {e}")))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .filter(|&fd| fd >= 3)
            .collect();
        // SAFETY: F_GETFD only reads a descriptor's flags; a number that is not open
        // (the directory stream's, now closed) fails with EBADF and is left out.
        let fds = listed
            .into_iter()
            .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
            .collect();
        Ok(InheritedFds { fds })
    }

    /// The descriptors listed.
    pub fn fds(&self) -> &[RawFd] {
        &self.fds
    }

    /// Closes every descriptor listed. Errors (one already closed) are ignored.
    pub fn close(self) {
        for fd in self.fds {
            // SAFETY: `fd` was open when the snapshot was taken, before vigil opened
            // anything, so no Rust value owns it; and nothing in vigil closes inherited
            // descriptors (they are only marked close-on-exec), so the number cannot have
            // been reused for a descriptor vigil opened since. Closing it invalidates
            // nobody's handle.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// Writes `bytes` to standard error with one `write(2)` per attempt, retrying on a
/// short write or `EINTR` and giving up on any other error. Allocates nothing and takes
/// no lock (unlike `std::io::stderr`), so the panic hook can use it on any thread.
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a live slice; write reads at most `bytes.len()` bytes of it.
        let n = unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(0) => return,
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
            Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Ends vigil at once with exit code `code` (`_exit(2)`): no destructors, no `atexit`
/// handlers, no flushing of std's buffers. For the panic hook and fatal errors, where
/// running any more of vigil's code is not safe.
pub fn exit_now(code: u8) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(libc::c_int::from(code)) }
}

/// Sends `sig` to one process. Real-time signals work (unlike `nix::sys::signal::kill`,
/// whose `Signal` enum cannot express them).
pub fn kill(pid: Pid, sig: Signal) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to send {sig} to pid {pid}: not a single process"),
        ));
    }
    raw_kill(pid, sig)
}

/// Sends `sig` to every member of process group `pgid`.
pub fn killpg(pgid: Pid, sig: Signal) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to send {sig} to process group {pgid}"),
        ));
    }
    raw_kill(-pgid, sig)
}

/// Sends `sig` to every process vigil may signal except itself (`kill(-1, sig)`).
///
/// Only allowed when vigil is PID 1 of its namespace, where "every process" means the
/// container; anywhere else it would hit the whole host, so it returns an error.
pub fn kill_all_in_namespace(sig: Signal) -> io::Result<()> {
    if !is_pid1() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "kill(-1) is only used when vigil is PID 1 of its namespace",
        ));
    }
    raw_kill(-1, sig)
}

fn raw_kill(pid: libc::pid_t, sig: Signal) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, sig.0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether stdin is a terminal whose foreground process group is vigil's own, i.e. vigil
/// was started in the foreground of an interactive terminal (`docker run -it`, a shell).
/// Only then does `vigil exec` hand the terminal to its child.
pub fn stdin_is_foreground_tty() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp take a plain descriptor number and have no
    // memory preconditions; a closed fd 0 makes them fail, and the answer is false.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}

/// Blocks SIGTTIN and SIGTTOU in vigil (the calling thread; vigil's loop is single-threaded).
///
/// Used by `vigil exec` after it has handed the terminal's foreground to its child: vigil
/// is then a background process of that terminal, and a log line written to it with
/// `stty tostop` set would otherwise make the kernel send SIGTTOU to vigil and restart the
/// write forever (a handled SIGTTOU does not stop the write, only a blocked or ignored
/// one lets it through). Children start with an empty mask regardless.
pub fn block_tty_job_signals() -> io::Result<()> {
    let mut set = SigSet::empty();
    set.add(nix::sys::signal::SIGTTIN);
    set.add(nix::sys::signal::SIGTTOU);
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(io::Error::from)
}

/// Every signal blocked in the calling thread until the guard is dropped, which restores
/// the previous mask. Nothing is lost: signals that arrive meanwhile stay pending (even for
/// PID 1, whose blocked signals are never discarded) and are delivered on restore.
///
/// `os::spawn` holds one across `fork`+`exec`, so that the child starts with every
/// signal blocked and none of vigil's handlers can run in it before [`install_pre_exec`]'s
/// code has reset them to their defaults.
#[must_use = "signals are unblocked again when the guard is dropped"]
pub struct BlockedSignals {
    old: SigSet,
}

impl BlockedSignals {
    /// Blocks every signal in the calling thread.
    pub fn all() -> io::Result<BlockedSignals> {
        let mut old = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut old),
        )
        .map_err(io::Error::from)?;
        Ok(BlockedSignals { old })
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// The highest signal number on Linux (`SIGRTMAX`).
const MAX_SIGNAL: i32 = 64;

/// Empties the signal mask and sets every signal `1..=64` except SIGKILL and SIGSTOP to
/// `SIG_DFL`, which also undoes `SIG_IGN` that vigil inherited from its own parent (a
/// `nohup`ed SIGHUP, a CI runner's ignored SIGINT). The child thus starts in a standard
/// state whatever vigil's own state was.
///
/// Uses the raw `rt_sigaction` system call, because glibc's `sigaction` refuses its two
/// internal signals (32 and 33), which an ignoring parent can still pass on.
/// Async-signal-safe and allocation-free: meant for the child between fork and exec.
/// Errors are ignored per signal.
pub fn reset_signals_for_exec() {
    // The kernel's `struct sigaction` is at most four words (handler, flags, restorer,
    // mask) on every Linux architecture; all zero means SIG_DFL, no flags, empty mask.
    let dfl = [0u64; 4];
    // The kernel's sigset_t: 64 signals.
    const KERNEL_SIGSET_SIZE: usize = 8;
    for sig in 1..=MAX_SIGNAL {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: `dfl` is a live, zeroed buffer at least as large as the kernel's
            // struct sigaction; the old action is not requested. rt_sigaction is a plain
            // system call, async-signal-safe.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    KERNEL_SIGSET_SIZE,
                );
            }
        }
    }
    // SAFETY: sigemptyset initialises the set; sigprocmask is async-signal-safe.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Blocks every signal in the calling thread. Async-signal-safe (for the child side).
fn block_all_signals_raw() {
    // SAFETY: sigfillset initialises the set fully; sigprocmask is async-signal-safe.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
}

/// Switches credentials in the child: supplementary groups, then gid, then uid (uid last,
/// since after it the process may no longer change the others).
///
/// `groups`, when given, must be computed before the fork (`getgrouplist`); nothing here
/// allocates. Async-signal-safe.
pub fn switch_credentials(
    groups: Option<&[libc::gid_t]>,
    gid: Option<libc::gid_t>,
    uid: Option<libc::uid_t>,
) -> io::Result<()> {
    // SAFETY: setgroups reads `len` gids from a live slice; setgid/setuid take plain ids.
    // All three are async-signal-safe system calls.
    unsafe {
        if let Some(groups) = groups
            && libc::setgroups(groups.len(), groups.as_ptr()) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if let Some(gid) = gid
            && libc::setgid(gid) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if let Some(uid) = uid
            && libc::setuid(uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `capget`/`capset`'s header (`struct __user_cap_header_struct`).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One of the two halves (capabilities 0-31, 32-63) of `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, two [`CapData`].
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The calling thread's capability sets (`capget`). Async-signal-safe.
fn capget() -> io::Result<[CapData; 2]> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: `header` and `data` are live and have the kernel's layout for version 3 (a
    // header, then two data structs); capget only writes `data` (and `header.version`).
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data)
}

/// Whether capability number `cap` is in vigil's effective set; `None` when `capget`
/// fails. Parent side.
pub fn has_effective_capability(cap: u32) -> Option<bool> {
    let data = capget().ok()?;
    let half = data.get((cap / 32) as usize)?;
    Some(half.effective & (1 << (cap % 32)) != 0)
}

/// vigil's capability bounding set, bit `n` for capability `n` (`PR_CAPBSET_READ` for
/// each capability the kernel knows). Parent side.
pub fn bounding_set() -> u64 {
    let mut set = 0u64;
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ only reads a flag of this process.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong) };
        if rc < 0 {
            break; // EINVAL: past the kernel's last capability.
        }
        if rc == 1 {
            set |= 1 << cap;
        }
    }
    set
}

/// Child side: keeps only the capabilities in `keep` (bit `n` for capability `n`).
/// Drops every other one from the bounding set (`PR_CAPBSET_DROP`, which needs
/// `CAP_SETPCAP`: call it before switching credentials) and lowers the inheritable set,
/// and with it the ambient set, to `keep` as well: for a child that stays root, exec
/// grants the bounding set *and* the inheritable set, so both must be limited.
/// Async-signal-safe and allocation-free.
pub fn limit_capabilities(keep: u64) -> io::Result<()> {
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ and PR_CAPBSET_DROP take a capability number and only
        // read or clear a flag of this (forked) process; prctl is a plain system call.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break; // Past the kernel's last capability.
            }
            return Err(e);
        }
        if rc == 1 && keep & (1 << cap) == 0 {
            // SAFETY: as above.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    let mut data = capget()?;
    let want = [keep as u32, (keep >> 32) as u32];
    if data.iter().zip(want).all(|(d, w)| d.inheritable & !w == 0) {
        return Ok(());
    }
    for (d, w) in data.iter_mut().zip(want) {
        d.inheritable &= w;
    }
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: `header` and `data` are live with the kernel's version-3 layout; capset
    // reads them. Lowering the inheritable set needs no privilege (the effective and
    // permitted sets are passed back unchanged), and lowers the ambient set with it.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Child side: `prctl(PR_SET_NO_NEW_PRIVS, 1)`, so that exec never grants privileges
/// (set-user-ID and set-group-ID bits and file capabilities are ignored). It cannot be
/// unset and is inherited by every descendant. Async-signal-safe.
pub fn set_no_new_privileges() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) only sets a flag of this process.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the calling process's group the foreground group of the terminal on stdin
/// (tini's handoff). Best effort: ENOTTY and ENXIO (no terminal), and every other error,
/// are ignored, since a child without the foreground still runs. Call with SIGTTOU
/// blocked, or a background caller is stopped. Async-signal-safe.
pub fn take_terminal_foreground() {
    // SAFETY: getpgrp and tcsetpgrp are async-signal-safe and have no memory preconditions.
    unsafe {
        let _ = libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
    }
}

/// Gives the foreground of the terminal on stdin back to vigil's own process group,
/// undoing the handoff to a child that has exited (so a parent shell without job control
/// is not left in the background, stopped by SIGTTOU on its next write). Best effort;
/// call with SIGTTOU blocked ([`block_tty_job_signals`]).
pub fn reclaim_terminal_foreground() {
    take_terminal_foreground();
}

/// What the child does between fork and exec. Everything is computed before the fork.
#[derive(Clone, Debug, Default)]
pub struct ChildSetup {
    /// Supplementary groups to set (`setgroups`); `None` leaves them.
    pub groups: Option<Vec<libc::gid_t>>,
    /// Group id to switch to; `None` keeps vigil's.
    pub gid: Option<libc::gid_t>,
    /// User id to switch to; `None` keeps vigil's.
    pub uid: Option<libc::uid_t>,
    /// The capabilities to keep (bit `n` for capability `n`; [`limit_capabilities`]),
    /// before the credentials switch; `None` leaves vigil's sets.
    pub keep_capabilities: Option<u64>,
    /// Set no_new_privs ([`set_no_new_privileges`]).
    pub no_new_privileges: bool,
    /// Take the foreground of the terminal on stdin (exec mode on a tty).
    pub foreground: bool,
    /// Pass descriptor `.0` (open in vigil, close-on-exec) to the child as descriptor
    /// `.1`, without close-on-exec (a readiness `notify_fd`).
    pub pass_fd: Option<(RawFd, RawFd)>,
    /// vigil's pid, read before the fork: the child asks for SIGKILL when the thread
    /// that forked it exits ([`die_with_parent`]); `None` (the default) reads it in
    /// [`install_pre_exec`].
    pub parent: Option<Pid>,
}

/// Installs the child-side setup on `cmd`: with every signal blocked (the parent holds
/// [`BlockedSignals`] across the spawn; this blocks again in case it did not), limit the
/// capabilities if asked, switch credentials, set no_new_privs if asked, take the
/// terminal foreground if asked, pass the `notify_fd`, ask for
/// SIGKILL when vigil dies ([`die_with_parent`]), then reset every disposition to
/// `SIG_DFL` and empty the mask ([`reset_signals_for_exec`]) as the very last step
/// before `exec`.
pub fn install_pre_exec(cmd: &mut Command, mut setup: ChildSetup) {
    setup.parent.get_or_insert(std::process::id() as Pid);
    let hook = move || -> io::Result<()> {
        block_all_signals_raw();
        // Before the credentials: dropping from the bounding set needs CAP_SETPCAP, which
        // a switch away from root clears.
        if let Some(keep) = setup.keep_capabilities {
            limit_capabilities(keep)?;
        }
        switch_credentials(setup.groups.as_deref(), setup.gid, setup.uid)?;
        if setup.no_new_privileges {
            set_no_new_privileges()?;
        }
        if setup.foreground {
            take_terminal_foreground();
        }
        if let Some((from, to)) = setup.pass_fd {
            pass_fd(from, to)?;
        }
        // After the credentials: a change of uid or gid clears the parent-death signal.
        die_with_parent(setup.parent)?;
        reset_signals_for_exec();
        Ok(())
    };
    // SAFETY: the hook runs in the forked child. It only reads data captured before the
    // fork (no allocation: `as_deref` borrows) and calls async-signal-safe functions
    // (sigprocmask, prctl, capget, capset, setgroups, setgid, setuid, getpgrp, tcsetpgrp,
    // dup2, fcntl, sigaction, getppid). Errors are built with `last_os_error`, which does
    // not allocate.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Child side: `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the child is killed when vigil
/// dies without stopping it (SIGKILL, a crash as an ordinary process), then checks that
/// its parent is still `parent`: if vigil died between the fork and the `prctl`, the
/// signal will never come, and the child fails instead of running unsupervised.
///
/// The kernel sends the signal when the *thread* that forked the child exits; vigil
/// forks only from its one event-loop thread, which lives as long as vigil. The setting
/// is cleared by a later change of credentials (hence called after
/// [`switch_credentials`]) and by exec of a set-user-ID, set-group-ID or file-capability
/// program. It reaches the child only, not the rest of its process group.
/// Async-signal-safe.
fn die_with_parent(parent: Option<Pid>) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and changes only a flag of
    // this (forked) process; getppid cannot fail. Both are plain system calls, safe
    // between fork and exec.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let now = unsafe { libc::getppid() };
    match parent {
        Some(p) if p != now => Err(io::Error::from_raw_os_error(libc::ESRCH)),
        _ => Ok(()),
    }
}

/// Child side: makes `from` available as `to` across exec. `dup2` gives `to` without
/// close-on-exec; when `from == to` the flag is cleared instead. Async-signal-safe.
fn pass_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    if from == to {
        // SAFETY: F_GETFD/F_SETFD only read and change the flag of a descriptor this
        // (forked) process owns; fcntl is async-signal-safe.
        let rc = unsafe {
            let flags = libc::fcntl(to, libc::F_GETFD);
            if flags < 0 {
                flags
            } else {
                libc::fcntl(to, libc::F_SETFD, flags & !libc::FD_CLOEXEC)
            }
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(());
    }
    // SAFETY: dup2 is async-signal-safe; `from` is open (the parent keeps it open across
    // the spawn) and replacing whatever `to` was only affects this forked child, whose
    // other descriptors are close-on-exec anyway.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Signals no handler may be installed for: KILL and STOP cannot be caught, and ILL, FPE
/// and SEGV report a fault in vigil itself (a handler that returns would run the faulting
/// instruction again).
const FORBIDDEN_SIGNALS: [i32; 5] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSEGV,
];

/// Whether `sig` refuses a handler (see [`register_signal_pipe`]).
pub fn is_forbidden_signal(sig: Signal) -> bool {
    FORBIDDEN_SIGNALS.contains(&sig.0)
}

/// What the signal handler reads: by signal number, the write end of the pipe that wakes
/// its reader, or -1 (the handler is installed but nobody listens: ignore).
static SIGNAL_PIPES: [AtomicI32; MAX_SIGNAL as usize + 1] =
    [const { AtomicI32::new(-1) }; MAX_SIGNAL as usize + 1];

/// By signal number: how many times it arrived (and was listened for) that its reader
/// has not taken yet. This, not the pipe, is the record of what arrived: the pipe only
/// wakes the reader, and a full pipe drops the byte (see [`on_signal`]).
static SIGNAL_COUNTS: [AtomicU32; MAX_SIGNAL as usize + 1] =
    [const { AtomicU32::new(0) }; MAX_SIGNAL as usize + 1];

/// By signal number: set when the handler could not write its byte (the pipe was full),
/// so the reader knows that some arrivals exist only in [`SIGNAL_COUNTS`].
static SIGNAL_DROPPED: [AtomicBool; MAX_SIGNAL as usize + 1] =
    [const { AtomicBool::new(false) }; MAX_SIGNAL as usize + 1];

/// The process that registered the handlers. A forked child runs them too until its
/// dispositions are reset before `exec`; it must not write to vigil's pipe.
static SIGNAL_OWNER: AtomicI32 = AtomicI32::new(0);

/// Handlers running right now, on any thread. [`unregister_signal`] waits for this to be
/// zero, so that the caller may close the pipe without a handler writing to the closed
/// (or, worse, reused) descriptor.
static HANDLERS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The one handler behind [`register_signal_pipe`]: counts the arrival in
/// [`SIGNAL_COUNTS`] first, then writes the signal's number as one byte to its pipe to
/// wake the reader (and to tell it the order of arrivals). When the pipe is full the
/// byte is dropped and [`SIGNAL_DROPPED`] is set: the count still holds the arrival, so a
/// storm of one signal can never push another one out. Only atomics, `getpid` and
/// `write`, all async-signal-safe (the atomics are lock-free on every target Rust
/// supports with 32-bit atomics); `errno` is restored for the interrupted code.
extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's life.
    let errno = unsafe { *libc::__errno_location() };
    HANDLERS_RUNNING.fetch_add(1, Ordering::SeqCst);
    let index = usize::try_from(sig)
        .ok()
        .filter(|&i| i < SIGNAL_PIPES.len());
    let fd = index.map_or(-1, |i| SIGNAL_PIPES[i].load(Ordering::SeqCst));
    // SAFETY: getpid cannot fail and is async-signal-safe.
    if let Some(i) = index
        && fd >= 0
        && unsafe { libc::getpid() } == SIGNAL_OWNER.load(Ordering::SeqCst)
    {
        // Saturating: a lock-free compare-and-swap loop, never a wrap to zero.
        let _ = SIGNAL_COUNTS[i].fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            Some(n.saturating_add(1))
        });
        let byte = sig as u8;
        // SAFETY: write is async-signal-safe; `byte` lives on this frame; `fd` stays open
        // until `HANDLERS_RUNNING` drops to zero after its slot was cleared.
        let written = unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
        if written != 1 {
            // Full (EAGAIN): the reader has bytes to read, so it wakes anyway.
            SIGNAL_DROPPED[i].store(true, Ordering::SeqCst);
        }
    }
    HANDLERS_RUNNING.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Takes every arrival of `sig` counted since the last call (or since it was
/// registered): returns the count and resets it to zero. See [`register_signal_pipe`].
pub fn take_signal_count(sig: Signal) -> u32 {
    signal_slot(&SIGNAL_COUNTS, sig).map_or(0, |c| c.swap(0, Ordering::SeqCst))
}

/// Takes one counted arrival of `sig`, if there is one: the reader calls this for each
/// byte it reads from the pipe, so that an arrival is reported once, whether through its
/// byte or through [`take_signal_count`].
pub fn take_one_signal(sig: Signal) -> bool {
    signal_slot(&SIGNAL_COUNTS, sig).is_some_and(|c| {
        c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    })
}

/// Whether the handler has dropped a byte for `sig` (a full pipe) since the last call;
/// resets the flag.
pub fn take_signal_dropped(sig: Signal) -> bool {
    signal_slot(&SIGNAL_DROPPED, sig).is_some_and(|d| d.swap(false, Ordering::SeqCst))
}

fn signal_slot<T>(table: &[T], sig: Signal) -> Option<&T> {
    usize::try_from(sig.0)
        .ok()
        .filter(|&i| i >= 1)
        .and_then(|i| table.get(i))
}

/// Installs a handler for `sig` that counts each arrival (read it with
/// [`take_signal_count`] and [`take_one_signal`]) and writes the signal number as one
/// byte to `pipe` (the write end of a non-blocking pipe) to wake an async reader. The
/// count starts at zero.
///
/// One plain `sigaction` per signal (no registry, no handler chains: nothing else in
/// vigil installs signal handlers), with `SA_RESTART` and an empty handler mask. It does
/// nothing in a forked child that has not yet exec'd, so a signal meant for a freshly
/// forked child never shows up as vigil's own. One pipe per signal: a signal that
/// already has one is refused. `pipe` must stay open until [`unregister_signal`] has
/// returned.
pub fn register_signal_pipe(sig: Signal, pipe: BorrowedFd<'_>) -> io::Result<()> {
    let slot = usize::try_from(sig.0)
        .ok()
        .filter(|_| sig.0 >= 1 && !is_forbidden_signal(sig))
        .and_then(|i| SIGNAL_PIPES.get(i))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot handle {sig}: the kernel forbids a handler for it"),
            )
        })?;
    // SAFETY: getpid cannot fail.
    SIGNAL_OWNER.store(unsafe { libc::getpid() }, Ordering::SeqCst);
    // Nobody listens yet (the slot is free, or the compare below fails): the handler
    // counts nothing for `sig` until the slot holds the pipe.
    if slot.load(Ordering::SeqCst) == -1 {
        if let Some(count) = signal_slot(&SIGNAL_COUNTS, sig) {
            count.store(0, Ordering::SeqCst);
        }
        if let Some(dropped) = signal_slot(&SIGNAL_DROPPED, sig) {
            dropped.store(false, Ordering::SeqCst);
        }
    }
    if slot
        .compare_exchange(-1, pipe.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{sig} already has a handler"),
        ));
    }
    // SAFETY: an all-zero sigaction is valid (empty mask, no flags); the fields are set
    // below. `on_signal` is async-signal-safe (see there) and has the signature the
    // kernel calls without SA_SIGINFO; the old action is not requested.
    let installed = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig.0, &action, std::ptr::null_mut())
    };
    if installed != 0 {
        let e = io::Error::last_os_error();
        slot.store(-1, Ordering::SeqCst);
        return Err(io::Error::new(
            e.kind(),
            format!("cannot handle {sig}: {e}"),
        ));
    }
    Ok(())
}

/// Detaches `sig` from its pipe and waits until no handler is running, after which the
/// pipe may be closed. The handler stays installed, so vigil then ignores the signal
/// (for PID 1 as for any process; its default action would often be to end vigil).
pub fn unregister_signal(sig: Signal) {
    if let Some(slot) = usize::try_from(sig.0)
        .ok()
        .and_then(|i| SIGNAL_PIPES.get(i))
    {
        slot.store(-1, Ordering::SeqCst);
    }
    // A handler that read the old descriptor has counted itself in before (SeqCst), so
    // this sees it until it is done. Handlers are a few instructions and never block.
    while HANDLERS_RUNNING.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

/// `waitid(P_ALL | P_PID, WEXITED | WNOHANG | __WALL [| WNOWAIT])`: the raw wait call
/// behind `os::reaper`, which is its only caller (clippy.toml bans it elsewhere).
///
/// `target` `None` waits for any child. With `peek` the zombie is left in place
/// (`WNOWAIT`): its pid and process group stay reserved until it is reaped. Returns
/// `Ok(None)` when children exist but none has exited, `Err(ECHILD)` when there are no
/// children at all. Unlike `nix::sys::wait`, any terminating signal (real-time ones too)
/// is reported.
#[expect(
    clippy::disallowed_methods,
    reason = "raw wrapper for runtime::reaper, the sole owner of wait status"
)]
pub fn waitid_exited(target: Option<Pid>, peek: bool) -> nix::Result<Option<(Pid, ExitStatus)>> {
    let (idtype, id) = match target {
        None => (libc::P_ALL, 0),
        Some(pid) => (libc::P_PID, pid as libc::id_t),
    };
    let mut flags = libc::WEXITED | libc::WNOHANG | libc::__WALL;
    if peek {
        flags |= libc::WNOWAIT;
    }
    // SAFETY: a zeroed siginfo_t is valid; waitid writes at most one siginfo_t into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a live, writable siginfo_t.
    let rc = unsafe { libc::waitid(idtype, id, &mut info, flags) };
    Errno::result(rc)?;
    // SAFETY: waitid filled in the SIGCHLD fields (or left them zero with WNOHANG).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let status = match info.si_code {
        libc::CLD_KILLED | libc::CLD_DUMPED => ExitStatus::Signaled(Signal(status)),
        _ => ExitStatus::Code(status),
    };
    Ok(Some((pid, status)))
}

/// A pipe whose both ends are close-on-exec: `(read, write)`.
pub fn pipe_cloexec() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}
