//! `vigil-test-child`: a purpose-built child program for vigil's integration tests.
//!
//! This is a TEST-ONLY program. It is a `[[bin]]` of the crate only because integration
//! tests need its path through `env!("CARGO_BIN_EXE_vigil-test-child")`; it is not part
//! of the daemon, is never started by vigil on its own, and must never be used by `src/`.
//!
//! It owns: reproducing, on demand, the child behaviours a supervisor has to cope with
//! (exit codes, death by signal, slow or ignored SIGTERM, orphans, grandchildren that hold
//! stdout open, output floods, readiness) and recording what happened to it as one line
//! per event in an append-only events file that tests parse (`tests/common/mod.rs`).
//!
//! It must never: use threads or an async runtime, busy-loop, or do anything but set an
//! atomic and `write(2)` a byte inside a signal handler. Because it is not vigil's
//! reaper it may (and does) wait for its own children.
//!
//! # Events file
//!
//! `--events FILE` (default: `$VIGIL_TEST_EVENTS`; no file means no events). Every event
//! is one line written with a single `write(2)` to a file opened with `O_APPEND`, so lines
//! of concurrent processes never interleave. `t_ms` is `CLOCK_REALTIME` in milliseconds,
//! comparable between processes. Lines:
//!
//! ```text
//! START <name> <pid> <pgid> <ppid> <t_ms>
//! INVOCATION <name> <pid> <n> <t_ms>                  (with --invocation-file)
//! SIGNAL <name> <pid> <SIGNAME> <t_ms>                 (SIGRTMIN, SIGRTMIN+k for real-time)
//! EXIT <name> <pid> <code> <t_ms>                      (before exiting by itself)
//! KILLSELF <name> <pid> <SIGNAME> <t_ms>               (just before --kill-self raises)
//! FDS <name> <pid> <fd,fd,...> <t_ms>
//! SIGSTATE <name> <pid> blk=<hex> ign=<hex> <t_ms>
//! CWD <name> <pid> <path> <t_ms>
//! IDS <name> <pid> uid=<u> gid=<g> groups=<g,g,...> capbnd=<hex> capeff=<hex> capinh=<hex> capamb=<hex> nnp=<0|1> <t_ms>
//! LOGIN <name> <pid> HOME=<v> USER=<v> LOGNAME=<v> <t_ms>   (`!VAR` when unset)
//! READY <name> <pid> <t_ms>                            (after --touch and --listen, before --ready-fd and --sd-notify)
//! FLOOD <name> <pid> <lines> <bytes> <t_ms>            (after --flood finished)
//! GRANDCHILD <name> <pid> <pgid> <t_ms>                (--setsid-grandchild, --group-grandchild)
//! ORPHAN <name> <pid> <t_ms>                           (an orphan started, before it is orphaned)
//! ORPHAN_EXIT <name> <pid> <code> <ppid> <t_ms>        (an orphan exits; ppid = adopter)
//! FORKKILL <name> <pid> <n> <t_ms>                     (--fork-kill-loop done)
//! PRINTED <name> <pid> <t_ms>                          (--print/--print-err written)
//! LATE <name> <pid> <t_ms>                             (--late-line grandchild wrote its line)
//! ESCAPED <name> <pid> <pgid> <sid> <t_ms>             (--setsid-orphans: one per orphan)
//! STOPSELF <name> <pid> <t_ms>                         (--sigstop-self, just before SIGSTOP)
//! CONTINUED <name> <pid> <t_ms>                        (--sigstop-self, after SIGCONT)
//! CLOSED <name> <pid> <t_ms>                           (--close-stdout done)
//! HOG <name> <pid> <mib> <t_ms>                        (--hog: before allocating)
//! NOTIFYFLOOD <name> <pid> <datagrams> <bytes> <t_ms>  (--notify-flood finished)
//! ```
//!
//! The reports (`FDS`, `SIGSTATE`, `CWD`, `IDS`, `LOGIN`) describe the state inherited from the
//! parent: they are captured before this program creates any fd or installs any handler.
//! Signal handlers are installed before `START` is written, so a test may signal the child
//! as soon as it sees `START`.

