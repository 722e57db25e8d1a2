//! The opt-in HTTP endpoints (`[http] listen`): `/livez`, `/readyz`, `/status`,
//! `/metrics`, served by hyper's HTTP/1 server on the loop's thread.
//!
//! hyper parses and writes HTTP; this module only routes. Every answer comes from the
//! loop through a [`Query`] (so `/livez` proves the loop answers), with a deadline: a loop
//! that does not answer within [`LOOP_DEADLINE`] gets a 503. Nothing here runs, and no
//! socket is open, unless `[http]` is configured.
//!
//! Every client is assumed hostile: at most `[http] max_connections` connections are
//! served at once, and none when descriptors run short ([`super::limits`]); a request head
//! is at most [`MAX_HEAD`] bytes (431 otherwise) and must arrive within [`HEADER_TIMEOUT`],
//! which also closes a keep-alive connection idle that long; a connection lives at most
//! [`MAX_LIFETIME`]. A connection refused gets a 503 and is closed at once.

use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::limits::{Pool, Refusal, Slot};
use super::{Endpoint, HttpReply, Query};

/// How long an endpoint waits for the loop before answering 503.
pub const LOOP_DEADLINE: Duration = Duration::from_secs(5);

/// How long a client has to send its request headers; also how long a keep-alive
/// connection may wait for its next request.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest request head (request line and headers) read: hyper's read buffer.
pub const MAX_HEAD: usize = 16 * 1024;

/// How long a connection is served; then it is closed once its current request is
/// answered (or after [`LIFETIME_GRACE`] more).
pub const MAX_LIFETIME: Duration = Duration::from_secs(60);

/// How long a connection past [`MAX_LIFETIME`] has to finish its current request.
const LIFETIME_GRACE: Duration = Duration::from_secs(10);

const TEXT: &str = "text/plain; charset=utf-8";

/// Binds `addr` (before anything is started, so a bad address fails early).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `listener` (call inside the runtime), at most `max_connections` connections of
/// `pool` at once; every request goes to `tx`.
pub fn spawn(
    listener: std::net::TcpListener,
    tx: mpsc::Sender<Query>,
    pool: &Pool,
    max_connections: u32,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            %addr,
            max_connections,
            "http endpoints listening: /livez /readyz /status /metrics"
        );
    }
    let clients = pool.listener("http", "[http] max_connections", max_connections);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!("http: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let slot = match clients.admit(stream.as_raw_fd()).await {
                Ok(slot) => slot,
                Err(why) => {
                    refuse(stream, why);
                    continue;
                }
            };
            let handle = slot.handle();
            let task = tokio::spawn(serve(stream, tx.clone(), slot));
            handle.set_abort(task.abort_handle());
        }
    });
    Ok(())
}

/// One connection, for at most [`MAX_LIFETIME`].
async fn serve(stream: TcpStream, tx: mpsc::Sender<Query>, slot: Slot) {
    let handle = slot.handle();
    let service = hyper::service::service_fn(move |req| {
        let busy = handle.busy();
        let tx = tx.clone();
        async move {
            let r = route(req, tx).await;
            drop(busy);
            r
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = match tokio::time::timeout(MAX_LIFETIME, conn.as_mut()).await {
        Ok(ended) => ended,
        Err(_) => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(LIFETIME_GRACE, conn)
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = ended {
        debug!("http: connection ended with an error: {e}");
    }
    drop(slot);
}

/// Answers a connection that is not served with a 503 if its socket takes it at once, and
/// closes it: nothing waits, nothing is kept.
fn refuse(stream: TcpStream, why: Refusal) {
    let body = match why {
        Refusal::Busy => {
            "vigil is serving as many HTTP connections as [http] max_connections allows; \
             try again\n"
        }
        Refusal::Descriptors => {
            "vigil keeps its remaining file descriptors for its children; try again\n"
        }
    };
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {TEXT}\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    super::limits::refuse(&stream, answer.as_bytes());
}

async fn route(
    req: Request<Incoming>,
    tx: mpsc::Sender<Query>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let endpoint = match req.uri().path() {
        "/livez" => Endpoint::Livez,
        "/readyz" => Endpoint::Readyz,
        "/status" => Endpoint::Status,
        "/metrics" => Endpoint::Metrics,
        other => {
            return Ok(reply(HttpReply {
                status: 404,
                content_type: TEXT,
                body: format!(
                    "no endpoint {other}; vigil serves /livez, /readyz, /status and /metrics\n"
                ),
            }));
        }
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(HttpReply {
            status: 405,
            content_type: TEXT,
            body: format!("{} is not allowed; use GET\n", req.method()),
        });
        r.headers_mut().insert(
            hyper::header::ALLOW,
            "GET, HEAD".parse().expect("UNWRAP: valid header"),
        );
        return Ok(r);
    }
    let (reply_tx, rx) = oneshot::channel();
    let answer = match tx
        .send(Query::Http {
            endpoint,
            reply: reply_tx,
        })
        .await
    {
        Err(_) => None,
        Ok(()) => tokio::time::timeout(LOOP_DEADLINE, rx)
            .await
            .ok()
            .and_then(Result::ok),
    };
    Ok(reply(answer.unwrap_or_else(|| HttpReply {
        status: 503,
        content_type: TEXT,
        body: "vigil's event loop did not answer (vigil is exiting, or stuck)\n".into(),
    })))
}

fn reply(r: HttpReply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = r.content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
