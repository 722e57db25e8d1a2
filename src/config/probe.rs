//! `ready = {...}` and `health = {...}` on a process: one check kind per table, its
//! timing, and the contradictions between them.
//!
//! Part of pass 1 ([`super::raw`] calls it for these two keys): reads the spanned tables
//! into [`ReadySpec`] and [`HealthSpec`] with every default filled in, reporting every
//! problem with its location and a hint, with the readers of [`super::toolkit`]. Never
//! touches the network or the file system: a `tcp` address or an `http` URL is only
//! checked for its shape. Never imports the schema walk ([`super::raw`]).

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::Cx;
use super::toolkit::{
    Field, boolean, command, describe, duration, entries, integer, nonempty_string, quote, string,
    type_error, unknown_key,
};
use crate::spec::{Check, HealthSpec, ReadySpec};

/// How long a process has to become ready when `ready.timeout` is not set.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time between two tries of a polled readiness check when `ready.interval` is not set.
pub const DEFAULT_READY_INTERVAL: Duration = Duration::from_millis(100);
/// Time between two health checks (Kubernetes' `periodSeconds`).
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one health check may take (Kubernetes' `timeoutSeconds`).
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive failed health checks that stop the process (`failureThreshold`).
pub const DEFAULT_HEALTH_FAILURES: u32 = 3;

pub(super) const READY_KEYS: &[&str] = &[
    "notify_fd",
    "sd_notify",
    "tcp",
    "http",
    "exec",
    "file",
    "timeout",
    "interval",
];
pub(super) const HEALTH_KEYS: &[&str] = &[
    "tcp", "http", "exec", "file", "interval", "timeout", "failures",
];
const KINDS: &[&str] = &["notify_fd", "sd_notify", "tcp", "http", "exec", "file"];

/// Reads `process.NAME.ready`.
pub(crate) fn ready(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<ReadySpec> {
    let hint = "e.g. ready = { tcp = \"127.0.0.1:6379\" }, { notify_fd = 3 }, { sd_notify = true }, { http = \"http://127.0.0.1:8080/healthz\" }, { exec = [\"redis-cli\", \"ping\"] } or { file = \"/run/app.ready\" }";
    let Some(t) = table(cx, path, v, hint) else {
        return Field::Bad;
    };
    let mut r = Reader::new(path, v.span().start);
    let (mut timeout, mut interval) = (DEFAULT_READY_TIMEOUT, None);
    for (k, k_at, val) in entries(t) {
        let p = format!("{path}.{k}");
        match k {
            "timeout" => match duration(cx, &p, val, false) {
                Field::Set(d, _) => timeout = d,
                _ => r.ok = false,
            },
            "interval" => match duration(cx, &p, val, false) {
                Field::Set(d, _) => interval = Some((d, k_at)),
                _ => r.ok = false,
            },
            _ if KINDS.contains(&k) => r.kind(cx, k, k_at, val, "ready"),
            _ => {
                unknown_key(cx, path, k, k_at, READY_KEYS);
                r.ok = false;
            }
        }
    }
    let Some(check) = r.finish(cx, "ready", hint) else {
        return Field::Bad;
    };
    if let (Some((_, at)), false) = (interval, check.is_polled()) {
        cx.error(
            at,
            &format!("{path}.interval"),
            format!(
                "interval has no meaning with {}: the process itself says when it is ready",
                check.kind()
            ),
            Some("remove interval (timeout still applies)".into()),
        );
        return Field::Bad;
    }
    Field::Set(
        ReadySpec {
            check,
            timeout,
            interval: interval.map_or(DEFAULT_READY_INTERVAL, |(d, _)| d),
        },
        v.span().start,
    )
}

/// Reads `process.NAME.health`.
pub(crate) fn health(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Field<HealthSpec> {
    let hint = "e.g. health = { http = \"http://127.0.0.1:8080/healthz\", interval = \"10s\", timeout = \"1s\", failures = 3 }";
    let Some(t) = table(cx, path, v, hint) else {
        return Field::Bad;
    };
    let mut r = Reader::new(path, v.span().start);
    let mut spec = HealthSpec {
        check: Check::SdNotify, // Replaced below; never returned as is.
        interval: DEFAULT_HEALTH_INTERVAL,
        timeout: DEFAULT_HEALTH_TIMEOUT,
        failures: DEFAULT_HEALTH_FAILURES,
    };
    for (k, k_at, val) in entries(t) {
        let p = format!("{path}.{k}");
        match k {
            "interval" | "timeout" => match duration(cx, &p, val, false) {
                Field::Set(d, _) if k == "interval" => spec.interval = d,
                Field::Set(d, _) => spec.timeout = d,
                _ => r.ok = false,
            },
            "failures" => match integer(val.get_ref()) {
                Some(Some(n)) if (1..=i64::from(u32::MAX)).contains(&n) => spec.failures = n as u32,
                Some(_) => {
                    cx.error(
                        val.span().start,
                        &p,
                        format!("failures must be 1 or more, found {}", describe(val.get_ref())),
                        Some("failures is how many checks in a row must fail before the process is restarted; 3 is Kubernetes' default".into()),
                    );
                    r.ok = false;
                }
                None => {
                    type_error(cx, &p, val, "an integer (1 or more)", None);
                    r.ok = false;
                }
            },
            "notify_fd" | "sd_notify" => {
                r.seen_kind = true;
                cx.error(
                    k_at,
                    &p,
                    format!("health cannot use {k}: the process reports readiness once, it cannot be asked again"),
                    Some(format!("use {k} in ready, and a tcp, http, exec or file check in health")),
                );
                r.ok = false;
            }
            _ if KINDS.contains(&k) => r.kind(cx, k, k_at, val, "health"),
            _ => {
                unknown_key(cx, path, k, k_at, HEALTH_KEYS);
                r.ok = false;
            }
        }
    }
    let check = r.finish(cx, "health", hint);
    match check {
        Some(check) => {
            spec.check = check;
            Field::Set(spec, v.span().start)
        }
        None => Field::Bad,
    }
}

fn table<'a, 'i>(
    cx: &mut Cx<'_>,
    path: &str,
    v: &'a Spanned<DeValue<'i>>,
    hint: &str,
) -> Option<&'a toml::de::DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            type_error(cx, path, v, "a table with one check", Some(hint.into()));
            None
        }
    }
}

