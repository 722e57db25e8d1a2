//! Process hygiene, checked from outside on real children through `/proc`:
//!
//! - descriptors: a child has only 0, 1 and 2 open (`/proc/<pid>/fd`), plus exactly the
//!   `notify_fd` its readiness asks for, with the control socket, a client connection
//!   and `[http]` open in vigil, and a descriptor vigil inherited without close-on-exec;
//! - signal state: `SigBlk` and `SigIgn` of a child are 0 (`/proc/<pid>/status`) although
//!   vigil was started with signals blocked and ignored;
//! - vigil's own cwd is `/`, and the directory it was started in can be unmounted (a
//!   tmpfs, where the test may mount) and removed while it runs;
//! - no child is left running after vigil exits: by SIGTERM, by giving up (75), and when
//!   vigil itself is SIGKILLed as an ordinary process (the parent-death signal; see
//!   RELIABILITY.md), for `vigil run` and `vigil exec`.
//!
//! The children are `/usr/bin/sleep` (a C program that changes no signal disposition and
//! opens nothing), so what `/proc` shows is what vigil handed over.

#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// The sorted descriptor numbers open in `pid`.
fn fds(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"))
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// A hex mask field (`SigBlk:`, `SigIgn:`) of `/proc/<pid>/status`.
fn status_mask(pid: i32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(line.trim(), 16).expect("hex mask")
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The live child of `parent` whose command line is `sleep <tag>`.
///
/// Returns once that `sleep` is blocked in its sleep: while it starts, `sleep` itself
/// opens locale files as fd 3 for a moment, which a descriptor check must not catch.
fn sleeper(parent: i32, tag: &str) -> i32 {
    let want = format!("sleep {tag} ");
    wait_for(
        &format!("`sleep {tag}` under {parent}, sleeping"),
        TIMEOUT,
        || {
            children_of(parent).into_iter().find(|&p| {
                is_alive(p) && cmdline(p) == want && {
                    // The first field of /proc/PID/syscall is the number of the blocking call:
                    // nanosleep (35) or clock_nanosleep (230) on x86_64.
                    let call =
                        std::fs::read_to_string(format!("/proc/{p}/syscall")).unwrap_or_default();
                    matches!(call.split(' ').next(), Some("35" | "230"))
                }
            })
        },
    )
}

/// A `[process.NAME]` running `sleep TAG` (TAG is a distinct number of seconds).
fn sleep_process(name: &str, tag: &str, extra: &str) -> String {
    format!("\n[process.{name}]\ncommand = [\"sleep\", \"{tag}\"]\n{extra}\n")
}

/// [`vigil_client`] with stdout and stderr together.
fn client(socket: &Path, args: &[&str]) -> (i32, String) {
    let (code, out, err) = vigil_client(socket, args);
    (code, out + &err)
}

fn all_gone(pids: &[i32]) -> Option<()> {
    pids.iter().all(|&p| !is_alive(p)).then_some(())
}

#[test]
fn children_get_stdio_and_their_notify_fd_only() {
    let dir = TestDir::new();
    let toml = String::from("children = [\"plain\", \"notified\"]\n[http]\nlisten = \"127.0.0.1:0\"\n")
        + &sleep_process("plain", "1001", "backoff = \"none\"")
        // Reports ready on fd 5 and keeps it open: `sleep` still holds it.
        + "\n[process.notified]\ncommand = [\"sh\", \"-c\", \"echo >&5; exec sleep 1002\"]\n\
           ready = { notify_fd = 5 }\n";
    let cfg = dir.write("vigil.toml", &toml);
    // vigil inherits fd 7 without close-on-exec (a leaky launcher).
    let held = std::fs::File::open(&cfg).unwrap();
    let held_fd = std::os::fd::AsRawFd::as_raw_fd(&held);
    let socket = dir.join("ctl.sock");
    let mut cmd = Command::new(vigil());
    cmd.arg("run")
        .arg(&cfg)
        .env("VIGIL_SOCKET", &socket)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(held_fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut vigil = ChildGuard::spawn(&mut cmd);
    let vpid = vigil.pid();
    let plain = sleeper(vpid, "1001");
    let notified = sleeper(vpid, "1002");
    wait_for("the control socket", TIMEOUT, || {
        socket.exists().then_some(())
    });
    // vigil itself holds more: the socket, the listener, the notify pipe, fd 7.
    assert!(fds(vpid).len() > 5, "vigil's fds: {:?}", fds(vpid));
    assert_eq!(fds(plain), vec![0, 1, 2], "plain child");
    assert_eq!(fds(notified), vec![0, 1, 2, 5], "child with notify_fd = 5");

    // A child spawned later, while a client connection is open in vigil, gets none of it.
    let conn = std::os::unix::net::UnixStream::connect(&socket).expect("connect");
    kill(plain, libc::SIGKILL);
    let again = wait_for("plain restarted", TIMEOUT, || {
        children_of(vpid)
            .into_iter()
            .find(|&p| p != plain && is_alive(p) && cmdline(p) == "sleep 1001 ")
    });
    assert_eq!(fds(again), vec![0, 1, 2], "restarted child");
    drop(conn);
    let (code, out) = client(&socket, &["status"]);
    assert_eq!(code, 0, "{out}");

    kill(vpid, libc::SIGTERM);
    assert_eq!(vigil.wait_exit(TIMEOUT), 0);
    drop(held);
}

#[test]
fn children_start_with_empty_mask_and_default_dispositions() {
    let dir = TestDir::new();
    let toml = String::from("children = [\"c\"]\n") + &sleep_process("c", "1003", "");
    let cfg = dir.write("vigil.toml", &toml);
    let mut cmd = Command::new(vigil());
    cmd.arg("run")
        .arg(&cfg)
        .env("VIGIL_SOCKET", dir.join("ctl.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // vigil starts with signals ignored and blocked (nohup, a CI runner, a shell's
    // background job), real-time ones included.
    // SAFETY: signal and sigprocmask are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGQUIT,
                libc::SIGPIPE,
                libc::SIGUSR2,
                libc::SIGTTOU,
                libc::SIGRTMIN() + 2,
            ] {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [
                libc::SIGUSR1,
                libc::SIGALRM,
                libc::SIGTERM,
                libc::SIGCHLD,
                libc::SIGRTMIN() + 3,
            ] {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut vigil = ChildGuard::spawn(&mut cmd);
    let c = sleeper(vigil.pid(), "1003");
    // The test itself is what started vigil with that state; the child has none of it.
    assert_eq!(status_mask(c, "SigBlk:"), 0, "child's blocked mask");
    assert_eq!(status_mask(c, "SigIgn:"), 0, "child's ignored signals");
    assert_eq!(status_mask(c, "SigPnd:"), 0, "child's pending signals");
    kill(vigil.pid(), libc::SIGTERM);
    assert_eq!(vigil.wait_exit(TIMEOUT), 0);
}

#[test]
fn vigil_does_not_pin_its_start_directory() {
    let dir = TestDir::new();
    let start = dir.join("start");
    std::fs::create_dir(&start).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "vigil-test"])
        .arg(&start)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot mount a tmpfs here: checking removal of the directory only");
    }
    let mut mount = Unmount(mounted.then(|| start.clone()));
    let toml = String::from("children = [\"c\"]\n") + &sleep_process("c", "1004", "cwd = \"/\"");
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir)
        .current_dir(&start)
        .arg("run")
        .arg(&cfg)
        .spawn();
    let c = sleeper(d.pid(), "1004");
    let cwd = |p: i32| std::fs::read_link(format!("/proc/{p}/cwd")).expect("read cwd");
    assert_eq!(cwd(d.pid()), Path::new("/"), "vigil's cwd");
    assert_eq!(cwd(c), Path::new("/"), "child's cwd");
    // The directory vigil was started in can go away: unmounted (where the test may
    // mount: a tmpfs on it) and removed; vigil keeps working.
    if mounted {
        let out = Command::new("umount")
            .arg(&start)
            .output()
            .expect("run umount");
        assert!(
            out.status.success(),
            "umount of vigil's start directory: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        mount.0 = None;
    }
    std::fs::remove_dir(&start).expect("remove vigil's start directory while it runs");
    let (code, out) = client(d.socket(), &["status"]);
    assert_eq!(code, 0, "{out}");
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
}

/// Lazily unmounts its path on drop (a failed test must not leave a mount behind).
struct Unmount(Option<std::path::PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}

/// A tree: root [a, sup [b, c]], each a `sleep`.
fn tree_toml(extra_root: &str) -> String {
    format!(
        "{extra_root}\nchildren = [\"a\", \"sup\"]\n[supervisor.sup]\nchildren = [\"b\", \"c\"]\n"
    ) + &sleep_process("a", "1011", "")
        + &sleep_process("b", "1012", "")
        + &sleep_process("c", "1013", "")
}

fn tree_pids(vigil: i32) -> Vec<i32> {
    ["1011", "1012", "1013"]
        .iter()
        .map(|t| sleeper(vigil, t))
        .collect()
}

#[test]
fn no_child_left_after_sigterm() {
    let dir = TestDir::new();
    let cfg = dir.write("vigil.toml", &tree_toml(""));
    let mut d = vigil_in(&dir).arg("run").arg(&cfg).spawn();
    let pids = tree_pids(d.pid());
    d.signal_vigil(libc::SIGTERM);
    assert_eq!(d.wait_exit(TIMEOUT), 0);
    // vigil waits for its children before it exits: nothing may be left at all.
    let left: Vec<i32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
    assert!(left.is_empty(), "children left after SIGTERM: {left:?}");
}

#[test]
fn no_child_left_after_give_up() {
    let dir = TestDir::new();
    let toml = String::from(
        "intensity = 0\nchildren = [\"a\", \"sup\", \"crash\"]\n[supervisor.sup]\nchildren = [\"b\", \"c\"]\n",
    ) + &sleep_process("a", "1021", "")
        + &sleep_process("b", "1022", "")
        + &sleep_process("c", "1023", "")
        + &process(&dir, "crash", &["--exit-after", "300", "--code", "3"], "");
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir).arg("run").arg(&cfg).spawn();
    let pids: Vec<i32> = ["1021", "1022", "1023"]
        .iter()
        .map(|t| sleeper(d.pid(), t))
        .collect();
    assert_eq!(d.wait_exit(TIMEOUT), 75, "gave up");
    let left: Vec<i32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
    assert!(left.is_empty(), "children left after giving up: {left:?}");
}

#[test]
fn no_child_left_when_vigil_is_sigkilled() {
    let dir = TestDir::new();
    // The children would survive a SIGTERM to their group: only the parent-death signal
    // (SIGKILL) can take them down when vigil dies without stopping them.
    let toml = String::from(
        "children = [\"a\", \"sup\", \"stubborn\"]\n[supervisor.sup]\nchildren = [\"b\", \"c\"]\n",
    ) + &sleep_process("a", "1031", "")
        + &sleep_process("b", "1032", "")
        + &sleep_process("c", "1033", "")
        + &process(&dir, "stubborn", &["--on-term", "ignore"], "");
    let cfg = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir).arg("run").arg(&cfg).spawn();
    let mut pids: Vec<i32> = ["1031", "1032", "1033"]
        .iter()
        .map(|t| sleeper(d.pid(), t))
        .collect();
    pids.extend(wait_started(&dir, &["stubborn"]).starts("stubborn"));
    assert!(pids.iter().all(|&p| is_alive(p)));
    d.signal_vigil(libc::SIGKILL);
    assert_eq!(d.wait_exit(TIMEOUT), 128 + libc::SIGKILL);
    wait_for(
        &format!("children {pids:?} to die with vigil"),
        TIMEOUT,
        || all_gone(&pids),
    );
}

#[test]
fn exec_child_does_not_outlive_a_sigkilled_vigil() {
    let dir = TestDir::new();
    let mut d = vigil_in(&dir).args(["exec", "--", "sleep", "1041"]).spawn();
    let c = sleeper(d.pid(), "1041");
    d.signal_vigil(libc::SIGKILL);
    assert_eq!(d.wait_exit(TIMEOUT), 128 + libc::SIGKILL);
    wait_for("the exec child to die with vigil", TIMEOUT, || {
        all_gone(&[c])
    });
}
