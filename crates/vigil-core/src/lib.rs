//! vigil-core: the pure supervision engine (every decision vigil makes about its tree)
//! and the tree model it runs ([`spec`]).
//!
//! A crate of its own so that the compiler keeps it pure: it depends on no tokio, nix or
//! libc, forbids `unsafe`, and its `clippy.toml` bans reading a clock. The `vigil` crate
//! drives it (quinn-proto is to quinn what this crate is to vigil).
//!
//! # Contract (quinn-proto's shape, OTP's semantics)
//!
//! The runtime feeds [`Input`]s, each with the current time, into [`Engine::handle`],
//! then drains [`Engine::poll_action`] (things to do: spawn, signal, exit) and
//! [`Engine::poll_event`] (things to log), and re-arms its single timer to
//! [`Engine::next_deadline`]. When the deadline passes it feeds [`Input::Tick`].
//!
//! A [`Action::Spawn`] must be answered with [`Input::Spawned`] or
//! [`Input::SpawnFailed`] before anything else is fed in: starts are synchronous, as
//! in OTP, and this is what lets the runtime register a pid before it can be reaped.
//!
//! # What this module must never do
//!
//! No I/O, no clock reads, no randomness from the OS, no tokio, no nix, no `unsafe`.
//! Time comes in as `now`; jitter comes from a seeded [`backoff::Rng`]. That is what makes
//! the simulated-time tests in `tests/` exact.
//!
//! # Semantics
//!
//! Sections 1.2 to 1.10 of `shared/reference/otp-supervisor.md`, implemented in
//! [`engine`] with the OTP function each part mirrors named in its comments. Where vigil
//! differs from OTP (backoff; exact instead of whole-second times; nothing restarts once
//! vigil itself is stopping; exit codes) `docs/ARCHITECTURE.md` says so.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
mod engine;
pub mod intensity;
pub mod sim;
pub mod spec;
mod time;

pub use engine::{
    Action, Command, ControlError, DAEMONIZE_HINT, Done, End, Engine, Event, ExitReason, Input,
    KILL_WAIT, NodeView, Pid, Probe, REPEAT_WINDOW, State, Token, Unready,
};
pub use time::Time;
