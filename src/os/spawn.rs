//! Starting one OS process from a [`ProcessSpec`].
//!
//! This module owns how a child is started: argv exec without a shell, the inherited
//! environment plus the spec's overrides (and the `user`'s login variables), the working
//! directory, user, group and supplementary groups, the capabilities it keeps
//! (`capabilities`) and `no_new_privileges`, a process group of its own (so the runtime
//! can signal the whole group), and a clean signal state (every disposition `SIG_DFL`,
//! empty mask; see [`crate::os::sys`]), the parent-death signal (SIGKILL when vigil's
//! loop thread exits, `PR_SET_PDEATHSIG`). stdin, stdout and stderr are inherited.
//! Descriptors other than 0, 1 and 2 are not: vigil opens everything close-on-exec and
//! marks inherited ones so at startup.
//!
//! Spawning uses `std::process::Command` and is synchronous, on the event loop's thread:
//! the pid is returned before the loop can await anything, so it is registered before
//! the reaper can see the process exit. The `std::process::Child` is dropped at once,
//! which neither waits nor kills. (When `exec` fails, std reaps the failed child itself
//! before `spawn` returns; that is safe precisely because nothing else runs meanwhile.)
//!
//! Every pid spawned is registered as a live process group with [`crate::fatal`] (the
//! panic hook SIGKILLs those groups) until `os::reaper` reaps it.
//!
//! Must never: wait for the child, use `tokio::process`, run a shell, or allocate
//! between fork and exec (user and group lookups, and the check that vigil can drop
//! capabilities, happen before the fork); never pass vigil's own supplementary groups or
//! login variables to a child that runs as another group or user.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::process::Stdio;

use nix::unistd::{Gid, Group, Uid, User};

