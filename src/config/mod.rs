//! Configuration loading. (Being written.)
use std::path::Path;

/// `vigil check`.
pub fn check_main(_path: &Path) -> u8 {
    crate::exit::INTERNAL
}