#![allow(clippy::disallowed_methods)]
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
vigil-test-child: a test-only child program for vigil's integration tests.

  --name NAME                 name used in events (default: child)
  --events FILE               append events to FILE (default: $VIGIL_TEST_EVENTS)
  --exit-after MS             exit after MS milliseconds (default: run forever)
  --code N                    exit code for --exit-after (default: 0)
  --kill-self SIG             at --exit-after, die by SIG instead of exiting
  --on-term MODE              SIGTERM: exit:N | ignore | delay:MS | die (absent: default disposition)
  --on-int MODE               same for SIGINT
  --log-signals               log (and survive) every catchable signal, real-time ones included
  --orphans N                 double-fork N grandchildren that become orphans
  --orphan-exit-after MS      orphans exit MS after being orphaned (default: 0)
  --orphan-code C             orphans' exit code (default: 0)
  --orphan-storm N            N orphans that land on the adopter together and exit at once
  --setsid-grandchild MS|forever  grandchild in its own session, holding stdout/stderr, sleeps MS
  --group-grandchild          grandchild in this process group, sleeps forever
  --fork-kill-loop N          N times: fork, SIGKILL, reap a grandchild
  --setsid-orphans N          double-fork N orphans that setsid() away from this group
                              and session, then sleep forever (default dispositions)
  --sigstop-self              after START, raise SIGSTOP (stays stopped until SIGCONT)
  --close-stdout              after START, close descriptors 1 and 2
  --hog MIB                   after START, allocate and touch MIB MiB of memory, keep it
  --flood BYTES               write at least BYTES of numbered lines to stdout
  --line-len L                flood line length including newline (default: 80)
  --flood-fd N                flood to fd N instead of 1 (2: stderr)
  --print TEXT                write TEXT to stdout in one write; escapes \\n \\t \\\\ \\xHH
  --print-err TEXT            same to stderr (after --print)
  --late-line TEXT            grandchild in its own session waits until this process has
                              exited, then writes TEXT (escapes as --print) to stdout
  --report-fds                FDS event (inherited open fds)
  --report-sigstate           SIGSTATE event (inherited SigBlk/SigIgn)
  --report-cwd                CWD event
  --report-ids                IDS event (ids, groups, capability sets, NoNewPrivs)
  --report-login              LOGIN event (HOME, USER, LOGNAME)
  --ready-fd N                write \"\\n\" to fd N, then close it
  --ready-after MS            delay --ready-fd and --touch by MS
  --touch FILE                create FILE (file readiness)
  --listen PORT               listen on 127.0.0.1:PORT (tcp readiness), until exit
  --sd-notify MSG             send MSG (\\n between lines) to $NOTIFY_SOCKET, e.g. READY=1
  --notify-flood MS           after START, for MS ms send $NOTIFY_SOCKET datagrams of about
                              4000 bytes, each many `STATUS=flood D line L` lines, then
                              `STATUS=flood done` (before --sd-notify)
  --invocation-file FILE      count invocations in FILE
  --fail-invocations A..B     exit 1 right after START on invocations A..=B (1-based)
";

/// What to do on SIGTERM or SIGINT.
#[derive(Clone, Copy, Debug)]
enum OnSignal {
    /// Log, then exit with this code.
    Exit(i32),
    /// Log and keep running.
    Ignore,
    /// Log, then exit 0 after this long.
    Delay(u64),
    /// Log, then reset to the default disposition and re-raise.
    Die,
}

#[derive(Debug)]
struct Opts {
    name: String,
    events: Option<String>,
    exit_after: Option<u64>,
    code: i32,
    kill_self: Option<i32>,
    on_term: Option<OnSignal>,
    on_int: Option<OnSignal>,
    log_signals: bool,
    orphans: u32,
    orphan_exit_after: u64,
    orphan_code: i32,
    orphan_storm: u32,
    setsid_grandchild: Option<Option<u64>>,
    group_grandchild: bool,
    fork_kill_loop: u32,
    setsid_orphans: u32,
    sigstop_self: bool,
    close_stdout: bool,
    hog: Option<usize>,
    flood: Option<u64>,
    line_len: usize,
    flood_fd: RawFd,
    print: Option<Vec<u8>>,
    print_err: Option<Vec<u8>>,
    late_line: Option<Vec<u8>>,
    report_fds: bool,
    report_sigstate: bool,
    report_cwd: bool,
    report_ids: bool,
    report_login: bool,
    ready_fd: Option<RawFd>,
    ready_after: u64,
    touch: Option<String>,
    listen: Option<u16>,
    sd_notify: Option<String>,
    notify_flood: Option<u64>,
    invocation_file: Option<String>,
    fail_invocations: Option<(u64, u64)>,
}

fn usage_error(msg: &str) -> ! {
    eprintln!("vigil-test-child: {msg}\n\n{USAGE}");
    std::process::exit(2);
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| usage_error(&format!("{flag}: `{v}` is not a valid number")))
}

fn parse_on_signal(flag: &str, v: &str) -> OnSignal {
    match v {
        "ignore" => OnSignal::Ignore,
        "die" => OnSignal::Die,
        "exit" => OnSignal::Exit(0),
        _ => {
            if let Some(n) = v.strip_prefix("exit:") {
                OnSignal::Exit(num(flag, n))
            } else if let Some(ms) = v.strip_prefix("delay:") {
                OnSignal::Delay(num(flag, ms))
            } else {
                usage_error(&format!(
                    "{flag}: `{v}` is not one of exit:N, ignore, delay:MS, die"
                ))
            }
        }
    }
}

