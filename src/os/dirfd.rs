//! Opening files in places another user may be able to write, without ever being
//! redirected: output files, the termination log, the control socket and its lock.
//!
//! vigil runs as root next to children that run as other users. A path such as
//! `/var/log/app/app.log` is only as safe as every directory on it: a child that can write
//! one of them can replace the file, or a directory on the way, with a symbolic link to a
//! file it must not touch (`/etc/cron.d/x`), and root vigil would append to it, truncate
//! it or rename it. So vigil never hands such a path to `open(2)` whole:
//!
//! - [`open_dir`] walks the directory part one component at a time, each opened with
//!   `O_PATH | O_DIRECTORY | O_NOFOLLOW` relative to the descriptor of the one before. A
//!   symbolic link on the way is followed only when it sits in a directory that only root
//!   or vigil's own user can write (`/var/run -> /run`: only root could have made it);
//!   anywhere else it is refused, whoever owns it. What was opened is what is checked
//!   ([`Dir::others_can_write`] is an `fstat` of the descriptor), so renaming things
//!   after the walk changes nothing: every later operation is relative to the descriptor.
//! - [`Dir::open_regular`] opens the last component with `O_NOFOLLOW` (a symbolic link is
//!   refused), `O_NONBLOCK` (a FIFO planted there never blocks the loop) and `O_NOCTTY`,
//!   looks at it first with `fstatat(AT_SYMLINK_NOFOLLOW)` so that a device or FIFO is not
//!   even opened, and checks with `fstat` that what it opened is a regular file with one
//!   link (a second name could be a hard link to a file vigil must not write). It never
//!   truncates at open: a caller truncates the checked descriptor.
//! - Rotation and removal are `renameat` and `unlinkat` on the directory's descriptor.
//!
//! No `unsafe` here: nix's `openat`, `fstat`, `fstatat`, `mkdirat`, `readlinkat`,
//! `renameat`, `unlinkat` and `fchmodat` are safe wrappers. (`openat2` with
//! `RESOLVE_NO_SYMLINKS` would resolve a whole path in one call, but it cannot follow the
//! trusted links above, is missing on kernels before 5.6 and in some seccomp profiles,
//! and would be a second code path for the same guarantee: the walk is used everywhere.)
//!
//! Must never: follow a symbolic link that another user could have made, open anything
//! but a directory on the way or a regular file at the end, or block on what it opens.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, FcntlArg, OFlag};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag};

/// Symbolic links followed in one walk at most (the kernel's own limit, `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// The flags every directory on a walk is opened with.
fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// vigil's effective uid: the one user besides root whose directories are trusted.
fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// An `io::Error` of the kind `e` has, with `msg` as its text.
fn error(e: Errno, msg: String) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), msg)
}

/// The file type of `st`.
fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Describes a file type for messages.
fn type_name(st: &FileStat) -> &'static str {
    match file_type(st) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "a file of an unknown type",
    }
}

/// Why another user than root and vigil's could write (create, rename, replace entries
/// in) the directory `st`, or `None`. With `sticky_ok`, a sticky directory (`/tmp`) owned
/// by root or vigil's user is accepted: there nobody can rename or remove what vigil
/// made.
fn writable_by_others(st: &FileStat, sticky_ok: bool) -> Option<String> {
    let (uid, mode) = (st.st_uid, st.st_mode & 0o7777);
    if uid != 0 && uid != me() {
        return Some(format!("is owned by uid {uid}"));
    }
    if mode & 0o022 != 0 && !(sticky_ok && mode & 0o1000 != 0) {
        return Some(format!("has mode {mode:04o} (writable by group or others)"));
    }
    None
}

/// One step of a walk.
enum Step {
    Root,
    Parent,
    Name(OsString),
}

/// The steps of `path`, in order.
fn steps(path: &Path) -> Vec<Step> {
    path.components()
        .filter_map(|c| match c {
            Component::RootDir | Component::Prefix(_) => Some(Step::Root),
            Component::CurDir => None,
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(n) => Some(Step::Name(n.to_owned())),
        })
        .collect()
}

