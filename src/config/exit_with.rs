//! `vigil run --exit-with NAME`: the test-stack mode as one flag.
//!
//! Rewrites a validated tree so that vigil runs until NAME ends, then stops everything in
//! order and exits with NAME's status: NAME becomes `significant` and `temporary` (any
//! exit ends it, none restarts it), and every supervisor from NAME's parent up to the root
//! gets `auto_shutdown = "any_significant"`; the supervisors between them also become
//! `significant` and `transient`, so the shutdown travels up with NAME's status. This is
//! exactly what the same settings written in the file do. Pure: no I/O.

use crate::spec::{AutoShutdown, NodeKind, ROOT_NAME, Restart, Tree};

/// Applies `--exit-with name` to `tree`. The error says what is wrong and how to fix it.
pub fn apply_exit_with(tree: &mut Tree, name: &str) -> Result<(), String> {
    let id = match tree.find(name) {
        Some(id) if name != ROOT_NAME => id,
        _ => {
            let names: Vec<&str> = tree.nodes.iter().skip(1).map(|n| n.name.as_str()).collect();
            let listed = if names.is_empty() {
                "the file defines no process or supervisor".to_string()
            } else {
                format!("defined names: {}", names.join(", "))
            };
            return Err(format!(
                "--exit-with {name:?}: no process or supervisor of that name in the configuration ({listed})"
            ));
        }
    };
    let node = &mut tree.nodes[id.index()];
    node.significant = true;
    node.restart = Restart::Temporary;
    let mut cur = node.parent;
    let mut child = id;
    while let Some(p) = cur {
        if child != id {
            let c = &mut tree.nodes[child.index()];
            c.significant = true;
            if c.restart == Restart::Permanent {
                c.restart = Restart::Transient;
            }
        }
        let sup = &mut tree.nodes[p.index()];
        if let NodeKind::Supervisor(s) = &mut sup.kind {
            s.auto_shutdown = AutoShutdown::AnySignificant;
        }
        child = p;
        cur = sup.parent;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_the_chain_up_to_the_root() {
        let src = r#"
children = ["db", "tests"]
[process.db]
command = ["db"]
[supervisor.tests]
children = ["t"]
[process.t]
command = ["t"]
"#;
        let mut tree = crate::config::parse(src, std::path::Path::new("x.toml"))
            .expect("valid")
            .tree;
        apply_exit_with(&mut tree, "t").expect("known name");
        let t = tree.node(tree.find("t").unwrap());
        assert!(t.significant);
        assert_eq!(t.restart, Restart::Temporary);
        let sup = tree.node(tree.find("tests").unwrap());
        assert!(sup.significant);
        assert_eq!(sup.restart, Restart::Transient);
        let auto = |n: &str| {
            tree.node(tree.find(n).unwrap())
                .as_supervisor()
                .unwrap()
                .auto_shutdown
        };
        assert_eq!(auto("tests"), AutoShutdown::AnySignificant);
        assert_eq!(auto("root"), AutoShutdown::AnySignificant);
        let db = tree.node(tree.find("db").unwrap());
        assert!(!db.significant);

        let err = apply_exit_with(&mut tree, "nope").unwrap_err();
        assert!(
            err.contains("\"nope\"") && err.contains("db, tests, t"),
            "{err}"
        );
        assert!(apply_exit_with(&mut tree, "root").is_err());
    }
}
