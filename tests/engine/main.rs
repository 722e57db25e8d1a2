//! Engine tests: OTP's acceptance cases and properties, all in simulated time.

mod control;
mod harness;
mod otp;
mod props;
mod readiness;
mod seam;

/// Invariant 3, checked where the compiler cannot: the engine's crate depends on nothing
/// that does I/O (its `clippy.toml` bans the clock, `#![forbid(unsafe_code)]` the rest).
#[test]
fn the_core_depends_on_nothing_impure() {
    const ALLOWED: &[&str] = &["humantime"];
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/vigil-core/Cargo.toml");
    let text = std::fs::read_to_string(manifest).expect("read vigil-core's Cargo.toml");
    let doc: toml::Table = text.parse().expect("vigil-core's Cargo.toml parses");
    for section in ["dependencies", "build-dependencies"] {
        let Some(deps) = doc.get(section).and_then(|d| d.as_table()) else {
            continue;
        };
        for name in deps.keys() {
            assert!(
                ALLOWED.contains(&name.as_str()),
                "vigil-core [{section}] names `{name}`: the pure core may depend only on {ALLOWED:?}"
            );
        }
    }
}
