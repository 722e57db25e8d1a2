//! Fuzz target: the config parser and validator (`vigil::config::parse`).
//!
//! Any byte string that is UTF-8 goes through `parse` (what `vigil check` and `vigil run`
//! do after reading the file). Asserted: no panic; a rejected input has at least one
//! error, and every error has a location (line and column >= 1) and, unless it is a
//! TOML syntax error, a key path; an accepted input renders (`vigil check`'s output)
//! and that rendering parses again; and an accepted input runs: a short simulated run
//! of the engine (`vigil::core::sim`) with random exits, failed and late spawns and a
//! stop never panics and never breaks an invariant (one live process per node, ...).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("fuzz.toml");
    match vigil::config::parse(src, origin) {
        Ok(loaded) => {
            let text = vigil::config::render(&loaded.tree);
            assert!(!text.is_empty());
            let seed = data.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b));
            if let Err(v) = vigil::core::sim::run(loaded.tree, seed) {
                panic!("accepted config breaks the engine: {}", v.0);
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "rejected without a diagnostic");
            for d in &errors.0 {
                assert!(d.line >= 1 && d.col >= 1, "diagnostic without a location: {d}");
                assert_eq!(d.file, origin);
                assert!(!d.message.is_empty(), "empty message: {d:?}");
                assert!(
                    !d.key.is_empty() || d.message.starts_with("invalid TOML"),
                    "diagnostic without a key path: {d}"
                );
            }
        }
    }
});