/// Parses `TERM`, `SIGTERM`, `15`, `RTMIN`, `SIGRTMIN+3`.
fn parse_signal(flag: &str, v: &str) -> i32 {
    if let Ok(n) = v.parse::<i32>() {
        return n;
    }
    let upper = v.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        let k: i32 = if rest.is_empty() {
            0
        } else {
            num(flag, rest.trim_start_matches('+'))
        };
        return libc::SIGRTMIN() + k;
    }
    if bare == "RTMAX" {
        return libc::SIGRTMAX();
    }
    let full = format!("SIG{bare}");
    match full.parse::<nix::sys::signal::Signal>() {
        Ok(s) => s as i32,
        Err(_) => usage_error(&format!("{flag}: `{v}` is not a signal name or number")),
    }
}

fn parse_args() -> Opts {
    let mut o = Opts {
        name: "child".into(),
        events: std::env::var("VIGIL_TEST_EVENTS")
            .ok()
            .filter(|s| !s.is_empty()),
        exit_after: None,
        code: 0,
        kill_self: None,
        on_term: None,
        on_int: None,
        log_signals: false,
        orphans: 0,
        orphan_exit_after: 0,
        orphan_code: 0,
        orphan_storm: 0,
        setsid_grandchild: None,
        group_grandchild: false,
        fork_kill_loop: 0,
        setsid_orphans: 0,
        sigstop_self: false,
        close_stdout: false,
        hog: None,
        flood: None,
        line_len: 80,
        flood_fd: 1,
        print: None,
        print_err: None,
        late_line: None,
        report_fds: false,
        report_sigstate: false,
        report_cwd: false,
        report_ids: false,
        report_login: false,
        ready_fd: None,
        ready_after: 0,
        touch: None,
        listen: None,
        sd_notify: None,
        notify_flood: None,
        invocation_file: None,
        fail_invocations: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let f = flag.as_str();
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage_error(&format!("{f} needs a value")))
        };
        match f {
            "--name" => o.name = val(),
            "--events" => o.events = Some(val()),
            "--exit-after" => o.exit_after = Some(num(f, &val())),
            "--code" => o.code = num(f, &val()),
            "--kill-self" => o.kill_self = Some(parse_signal(f, &val())),
            "--on-term" => o.on_term = Some(parse_on_signal(f, &val())),
            "--on-int" => o.on_int = Some(parse_on_signal(f, &val())),
            "--log-signals" => o.log_signals = true,
            "--orphans" => o.orphans = num(f, &val()),
            "--orphan-exit-after" => o.orphan_exit_after = num(f, &val()),
            "--orphan-code" => o.orphan_code = num(f, &val()),
            "--orphan-storm" => o.orphan_storm = num(f, &val()),
            "--setsid-grandchild" => {
                let v = val();
                o.setsid_grandchild = Some(if v == "forever" {
                    None
                } else {
                    Some(num(f, &v))
                });
            }
            "--group-grandchild" => o.group_grandchild = true,
            "--fork-kill-loop" => o.fork_kill_loop = num(f, &val()),
            "--setsid-orphans" => o.setsid_orphans = num(f, &val()),
            "--sigstop-self" => o.sigstop_self = true,
            "--close-stdout" => o.close_stdout = true,
            "--hog" => o.hog = Some(num(f, &val())),
            "--flood" => o.flood = Some(num(f, &val())),
            "--line-len" => o.line_len = num(f, &val()),
            "--flood-fd" => o.flood_fd = num(f, &val()),
            "--print" => o.print = Some(unescape(f, &val())),
            "--print-err" => o.print_err = Some(unescape(f, &val())),
            "--late-line" => o.late_line = Some(unescape(f, &val())),
            "--report-fds" => o.report_fds = true,
            "--report-sigstate" => o.report_sigstate = true,
            "--report-cwd" => o.report_cwd = true,
            "--report-ids" => o.report_ids = true,
            "--report-login" => o.report_login = true,
            "--ready-fd" => o.ready_fd = Some(num(f, &val())),
            "--ready-after" => o.ready_after = num(f, &val()),
            "--touch" => o.touch = Some(val()),
            "--listen" => o.listen = Some(num(f, &val())),
            "--sd-notify" => o.sd_notify = Some(val().replace("\\n", "\n")),
            "--notify-flood" => o.notify_flood = Some(num(f, &val())),
            "--invocation-file" => o.invocation_file = Some(val()),
            "--fail-invocations" => {
                let v = val();
                let (a, b) = v
                    .split_once("..")
                    .unwrap_or_else(|| usage_error(&format!("{f}: `{v}` is not A..B")));
                o.fail_invocations = Some((num(f, a), num(f, b.trim_start_matches('='))));
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => usage_error(&format!("unknown argument `{other}`")),
        }
    }
    if o.fail_invocations.is_some() && o.invocation_file.is_none() {
        usage_error("--fail-invocations needs --invocation-file FILE to count invocations");
    }
    o
}