/// Splits a file's path into its directory and its name; refuses a path that names no
/// file (`/`, `..`, a trailing `/.`).
pub fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names a directory, not a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// A directory held open by descriptor (`O_PATH`); everything done in it is relative to
/// the descriptor, whatever happens to its path afterwards.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// The path it was opened by, for messages.
    path: PathBuf,
}

/// Opens the directory `path` by walking it one component at a time (see the module
/// documentation); with `create`, missing directories are made with mode 0700 on the
/// way. The error says which component was refused and why.
pub fn open_dir(path: &Path, create: bool) -> io::Result<Dir> {
    let mut queue: VecDeque<Step> = steps(path).into();
    let (mut cur, mut shown) = if path.is_absolute() {
        // The first step is the root itself.
        queue.pop_front();
        (open_root()?, PathBuf::from("/"))
    } else {
        let fd = nix::fcntl::openat(AT_FDCWD, ".", dir_flags(), Mode::empty())
            .map_err(|e| error(e, format!("cannot open the current directory: {e}")))?;
        (fd, PathBuf::new())
    };
    let mut links = 0;
    while let Some(step) = queue.pop_front() {
        let name = match step {
            Step::Root => {
                cur = open_root()?;
                shown = PathBuf::from("/");
                continue;
            }
            Step::Parent => {
                cur = nix::fcntl::openat(&cur, "..", dir_flags(), Mode::empty())
                    .map_err(|e| error(e, format!("cannot open {}: {e}", shown.display())))?;
                shown.push("..");
                continue;
            }
            Step::Name(name) => name,
        };
        let here = shown.join(&name);
        let mut opened = nix::fcntl::openat(&cur, name.as_os_str(), dir_flags(), Mode::empty());
        if create && matches!(opened, Err(Errno::ENOENT)) {
            match nix::sys::stat::mkdirat(&cur, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(error(
                        e,
                        format!("cannot create the directory {}: {e}", here.display()),
                    ));
                }
            }
            opened = nix::fcntl::openat(&cur, name.as_os_str(), dir_flags(), Mode::empty());
        }
        match opened {
            Ok(fd) => {
                cur = fd;
                shown = here;
            }
            Err(e @ (Errno::ELOOP | Errno::ENOTDIR)) => {
                let st = nix::sys::stat::fstatat(
                    &cur,
                    name.as_os_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| error(e, format!("cannot inspect {}: {e}", here.display())))?;
                if file_type(&st) != SFlag::S_IFLNK {
                    return Err(error(
                        e,
                        format!("{} is {}, not a directory", here.display(), type_name(&st)),
                    ));
                }
                let parent = nix::sys::stat::fstat(&cur)
                    .map_err(|e| error(e, format!("cannot inspect {}: {e}", shown.display())))?;
                if let Some(why) = writable_by_others(&parent, false) {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "{} is a symbolic link in {}, which {why}: another user could have \
                             made it, and vigil does not follow it (replace it with the real \
                             directory, or use the path it points to)",
                            here.display(),
                            shown.display()
                        ),
                    ));
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(error(
                        Errno::ELOOP,
                        format!("too many symbolic links on the way to {}", path.display()),
                    ));
                }
                let target = nix::fcntl::readlinkat(&cur, name.as_os_str()).map_err(|e| {
                    error(e, format!("cannot read the link {}: {e}", here.display()))
                })?;
                for s in steps(Path::new(&target)).into_iter().rev() {
                    queue.push_front(s);
                }
                if Path::new(&target).is_absolute() {
                    queue.push_front(Step::Root);
                }
            }
            Err(e) => {
                return Err(error(e, format!("cannot open {}: {e}", here.display())));
            }
        }
    }
    Ok(Dir {
        fd: cur,
        path: path.to_path_buf(),
    })
}