/// Variables meant for vigil itself, which no child inherits (a process's `env` may set
/// them on purpose): where its config and control socket are (`VIGIL_CONFIG`,
/// `VIGIL_SOCKET`: a child running `vigil status` should not reach its own supervisor by
/// accident), and systemd's socket activation (`LISTEN_FDS`, `LISTEN_PID`,
/// `LISTEN_FDNAMES`), whose descriptors vigil does not pass on: a child would look for
/// sockets that are not there. The sd_notify variables are kept out too
/// (`runtime::notify::CONSUMED_ENV`).
pub const OWN_ENV: [&str; 5] = [
    "VIGIL_CONFIG",
    "VIGIL_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

use crate::os::sys::{self, ChildSetup, Pid};
use crate::spec::{CapSet, ProcessSpec};

/// The stdio a child is started with.
#[derive(Debug)]
pub struct ChildStdio {
    /// Its fd 1.
    pub stdout: Stdio,
    /// Its fd 2.
    pub stderr: Stdio,
}

impl ChildStdio {
    /// vigil's own stdout and stderr (`inherit`).
    pub fn inherit() -> ChildStdio {
        ChildStdio {
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }
}

/// Why a process could not be started. Each message names the process, the command,
/// what failed, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program does not exist (ENOENT): not in `PATH`, or a wrong path.
    #[error(
        "{name}: command `{program}` not found{where_}; check the spelling, install it, \
         or give its absolute path",
        where_ = if program.contains('/') { "" } else { " in PATH" }
    )]
    NotFound {
        /// The process's name.
        name: String,
        /// `command[0]`.
        program: String,
    },
    /// The program exists but cannot be executed (EACCES, ENOEXEC, ...).
    #[error(
        "{name}: `{program}` cannot be executed ({source}); make sure it is a regular file \
         with execute permission (chmod +x) and, for a script, a valid #! line"
    )]
    NotExecutable {
        /// The process's name.
        name: String,
        /// `command[0]`.
        program: String,
        /// The error from exec.
        source: io::Error,
    },
    /// The working directory does not exist or is not usable.
    #[error(
        "{name}: working directory `{}` is not usable ({source}); create it or fix `cwd`",
        cwd.display()
    )]
    BadCwd {
        /// The process's name.
        name: String,
        /// The directory.
        cwd: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// `user` names no user in the passwd database.
    #[error(
        "{name}: unknown user `{user}`{detail}; create the user in the image or give a \
         numeric uid"
    )]
    UnknownUser {
        /// The process's name.
        name: String,
        /// The `user` setting.
        user: String,
        /// Extra detail (a lookup error), or empty.
        detail: String,
    },
    /// `group` names no group in the group database.
    #[error(
        "{name}: unknown group `{group}`{detail}; create the group in the image or give \
         a numeric gid"
    )]
    UnknownGroup {
        /// The process's name.
        name: String,
        /// The `group` setting.
        group: String,
        /// Extra detail (a lookup error), or empty.
        detail: String,
    },
    /// Switching user or group failed in the child (EPERM: vigil is not root).
    #[error(
        "{name}: cannot switch to {target} ({source}); vigil must run as root to start \
         children as another user or group"
    )]
    Credentials {
        /// The process's name.
        name: String,
        /// `user X`, `group Y` or both.
        target: String,
        /// The error from setgroups/setgid/setuid.
        source: io::Error,
    },
    /// `capabilities` asks to drop capabilities and vigil cannot (no CAP_SETPCAP).
    #[error(
        "{name}: cannot limit the capabilities to [{keep}]: vigil lacks CAP_SETPCAP, which \
         dropping capabilities from a child's bounding set needs; run vigil as root with \
         CAP_SETPCAP (container runtimes grant it by default) or remove `capabilities`"
    )]
    Capabilities {
        /// The process's name.
        name: String,
        /// The capabilities to keep, as `CAP_A, CAP_B`.
        keep: String,
    },
    /// Out of processes or descriptors (EAGAIN, EMFILE, ENFILE, ENOMEM).
    #[error(
        "{name}: cannot start `{program}`: out of resources ({source}); raise the limits \
         (ulimit -u / -n, the pids cgroup) or stop some processes"
    )]
    ResourceLimit {
        /// The process's name.
        name: String,
        /// `command[0]`.
        program: String,
        /// The error from fork/exec.
        source: io::Error,
    },
    /// Anything else.
    #[error("{name}: cannot start `{program}`: {source}")]
    Other {
        /// The process's name.
        name: String,
        /// `command[0]`.
        program: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl SpawnError {
    /// The exit code `vigil exec` uses for this failure, with the shell's and Docker's
    /// conventions: 127 when the command is not found, 126 when it was found but could
    /// not be started.
    pub fn exec_exit_code(&self) -> u8 {
        match self {
            SpawnError::NotFound { .. } => crate::exit::NOT_FOUND,
            _ => crate::exit::NOT_EXECUTABLE,
        }
    }
}

/// Extra options for [`spawn_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SpawnOptions {
    /// Make the child's process group the foreground group of the terminal on stdin
    /// (`vigil exec` in an interactive terminal). Best effort.
    pub foreground_tty: bool,
    /// Pass descriptor `.0` of vigil (close-on-exec) to the child as descriptor `.1`
    /// (a readiness `notify_fd`). The caller keeps `.0` open until the spawn returns.
    pub pass_fd: Option<(std::os::fd::RawFd, std::os::fd::RawFd)>,
}

/// Starts `spec` as process `name` and returns its pid (which is also its process group
/// id). `default_cwd` is used when the spec sets no `cwd`, and relative `cwd`s are
/// resolved against it (vigil itself runs in `/`).
pub fn spawn(name: &str, spec: &ProcessSpec, default_cwd: &Path) -> Result<Pid, SpawnError> {
    spawn_with(name, spec, default_cwd, SpawnOptions::default())
}

/// [`spawn`] with [`SpawnOptions`].
pub fn spawn_with(
    name: &str,
    spec: &ProcessSpec,
    default_cwd: &Path,
    options: SpawnOptions,
) -> Result<Pid, SpawnError> {
    spawn_inner(name, spec, default_cwd, options, ChildStdio::inherit())
}

/// [`spawn_with`] with the child's stdout and stderr set to `stdio` (see
/// [`super::output`]); the `Stdio`s are dropped, closing vigil's copies, before it returns.
pub fn spawn_with_output(
    name: &str,
    spec: &ProcessSpec,
    default_cwd: &Path,
    options: SpawnOptions,
    stdio: ChildStdio,
) -> Result<Pid, SpawnError> {
    spawn_inner(name, spec, default_cwd, options, stdio)
}