// ---------------------------------------------------------------------------------------
// Events

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn pid() -> i32 {
    std::process::id() as i32
}

/// Appends `line` plus the timestamp as one `write(2)` on an `O_APPEND` fd. The file is
/// opened per event so that no fd stays open (fd reports and fd-leak tests stay exact).
fn event(events: &Option<String>, line: &str) {
    let Some(path) = events else { return };
    let text = format!("{line} {}\n", now_ms());
    let Ok(cpath) = CString::new(path.as_bytes()) else {
        return;
    };
    // SAFETY: `cpath` is a valid NUL-terminated string; the returned fd is checked.
    let fd = unsafe {
        libc::open(
            cpath.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        eprintln!(
            "vigil-test-child: cannot open events file {path}: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: writes from a live buffer of the given length to an fd we own, then closes it.
    unsafe {
        libc::write(fd, text.as_ptr().cast(), text.len());
        libc::close(fd);
    }
}

fn signame(sig: i32) -> String {
    let rtmin = libc::SIGRTMIN();
    if sig == rtmin {
        return "SIGRTMIN".into();
    }
    if sig > rtmin && sig <= libc::SIGRTMAX() {
        return format!("SIGRTMIN+{}", sig - rtmin);
    }
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("SIG{sig}"),
    }
}

// ---------------------------------------------------------------------------------------
// Signals: handlers count deliveries and poke a self-pipe; the main loop does the rest.

const MAX_SIG: usize = 65;
static COUNTS: [AtomicU32; MAX_SIG] = [const { AtomicU32::new(0) }; MAX_SIG];
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: __errno_location is async-signal-safe and returns this thread's errno.
    let saved = unsafe { *libc::__errno_location() };
    if let Some(c) = COUNTS.get(sig as usize) {
        c.fetch_add(1, Ordering::SeqCst);
    }
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
    // SAFETY: restores errno for the interrupted code.
    unsafe { *libc::__errno_location() = saved };
}

fn install_handler(sig: i32) {
    // SAFETY: a zeroed sigaction is valid; we fill handler, mask and flags before use.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(sig, &sa, std::ptr::null_mut());
    }
}

fn set_default(sig: i32) {
    // SAFETY: resets one signal's disposition to SIG_DFL and unblocks it.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// In a forked grandchild: default dispositions, empty mask, no self-pipe.
fn reset_signals_in_grandchild() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition to SIG_DFL is always valid.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // SAFETY: an emptied sigset is valid input to sigprocmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    let fd = WAKE_FD.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: closing our copy of the self-pipe's write end.
        unsafe { libc::close(fd) };
    }
}

fn die_by(sig: i32) {
    set_default(sig);
    // SAFETY: raise(3) with a valid signal number.
    unsafe { libc::raise(sig) };
}

// ---------------------------------------------------------------------------------------
// Reports (captured before this program changes any state)

fn report_fds() -> String {
    let mut fds = Vec::new();
    // SAFETY: opendir/readdir/closedir on a literal path; every pointer is checked.
    unsafe {
        let dir = libc::opendir(c"/proc/self/fd".as_ptr());
        if dir.is_null() {
            return "?".into();
        }
        let own = libc::dirfd(dir);
        loop {
            let ent = libc::readdir(dir);
            if ent.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*ent).d_name.as_ptr());
            if let Ok(n) = name.to_string_lossy().parse::<i32>()
                && n != own
            {
                fds.push(n);
            }
        }
        libc::closedir(dir);
    }
    fds.sort_unstable();
    fds.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn report_sigstate() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!("blk={} ign={}", field("SigBlk:"), field("SigIgn:"))
}

