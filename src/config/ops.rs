//! The operations keys at the top level: `[control]`, `[http]` and `termination_log`.
//!
//! Part of pass 1 ([`super::raw`] calls it for these keys): reads them into [`Ops`] with
//! the same rules, every key typed, unknown keys rejected with a hint, every error
//! located, using [`super::toolkit`]. It never opens, binds or creates anything: the
//! runtime does that when vigil runs.

use std::path::PathBuf;

use toml::Spanned;
use toml::de::DeValue;

use super::Cx;
use super::toolkit::{
    Field, boolean, describe, entries, integer, join, nonempty_string, type_error, unknown_key,
};
use crate::spec::Ops;

pub(super) const CONTROL_KEYS: &[&str] = &["enabled", "max_connections", "socket"];
pub(super) const HTTP_KEYS: &[&str] = &["listen", "max_connections"];

/// Reads the top-level key `k` (`control`, `http` or `termination_log`) into `ops`.
pub(super) fn read(cx: &mut Cx<'_>, ops: &mut Ops, k: &str, v: &Spanned<DeValue<'_>>) {
    match k {
        "termination_log" => {
            if let Some(p) = absolute_path(cx, k, v) {
                ops.termination_log = Some(p);
            }
        }
        "control" => {
            let Some(body) = header_table(cx, k, v) else {
                return;
            };
            for (key, key_at, v) in entries(body) {
                let path = join(k, key);
                match key {
                    "enabled" => {
                        if let Field::Set(b, _) = boolean(cx, &path, v) {
                            ops.control_enabled = b;
                        }
                    }
                    "socket" => ops.control_socket = absolute_path(cx, &path, v),
                    "max_connections" => {
                        if let Some(n) = max_connections(cx, &path, v) {
                            ops.control_max_connections = n;
                        }
                    }
                    _ => unknown_key(cx, k, key, key_at, CONTROL_KEYS),
                }
            }
        }
        "http" => {
            let Some(body) = header_table(cx, k, v) else {
                return;
            };
            let mut listen = false;
            for (key, key_at, v) in entries(body) {
                let path = join(k, key);
                match key {
                    "listen" => {
                        listen = true;
                        ops.http_listen = address(cx, &path, v);
                    }
                    "max_connections" => {
                        if let Some(n) = max_connections(cx, &path, v) {
                            ops.http_max_connections = n;
                        }
                    }
                    _ => unknown_key(cx, k, key, key_at, HTTP_KEYS),
                }
            }
            if !listen {
                cx.error(
                    v.span().start,
                    "http.listen",
                    "[http] has no listen address",
                    Some(
                        "add listen = \"127.0.0.1:9102\" to [http], or remove [http] to serve no \
                         HTTP endpoints"
                            .into(),
                    ),
                );
            }
        }
        _ => unreachable!("only the operations keys are passed here"),
    }
}

fn header_table<'a, 'i>(
    cx: &mut Cx<'_>,
    k: &str,
    v: &'a Spanned<DeValue<'i>>,
) -> Option<&'a toml::de::DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        _ => {
            type_error(
                cx,
                k,
                v,
                "a table",
                Some(format!("write the settings under a [{k}] header")),
            );
            None
        }
    }
}

fn absolute_path(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Option<PathBuf> {
    let s = nonempty_string(cx, path, v, "an absolute path")?;
    if !s.starts_with('/') {
        cx.error(
            v.span().start,
            path,
            format!("{s:?} is not an absolute path"),
            Some(
                "vigil runs in / and children elsewhere, so a relative path would be ambiguous; \
                 write it from the root (starting with /)"
                    .into(),
            ),
        );
        return None;
    }
    Some(PathBuf::from(s))
}

/// `max_connections`: a whole number from 1 to [`Ops::MAX_CONNECTIONS_LIMIT`].
fn max_connections(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Option<u32> {
    let max = Ops::MAX_CONNECTIONS_LIMIT;
    let hint = format!(
        "the number of clients served at once, from 1 to {max}; a client beyond it takes the \
         place of one that has not sent its request, or is refused (see docs/operating.md, \
         \"Hostile clients\")"
    );
    match integer(v.get_ref()) {
        Some(Some(n)) if (1..=i64::from(max)).contains(&n) => Some(n as u32),
        Some(_) => {
            cx.error(
                v.span().start,
                path,
                format!(
                    "max_connections must be from 1 to {max}, found {}",
                    describe(v.get_ref())
                ),
                Some(hint),
            );
            None
        }
        None => {
            type_error(cx, path, v, "a whole number of connections", Some(hint));
            None
        }
    }
}

fn address(cx: &mut Cx<'_>, path: &str, v: &Spanned<DeValue<'_>>) -> Option<std::net::SocketAddr> {
    let s = nonempty_string(cx, path, v, "an address and port")?;
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            cx.error(
                v.span().start,
                path,
                format!("{s:?} is not an IP address and port"),
                Some(
                    "write an IP address and a port, such as \"127.0.0.1:9102\" or \"[::]:9102\" \
                     (no host names: vigil resolves nothing)"
                        .into(),
                ),
            );
            None
        }
    }
}
