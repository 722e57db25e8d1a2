//! [`Time`]: a point on the engine's clock, which the engine itself cannot read.
//!
//! The runtime passes `now` in with every input; the engine only compares and adds. A
//! `Time` is a [`Duration`] since an origin the runtime chose (its start), so unlike
//! `std::time::Instant` it has no `now()` to call by mistake, and its arithmetic
//! saturates: a deadline that would lie beyond the representable range is "never", not a
//! panic (a `shutdown = "100y"` grace must not abort PID 1).
//!
//! Must never: read a clock, panic on arithmetic.

use std::ops::{Add, Sub};

use std::time::Duration;

/// A point in time on the runtime's monotonic clock, as a duration since its origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(Duration);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(Duration::ZERO);
    /// The latest representable time: "never" for deadlines.
    pub const MAX: Time = Time(Duration::MAX);

    /// The time `since_origin` after the origin.
    pub const fn from_origin(since_origin: Duration) -> Time {
        Time(since_origin)
    }

    /// How long after the origin this is.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is; zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// Saturating: `Time::MAX` when the sum does not fit.
impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }
}

impl std::ops::AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

/// Saturating: zero when `rhs` is later.
impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, rhs: Time) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_origin(Duration::from_secs(5));
        assert_eq!(t + Duration::MAX, Time::MAX);
        assert_eq!(Time::MAX + Duration::from_secs(1), Time::MAX);
        assert_eq!(Time::ZERO - t, Duration::ZERO);
        assert_eq!(t - Time::ZERO, Duration::from_secs(5));
    }
}
