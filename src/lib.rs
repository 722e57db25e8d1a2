//! vigil: a PID-1-capable supervisor of OS processes with Erlang/OTP semantics.
//!
//! # Layout
//!
//! - [`spec`]: the validated supervision tree (plain data), from `crates/vigil-core`.
//! - [`config`]: TOML → raw structs → validated [`spec::Tree`], every error at once.
//! - [`core`]: the pure engine, the `vigil-core` crate. Inputs with `now` in, actions and
//!   a next deadline out. No I/O, no clock, no tokio or nix: the compiler keeps it so.
//! - [`runtime`]: the event loop that feeds the engine from signals, the reaper and
//!   timers, and carries out its actions (spawn, signal, exit).
//! - [`control`]: the control socket and HTTP endpoints of `vigil run` (loop sources).
//! - [`client`]: `vigil status|stop|start|restart|signal|wait-ready`, the socket's client.
//! - [`exec`]: `vigil exec -- CMD`, the single-command init (tini / dumb-init mode).
//! - [`os`]: the OS seam (spawn, reap, signals, sweep, `/proc`) behind the `Os` trait;
//!   `os::sys` is the only module with `unsafe`: thin wrappers over system calls.
//! - [`fatal`]: the panic hook and fatal errors (exit 70, after SIGKILL to live children).
//!
//! `docs/ARCHITECTURE.md` draws the loop and lists the invariants.

#![deny(clippy::disallowed_methods)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod exec;
pub mod exit;
pub mod fatal;
pub mod os;
pub mod runtime;

/// The pure engine (the `vigil-core` crate), under the name the rest of vigil uses.
pub use vigil_core as core;
/// The validated supervision tree (from the `vigil-core` crate).
pub use vigil_core::spec;