fn open_root() -> io::Result<OwnedFd> {
    nix::fcntl::openat(AT_FDCWD, "/", dir_flags(), Mode::empty())
        .map_err(|e| error(e, format!("cannot open /: {e}")))
}

impl Dir {
    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why another user than root and vigil's could write the directory (see
    /// [`writable_by_others`]), from an `fstat` of what was opened; `None` when nobody
    /// else can.
    pub fn others_can_write(&self, sticky_ok: bool) -> io::Result<Option<String>> {
        let st = nix::sys::stat::fstat(&self.fd)
            .map_err(|e| error(e, format!("cannot inspect {}: {e}", self.path.display())))?;
        Ok(writable_by_others(&st, sticky_ok))
    }

    /// `name` in this directory, for messages.
    fn shown(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// What `name` is, without following a link; `None` when there is nothing.
    pub fn lstat(&self, name: &OsStr) -> io::Result<Option<FileStat>> {
        match nix::sys::stat::fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(error(
                e,
                format!("cannot inspect {}: {e}", self.shown(name).display()),
            )),
        }
    }

    /// Opens `name` for writing (plus `extra`: `O_APPEND`, `O_CREAT`; never `O_TRUNC`,
    /// truncate the checked file instead), created with `mode`. Refuses a symbolic link,
    /// anything but a regular file, and a file with more than one name.
    pub fn open_regular(&self, name: &OsStr, extra: OFlag, mode: u32) -> io::Result<File> {
        self.open_checked(name, extra, mode, false)
    }

    /// [`Dir::open_regular`], and the file must belong to vigil's user (checked before
    /// opening, so that a file another user made is never even opened, and after).
    pub fn open_own(&self, name: &OsStr, extra: OFlag, mode: u32) -> io::Result<File> {
        self.open_checked(name, extra, mode, true)
    }

    fn open_checked(&self, name: &OsStr, extra: OFlag, mode: u32, own: bool) -> io::Result<File> {
        debug_assert!(!extra.contains(OFlag::O_TRUNC));
        let shown = self.shown(name);
        let check = |st: &FileStat| {
            check_regular(st, &shown)?;
            if own {
                check_owner(st, &shown)?;
            }
            Ok::<(), io::Error>(())
        };
        if let Some(st) = self.lstat(name)? {
            check(&st)?;
        }
        let flags = extra
            | OFlag::O_WRONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(&self.fd, name, flags, Mode::from_bits_truncate(mode))
            .map_err(|e| match e {
                Errno::ELOOP => error(
                    e,
                    format!(
                        "{} is a symbolic link, and vigil never writes through one (replace it \
                         with a regular file)",
                        shown.display()
                    ),
                ),
                e => error(e, format!("cannot open {}: {e}", shown.display())),
            })?;
        let st = nix::sys::stat::fstat(&fd)
            .map_err(|e| error(e, format!("cannot inspect {}: {e}", shown.display())))?;
        check(&st)?;
        // O_NONBLOCK was only for the open (a FIFO swapped in after the look); a plain
        // file description from here on.
        let fl = nix::fcntl::fcntl(&fd, FcntlArg::F_GETFL)
            .map_err(|e| error(e, format!("cannot configure {}: {e}", shown.display())))?;
        let fl = OFlag::from_bits_truncate(fl) & !OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, FcntlArg::F_SETFL(fl))
            .map_err(|e| error(e, format!("cannot configure {}: {e}", shown.display())))?;
        Ok(File::from(fd))
    }

    /// Renames `from` to `to`, both in this directory (neither is followed if a link).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat(&self.fd, from, &self.fd, to).map_err(|e| {
            error(
                e,
                format!(
                    "cannot rename {} to {}: {e}",
                    self.shown(from).display(),
                    self.shown(to).display()
                ),
            )
        })
    }

    /// Removes `name` (not a directory) from this directory.
    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(
            |e| {
                error(
                    e,
                    format!("cannot remove {}: {e}", self.shown(name).display()),
                )
            },
        )
    }

    /// Sets the mode of `name`, which the caller has just checked is not a link.
    pub fn chmod(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        nix::sys::stat::fchmodat(
            &self.fd,
            name,
            Mode::from_bits_truncate(mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| {
            error(
                e,
                format!("cannot set the mode of {}: {e}", self.shown(name).display()),
            )
        })
    }

    /// A path that names `name` in this very directory, for calls that take only a path
    /// (`bind(2)`): `/proc/self/fd/N/NAME` when `/proc` shows this descriptor, else the
    /// path the directory was opened by.
    pub fn path_of(&self, name: &OsStr) -> PathBuf {
        let magic = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        let same = match (
            nix::sys::stat::stat(&magic),
            nix::sys::stat::fstat(self.fd.as_fd()),
        ) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        };
        if same {
            magic.join(name)
        } else {
            self.shown(name)
        }
    }
}

