//! `vigil exec`. (Being written.)

/// `vigil exec`.
pub fn exec_main(_args: &crate::cli::ExecArgs) -> u8 {
    crate::exit::INTERNAL
}
