//! The control socket's server side: creating the socket safely, and one task per
//! connection that checks the peer, reads one request, hands it to the loop as a
//! [`Query`], and writes the answer.
//!
//! It never answers a request itself (except malformed, unauthorised, late or refused
//! ones), and never blocks the loop: reads have a size limit and a timeout, writes a
//! timeout, and at most `[control] max_connections` connections are served at once
//! ([`super::limits`]).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::{FileStat, SFlag};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::Query;
use super::limits::{self, Handle, Pool, Refusal, Slot};
use super::protocol::{ErrorKind, MAX_REQUEST, READ_TIMEOUT, Request, Response};
use crate::os::dirfd::{self, Dir};

/// A bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct Bound {
    path: PathBuf,
    /// The socket's directory, held open: the socket is removed from it, never by path.
    dir: Dir,
    /// The socket's name in `dir`.
    name: OsString,
    /// The socket file vigil made (device, inode): only that one is ever removed.
    made: (u64, u64),
    listener: Option<std::os::unix::net::UnixListener>,
    /// Held for as long as vigil listens: tells a live vigil from a stale socket file.
    _lock: Flock<File>,
}

impl Bound {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        // Still ours (the lock is held until after this), and still the socket vigil
        // made: anything else found under its name is left alone.
        if let Ok(Some(st)) = self.dir.lstat(&self.name)
            && is_socket(&st)
            && (st.st_dev, st.st_ino) == self.made
        {
            let _ = self.dir.unlink(&self.name);
        }
    }
}

/// Why the socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another vigil holds the lock.
    #[error("another vigil is listening on {0}")]
    InUse(PathBuf),
    /// A system call failed, or what is at the path is not safe to use.
    #[error("cannot listen on {path}: {what}: {err}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        err: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> BindError + 'a {
    move |err| BindError::Io {
        path: path.to_path_buf(),
        what,
        err,
    }
}

fn is_socket(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFSOCK.bits()
}

/// Creates the socket at `path`: its directory (mode 0700) if missing, `PATH.lock`
/// (locked), the socket itself with mode 0600 (a stale socket of vigil's user is
/// replaced).
///
/// Nothing here follows a symbolic link that another user could have made, or acts on
/// a path twice: the directory is walked and held open ([`dirfd::open_dir`]) and checked
/// with `fstat`; the lock file is opened in it with `O_NOFOLLOW` and must be a regular
/// file of vigil's user; only a socket of vigil's user is ever removed (a regular file,
/// a link or another user's socket at the path is an error); the socket is bound in the
/// held directory (`/proc/self/fd/N/NAME`).
pub fn bind(path: &Path) -> Result<Bound, BindError> {
    let (dir_path, name) = dirfd::split(path).map_err(io_err(path, "the path names no file"))?;
    let dir = dirfd::open_dir(dir_path, true)
        .map_err(io_err(path, "cannot open or create its directory"))?;
    check_directory(path, &dir)?;
    let me = nix::unistd::geteuid().as_raw();
    let lock_name = dirfd::with_suffix(name, "lock");
    // A regular file of vigil's own, never through a link: another user who can write
    // the directory (a sticky /tmp) must not squat the lock.
    let lock_file = dir
        .open_own(&lock_name, OFlag::O_CREAT, 0o600)
        .map_err(io_err(path, "cannot use its lock file"))?;
    let lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            return Err(BindError::InUse(path.to_path_buf()));
        }
        Err((_, e)) => return Err(io_err(path, "cannot lock its lock file")(e.into())),
    };
    // We hold the lock: a socket of ours there is a dead vigil's. Nothing else is ever
    // removed.
    if let Some(st) = dir
        .lstat(name)
        .map_err(io_err(path, "cannot inspect the path"))?
    {
        let refuse = |why: String| io_err(path, "refusing to replace it")(io::Error::other(why));
        if !is_socket(&st) {
            return Err(refuse(format!(
                "{} exists and is not a socket; vigil only ever replaces a stale socket \
                 (remove it if it is not needed, or choose another socket path)",
                path.display()
            )));
        }
        if st.st_uid != me {
            return Err(refuse(format!(
                "the socket there belongs to uid {}, not to vigil's uid {me} (remove it, \
                 or choose another socket path)",
                st.st_uid
            )));
        }
        dir.unlink(name)
            .map_err(io_err(path, "cannot remove the stale socket"))?;
        debug!(path = %path.display(), "replaced a stale control socket");
    }
    // Mode 0600 from the start: the umask applies when bind(2) creates the file (no
    // other thread of vigil creates files).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(dir.path_of(name));
    nix::sys::stat::umask(old);
    let listener = bound.map_err(io_err(path, "bind failed"))?;
    let made = match dir.lstat(name) {
        Ok(Some(st)) if is_socket(&st) => st,
        Ok(_) => {
            return Err(io_err(path, "bind failed")(io::Error::other(
                "the socket vanished right after it was made",
            )));
        }
        Err(e) => return Err(io_err(path, "cannot inspect the new socket")(e)),
    };
    if made.st_mode & 0o777 != 0o600 {
        dir.chmod(name, 0o600)
            .map_err(io_err(path, "cannot set its mode to 0600"))?;
    }
    listener
        .set_nonblocking(true)
        .map_err(io_err(path, "cannot make it non-blocking"))?;
    Ok(Bound {
        path: path.to_path_buf(),
        dir,
        name: name.to_owned(),
        made: (made.st_dev, made.st_ino),
        listener: Some(listener),
        _lock: lock,
    })
}

