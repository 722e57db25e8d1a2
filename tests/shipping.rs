//! What ships beside the binary stays valid and consistent:
//!
//! - every tree under `config/` (recursively: the demo, the examples, the test stack)
//!   passes `vigil check` without warnings;
//! - the Kubernetes example (`examples/kubernetes/`): the YAML parses, the ConfigMap's
//!   tree passes `vigil check`, and the Deployment agrees with it: the grace period is
//!   above `shutdown_timeout`, the probes hit `/livez` and `/readyz` on the port of
//!   `[http] listen`, and the termination message path is the tree's `termination_log`.
//!
//! The YAML is read with python3's yaml module (`python3-yaml`, installed by `.ci/run`);
//! without it the Kubernetes test prints a loud SKIPPED line, except on CI where it fails.

#![allow(clippy::disallowed_methods)]

mod common;

/// Writes to the real stderr: libtest captures `eprintln!`, and a skip or a timing must
/// show in a passing run.
macro_rules! loud {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `vigil check PATH`: exit code, stdout, stderr.
fn check(path: &Path) -> (i32, String, String) {
    let out = Command::new(common::vigil())
        .arg("check")
        .arg(path)
        .current_dir(root())
        .output()
        .expect("run vigil check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tomls_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            tomls_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_tree_under_config_passes_vigil_check() {
    let mut trees = Vec::new();
    tomls_under(&root().join("config"), &mut trees);
    trees.sort();
    assert!(
        trees.iter().any(|p| p.ends_with("config/demo.toml")),
        "{trees:?}"
    );
    assert!(
        trees
            .iter()
            .any(|p| p.ends_with("config/examples/web-workers.toml")),
        "{trees:?}"
    );
    for tree in &trees {
        let (code, stdout, stderr) = check(tree);
        assert_eq!(code, 0, "vigil check {}:\n{stderr}", tree.display());
        assert!(
            stderr.is_empty(),
            "vigil check {} warned:\n{stderr}",
            tree.display()
        );
        assert!(stdout.starts_with("root (supervisor)"), "{stdout}");
    }
    let names: Vec<_> = trees
        .iter()
        .map(|t| t.strip_prefix(root()).unwrap_or(t).display().to_string())
        .collect();
    loud!("vigil check passed on {}", names.join(", "));
}

/// Reads the two manifests with python3's yaml and prints the values the test compares,
/// one `key=value` per line; the ConfigMap's tree goes to the file given as argv[1].
const EXTRACT: &str = r#"
import sys, yaml
base = "examples/kubernetes/"
cm = yaml.safe_load(open(base + "configmap.yaml"))
dep = yaml.safe_load(open(base + "deployment.yaml"))
assert cm["kind"] == "ConfigMap" and dep["kind"] == "Deployment"
open(sys.argv[1], "w").write(cm["data"]["vigil.toml"])
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
def port(probe):
    p = probe["httpGet"]["port"]
    return ports.get(p, p)
vols = {v["name"]: v for v in pod["volumes"]}
mount = c["volumeMounts"][0]
print("grace=%d" % pod["terminationGracePeriodSeconds"])
print("live=%s:%s" % (c["livenessProbe"]["httpGet"]["path"], port(c["livenessProbe"])))
print("ready=%s:%s" % (c["readinessProbe"]["httpGet"]["path"], port(c["readinessProbe"])))
print("message_path=%s" % c["terminationMessagePath"])
print("message_policy=%s" % c["terminationMessagePolicy"])
print("args=%s" % " ".join(c["args"]))
print("mount=%s" % mount["mountPath"])
print("mount_configmap=%s" % vols[mount["name"]]["configMap"]["name"])
print("configmap=%s" % cm["metadata"]["name"])
print("selector_ok=%s" % (dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()))
"#;

fn python_with_yaml() -> Option<&'static str> {
    for python in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(python)
            .args(["-c", "import yaml"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "python3 with yaml is missing on CI: .ci/run must install python3-yaml"
    );
    loud!(
        "\n*** SKIPPED: python3's yaml module not found (apt-get install python3-yaml); \
         examples/kubernetes/ was NOT checked ***\n"
    );
    None
}

#[test]
fn kubernetes_example_is_consistent_with_its_tree() {
    let Some(python) = python_with_yaml() else {
        return;
    };
    let dir = common::TestDir::new();
    let tree_path = dir.join("vigil.toml");
    let out = Command::new(python)
        .args(["-c", EXTRACT])
        .arg(&tree_path)
        .current_dir(root())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "examples/kubernetes/*.yaml:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |key: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing in {stdout}"))
            .to_string()
    };

    let text = std::fs::read_to_string(&tree_path).unwrap();
    // The tree passes `vigil check`, `[http]` and `termination_log` included.
    let (code, _, stderr) = check(&tree_path);
    assert_eq!(code, 0, "the ConfigMap's tree:\n{stderr}");
    assert!(stderr.is_empty(), "the ConfigMap's tree warned:\n{stderr}");

    let tree: toml::Table = text.parse().expect("the ConfigMap's tree is TOML");
    let secs = |v: &toml::Value| -> Duration {
        humantime::parse_duration(v.as_str().expect("a duration string")).unwrap()
    };
    let shutdown_timeout = secs(tree.get("shutdown_timeout").expect("shutdown_timeout"));
    let grace = Duration::from_secs(get("grace").parse().unwrap());
    assert!(
        shutdown_timeout + Duration::from_secs(3) <= grace,
        "terminationGracePeriodSeconds ({grace:?}) must leave room above shutdown_timeout ({shutdown_timeout:?})"
    );

    let listen = tree
        .get("http")
        .and_then(|h| h.get("listen"))
        .and_then(|l| l.as_str())
        .expect("[http] listen in the tree");
    let port = listen.rsplit(':').next().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "the kubelet probes the pod IP: {listen}"
    );
    assert_eq!(get("live"), format!("/livez:{port}"));
    assert_eq!(get("ready"), format!("/readyz:{port}"));

    let termination_log = tree
        .get("termination_log")
        .and_then(|t| t.as_str())
        .expect("termination_log in the tree");
    assert_eq!(get("message_path"), termination_log);
    assert_eq!(get("message_policy"), "FallbackToLogsOnError");

    // The container runs the mounted tree.
    assert_eq!(get("args"), format!("run {}/vigil.toml", get("mount")));
    assert_eq!(get("mount_configmap"), get("configmap"));
    assert_eq!(get("selector_ok"), "True");
}