fn spawn_inner(
    name: &str,
    spec: &ProcessSpec,
    default_cwd: &Path,
    options: SpawnOptions,
    stdio: ChildStdio,
) -> Result<Pid, SpawnError> {
    let Some(program) = spec.command.first() else {
        return Err(SpawnError::Other {
            name: name.to_string(),
            program: String::new(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "empty command"),
        });
    };
    let cwd = match &spec.cwd {
        Some(dir) => default_cwd.join(dir),
        None => default_cwd.to_path_buf(),
    };
    check_cwd(name, &cwd)?;
    let mut setup = resolve_credentials(name, spec.user.as_deref(), spec.group.as_deref())?;
    setup.keep_capabilities = check_capabilities(name, spec.capabilities)?;
    setup.no_new_privileges = spec.no_new_privileges;
    setup.foreground = options.foreground_tty;
    setup.pass_fd = options.pass_fd;

    let mut cmd = Command::new(program);
    // vigil's own variables; a spec's `env` may set them on purpose.
    for name in crate::runtime::notify::CONSUMED_ENV
        .into_iter()
        .chain(OWN_ENV)
    {
        cmd.env_remove(name);
    }
    cmd.args(&spec.command[1..])
        .envs(login_env(spec.user.as_deref()))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cwd)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr)
        .process_group(0);
    sys::install_pre_exec(&mut cmd, setup);

    // Every signal stays blocked across fork+exec, so none of vigil's handlers can run in
    // the child before it has reset them (signals arriving meanwhile stay pending).
    let blocked = sys::BlockedSignals::all();
    let result = cmd.spawn();
    drop(blocked);

    match result {
        // Dropping the Child neither waits nor kills; the reaper collects the exit.
        Ok(child) => {
            let pid = child.id() as Pid;
            // Live until the reaper reaps it: the panic hook kills its group.
            crate::fatal::register_live_group(pid);
            Ok(pid)
        }
        Err(e) => Err(classify(name, program, &cwd, spec, e)),
    }
}

/// `CAP_SETPCAP`, which dropping from the bounding set needs.
const CAP_SETPCAP: u32 = 8;

/// The capability set the child keeps, checked before the fork: when some capability
/// has to be dropped, vigil must have `CAP_SETPCAP`, or the child would fail with a bare
/// EPERM.
fn check_capabilities(name: &str, keep: Option<CapSet>) -> Result<Option<u64>, SpawnError> {
    let Some(keep) = keep else {
        return Ok(None);
    };
    let to_drop = sys::bounding_set() & !keep.0;
    if to_drop != 0 && sys::has_effective_capability(CAP_SETPCAP) == Some(false) {
        return Err(SpawnError::Capabilities {
            name: name.to_string(),
            keep: keep.names().join(", "),
        });
    }
    Ok(Some(keep.0))
}

fn check_cwd(name: &str, cwd: &Path) -> Result<(), SpawnError> {
    let bad = |source| SpawnError::BadCwd {
        name: name.to_string(),
        cwd: cwd.to_path_buf(),
        source,
    };
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(bad(io::Error::from_raw_os_error(libc::ENOTDIR))),
        Err(e) => Err(bad(e)),
    }
}

/// Turns the error from `Command::spawn` into a [`SpawnError`].
fn classify(name: &str, program: &str, cwd: &Path, spec: &ProcessSpec, e: io::Error) -> SpawnError {
    let name_s = name.to_string();
    let program_s = program.to_string();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
            // Either the program or the directory; the directory was fine a moment ago.
            if let Err(bad) = check_cwd(name, cwd) {
                return bad;
            }
            SpawnError::NotFound {
                name: name_s,
                program: program_s,
            }
        }
        Some(libc::EPERM) if spec.user.is_some() || spec.group.is_some() => {
            SpawnError::Credentials {
                name: name_s,
                target: credential_target(spec),
                source: e,
            }
        }
        Some(
            libc::EACCES
            | libc::ENOEXEC
            | libc::EPERM
            | libc::EISDIR
            | libc::ETXTBSY
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::ELIBBAD,
        ) => SpawnError::NotExecutable {
            name: name_s,
            program: program_s,
            source: e,
        },
        Some(libc::EAGAIN | libc::EMFILE | libc::ENFILE | libc::ENOMEM) => {
            SpawnError::ResourceLimit {
                name: name_s,
                program: program_s,
                source: e,
            }
        }
        _ => SpawnError::Other {
            name: name_s,
            program: program_s,
            source: e,
        },
    }
}

