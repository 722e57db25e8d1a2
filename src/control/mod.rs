//! The operations interface of `vigil run`: the control socket and the opt-in HTTP
//! endpoints, as sources of the event loop.
//!
//! Both run as tasks on the loop's one thread and never touch the engine: each request
//! becomes a [`Query`] sent through a channel to the loop (`runtime::ops` answers it),
//! and the answer comes back on a oneshot channel. This module owns the socket's path,
//! its permissions and lock, the wire protocol ([`protocol`]) and the HTTP server
//! ([`http`]); it must never decide anything about supervision.
//!
//! # The socket
//!
//! Path, first that applies: `--socket PATH` or `$VIGIL_SOCKET`, `[control] socket`,
//! then `/run/vigil/control.sock` when vigil runs as root, else
//! `$XDG_RUNTIME_DIR/vigil/control.sock`, else `/tmp/vigil-UID/control.sock`. The
//! directory is created with mode 0700 if missing; the socket is created with mode 0600
//! and accepts only peers (checked with `SO_PEERCRED`) whose uid is vigil's or root's.
//! `PATH.lock` is held (`flock`) while vigil runs: a socket file left by a dead vigil is
//! replaced, a live vigil's is not ("another vigil is listening on PATH"). None of this
//! acts on the path whole ([`server::bind`]): the directory is walked and held open
//! without following a link another user could have made, the lock file must be a regular
//! file of vigil's user, and only a socket of vigil's user is ever removed.

pub mod http;
pub mod limits;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

/// A request from a control connection or an HTTP client, for the loop to answer.
#[derive(Debug)]
pub enum Query {
    /// A control request.
    Control {
        /// The request.
        request: protocol::Request,
        /// Where the answer goes.
        reply: oneshot::Sender<protocol::Response>,
    },
    /// An HTTP endpoint.
    Http {
        /// Which one.
        endpoint: Endpoint,
        /// Where the answer goes.
        reply: oneshot::Sender<HttpReply>,
    },
}

/// The HTTP endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/livez`: the event loop answers.
    Livez,
    /// `/readyz`: every permanent child running and ready.
    Readyz,
    /// `/status`: the tree as JSON.
    Status,
    /// `/metrics`: Prometheus (OpenMetrics) text.
    Metrics,
}

/// An HTTP answer from the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// Where the control socket is, and whether that was asked for explicitly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketPath {
    /// The path.
    pub path: PathBuf,
    /// Set by `--socket`, `$VIGIL_SOCKET` or `[control] socket` (a failure to listen
    /// there is fatal), rather than the default (a failure is a warning).
    pub explicit: bool,
}

/// Resolves the socket path: `flag` (`--socket` or `$VIGIL_SOCKET`), then `configured`
/// (`[control] socket`), then [`default_socket`].
pub fn socket_path(flag: Option<&Path>, configured: Option<&Path>) -> SocketPath {
    match flag.or(configured) {
        Some(p) => SocketPath {
            path: p.to_path_buf(),
            explicit: true,
        },
        None => SocketPath {
            path: default_socket(),
            explicit: false,
        },
    }
}

/// The default socket path: `/run/vigil/control.sock` as root, else
/// `$XDG_RUNTIME_DIR/vigil/control.sock`, else `/tmp/vigil-UID/control.sock`.
pub fn default_socket() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/vigil/control.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => Path::new(&dir).join("vigil/control.sock"),
        None => PathBuf::from(format!("/tmp/vigil-{uid}/control.sock")),
    }
}