fn report_ids() -> String {
    let groups = nix::unistd::getgroups()
        .map(|g| {
            g.iter()
                .map(|g| g.as_raw().to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|_| "?".into());
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "uid={uid} gid={gid} groups={groups} capbnd={} capeff={} capinh={} capamb={} nnp={}",
        field("CapBnd:"),
        field("CapEff:"),
        field("CapInh:"),
        field("CapAmb:"),
        field("NoNewPrivs:")
    )
}

fn report_login() -> String {
    ["HOME", "USER", "LOGNAME"]
        .iter()
        .map(|k| match std::env::var(k) {
            Ok(v) => format!("{k}={v}"),
            Err(_) => format!("!{k}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// Forking helpers

fn fork() -> i32 {
    // SAFETY: single-threaded program; the child only calls async-signal-safe-enough code
    // (no locks are held by other threads because there are none).
    let p = unsafe { libc::fork() };
    if p < 0 {
        eprintln!(
            "vigil-test-child: fork failed: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(3);
    }
    p
}

fn reap(child: i32) {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

fn sleep_forever() -> ! {
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-element out array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!(
            "vigil-test-child: pipe failed: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(3);
    }
    (fds[0], fds[1])
}

fn close(fd: RawFd) {
    // SAFETY: closes an fd this process owns.
    unsafe { libc::close(fd) };
}

/// Blocks until every write end of the pipe is closed.
fn read_until_eof(fd: RawFd) {
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: reads into a live buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

fn getppid() -> i32 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

fn getpgrp() -> i32 {
    // SAFETY: getpgrp cannot fail.
    unsafe { libc::getpgrp() }
}

/// The orphan's life after its parent is gone: wait, log, exit.
fn orphan_body(o: &Opts, intermediate: i32, go: RawFd, exit_after: u64) -> ! {
    read_until_eof(go);
    // Write ends close (exit_files) slightly before the kernel reparents us; wait for that.
    while getppid() == intermediate {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    if exit_after > 0 {
        sleep_ms(exit_after);
    }
    event(
        &o.events,
        &format!(
            "ORPHAN_EXIT {} {} {} {}",
            o.name,
            pid(),
            o.orphan_code,
            getppid()
        ),
    );
    // SAFETY: _exit skips atexit handlers and stdio flushing inherited from the parent.
    unsafe { libc::_exit(o.orphan_code) }
}

/// Double fork: the intermediate forks the orphan and exits; the orphan notices (EOF on a
/// pipe only the intermediate held) and lives on under the nearest subreaper.
fn spawn_orphan(o: &Opts) {
    let mid = fork();
    if mid == 0 {
        reset_signals_in_grandchild();
        let me = pid();
        let (r, w) = pipe();
        let orphan = fork();
        if orphan == 0 {
            close(w);
            event(&o.events, &format!("ORPHAN {} {}", o.name, pid()));
            orphan_body(o, me, r, o.orphan_exit_after);
        }
        // SAFETY: _exit in a forked child; closes `w` and so releases the orphan.
        unsafe { libc::_exit(0) }
    }
    reap(mid);
}

/// N intermediates each leave one orphan; the orphans block on a shared pipe until this
/// process closes its write end, so they all exit together.
fn orphan_storm(o: &Opts) {
    let (r, w) = pipe();
    let mut mids = Vec::new();
    for _ in 0..o.orphan_storm {
        let mid = fork();
        if mid == 0 {
            reset_signals_in_grandchild();
            let me = pid();
            let orphan = fork();
            if orphan == 0 {
                close(w);
                event(&o.events, &format!("ORPHAN {} {}", o.name, pid()));
                orphan_body(o, me, r, 0);
            }
            // SAFETY: _exit in a forked child.
            unsafe { libc::_exit(0) }
        }
        mids.push(mid);
    }
    close(r);
    for m in mids {
        reap(m);
    }
    close(w);
}

fn grandchild(o: &Opts, setsid: bool, ms: Option<u64>) {
    // The parent waits for GRANDCHILD to be written (so, with setsid, for the grandchild
    // to have left the group): exiting earlier would let the group kill at its exit take
    // the grandchild too.
    let (ready_r, ready_w) = pipe();
    if fork() == 0 {
        reset_signals_in_grandchild();
        if setsid {
            // SAFETY: setsid has no memory-safety preconditions.
            unsafe { libc::setsid() };
        }
        event(
            &o.events,
            &format!("GRANDCHILD {} {} {}", o.name, pid(), getpgrp()),
        );
        // SAFETY: closes the fds of the handshake pipe, which we own.
        unsafe {
            libc::close(ready_r);
            libc::close(ready_w);
        }
        match ms {
            Some(ms) => {
                sleep_ms(ms);
                // SAFETY: _exit in a forked child.
                unsafe { libc::_exit(0) }
            }
            None => sleep_forever(),
        }
    }
    // SAFETY: closes our write end, then reads into a live buffer until the grandchild
    // has closed its copy (EOF).
    unsafe {
        libc::close(ready_w);
        let mut b = [0u8; 1];
        while libc::read(ready_r, b.as_mut_ptr().cast(), 1) != 0 {}
        libc::close(ready_r);
    }
}

fn fork_kill_loop(o: &Opts) {
    for _ in 0..o.fork_kill_loop {
        let c = fork();
        if c == 0 {
            reset_signals_in_grandchild();
            sleep_forever();
        }
        // SAFETY: kill our own child.
        unsafe { libc::kill(c, libc::SIGKILL) };
        reap(c);
    }
    event(
        &o.events,
        &format!("FORKKILL {} {} {}", o.name, pid(), o.fork_kill_loop),
    );
}

/// `\n`, `\t`, `\\` and `\xHH` escapes → bytes.
fn unescape(flag: &str, v: &str) -> Vec<u8> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') if i + 4 <= b.len() => {
                let hex = std::str::from_utf8(&b[i + 2..i + 4])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .unwrap_or_else(|| usage_error(&format!("{flag}: bad \\x escape in `{v}`")));
                out.push(hex);
                i += 4;
                continue;
            }
            _ => usage_error(&format!("{flag}: bad escape in `{v}`")),
        }
        i += 2;
    }
    out
}

/// Writes all of `data` to `fd` (one `write(2)` unless the kernel takes less).
fn write_fd(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writes from a live buffer of the given length.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            return;
        }
        data = &data[n as usize..];
    }
}

/// A grandchild in its own session (so the group kill at this process's exit misses it)
/// that blocks on a pipe until this process has exited, then writes `text` to stdout.
fn late_line(o: &Opts, text: &[u8]) {
    let (r, w) = pipe();
    let (ready_r, ready_w) = pipe();
    if fork() == 0 {
        reset_signals_in_grandchild();
        // SAFETY: setsid, write and close have no memory-safety preconditions.
        unsafe {
            libc::setsid();
            libc::close(w);
            libc::close(ready_r);
            // Out of the process group now: the group kill at the parent's exit misses us.
            libc::write(ready_w, b"r".as_ptr().cast(), 1);
            libc::close(ready_w);
        }
        let mut b = [0u8; 1];
        // SAFETY: blocking read into a live buffer; returns 0 once every write end is gone.
        while unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) } != 0 {}
        write_fd(1, text);
        event(&o.events, &format!("LATE {} {}", o.name, pid()));
        // SAFETY: _exit in a forked child.
        unsafe { libc::_exit(0) }
    }
    // SAFETY: closes our copies of fds we own, and reads into a live buffer (until the
    // grandchild has left the group, or is gone).
    unsafe {
        libc::close(r);
        libc::close(ready_w);
        let mut b = [0u8; 1];
        while libc::read(ready_r, b.as_mut_ptr().cast(), 1) < 0 {}
        libc::close(ready_r);
    }
    // The write end `w` stays open until this process exits.
}

/// Double fork: the intermediate forks an orphan that leaves this process group and
/// session with `setsid()`, then exits; the orphan lives on under the nearest subreaper
/// until it is killed. The intermediate is reaped here, after the orphan's ESCAPED event.
fn spawn_setsid_orphan(o: &Opts) {
    let (r, w) = pipe();
    let mid = fork();
    if mid == 0 {
        reset_signals_in_grandchild();
        close(r);
        if fork() == 0 {
            // SAFETY: setsid has no memory-safety preconditions.
            let sid = unsafe { libc::setsid() };
            event(
                &o.events,
                &format!("ESCAPED {} {} {} {}", o.name, pid(), getpgrp(), sid),
            );
            close(w);
            sleep_forever();
        }
        // SAFETY: _exit in a forked child; its copy of `w` closes.
        unsafe { libc::_exit(0) }
    }
    close(w);
    read_until_eof(r);
    close(r);
    reap(mid);
}

fn flood(o: &Opts, bytes: u64) {
    // SAFETY: borrows fd 1 or 2 for the length of the flood; ManuallyDrop never closes it.
    let file = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(o.flood_fd)
    });
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, &*file);
    let mut written: u64 = 0;
    let mut seq: u64 = 0;
    let mut line = Vec::with_capacity(o.line_len + 32);
    while written < bytes {
        line.clear();
        let _ = write!(line, "{} {} ", o.name, seq);
        if line.len() + 1 < o.line_len {
            line.resize(o.line_len - 1, b'x');
        }
        line.push(b'\n');
        if out.write_all(&line).is_err() {
            break;
        }
        written += line.len() as u64;
        seq += 1;
    }
    let _ = out.flush();
    drop(out);
    event(
        &o.events,
        &format!("FLOOD {} {} {} {}", o.name, pid(), seq, written),
    );
}

