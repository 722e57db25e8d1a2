//! The opt-in HTTP endpoints with a real client (HTTP/1.1 over a std `TcpStream`):
//! status codes of `/livez`, `/readyz` (200 and 503 with the reason), `/status` as JSON,
//! `/metrics` as Prometheus text with the expected series, 404 and 405; and that no port
//! is opened without `[http]`.

#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use common::*;

/// `GET path` (or another method): the status code and the body.
fn request(addr: &str, method: &str, path: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head}"));
    (code, body.to_string())
}

fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, "GET", path)
}

/// The address vigil logged for its HTTP endpoints.
fn http_addr(d: &Daemon) -> String {
    d.wait_for("the http endpoints to listen", TIMEOUT, || {
        log(d)
            .lines()
            .find(|l| l.contains("http endpoints listening"))
            .and_then(|l| log_field(l, "addr").map(str::to_string))
    })
}

fn client(socket: &Path, args: &[&str]) -> i32 {
    Command::new(vigil())
        .args(args)
        .env("VIGIL_SOCKET", socket)
        .output()
        .expect("run the client")
        .status
        .code()
        .unwrap_or(-1)
}

/// Checks every line is a comment, blank, or `name{labels} value` with a float value;
/// returns the samples.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels in {line:?}");
        }
        samples.push((series.to_string(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

#[test]
fn endpoints_with_a_real_client() {
    let dir = TestDir::new();
    let toml = "intensity = 10\nchildren = [\"a\", \"b\"]\n[http]\nlisten = \"127.0.0.1:0\"\n"
        .to_string()
        + &process(&dir, "a", &[], "backoff = \"none\"")
        + &process(&dir, "b", &[], "");
    let path = dir.write("vigil.toml", &toml);
    let d = vigil_in(&dir).arg("run").arg(path).spawn();
    let addr = http_addr(&d);
    let ev = wait_started(&dir, &["a", "b"]);

    assert_eq!(get(&addr, "/livez"), (200, "ok\n".to_string()));
    d.wait_for("/readyz to say ready", TIMEOUT, || {
        (get(&addr, "/readyz").0 == 200).then_some(())
    });
    let (code, body) = get(&addr, "/status");
    assert_eq!(code, 200);
    let st: serde_json::Value = serde_json::from_str(&body).expect("/status is JSON");
    assert_eq!(st["ready"], true);
    assert_eq!(st["tree"]["children"][0]["name"], "a");

    // A crash: counted in the metrics.
    kill(ev.starts("a")[0], libc::SIGKILL);
    wait_started(&dir, &["a"]);
    dir.wait_events("a restarted", TIMEOUT, |e| e.starts("a").len() == 2);
    let (code, body) = get(&addr, "/metrics");
    assert_eq!(code, 200);
    let samples = parse_prometheus(&body);
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    assert_eq!(
        sample(&samples, "vigil_restarts_total{child=\"a\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&samples, "vigil_restarts_total{child=\"b\"}"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &samples,
            "vigil_exits_total{child=\"a\",status=\"SIGKILL\"}"
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&samples, "vigil_child_up{child=\"a\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&samples, "vigil_child_ready{child=\"b\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&samples, "vigil_give_ups_total{supervisor=\"root\"}"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        sample(&samples, "vigil_spawn_failures_total{child=\"a\"}"),
        Some(0.0),
        "{body}"
    );
    assert!(
        sample(&samples, "vigil_orphans_reaped_total").is_some(),
        "{body}"
    );
    assert!(
        sample(&samples, "vigil_uptime_seconds").is_some_and(|v| v >= 0.0),
        "{body}"
    );

    // Not ready: 503 with the reason.
    assert_eq!(client(d.socket(), &["stop", "b"]), 0);
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 503);
    assert_eq!(body, "not ready: b is stopped\n");
    let (_, body) = get(&addr, "/metrics");
    let samples = parse_prometheus(&body);
    assert_eq!(
        sample(&samples, "vigil_child_up{child=\"b\"}"),
        Some(0.0),
        "{body}"
    );
    assert_eq!(client(d.socket(), &["start", "b"]), 0);
    assert_eq!(get(&addr, "/readyz").0, 200);

    // Unknown path and method.
    assert_eq!(get(&addr, "/nope").0, 404);
    assert_eq!(request(&addr, "POST", "/livez").0, 405);
}

#[test]
fn no_http_without_the_table() {
    let dir = TestDir::new();
    let toml = "children = [\"a\"]\n".to_string() + &process(&dir, "a", &[], "");
    let path = dir.write("vigil.toml", &toml);
    let d = vigil_in(&dir).arg("run").arg(path).spawn();
    wait_started(&dir, &["a"]);
    wait_logged(&d, "started", &["a"]);
    assert!(!log(&d).contains("http"), "{}", log(&d));
    // vigil has no TCP socket open: only its control socket and the usual descriptors.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.pid())).unwrap();
    let inodes: Vec<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.starts_with("socket:"))
        .collect();
    let tcp = std::fs::read_to_string(format!("/proc/{}/net/tcp", d.pid())).unwrap_or_default()
        + &std::fs::read_to_string(format!("/proc/{}/net/tcp6", d.pid())).unwrap_or_default();
    for inode in inodes {
        let n = inode.trim_start_matches("socket:[").trim_end_matches(']');
        assert!(
            !tcp.split_whitespace().any(|f| f == n),
            "vigil holds a TCP socket (inode {n})"
        );
    }
}

#[test]
fn http_address_in_use_is_fatal() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = TestDir::new();
    let toml =
        format!("children = [\"a\"]\n[http]\nlisten = \"{addr}\"\n") + &process(&dir, "a", &[], "");
    let path = dir.write("vigil.toml", &toml);
    let mut d = vigil_in(&dir).arg("run").arg(path).spawn();
    assert_eq!(d.wait_exit(TIMEOUT), 69);
    assert!(
        log(&d).contains(&format!("cannot listen for HTTP on {addr}")),
        "{}",
        log(&d)
    );
    assert!(dir.read_events().all().is_empty(), "nothing was started");
}

/// An `http` readiness check may name a host (R5): `localhost` is looked up on vigil's
/// one resolver thread, never on tokio's blocking pool (threads named `tokio-rt-worker`),
/// and the check gates the next sibling. It asks vigil's own `/livez`, so no HTTP server
/// beyond vigil is needed.
#[test]
fn http_check_naming_localhost_gates_the_next_sibling_on_the_resolver_thread() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port();
    let dir = TestDir::new();
    let ready = format!(
        "ready = {{ http = \"http://localhost:{port}/livez\", interval = \"50ms\", timeout = \"5s\" }}"
    );
    let toml = format!("children = [\"a\", \"b\"]\n[http]\nlisten = \"127.0.0.1:{port}\"\n")
        + &process(&dir, "a", &[], &ready)
        + &process(&dir, "b", &[], "");
    let path = dir.write("vigil.toml", &toml);
    let d = vigil_in(&dir).arg("run").arg(path).spawn();
    wait_started(&dir, &["a", "b"]);
    let l = wait_logged(&d, "started", &["a", "b"]);
    let ready_at = l.find("INFO ready child=a").expect("a was ready");
    let b_at = l.find("started child=b").expect("b started");
    assert!(ready_at < b_at, "{l}");
    let mut threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", d.pid()))
        .expect("vigil's threads")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect();
    threads.sort();
    assert_eq!(
        threads,
        ["vigil", "vigil-resolve", "vigil-stderr"],
        "docs/threads.md"
    );
}

/// A request head longer than 16 KiB is answered 431 and the connection closed (hyper's
/// default buffer let 400 KB in per connection); one just under it is served.
#[test]
fn a_request_head_over_16_kib_gets_431() {
    let dir = TestDir::new();
    let toml = "children = [\"a\"]\n[http]\nlisten = \"127.0.0.1:0\"\n".to_string()
        + &process(&dir, "a", &[], "");
    let path = dir.write("vigil.toml", &toml);
    let d = vigil_in(&dir).arg("run").arg(path).spawn();
    let addr = http_addr(&d);
    let with_header = |pad: usize| -> u16 {
        let mut c = TcpStream::connect(&addr).expect("connect");
        c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let head = format!(
            "GET /livez HTTP/1.1\r\nHost: {addr}\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(pad)
        );
        // vigil may answer and close before reading all of it.
        let _ = c.write_all(head.as_bytes());
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let raw = String::from_utf8_lossy(&raw);
        raw.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {raw:?}"))
    };
    assert_eq!(with_header(12 * 1024), 200);
    assert_eq!(with_header(20 * 1024), 431);
    assert_eq!(get(&addr, "/livez").0, 200);
}
