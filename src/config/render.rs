//! The resolved tree as text, for `vigil check`: every node with every effective setting.
//!
//! Deterministic (file order for env, start order for children) and meant for people, not
//! for parsing. Pure formatting: no I/O.

use std::fmt::Write as _;

use super::toolkit::quote;
use crate::spec::{Backoff, Node, NodeId, NodeKind, Output, Tree, humanize, humanize_size};

/// Renders `tree`: one block per node, children indented under their supervisor with
/// box-drawing lines, in start order.
pub fn render(tree: &Tree) -> String {
    let mut out = String::new();
    if tree.nodes.is_empty() {
        return out;
    }
    let timeout = tree
        .shutdown_timeout
        .map_or_else(|| "none (per-child shutdown only)".into(), humanize);
    node(&mut out, tree, NodeId::ROOT, "", "");
    // The file-wide setting, after the tree so the tree reads from the top.
    let _ = writeln!(out, "shutdown_timeout: {timeout}");
    ops(&mut out, &tree.ops);
    out
}

/// The operations settings, only when one is set (the defaults depend on where vigil runs).
fn ops(out: &mut String, ops: &crate::spec::Ops) {
    if *ops == crate::spec::Ops::default() {
        return;
    }
    let control = match (&ops.control_socket, ops.control_enabled) {
        (_, false) => "disabled".to_string(),
        (Some(p), true) => format!(
            "socket {}, max_connections {}",
            p.display(),
            ops.control_max_connections
        ),
        (None, true) => format!(
            "socket (default), max_connections {}",
            ops.control_max_connections
        ),
    };
    let http = ops.http_listen.map_or_else(
        || "none".to_string(),
        |a| format!("listen {a}, max_connections {}", ops.http_max_connections),
    );
    let log = ops.termination_log.as_ref().map_or_else(
        || {
            format!(
                "{} (when writable)",
                crate::spec::Ops::DEFAULT_TERMINATION_LOG
            )
        },
        |p| p.display().to_string(),
    );
    let _ = writeln!(out, "control: {control}");
    let _ = writeln!(out, "http: {http}");
    let _ = writeln!(out, "termination_log: {log}");
}

/// Writes one node; `lead` prefixes its title line, `cont` its detail lines and children.
fn node(out: &mut String, tree: &Tree, id: NodeId, lead: &str, cont: &str) {
    let n = tree.node(id);
    let kind = match n.kind {
        NodeKind::Supervisor(_) => "supervisor",
        NodeKind::Process(_) => "process",
    };
    let _ = writeln!(out, "{lead}{} ({kind})", n.name);
    let children = tree.children(id);
    // Detail lines hang under the title; the child rail continues through them.
    let detail = if children.is_empty() {
        format!("{cont}    ")
    } else {
        format!("{cont}│   ")
    };
    for line in details(n) {
        let _ = writeln!(out, "{detail}{line}");
    }
    for (i, &c) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let (l, k) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        node(out, tree, c, &format!("{cont}{l}"), &format!("{cont}{k}"));
    }
}

/// The settings of one node, one `key: value` group per line.
fn details(n: &Node) -> Vec<String> {
    let mut lines = Vec::new();
    let placement = format!(
        "restart: {}, shutdown: {}, significant: {}",
        n.restart.as_str(),
        n.shutdown,
        n.significant
    );
    match &n.kind {
        NodeKind::Supervisor(s) => {
            lines.push(format!(
                "strategy: {}, intensity: {} in {}, auto_shutdown: {}",
                s.strategy.as_str(),
                s.intensity,
                humanize(s.period),
                s.auto_shutdown.as_str()
            ));
            lines.push(placement);
        }
        NodeKind::Process(p) => {
            let argv: Vec<String> = p.command.iter().map(|a| quote(a)).collect();
            lines.push(format!("command: [{}]", argv.join(", ")));
            lines.push(placement);
            let codes: Vec<String> = p.success_exit_codes.iter().map(|c| c.to_string()).collect();
            lines.push(format!(
                "stop_signal: {}, success_exit_codes: [{}], leftovers: {}",
                p.stop_signal,
                codes.join(", "),
                p.leftovers.as_str()
            ));
            lines.push(format!("backoff: {}", backoff(&p.backoff)));
            lines.push(format!(
                "cwd: {}, user: {}, group: {}",
                p.cwd
                    .as_ref()
                    .map_or_else(|| "(inherited)".into(), |c| quote(&c.to_string_lossy())),
                p.user
                    .as_deref()
                    .map_or_else(|| "(inherited)".into(), quote),
                p.group
                    .as_deref()
                    .map_or_else(|| "(inherited)".into(), quote),
            ));
            // Only when set: the defaults (vigil's own capabilities, no_new_privs unset)
            // depend on how vigil itself was started.
            if p.no_new_privileges || p.capabilities.is_some() {
                let caps = p.capabilities.map_or_else(
                    || "(inherited)".to_string(),
                    |c| format!("[{}]", c.names().join(", ")),
                );
                lines.push(format!(
                    "no_new_privileges: {}, capabilities: {caps}",
                    p.no_new_privileges
                ));
            }
            if let Some(r) = &p.ready {
                let every = if r.check.is_polled() {
                    format!(", every {}", humanize(r.interval))
                } else {
                    String::new()
                };
                lines.push(format!(
                    "ready: {}, timeout {}{every}",
                    r.check,
                    humanize(r.timeout)
                ));
            }
            if let Some(h) = &p.health {
                lines.push(format!(
                    "health: {}, every {}, timeout {}, failures {}",
                    h.check,
                    humanize(h.interval),
                    humanize(h.timeout),
                    h.failures
                ));
            }
            if p.env.is_empty() {
                lines.push("env: (inherited, nothing added)".into());
            } else {
                lines.push("env:".into());
                for (k, v) in &p.env {
                    lines.push(format!("  {k} = {}", quote(v)));
                }
            }
            lines.push(format!("output: {}", output(&p.output)));
        }
    }
    lines
}

fn backoff(b: &Backoff) -> String {
    match *b {
        Backoff::None => "none (restart at once)".into(),
        Backoff::Exponential {
            initial,
            max,
            multiplier,
            jitter,
            reset_after,
        } => format!(
            "{} x{multiplier} up to {}, jitter {}%, reset after {} up",
            humanize(initial),
            humanize(max),
            (jitter * 100.0 * 1000.0).round() / 1000.0,
            humanize(reset_after)
        ),
    }
}

fn output(o: &Output) -> String {
    match o {
        Output::File(f) => format!(
            "file {} (rotated at {}, {} kept{})",
            quote(&f.path.to_string_lossy()),
            humanize_size(f.max_size),
            f.keep,
            if f.allow_shared_directory {
                ", shared directory allowed"
            } else {
                ""
            }
        ),
        other => other.mode().to_string(),
    }
}