/// `--notify-flood MS`: datagrams of many `STATUS=` lines to `$NOTIFY_SOCKET` for `ms`
/// milliseconds (blocking sends: as fast as the receiver takes them), then one
/// `STATUS=flood done`.
fn notify_flood(o: &Opts, ms: u64) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        usage_error("--notify-flood without NOTIFY_SOCKET");
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => usage_error(&format!("--notify-flood: cannot make a socket: {e}")),
    };
    let end = Instant::now() + Duration::from_millis(ms);
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    let mut msg = Vec::with_capacity(4096);
    while Instant::now() < end {
        msg.clear();
        let mut line = 0;
        while msg.len() < 4000 {
            let _ = writeln!(msg, "STATUS=flood {datagrams} line {line}");
            line += 1;
        }
        match socket.send_to(&msg, &path) {
            Ok(n) => {
                datagrams += 1;
                bytes += n as u64;
            }
            Err(e) => {
                eprintln!("vigil-test-child: --notify-flood: send to {path:?}: {e}");
                break;
            }
        }
    }
    if let Err(e) = socket.send_to(b"STATUS=flood done", &path) {
        eprintln!("vigil-test-child: --notify-flood: send to {path:?}: {e}");
    }
    event(
        &o.events,
        &format!("NOTIFYFLOOD {} {} {datagrams} {bytes}", o.name, pid()),
    );
}

