//! Paths a child (or another local user) can redirect: issue 13, findings 1 to 3, with
//! real processes. vigil runs as root; a child running as uid 65534 that can write a
//! directory on the way to a file vigil writes swaps the file, or a directory, for a
//! symbolic link to a root-owned file. vigil must never write, truncate, rename or remove
//! anything through it: output files at start and at rotation, the termination log, the
//! control socket and its lock file.
//!
//! The tests that need another user need root (a child with `user = 65534`, `chown`):
//! without it they are skipped here and fail on CI (`skip_or_fail_on_ci`).

#![allow(clippy::disallowed_methods)]

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};

use common::*;

/// The other user the children run as.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the test can act as another user; when not, skips (fails on CI).
fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skip_or_fail_on_ci(
        test,
        "the tests do not run as root",
        "this test runs a child as uid 65534 (or chowns a file to it) to check that vigil, \
         running as root, never writes through a symbolic link another user planted; \
         skipped, that goes untested",
        "run the tests as root (as .ci/run does)",
    );
    false
}

fn mode(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn mkdir(p: &Path, m: u32) {
    fs::create_dir(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
    mode(p, m);
}

/// A test directory everyone can enter (children run as another user), with `secret/`: a
/// root-owned directory (0755) that no child can write, holding files they must never
/// reach.
fn layout() -> (TestDir, PathBuf) {
    let dir = TestDir::new();
    mode(dir.path(), 0o755);
    let secret = dir.join("secret");
    mkdir(&secret, 0o755);
    (dir, secret)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `[process.w]` running `script` with `/bin/sh` as uid and gid 65534, its output as
/// `output`, plus `extra` lines.
fn as_nobody(script: &str, output: &str, extra: &str) -> String {
    format!(
        "[process.w]\ncommand = [\"/bin/sh\", \"-c\", {}]\nuser = {NOBODY}\ngroup = {NOBODY}\n\
         backoff = \"none\"\noutput = {output}\n{extra}\n",
        toml_str(script)
    )
}

/// A tree of `w` ([`as_nobody`]) that ends when `w` does; `top` goes first.
fn tree_as_nobody(script: &str, output: &str, top: &str) -> String {
    format!(
        "auto_shutdown = \"all_significant\"\n{top}\nchildren = [\"w\"]\n{}",
        as_nobody(
            script,
            output,
            "restart = \"temporary\"\nsignificant = true"
        )
    )
}

/// The end of every flood line.
const XS: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn run(dir: &TestDir, config: &Path) -> (i32, String) {
    let mut d = vigil_in(dir).arg("run").arg(config).spawn();
    let code = d.wait_exit(TIMEOUT);
    (code, log(&d))
}

/// Finding 1, rotation and start: the log directory is root's (0755), but its parent
/// belongs to the child's user, who renames the directory away and puts a link to a
/// root-owned directory in its place. vigil keeps rotating in the directory it opened
/// (rename on its descriptor), and at the next start refuses the planted link.
#[test]
fn a_child_cannot_redirect_its_log_file_through_a_swapped_directory() {
    if !root_or_skip("a_child_cannot_redirect_its_log_file_through_a_swapped_directory") {
        return;
    }
    let (dir, secret) = layout();
    fs::write(secret.join("app.log"), "root's own log\n").unwrap();
    let shared = dir.join("shared");
    mkdir(&shared, 0o755);
    mkdir(&shared.join("logs"), 0o755);
    std::os::unix::fs::chown(&shared, Some(NOBODY), Some(NOBODY)).unwrap();
    // The swap, then 40 lines of 60 bytes: 2.4 KB through a 1 KiB file, so at least two
    // rotations, all after the swap (nothing is written before it).
    let script = format!(
        "cd {} && mv logs moved && ln -s {} logs && echo swapped && i=0 && \
         while [ $i -lt 40 ]; do echo \"line $i {XS}\"; i=$((i+1)); done",
        shared.display(),
        secret.display()
    );
    let output = format!(
        "{{ file = {}, max_size = \"1KiB\", keep = 2 }}",
        toml_str(&shared.join("logs/app.log").display().to_string())
    );
    let config = dir.write("vigil.toml", &tree_as_nobody(&script, &output, ""));
    let (code, log1) = run(&dir, &config);
    assert_eq!(code, 0, "{log1}");
    assert!(
        fs::symlink_metadata(shared.join("logs"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the child swapped the directory"
    );
    // Nothing reached the root-owned directory: no rotation there, no new file, no line.
    assert_eq!(names(&secret), strs(&["app.log"]), "{log1}");
    assert_eq!(
        fs::read_to_string(secret.join("app.log")).unwrap(),
        "root's own log\n"
    );
    // Everything went to the directory vigil opened, now called `moved`.
    let moved = shared.join("moved");
    assert_eq!(
        names(&moved),
        strs(&["app.log", "app.log.1", "app.log.2"]),
        "{log1}"
    );
    let newest = fs::read_to_string(moved.join("app.log")).unwrap();
    assert!(newest.ends_with(&format!("line 39 {XS}\n")), "{newest}");
    // The next start: the link in a directory uid 65534 owns is not followed.
    let (code, log2) = run(&dir, &config);
    assert_eq!(code, 69, "{log2}");
    assert!(
        log2.contains("w: cannot open output file")
            && log2.contains(&format!(
                "{} is a symbolic link in {}, which is owned by uid {NOBODY}",
                shared.join("logs").display(),
                shared.display()
            )),
        "{log2}"
    );
    assert_eq!(names(&secret), strs(&["app.log"]));
    assert_eq!(
        fs::read_to_string(secret.join("app.log")).unwrap(),
        "root's own log\n"
    );
}

/// Finding 1, the directory rule and the file itself: a log directory that uid 65534
/// owns is refused unless `allow_shared_directory = true`; with it, a log file that the
/// child replaced with a link to a root-owned file (or with a FIFO) is refused, and the
/// root-owned file is untouched.
#[test]
fn a_log_directory_another_user_owns_is_refused_and_a_planted_link_never_followed() {
    if !root_or_skip(
        "a_log_directory_another_user_owns_is_refused_and_a_planted_link_never_followed",
    ) {
        return;
    }
    let (dir, secret) = layout();
    let owned = secret.join("owned");
    fs::write(&owned, "root's file\n").unwrap();
    let logs = dir.join("logs");
    mkdir(&logs, 0o755);
    std::os::unix::fs::chown(&logs, Some(NOBODY), Some(NOBODY)).unwrap();
    let file = logs.join("app.log");
    // The child plants the link itself, then writes.
    let script = format!(
        "ln -sf {} {}.new && mv -f {}.new {} && echo planted",
        owned.display(),
        file.display(),
        file.display(),
        file.display()
    );
    let plain = format!("{{ file = {} }}", toml_str(&file.display().to_string()));
    let config = dir.write("vigil.toml", &tree_as_nobody(&script, &plain, ""));
    let (code, log1) = run(&dir, &config);
    assert_eq!(code, 69, "{log1}");
    assert!(
        log1.contains(&format!(
            "w: refusing output file `{}`: its directory {} is owned by uid {NOBODY}",
            file.display(),
            logs.display()
        )) && log1.contains("process.w.output.allow_shared_directory = true"),
        "{log1}"
    );
    assert!(!file.exists(), "nothing was created");
    // Opted in: the child runs and swaps the file for a link (vigil's descriptor still
    // holds the original, now unlinked).
    let shared = format!(
        "{{ file = {}, allow_shared_directory = true }}",
        toml_str(&file.display().to_string())
    );
    let config = dir.write("vigil.toml", &tree_as_nobody(&script, &shared, ""));
    let (code, log2) = run(&dir, &config);
    assert_eq!(code, 0, "{log2}");
    assert!(
        fs::symlink_metadata(&file)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&owned).unwrap(), "root's file\n");
    // The next start refuses the link.
    let (code, log3) = run(&dir, &config);
    assert_eq!(code, 69, "{log3}");
    assert!(
        log3.contains(&format!(
            "{} is a symbolic link, and vigil never writes through one",
            file.display()
        )),
        "{log3}"
    );
    assert_eq!(fs::read_to_string(&owned).unwrap(), "root's file\n");
    // A FIFO there is refused without blocking.
    fs::remove_file(&file).unwrap();
    nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let (code, log4) = run(&dir, &config);
    assert_eq!(code, 69, "{log4}");
    assert!(log4.contains("is a FIFO, not a regular file"), "{log4}");
}

/// Finding 2: the termination log's directory is root's, but its parent is the child's;
/// the child swaps the directory for a link to a root-owned directory holding a file of
/// the same name, then makes the tree give up. vigil neither truncates nor writes it. A
/// configured termination log in a directory another user owns is refused at start-up.
#[test]
fn a_termination_log_behind_a_swapped_directory_is_never_truncated() {
    if !root_or_skip("a_termination_log_behind_a_swapped_directory_is_never_truncated") {
        return;
    }
    let (dir, secret) = layout();
    fs::write(secret.join("term.log"), "root's termination file\n").unwrap();
    let shared = dir.join("shared");
    mkdir(&shared, 0o755);
    mkdir(&shared.join("logs"), 0o755);
    std::os::unix::fs::chown(&shared, Some(NOBODY), Some(NOBODY)).unwrap();
    let term = shared.join("logs/term.log");
    let script = format!(
        "cd {} && {{ [ -L logs ] || {{ mv logs moved && ln -s {} logs; }}; }}; exit 3",
        shared.display(),
        secret.display()
    );
    let top = format!(
        "intensity = 1\nperiod = \"30s\"\ntermination_log = {}",
        toml_str(&term.display().to_string())
    );
    // A permanent process this time: restarted once, then the root gives up.
    let config = dir.write(
        "vigil.toml",
        &format!(
            "{top}\nchildren = [\"w\"]\n{}",
            as_nobody(&script, "\"inherit\"", "")
        ),
    );
    let (code, log1) = run(&dir, &config);
    assert_eq!(code, 75, "{log1}");
    assert!(
        log1.contains("cannot write the post-mortem to the termination log")
            && log1.contains(&format!(
                "{} is a symbolic link in {}",
                shared.join("logs").display(),
                shared.display()
            )),
        "{log1}"
    );
    assert_eq!(
        fs::read_to_string(secret.join("term.log")).unwrap(),
        "root's termination file\n"
    );
    assert_eq!(names(&secret), strs(&["term.log"]));
    assert!(!shared.join("moved/term.log").exists());
    // A termination log in a directory uid 65534 owns: refused before anything starts.
    let theirs = dir.join("theirs");
    mkdir(&theirs, 0o755);
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let top = format!(
        "termination_log = {}",
        toml_str(&theirs.join("term.log").display().to_string())
    );
    let config = dir.write(
        "vigil.toml",
        &tree_as_nobody("echo started; exit 0", "\"inherit\"", &top),
    );
    let (code, log2) = run(&dir, &config);
    assert_eq!(code, 69, "{log2}");
    assert!(
        log2.contains(&format!(
            "cannot use termination_log `{}`: its directory {} is owned by uid {NOBODY}",
            theirs.join("term.log").display(),
            theirs.display()
        )) && log2.contains("nothing was started"),
        "{log2}"
    );
    assert!(!log2.contains("started child=w"), "{log2}");
}

/// Finding 3: a socket path naming a regular file is refused (exit 69, nothing started)
/// and the file is kept.
#[test]
fn a_socket_path_naming_a_regular_file_is_refused_and_kept() {
    let dir = TestDir::new();
    let precious = dir.write("precious.txt", "not a socket\n");
    let config = dir.write(
        "vigil.toml",
        &format!("children = [\"a\"]\n{}", process(&dir, "a", &[], "")),
    );
    let mut d = vigil_in(&dir)
        .env("VIGIL_SOCKET", &precious)
        .arg("run")
        .arg(&config)
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    let log = log(&d);
    assert!(
        log.contains(&format!(
            "{} exists and is not a socket; vigil only ever replaces a stale socket",
            precious.display()
        )) && log.contains("nothing was started"),
        "{log}"
    );
    assert_eq!(fs::read_to_string(&precious).unwrap(), "not a socket\n");
    assert!(dir.read_events().all().is_empty(), "nothing was started");
}

/// Finding 3: `/tmp/vigil-UID -> /tmp` planted by another user in a sticky directory
/// everyone can write: vigil does not follow it, and creates nothing through it.
#[test]
fn a_planted_symlink_as_the_socket_directory_is_refused() {
    let dir = TestDir::new();
    let tmp = dir.join("tmp");
    mkdir(&tmp, 0o1777);
    let planted = tmp.join("vigil-dir");
    symlink(&tmp, &planted).unwrap();
    if is_root() {
        lchown(&planted, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let config = dir.write(
        "vigil.toml",
        &format!("children = [\"a\"]\n{}", process(&dir, "a", &[], "")),
    );
    let mut d = vigil_in(&dir)
        .env("VIGIL_SOCKET", planted.join("control.sock"))
        .arg("run")
        .arg(&config)
        .spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    let log = log(&d);
    assert!(
        log.contains(&format!(
            "{} is a symbolic link in {}, which has mode 1777",
            planted.display(),
            tmp.display()
        )),
        "{log}"
    );
    assert_eq!(
        names(&tmp),
        strs(&["vigil-dir"]),
        "nothing made through the link"
    );
    assert!(dir.read_events().all().is_empty(), "nothing was started");
}

/// Finding 3: in a sticky directory everyone can write, another user squats `PATH.lock`
/// (a file of theirs, or a link to a file of root's) or leaves a socket of theirs at
/// `PATH`: vigil refuses each, says why, and touches none of them.
#[test]
fn a_squatted_lock_file_or_socket_is_refused() {
    if !root_or_skip("a_squatted_lock_file_or_socket_is_refused") {
        return;
    }
    let (dir, secret) = layout();
    let tmp = dir.join("tmp");
    mkdir(&tmp, 0o1777);
    let config = dir.write(
        "vigil.toml",
        &format!("children = [\"a\"]\n{}", process(&dir, "a", &[], "")),
    );
    let start = |sock: &Path| {
        let mut d = vigil_in(&dir)
            .env("VIGIL_SOCKET", sock)
            .arg("run")
            .arg(&config)
            .spawn();
        let code = d.wait_exit(TIMEOUT);
        (code, log(&d))
    };
    // A lock file of uid 65534's.
    let sock = tmp.join("a.sock");
    let lock = tmp.join("a.sock.lock");
    fs::write(&lock, "").unwrap();
    std::os::unix::fs::chown(&lock, Some(NOBODY), Some(NOBODY)).unwrap();
    let (code, log1) = start(&sock);
    assert_eq!(code, 69, "{log1}");
    assert!(
        log1.contains(&format!(
            "{} belongs to uid {NOBODY}, not to vigil's uid 0",
            lock.display()
        )),
        "{log1}"
    );
    assert!(!sock.exists());
    // A lock file that is a link to a file root has not made yet.
    let sock = tmp.join("b.sock");
    let lock = tmp.join("b.sock.lock");
    symlink(secret.join("created"), &lock).unwrap();
    lchown(&lock, Some(NOBODY), Some(NOBODY)).unwrap();
    let (code, log2) = start(&sock);
    assert_eq!(code, 69, "{log2}");
    assert!(
        log2.contains(&format!(
            "{} is a symbolic link, and vigil never writes through one",
            lock.display()
        )),
        "{log2}"
    );
    assert!(
        !secret.join("created").exists(),
        "nothing created through the link"
    );
    // A socket of uid 65534's at the path.
    let sock = tmp.join("c.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    lchown(&sock, Some(NOBODY), Some(NOBODY)).unwrap();
    let (code, log3) = start(&sock);
    assert_eq!(code, 69, "{log3}");
    assert!(
        log3.contains(&format!(
            "the socket there belongs to uid {NOBODY}, not to vigil's uid 0"
        )),
        "{log3}"
    );
    assert!(fs::symlink_metadata(&sock).is_ok(), "their socket is kept");
    assert!(dir.read_events().all().is_empty(), "nothing was started");
}