fn credential_target(spec: &ProcessSpec) -> String {
    match (&spec.user, &spec.group) {
        (Some(u), Some(g)) => format!("user `{u}` and group `{g}`"),
        (Some(u), None) => format!("user `{u}`"),
        (None, Some(g)) => format!("group `{g}`"),
        (None, None) => "another user".to_string(),
    }
}

/// `HOME`, `USER`, `LOGNAME` and `SHELL` of the `user` a child runs as, as systemd sets
/// them for `User=`; the process's own `env` overrides them. A numeric uid without a
/// passwd entry gets `USER` and `LOGNAME` set to the number and `HOME` to `/`, never
/// vigil's own (`SHELL` is left as inherited). Nothing when no user is set.
fn login_env(user: Option<&str>) -> Vec<(&'static str, String)> {
    let entry = match user {
        None => return Vec::new(),
        Some(u) => match u.parse::<u32>() {
            Ok(n) => User::from_uid(Uid::from_raw(n)),
            Err(_) => User::from_name(u),
        },
    };
    match entry {
        Ok(Some(e)) => vec![
            ("HOME", e.dir.display().to_string()),
            ("USER", e.name.clone()),
            ("LOGNAME", e.name),
            ("SHELL", e.shell.display().to_string()),
        ],
        // No entry (a name without one was refused before): the uid.
        _ => user.map_or_else(Vec::new, |u| {
            let uid = u
                .parse::<u32>()
                .map_or_else(|_| u.to_string(), |n| n.to_string());
            vec![
                ("HOME", "/".to_string()),
                ("USER", uid.clone()),
                ("LOGNAME", uid),
            ]
        }),
    }
}

/// Resolves `user` and `group` to ids and the supplementary group list, before the fork.
///
/// - `user` (name or numeric uid): the uid; its primary group from the passwd entry
///   unless `group` is given; supplementary groups as `initgroups` would set them
///   (`getgrouplist`). A numeric uid without a passwd entry runs with vigil's own gid
///   (unless `group` is given) and no supplementary groups, as Docker does.
/// - `group` alone: the gid changes, and the supplementary groups become exactly that
///   gid (vigil's own, root's, are never passed on).
///
/// When vigil is not root, supplementary groups are left alone (only root may set
/// them), and ids equal to vigil's own are not switched at all.
fn resolve_credentials(
    name: &str,
    user: Option<&str>,
    group: Option<&str>,
) -> Result<ChildSetup, SpawnError> {
    let mut setup = ChildSetup::default();
    if user.is_none() && group.is_none() {
        return Ok(setup);
    }
    let gid = match group {
        Some(g) => Some(lookup_group(name, g)?),
        None => None,
    };
    let root = Uid::effective().is_root();
    if let Some(u) = user {
        let (uid, entry) = lookup_user(name, u)?;
        let primary = gid.or(entry.as_ref().map(|e| e.gid));
        let groups = match (&entry, primary) {
            (Some(e), Some(g)) => CString::new(e.name.as_str())
                .ok()
                .and_then(|c| nix::unistd::getgrouplist(&c, g).ok())
                .unwrap_or_else(|| vec![g]),
            (None, Some(g)) => vec![g],
            (_, None) => Vec::new(),
        };
        setup.uid = Some(uid.as_raw());
        setup.gid = primary.map(Gid::as_raw);
        if root {
            setup.groups = Some(groups.into_iter().map(Gid::as_raw).collect());
        }
    } else {
        setup.gid = gid.map(Gid::as_raw);
        if root {
            setup.groups = setup.gid.map(|g| vec![g]);
        }
    }
    if !root {
        // An unprivileged vigil can only "switch" to what it already is.
        if setup.uid == Some(Uid::effective().as_raw()) {
            setup.uid = None;
        }
        if setup.gid == Some(Gid::effective().as_raw()) {
            setup.gid = None;
        }
    }
    Ok(setup)
}