fn invocation(o: &Opts) -> Option<u64> {
    let path = o.invocation_file.as_ref()?;
    let n = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let tmp = format!("{path}.tmp.{}", pid());
    if std::fs::write(&tmp, format!("{n}\n")).is_err() || std::fs::rename(&tmp, path).is_err() {
        eprintln!("vigil-test-child: cannot update invocation file {path}");
    }
    Some(n)
}

fn exit_now(o: &Opts, code: i32) -> ! {
    event(&o.events, &format!("EXIT {} {} {}", o.name, pid(), code));
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Touch file first, then the READY event, then the fd: whoever sees the fd's newline
/// (or EOF) can rely on the other two.
fn do_ready(o: &Opts, listener: &mut Option<std::net::TcpListener>) {
    if let Some(t) = &o.touch
        && let Err(e) = std::fs::File::create(t)
    {
        eprintln!("vigil-test-child: cannot create --touch file {t}: {e}");
    }
    if let Some(port) = o.listen {
        match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => *listener = Some(l),
            Err(e) => eprintln!("vigil-test-child: cannot listen on port {port}: {e}"),
        }
    }
    if has_readiness(o) {
        event(&o.events, &format!("READY {} {}", o.name, pid()));
    }
    if let Some(msg) = &o.sd_notify {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(path) => {
                let sent = std::os::unix::net::UnixDatagram::unbound()
                    .and_then(|s| s.send_to(msg.as_bytes(), &path));
                if let Err(e) = sent {
                    eprintln!("vigil-test-child: cannot notify {path:?}: {e}");
                }
            }
            None => eprintln!("vigil-test-child: --sd-notify without NOTIFY_SOCKET"),
        }
    }
    if let Some(fd) = o.ready_fd {
        // SAFETY: writes one byte to an fd the parent handed us, then closes it.
        unsafe {
            libc::write(fd, b"\n".as_ptr().cast(), 1);
            libc::close(fd);
        }
    }
}

fn has_readiness(o: &Opts) -> bool {
    o.ready_fd.is_some() || o.touch.is_some() || o.listen.is_some() || o.sd_notify.is_some()
}