/// Collects the one check kind of a table.
struct Reader<'p> {
    path: &'p str,
    at: usize,
    check: Option<(Check, &'static str)>,
    /// A kind key was present but bad, or another key was bad.
    ok: bool,
    seen_kind: bool,
}

impl<'p> Reader<'p> {
    fn new(path: &'p str, at: usize) -> Self {
        Reader {
            path,
            at,
            check: None,
            ok: true,
            seen_kind: false,
        }
    }

    fn kind(
        &mut self,
        cx: &mut Cx<'_>,
        k: &str,
        k_at: usize,
        val: &Spanned<DeValue<'_>>,
        what: &str,
    ) {
        let p = format!("{}.{k}", self.path);
        if self.seen_kind {
            let message = match &self.check {
                Some((_, first)) => {
                    format!("{what} has two checks, {first} and {k}: a table takes exactly one")
                }
                None => format!("{what} has two checks: a table takes exactly one"),
            };
            cx.error(k_at, &p, message, Some("keep one of them".into()));
            self.ok = false;
            return;
        }
        self.seen_kind = true;
        let check = match k {
            "notify_fd" => notify_fd(cx, &p, val),
            "sd_notify" => match boolean(cx, &p, val) {
                Field::Set(true, _) => Some(Check::SdNotify),
                Field::Set(false, _) => {
                    cx.error(
                        val.span().start,
                        &p,
                        "sd_notify = false selects no check",
                        Some(format!("write sd_notify = true, or remove {}", self.path)),
                    );
                    None
                }
                _ => None,
            },
            "tcp" => tcp(cx, &p, val),
            "http" => http(cx, &p, val),
            "exec" if matches!(val.get_ref(), DeValue::Array(a) if a.is_empty()) => {
                cx.error(
                    val.span().start,
                    &p,
                    "the check command is empty",
                    Some("write the program and its arguments as a list, e.g. exec = [\"redis-cli\", \"ping\"] (no shell; it passes when it exits 0)".into()),
                );
                None
            }
            "exec" => command(cx, &p, val).get().cloned().map(Check::Exec),
            "file" => nonempty_string(cx, &p, val, "a path").map(|s| Check::File(PathBuf::from(s))),
            _ => None,
        };
        match check {
            Some(c) => {
                let name = KINDS.iter().find(|&&x| x == k).copied().unwrap_or("check");
                self.check = Some((c, name));
            }
            None => self.ok = false,
        }
    }

