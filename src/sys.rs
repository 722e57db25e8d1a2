//! The only module allowed `unsafe`. (Being written.)
