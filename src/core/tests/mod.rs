//! Engine tests: OTP's acceptance cases and properties, all in simulated time.

mod control;
mod harness;
mod otp;
mod props;
mod readiness;

/// Invariant 3, checked mechanically: the engine's code (tests aside) names no I/O, no
/// clock, no OS crate.
#[test]
fn the_core_is_pure() {
    const FORBIDDEN: &[&str] = &[
        "tokio",
        "nix::",
        "libc",
        "std::fs",
        "std::io",
        "std::net",
        "std::process",
        "std::env",
        "std::thread",
        "Instant::now",
        "SystemTime",
        "unsafe",
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/core");
    for name in [
        "mod.rs",
        "engine.rs",
        "backoff.rs",
        "control.rs",
        "intensity.rs",
        "readiness.rs",
    ] {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).expect("read core source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                assert!(
                    !line.contains(word),
                    "src/core/{name}:{}: `{word}` in the pure core",
                    n + 1
                );
            }
        }
    }
}
