//! Engine tests: OTP's acceptance cases and properties, all in simulated time.

mod harness;
mod otp;
mod props;