/// The Containerfile (for machines that pull public images; it cannot be built here) and
/// `packaging/build-image.sh` (tested for real in `tests/container.rs`) make the same
/// image, and the Containerfile copies everything `Cargo.toml` needs to build.
#[test]
fn containerfile_matches_the_tested_local_image() {
    let containerfile = std::fs::read_to_string(root().join("Containerfile")).unwrap();
    let script = std::fs::read_to_string(root().join("packaging/build-image.sh")).unwrap();
    for line in [
        "FROM scratch",
        "ENV PATH=/usr/bin:/bin",
        "STOPSIGNAL SIGTERM",
        r#"ENTRYPOINT ["/usr/bin/vigil"]"#,
        r#"CMD ["run", "/etc/vigil/vigil.toml"]"#,
    ] {
        assert!(containerfile.contains(line), "Containerfile lacks {line}");
        assert!(script.contains(line), "build-image.sh lacks {line}");
    }
    for needed in [
        "target-feature=+crt-static",
        "busybox-static",
        "packaging/rootfs",
        "1777",
    ] {
        assert!(
            containerfile.contains(needed),
            "Containerfile lacks {needed}"
        );
    }
    assert!(containerfile.contains("COPY config/demo.toml /etc/vigil/vigil.toml"));
    assert!(script.contains("config/demo.toml"));
    // Every target path Cargo.toml names is copied into the build stage.
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let copied: Vec<&str> = containerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            // COPY SRC... DEST: every word but the last is a source.
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len().saturating_sub(1)].to_vec()
        })
        .collect();
    let mut paths = vec![
        "Cargo.toml".to_string(),
        "Cargo.lock".to_string(),
        "src/main.rs".to_string(),
    ];
    for kind in ["bin", "bench"] {
        for t in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            match t.get("path").and_then(|p| p.as_str()) {
                Some(p) => paths.push(p.to_string()),
                None => paths.push(format!("benches/{}.rs", t["name"].as_str().unwrap())),
            }
        }
    }
    for path in &paths {
        assert!(
            copied
                .iter()
                .any(|c| path.starts_with(c.trim_end_matches('/'))),
            "the Containerfile's build stage does not copy {path} (COPY lines: {copied:?})"
        );
    }
    for dir in ["packaging/rootfs/etc/passwd", "packaging/rootfs/etc/group"] {
        assert!(root().join(dir).exists(), "{dir}");
    }
}