/// The socket's directory (what was opened, by `fstat`) must be owned by vigil's user or
/// root, and not writable by others unless sticky (like `/tmp`): otherwise another user
/// could replace the socket.
fn check_directory(path: &Path, dir: &Dir) -> Result<(), BindError> {
    match dir
        .others_can_write(true)
        .map_err(io_err(path, "cannot inspect its directory"))?
    {
        Some(why) => Err(io_err(path, "its directory is not safe")(io::Error::other(
            format!(
                "{} {why}; it must belong to vigil's user or root and not be writable by \
                 others (unless sticky, like /tmp)",
                dir.path().display()
            ),
        ))),
        None => Ok(()),
    }
}

/// Starts accepting on `bound` (call inside the runtime), at most `max_connections`
/// connections of `pool` at once ([`super::limits`]); every request goes to `tx`.
pub fn spawn(
    bound: &mut Bound,
    tx: mpsc::Sender<Query>,
    pool: &Pool,
    max_connections: u32,
) -> io::Result<()> {
    let std_listener = bound
        .listener
        .take()
        .ok_or_else(|| io::Error::other("the control socket is already being served"))?;
    let listener = UnixListener::from_std(std_listener)?;
    let me = nix::unistd::geteuid().as_raw();
    let clients = pool.listener(
        "control socket",
        "[control] max_connections",
        max_connections,
    );
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: log, and give the system a moment (not a poll:
                    // this only runs after an error).
                    warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let slot = match clients.admit(stream.as_raw_fd()).await {
                Ok(slot) => slot,
                Err(why) => {
                    refuse(&stream, why);
                    continue;
                }
            };
            let handle = slot.handle();
            let task = tokio::spawn(serve(stream, tx.clone(), me, slot));
            handle.set_abort(task.abort_handle());
        }
    });
    Ok(())
}

/// Answers a connection that is not served with a `busy` error if its socket takes it at
/// once, and closes it.
fn refuse(stream: &UnixStream, why: Refusal) {
    let message = match why {
        Refusal::Busy => {
            "vigil is serving as many control connections as [control] max_connections \
             allows, all of them busy; try again"
        }
        Refusal::Descriptors => {
            "vigil keeps its remaining file descriptors for its children; try again"
        }
    };
    let line = Response::error(ErrorKind::Busy, message).to_line();
    limits::refuse(stream, line.as_bytes());
}

