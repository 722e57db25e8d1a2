//! The opt-in HTTP endpoints (`[http] listen`): `/livez`, `/readyz`, `/status`,
//! `/metrics`, served by hyper's HTTP/1 server on the loop's thread.
//!
//! hyper parses and writes HTTP; this module only routes. Every answer comes from the
//! loop through a [`Query`] (so `/livez` proves the loop answers), with a deadline: a loop
//! that does not answer within [`LOOP_DEADLINE`] gets a 503. Nothing here runs, and no
//! socket is open, unless `[http]` is configured.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::{Endpoint, HttpReply, Query};

/// How long an endpoint waits for the loop before answering 503.
pub const LOOP_DEADLINE: Duration = Duration::from_secs(5);

/// How long a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const TEXT: &str = "text/plain; charset=utf-8";

/// Binds `addr` (before anything is started, so a bad address fails early).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `listener` (call inside the runtime); every request goes to `tx`.
pub fn spawn(listener: std::net::TcpListener, tx: mpsc::Sender<Query>) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "http endpoints listening: /livez /readyz /status /metrics");
    }
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
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| route(req, tx.clone()));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    debug!("http: connection ended with an error: {e}");
                }
            });
        }
    });
    Ok(())
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
