//! The runtime. (Being written.)
use std::path::Path;

/// `vigil run`.
pub fn run_main(_path: &Path) -> u8 {
    crate::exit::INTERNAL
}
pub mod reaper;
pub mod signals;
pub mod spawn;
pub mod sweep;