/// One connection: check the peer, read one request, answer it. It may be closed by a
/// full table while it reads its request or while its answer is written.
async fn serve(mut stream: UnixStream, tx: mpsc::Sender<Query>, me: u32, slot: Slot) {
    let handle = slot.handle();
    let response = match stream.peer_cred() {
        Ok(cred) if cred.uid() == me || cred.uid() == 0 => answer(&mut stream, tx, &handle).await,
        Ok(cred) => {
            warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "control socket: refused a client whose uid is neither vigil's nor root's"
            );
            Response::error(
                ErrorKind::PermissionDenied,
                format!(
                    "permission denied: uid {} may not control this vigil (only uid {me} and root may)",
                    cred.uid()
                ),
            )
        }
        Err(e) => Response::error(
            ErrorKind::PermissionDenied,
            format!("cannot read the peer's credentials: {e}"),
        ),
    };
    // A client that does not read its answer is not waited for.
    let _ = tokio::time::timeout(
        READ_TIMEOUT,
        stream.write_all(response.to_line().as_bytes()),
    )
    .await;
    let _ = stream.shutdown().await;
    // Read what the client may still send (a refused or too long request) until it closes:
    // closing a unix socket with unread data would make the client's read of the answer
    // fail with ECONNRESET. Bounded in size and time.
    let mut rest = (&mut stream).take(DRAIN_LIMIT);
    let _ = tokio::time::timeout(
        READ_TIMEOUT,
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
    drop(slot);
}

/// How much of an unread request is drained before closing.
const DRAIN_LIMIT: u64 = 1024 * 1024;

async fn answer(stream: &mut UnixStream, tx: mpsc::Sender<Query>, slot: &Handle) -> Response {
    let request = match read_request(stream).await {
        Ok(r) => r,
        Err(msg) => return Response::error(ErrorKind::BadRequest, msg),
    };
    // From here until the answer is there, the connection is not closed to make room.
    let _busy = slot.busy();
    let wait = match &request {
        Request::WaitReady { name, timeout_ms } => {
            Some((name.clone(), Duration::from_millis(*timeout_ms)))
        }
        _ => None,
    };
    let Some(rx) = ask(&tx, request).await else {
        return stopping();
    };
    match wait {
        None => rx.await.unwrap_or_else(|_| stopping()),
        Some((name, timeout)) => match tokio::time::timeout(timeout, rx).await {
            Ok(r) => r.unwrap_or_else(|_| stopping()),
            // Out of time: ask again with no wait, for the reasons as of now.
            Err(_) => {
                let Some(rx) = ask(
                    &tx,
                    Request::WaitReady {
                        name,
                        timeout_ms: 0,
                    },
                )
                .await
                else {
                    return stopping();
                };
                rx.await.unwrap_or_else(|_| stopping())
            }
        },
    }
}

async fn ask(tx: &mpsc::Sender<Query>, request: Request) -> Option<oneshot::Receiver<Response>> {
    let (reply, rx) = oneshot::channel();
    tx.send(Query::Control { request, reply }).await.ok()?;
    Some(rx)
}

fn stopping() -> Response {
    Response::error(
        ErrorKind::Stopping,
        "vigil is exiting; the request was not answered",
    )
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut buf = Vec::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST as u64 + 1));
    match tokio::time::timeout(READ_TIMEOUT, reader.read_until(b'\n', &mut buf)).await {
        Err(_) => {
            return Err(format!(
                "no complete request within {}s; send one JSON object and a newline",
                READ_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => {}
    }
    if buf.len() > MAX_REQUEST {
        return Err(format!(
            "request longer than {MAX_REQUEST} bytes; send one JSON object and a newline"
        ));
    }
    // serde reads a tagged enum from an array too (`["stop","web"]`); only an object is
    // a request.
    if buf.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(
            "invalid request: not a JSON object; expected one JSON object such as \
             {\"op\":\"status\"} and a newline"
                .into(),
        );
    }
    serde_json::from_slice(&buf).map_err(|e| {
        format!(
            "invalid request ({e}); expected one JSON object such as {{\"op\":\"status\"}} \
             and a newline"
        )
    })
}
