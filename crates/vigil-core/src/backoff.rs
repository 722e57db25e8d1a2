//! Restart delays: capped exponential backoff with jitter, from an injected random source.
//!
//! Pure arithmetic. The random numbers come from [`Rng`], a small seeded generator the
//! engine owns, so a test that seeds it replays the same delays. Nothing here reads a
//! clock or the OS's randomness.

use std::time::Duration;

use crate::spec::Backoff;

/// The delay before restart number `attempt` (0 for the first restart after a run that
/// reset the schedule), with `unit` a uniform sample in `[0, 1)` for the jitter.
pub fn delay(backoff: &Backoff, attempt: u32, unit: f64) -> Duration {
    match *backoff {
        Backoff::None => Duration::ZERO,
        Backoff::Exponential {
            initial,
            max,
            multiplier,
            jitter,
            ..
        } => {
            let base = base_delay(initial, max, multiplier, attempt);
            // Spread uniformly over [base * (1 - jitter), base * (1 + jitter)], then cap.
            let factor = 1.0 + jitter * (2.0 * unit - 1.0);
            base.mul_f64(factor.max(0.0)).min(max)
        }
    }
}

/// `initial * multiplier^attempt`, capped at `max`, without jitter.
fn base_delay(initial: Duration, max: Duration, multiplier: f64, attempt: u32) -> Duration {
    let scale = multiplier.powi(attempt.min(1024) as i32);
    let secs = initial.as_secs_f64() * scale;
    if !secs.is_finite() || secs >= max.as_secs_f64() {
        max
    } else {
        Duration::from_secs_f64(secs)
    }
}

/// The shortest time in which a child that exits at once after every start can use up an
/// intensity of `intensity`: the sum of the `intensity` smallest possible delays between its
/// `intensity + 1` counted exits. If this exceeds the period, the supervisor never gives up
/// on such a child; `vigil check` warns about it.
///
/// Constant time in `intensity`: once the delay reaches its cap (or after 10,000 steps,
/// for multipliers so close to 1 that it grows too slowly to matter), the remaining delays
/// are counted as equal to the last one, which never overstates the total.
pub fn min_time_to_exhaust(backoff: &Backoff, intensity: u32) -> Duration {
    let cap = delay(backoff, u32::MAX, 0.0);
    let mut total = Duration::ZERO;
    for attempt in 0..intensity {
        let d = delay(backoff, attempt, 0.0);
        if d >= cap || attempt >= 10_000 {
            return total.saturating_add(d.saturating_mul(intensity - attempt));
        }
        total = total.saturating_add(d);
    }
    total
}

/// Whether a child's schedule starts over, given how long it ran before exiting.
pub fn resets_after(backoff: &Backoff, uptime: Duration) -> bool {
    match *backoff {
        Backoff::None => true,
        Backoff::Exponential { reset_after, .. } => uptime >= reset_after,
    }
}

/// xorshift64*: a tiny deterministic generator for jitter. Not for anything secret.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A uniform sample in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exp(initial_ms: u64, max_ms: u64, jitter: f64) -> Backoff {
        Backoff::Exponential {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            multiplier: 2.0,
            jitter,
            reset_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let b = exp(100, 1000, 0.0);
        let ms: Vec<u128> = (0..6).map(|a| delay(&b, a, 0.5).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(delay(&b, u32::MAX, 0.5), Duration::from_millis(1000));
    }

    #[test]
    fn none_is_immediate_and_always_resets() {
        assert_eq!(delay(&Backoff::None, 7, 0.9), Duration::ZERO);
        assert!(resets_after(&Backoff::None, Duration::ZERO));
        assert_eq!(min_time_to_exhaust(&Backoff::None, 100), Duration::ZERO);
    }

    #[test]
    fn exhaust_time_of_the_default() {
        // 3 in 5 s with the default schedule: 0.09 + 0.18 + 0.36 s at the lowest jitter.
        let t = min_time_to_exhaust(&Backoff::DEFAULT, 3);
        assert_eq!(t.as_millis(), 630);
    }

    #[test]
    fn exhaust_time_is_exact_and_cheap_for_huge_intensities() {
        // 100, 200, 400, 800 ms, then the 1 s cap: summing term by term must agree.
        let b = exp(100, 1000, 0.0);
        let slow: Duration = (0..50).map(|a| delay(&b, a, 0.0)).sum();
        assert_eq!(min_time_to_exhaust(&b, 50), slow);
        // A multiplier of 1 never reaches a cap below max: constant delays.
        let flat = Backoff::Exponential {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(1),
            multiplier: 1.0,
            jitter: 0.0,
            reset_after: Duration::from_secs(1),
        };
        assert_eq!(
            min_time_to_exhaust(&flat, 20_000),
            Duration::from_millis(200_000)
        );
        // Used to loop a billion times.
        assert_eq!(
            min_time_to_exhaust(&b, u32::MAX),
            Duration::from_secs(u64::from(u32::MAX) - 4) + Duration::from_millis(1500)
        );
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = super::Rng::new(42);
        let mut b = super::Rng::new(42);
        for _ in 0..1000 {
            let x = a.unit();
            assert_eq!(x, b.unit());
            assert!((0.0..1.0).contains(&x));
        }
    }

    proptest! {
        #[test]
        fn jitter_stays_within_bounds(initial in 1u64..10_000, attempt in 0u32..64, unit in 0.0f64..1.0, jitter in 0.0f64..0.99) {
            let b = exp(initial, 60_000, jitter);
            let base = base_delay(Duration::from_millis(initial), Duration::from_millis(60_000), 2.0, attempt);
            let d = delay(&b, attempt, unit);
            prop_assert!(d <= Duration::from_millis(60_000));
            prop_assert!(d.as_secs_f64() >= base.as_secs_f64() * (1.0 - jitter) - 1e-9);
            prop_assert!(d.as_secs_f64() <= base.as_secs_f64() * (1.0 + jitter) + 1e-9);
        }
    }
}