    fn finish(self, cx: &mut Cx<'_>, what: &str, hint: &str) -> Option<Check> {
        if !self.seen_kind {
            cx.error(
                self.at,
                self.path,
                format!(
                    "{what} has no check: give one of notify_fd, sd_notify, tcp, http, exec, file"
                ),
                Some(hint.into()),
            );
            return None;
        }
        if !self.ok {
            return None;
        }
        self.check.map(|(c, _)| c)
    }
}

fn notify_fd(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Option<Check> {
    match integer(v.get_ref()) {
        Some(Some(n)) if (3..=1023).contains(&n) => Some(Check::NotifyFd(n as i32)),
        Some(_) => {
            cx.error(
                v.span().start,
                path,
                format!("notify_fd must be from 3 to 1023, found {}", describe(v.get_ref())),
                Some("0, 1 and 2 are the process's stdin, stdout and stderr; s6 services usually use 3".into()),
            );
            None
        }
        None => {
            type_error(cx, path, v, "a descriptor number (3 or more)", None);
            None
        }
    }
}

fn tcp(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Option<Check> {
    let s = string(cx, path, v, "a string \"host:port\"")?;
    let problem = match s.rsplit_once(':') {
        None => Some("expected \"host:port\"".to_string()),
        Some(("", _)) => Some("the host is missing: expected \"host:port\"".to_string()),
        Some((_, port)) => match port.parse::<u64>() {
            Ok(p) if (1..=65535).contains(&p) => None,
            Ok(p) => Some(format!("port {p} is outside 1-65535")),
            Err(_) => Some(format!("port {} is not a number", quote(port))),
        },
    };
    if let Some(problem) = problem {
        cx.error(
            v.span().start,
            path,
            format!("invalid address {}: {problem}", quote(s)),
            Some("e.g. \"127.0.0.1:6379\", \"localhost:8080\" or \"[::1]:5432\"".into()),
        );
        return None;
    }
    Some(Check::Tcp(s.to_string()))
}

fn http(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Option<Check> {
    let s = string(cx, path, v, "a string \"http://host:port/path\"")?;
    let uri = s.parse::<hyper::Uri>().ok();
    let scheme = uri.as_ref().and_then(|u| u.scheme_str());
    match (scheme, uri.as_ref().and_then(|u| u.authority())) {
        (Some("http"), Some(_)) => Some(Check::Http(s.to_string())),
        (Some("https"), _) => {
            cx.error(
                v.span().start,
                path,
                format!("https is not supported: {}", quote(s)),
                Some("check the plain-http port of the service, or use a tcp or exec check".into()),
            );
            None
        }
        _ => {
            cx.error(
                v.span().start,
                path,
                format!("invalid URL {}", quote(s)),
                Some("write an absolute http URL such as \"http://127.0.0.1:8080/healthz\"".into()),
            );
            None
        }
    }
}
