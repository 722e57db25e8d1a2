//! The resolved tree as `vigil check` prints it: every node with every effective setting.

use std::fmt::Write;

use crate::spec::{Backoff, NodeId, NodeKind, Tree, humanize};

/// Renders `tree`, children indented under their supervisor in start order.
pub fn render(tree: &Tree) -> String {
    let mut out = String::new();
    if let Some(t) = tree.shutdown_timeout {
        let _ = writeln!(out, "shutdown_timeout = {}", humanize(t));
    }
    node(tree, NodeId::ROOT, "", &mut out);
    out
}

fn node(tree: &Tree, id: NodeId, indent: &str, out: &mut String) {
    let n = tree.node(id);
    let child_line = if n.parent.is_some() {
        format!(
            " restart={} shutdown={}{}",
            n.restart.as_str(),
            n.shutdown,
            if n.significant { " significant" } else { "" }
        )
    } else {
        String::new()
    };
    match &n.kind {
        NodeKind::Supervisor(s) => {
            let _ = writeln!(
                out,
                "{indent}supervisor {}: strategy={} intensity={} period={} auto_shutdown={}{child_line}",
                n.name,
                s.strategy.as_str(),
                s.intensity,
                humanize(s.period),
                s.auto_shutdown.as_str(),
            );
            let deeper = format!("{indent}  ");
            for &c in &s.children {
                node(tree, c, &deeper, out);
            }
        }
        NodeKind::Process(p) => {
            let _ = writeln!(out, "{indent}process {}:{child_line}", n.name);
            let d = format!("{indent}    ");
            let _ = writeln!(out, "{d}command = {:?}", p.command);
            let _ = writeln!(
                out,
                "{d}stop_signal = {}  success_exit_codes = {:?}",
                p.stop_signal, p.success_exit_codes
            );
            let backoff = match p.backoff {
                Backoff::None => "none".to_string(),
                Backoff::Exponential {
                    initial,
                    max,
                    multiplier,
                    jitter,
                    reset_after,
                } => format!(
                    "initial={} max={} multiplier={multiplier} jitter={jitter} reset_after={}",
                    humanize(initial),
                    humanize(max),
                    humanize(reset_after)
                ),
            };
            let _ = writeln!(out, "{d}backoff = {backoff}");
            let cwd = p
                .cwd
                .as_ref()
                .map_or("(vigil's start directory)".to_string(), |c| {
                    c.display().to_string()
                });
            let _ = writeln!(
                out,
                "{d}cwd = {cwd}  user = {}  group = {}",
                p.user.as_deref().unwrap_or("(vigil's)"),
                p.group.as_deref().unwrap_or("(vigil's)")
            );
            for (k, v) in &p.env {
                let _ = writeln!(out, "{d}env {k} = {v:?}");
            }
        }
    }
}