fn main() {
    let o = parse_args();
    let mut listener = None;
    let start = Instant::now();
    let me = pid();

    // Capture reports before we create fds or install handlers.
    let fds = o.report_fds.then(report_fds);
    let sigstate = o.report_sigstate.then(report_sigstate);
    let cwd = o.report_cwd.then(|| {
        std::env::current_dir()
            .map(|p| String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned())
            .unwrap_or_else(|e| format!("?{e}"))
    });
    let ids = o.report_ids.then(report_ids);
    let login = o.report_login.then(report_login);

    // Self-pipe and handlers, before START so tests may signal as soon as they see it.
    let (wake_r, wake_w) = pipe();
    // SAFETY: sets O_NONBLOCK on fds we own.
    unsafe {
        libc::fcntl(wake_r, libc::F_SETFL, libc::O_NONBLOCK);
        libc::fcntl(wake_w, libc::F_SETFL, libc::O_NONBLOCK);
    }
    WAKE_FD.store(wake_w, Ordering::SeqCst);
    if o.log_signals {
        for sig in 1..=31 {
            if matches!(
                sig,
                libc::SIGKILL | libc::SIGSTOP | libc::SIGCHLD | libc::SIGTERM | libc::SIGINT
            ) {
                continue;
            }
            install_handler(sig);
        }
        for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
            install_handler(sig);
        }
    }
    if o.on_term.is_some() {
        install_handler(libc::SIGTERM);
    }
    if o.on_int.is_some() {
        install_handler(libc::SIGINT);
    }

    event(
        &o.events,
        &format!("START {} {} {} {}", o.name, me, getpgrp(), getppid()),
    );
    if let Some(n) = invocation(&o) {
        event(&o.events, &format!("INVOCATION {} {} {}", o.name, me, n));
        if let Some((a, b)) = o.fail_invocations
            && (a..=b).contains(&n)
        {
            exit_now(&o, 1);
        }
    }
    if let Some(s) = fds {
        event(&o.events, &format!("FDS {} {} {}", o.name, me, s));
    }
    if let Some(s) = sigstate {
        event(&o.events, &format!("SIGSTATE {} {} {}", o.name, me, s));
    }
    if let Some(s) = cwd {
        event(&o.events, &format!("CWD {} {} {}", o.name, me, s));
    }
    if let Some(s) = ids {
        event(&o.events, &format!("IDS {} {} {}", o.name, me, s));
    }
    if let Some(s) = login {
        event(&o.events, &format!("LOGIN {} {} {}", o.name, me, s));
    }

    for _ in 0..o.orphans {
        spawn_orphan(&o);
    }
    if o.orphan_storm > 0 {
        orphan_storm(&o);
    }
    if let Some(ms) = o.setsid_grandchild {
        grandchild(&o, true, ms);
    }
    if o.group_grandchild {
        grandchild(&o, false, None);
    }
    if o.fork_kill_loop > 0 {
        fork_kill_loop(&o);
    }
    for _ in 0..o.setsid_orphans {
        spawn_setsid_orphan(&o);
    }
    if let Some(bytes) = o.flood {
        flood(&o, bytes);
    }
    if let Some(ms) = o.notify_flood {
        notify_flood(&o, ms);
    }
    if o.close_stdout {
        close(1);
        close(2);
        event(&o.events, &format!("CLOSED {} {}", o.name, me));
    }
    let mut _hog: Vec<Vec<u8>> = Vec::new();
    if let Some(mib) = o.hog {
        event(&o.events, &format!("HOG {} {} {}", o.name, me, mib));
        for _ in 0..mib {
            // Non-zero bytes: every page is really touched (no zero-page sharing).
            _hog.push(vec![1u8; 1 << 20]);
        }
    }
    if o.sigstop_self {
        event(&o.events, &format!("STOPSELF {} {}", o.name, me));
        // SAFETY: raise(3) with a valid signal number; SIGSTOP cannot be caught.
        unsafe { libc::raise(libc::SIGSTOP) };
        event(&o.events, &format!("CONTINUED {} {}", o.name, me));
    }
    if let Some(text) = &o.print {
        write_fd(1, text);
    }
    if let Some(text) = &o.print_err {
        write_fd(2, text);
    }
    if o.print.is_some() || o.print_err.is_some() {
        event(&o.events, &format!("PRINTED {} {}", o.name, me));
    }
    if let Some(text) = &o.late_line {
        late_line(&o, text);
    }

    let mut ready_at = has_readiness(&o).then(|| start + Duration::from_millis(o.ready_after));
    let exit_at = o.exit_after.map(|ms| start + Duration::from_millis(ms));
    let mut delay_at: Option<Instant> = None;

    loop {
        // Signals first: they were delivered before any deadline we are about to check.
        for sig in 1..MAX_SIG as i32 {
            let n = COUNTS[sig as usize].swap(0, Ordering::SeqCst);
            for _ in 0..n {
                event(
                    &o.events,
                    &format!("SIGNAL {} {} {}", o.name, me, signame(sig)),
                );
                let mode = match sig {
                    libc::SIGTERM => o.on_term,
                    libc::SIGINT => o.on_int,
                    _ => None,
                };
                match mode {
                    Some(OnSignal::Exit(code)) => exit_now(&o, code),
                    Some(OnSignal::Die) => die_by(sig),
                    Some(OnSignal::Delay(ms)) => {
                        if delay_at.is_none() {
                            delay_at = Some(Instant::now() + Duration::from_millis(ms));
                        }
                    }
                    Some(OnSignal::Ignore) | None => {}
                }
            }
        }

        let now = Instant::now();
        if ready_at.is_some_and(|t| t <= now) {
            ready_at = None;
            do_ready(&o, &mut listener);
        }
        if delay_at.is_some_and(|t| t <= now) {
            exit_now(&o, 0);
        }
        if exit_at.is_some_and(|t| t <= now) {
            if let Some(sig) = o.kill_self {
                event(
                    &o.events,
                    &format!("KILLSELF {} {} {}", o.name, me, signame(sig)),
                );
                let _ = std::io::stdout().flush();
                die_by(sig);
            }
            exit_now(&o, o.code);
        }

        let next = [ready_at, delay_at, exit_at].into_iter().flatten().min();
        let timeout_ms: i32 = match next {
            None => -1,
            Some(t) => {
                let d = t.saturating_duration_since(now);
                // Round up so we never wake before the deadline and spin.
                (d.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32
            }
        };
        let mut pfd = libc::pollfd {
            fd: wake_r,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        let mut buf = [0u8; 64];
        // SAFETY: drains the non-blocking self-pipe into a live buffer.
        while unsafe { libc::read(wake_r, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}
