//! The client verbs of the `vigil` binary: `status`, `stop`, `start`, `restart`,
//! `signal`, `wait-ready`. Each sends one request to a running vigil's control socket
//! and turns the answer into output and an exit code a script can use (see
//! [`crate::exit`]): 0 done, 1 refused or failed, 2 usage (an unknown signal name), 69
//! no vigil listening, 75 `wait-ready` timed out, 77 permission denied, 70 an answer that
//! cannot be read.
//!
//! Blocking std I/O, no runtime: a client is one connection. It never touches a
//! process itself; vigil does everything.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::control::protocol::{self, ErrorKind, Request, Response};
use crate::exit::Error;

/// The largest answer read (a status of a very large tree fits easily).
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// Sends `request` to the vigil listening on `socket` (default: see [`socket_path`]);
/// prints the answer; returns the exit code. `json`: print a status as JSON.
///
/// `wait-ready` also waits for vigil to come up: while nothing listens on the socket it
/// tries again every 50 ms until its timeout, so `vigil run & vigil wait-ready` works.
pub fn client_main(socket: Option<&Path>, request: Request, json: bool) -> Result<(), Error> {
    let path = socket_path(socket);
    if let Request::Signal { signal, .. } = &request
        && crate::spec::Signal::parse(signal).is_none()
    {
        return Err(Error::Usage(format!(
            "unknown signal {signal:?}; give a name such as HUP, SIGUSR1, or a number 1-64"
        )));
    }
    let result = match &request {
        Request::WaitReady { name, timeout_ms } => {
            let start = Instant::now();
            let timeout = Duration::from_millis(*timeout_ms);
            loop {
                match connect(&path) {
                    Err(Error::Unavailable(_)) if start.elapsed() < timeout => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => break Err(e),
                    Ok(stream) => {
                        let left = timeout.saturating_sub(start.elapsed());
                        let request = Request::WaitReady {
                            name: name.clone(),
                            timeout_ms: left.as_millis().try_into().unwrap_or(u64::MAX),
                        };
                        break exchange(stream, &path, &request);
                    }
                }
            }
        }
        _ => connect(&path).and_then(|stream| exchange(stream, &path, &request)),
    };
    print(&request, &result?, json)
}

/// Where a client connects, as `supervisorctl` finds its daemon: `--socket` (or
/// `$VIGIL_SOCKET`); else the `[control] socket` of the tree `vigil run` would read with
/// no argument (`$VIGIL_CONFIG`, else `/etc/vigil/vigil.toml`) when it names one; else the
/// default path of [`crate::control::default_socket`]. A config that is missing or
/// invalid is passed over: the client's business is the socket, not the tree.
pub fn socket_path(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    let config = crate::cli::config_path(None);
    // Read as `vigil run` reads it: a FIFO or `/dev/zero` is passed over, not waited on.
    crate::config::read_source(&config)
        .ok()
        .and_then(|source| crate::config::parse(&source, &config).ok())
        .and_then(|loaded| loaded.tree.ops.control_socket)
        .unwrap_or_else(crate::control::default_socket)
}

fn connect(path: &Path) -> Result<UnixStream, Error> {
    UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::NoPermission(format!(
            "permission denied on the control socket {} ({e}); only the user vigil runs as \
                 and root may use it",
            path.display()
        )),
        _ => Error::Unavailable(format!(
            "no vigil is listening on {} ({e}); is `vigil run` running? point --socket or \
                 VIGIL_SOCKET at its socket, or VIGIL_CONFIG at its config",
            path.display()
        )),
    })
}

fn exchange(mut stream: UnixStream, path: &Path, request: &Request) -> Result<Response, Error> {
    // wait-ready answers within its timeout (vigil enforces it); anything else answers
    // when the operation is done, which can take a child's whole shutdown grace.
    if let Request::WaitReady { timeout_ms, .. } = request {
        let limit = Duration::from_millis(*timeout_ms) + Duration::from_secs(10);
        let _ = stream.set_read_timeout(Some(limit));
    }
    let broken = |e: std::io::Error| {
        Error::Unavailable(format!("the control socket {} failed: {e}", path.display()))
    };
    let mut line = serde_json::to_string(request)
        .map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))?;
    line.push('\n');
    // A refusal (another uid) may close the connection before the request is written:
    // the answer is still there to read.
    let written = stream.write_all(line.as_bytes());
    let mut answer = Vec::new();
    BufReader::new((&stream).take(MAX_RESPONSE))
        .read_until(b'\n', &mut answer)
        .map_err(broken)?;
    if answer.is_empty()
        && let Err(e) = written
    {
        return Err(broken(e));
    }
    if answer.is_empty() {
        return Err(Error::Unavailable(format!(
            "vigil closed the control socket {} without answering (it may be exiting)",
            path.display()
        )));
    }
    serde_json::from_slice(&answer).map_err(|e| {
        Error::Internal(format!(
            "cannot read vigil's answer ({e}): {}",
            String::from_utf8_lossy(&answer).trim_end()
        ))
    })
}

fn print(request: &Request, r: &Response, json: bool) -> Result<(), Error> {
    if !r.ok {
        let message = r.message.clone();
        return Err(match r.error {
            Some(ErrorKind::TimedOut) => Error::TimedOut(message),
            Some(ErrorKind::PermissionDenied) => Error::NoPermission(message),
            Some(ErrorKind::BadRequest) => Error::Internal(message),
            Some(ErrorKind::Busy) => Error::Unavailable(message),
            _ => Error::Refused(message),
        });
    }
    match (request, &r.status) {
        (Request::Status {}, Some(status)) if json => match serde_json::to_string_pretty(status) {
            Ok(s) => println!("{s}"),
            Err(e) => return Err(Error::Internal(format!("cannot encode the status: {e}"))),
        },
        (Request::Status {}, Some(status)) => print!("{}", protocol::render(status)),
        (Request::Status {}, None) => {
            return Err(Error::Internal("the answer has no status".into()));
        }
        _ => println!("{}", r.message),
    }
    Ok(())
}