/// Refuses anything but a regular file with one link.
fn check_regular(st: &FileStat, shown: &Path) -> io::Result<()> {
    match file_type(st) {
        SFlag::S_IFREG => {}
        SFlag::S_IFLNK => {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symbolic link, and vigil never writes through one (replace it with \
                     a regular file)",
                    shown.display()
                ),
            ));
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is {}, not a regular file (remove it, or choose another path)",
                    shown.display(),
                    type_name(st)
                ),
            ));
        }
    }
    if st.st_nlink > 1 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} has {} hard links, and vigil writes only to a file with one name, since \
                 another name could be a file it must not write (remove it, or copy it to a \
                 file of its own)",
                shown.display(),
                st.st_nlink
            ),
        ));
    }
    Ok(())
}

/// Refuses a file that does not belong to vigil's user.
fn check_owner(st: &FileStat, shown: &Path) -> io::Result<()> {
    let me = me();
    if st.st_uid != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to vigil's uid {me}: another user made it (remove \
                 it, or choose a path in a directory only vigil's user can write)",
                shown.display(),
                st.st_uid
            ),
        ));
    }
    Ok(())
}

/// `name` followed by `.suffix` (`app.log.1`, `control.sock.lock`).
pub fn with_suffix(name: &OsStr, suffix: &str) -> OsString {
    let mut s = OsString::from(name);
    s.push(".");
    s.push(suffix);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlink_in_a_private_directory_is_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        symlink("real", t.path().join("link")).unwrap();
        let d = open_dir(&t.path().join("link"), false).unwrap();
        let mut f = d
            .open_regular(OsStr::new("f"), OFlag::O_CREAT | OFlag::O_APPEND, 0o644)
            .unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(std::fs::read(t.path().join("real/f")).unwrap(), b"x");
    }

    #[test]
    fn a_symlink_in_a_shared_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        symlink(t.path(), shared.join("link")).unwrap();
        let e = open_dir(&shared.join("link"), false).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link in"), "{e}");
        // A missing directory is created (0700) when asked to.
        let made = open_dir(&t.path().join("a/b"), true).unwrap();
        assert_eq!(made.others_can_write(false).unwrap(), None);
    }

    #[test]
    fn only_regular_files_with_one_name_are_opened() {
        let t = tempfile::tempdir().unwrap();
        let d = open_dir(t.path(), false).unwrap();
        std::fs::write(t.path().join("target"), "keep").unwrap();
        symlink(t.path().join("target"), t.path().join("link")).unwrap();
        std::fs::hard_link(t.path().join("target"), t.path().join("hard")).unwrap();
        nix::unistd::mkfifo(&t.path().join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        for (name, says) in [
            ("link", "symbolic link"),
            ("hard", "2 hard links"),
            ("fifo", "a FIFO, not a regular file"),
            (".", "a directory"),
        ] {
            let e = d
                .open_regular(OsStr::new(name), OFlag::O_CREAT | OFlag::O_APPEND, 0o644)
                .unwrap_err();
            assert!(e.to_string().contains(says), "{name}: {e}");
        }
        assert_eq!(std::fs::read(t.path().join("target")).unwrap(), b"keep");
    }
}