fn lookup_user(name: &str, user: &str) -> Result<(Uid, Option<User>), SpawnError> {
    let unknown = |detail: String| SpawnError::UnknownUser {
        name: name.to_string(),
        user: user.to_string(),
        detail,
    };
    if let Ok(n) = user.parse::<u32>() {
        let uid = Uid::from_raw(n);
        return Ok((uid, User::from_uid(uid).ok().flatten()));
    }
    match User::from_name(user) {
        Ok(Some(u)) => Ok((u.uid, Some(u))),
        Ok(None) => Err(unknown(String::new())),
        Err(e) => Err(unknown(format!(" (lookup failed: {e})"))),
    }
}

fn lookup_group(name: &str, group: &str) -> Result<Gid, SpawnError> {
    let unknown = |detail: String| SpawnError::UnknownGroup {
        name: name.to_string(),
        group: group.to_string(),
        detail,
    };
    if let Ok(n) = group.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(unknown(String::new())),
        Err(e) => Err(unknown(format!(" (lookup failed: {e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_ids_need_no_database_entry() {
        let setup = resolve_credentials("t", Some("4242"), Some("4343")).unwrap();
        if Uid::effective().is_root() {
            assert_eq!(setup.uid, Some(4242));
            assert_eq!(setup.gid, Some(4343));
            assert_eq!(setup.groups, Some(vec![4343]));
        }
        let setup = resolve_credentials("t", None, Some("4343")).unwrap();
        if Uid::effective().is_root() {
            assert_eq!(setup.uid, None);
            assert_eq!(setup.gid, Some(4343));
            assert_eq!(setup.groups, Some(vec![4343]), "root's groups are not kept");
        }
    }

    #[test]
    fn names_resolve_through_the_databases() {
        let setup = resolve_credentials("t", Some("root"), None).unwrap();
        if Uid::effective().is_root() {
            assert_eq!(setup.gid, Some(0));
            assert!(setup.groups.as_ref().is_some_and(|g| g.contains(&0)));
        }
        let err = resolve_credentials("web", Some("no-such-user-vigil"), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("web") && msg.contains("no-such-user-vigil"),
            "{msg}"
        );
        let err = resolve_credentials("web", None, Some("no-such-group-vigil")).unwrap_err();
        assert!(matches!(err, SpawnError::UnknownGroup { .. }), "{err}");
    }

    #[test]
    fn login_environment_comes_from_the_passwd_entry() {
        let env = login_env(Some("root"));
        assert!(env.contains(&("USER", "root".to_string())), "{env:?}");
        assert!(env.contains(&("HOME", "/root".to_string())), "{env:?}");
        assert_eq!(
            login_env(Some("0")),
            env,
            "a numeric uid finds the same entry"
        );
        assert!(login_env(None).is_empty());
        let none = login_env(Some("4000000"));
        assert_eq!(
            none,
            vec![
                ("HOME", "/".to_string()),
                ("USER", "4000000".to_string()),
                ("LOGNAME", "4000000".to_string()),
            ],
            "no entry: never vigil's own"
        );
    }

    #[test]
    fn missing_cwd_is_reported_before_forking() {
        let spec = ProcessSpec {
            command: vec!["true".into()],
            stop_signal: crate::spec::Signal::TERM,
            leftovers: Default::default(),
            success_exit_codes: vec![0],
            env: vec![],
            cwd: Some("/no/such/dir/vigil".into()),
            user: None,
            group: None,
            no_new_privileges: false,
            capabilities: None,
            output: Default::default(),
            backoff: crate::spec::Backoff::None,
            ready: None,
            health: None,
        };
        let err = spawn("web", &spec, Path::new("/")).unwrap_err();
        assert!(matches!(err, SpawnError::BadCwd { .. }), "{err}");
        assert!(err.to_string().contains("/no/such/dir/vigil"), "{err}");
    }
}
