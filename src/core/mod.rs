//! The pure supervision engine. (Being written.)
pub mod backoff;
