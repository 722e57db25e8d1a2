//! The restart intensity window: OTP's `add_restart/1`, with exact times.
//!
//! One window per supervisor, shared by all its children. It holds the times of the
//! restarts still inside the period, never more than `intensity` of them (a bounded
//! ring, as OTP PR #8261 made it). Pure: `now` is always passed in.
//!
//! OTP truncates times to whole seconds; vigil keeps exact times. A restart whose age is
//! at most `period` counts; one older does not. OTP's own tests keep a second of margin
//! around that boundary, so they pass either way.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Time;

/// Restarts of one supervisor within its sliding period.
#[derive(Clone, Debug)]
pub struct Window {
    intensity: u32,
    period: Duration,
    /// Times of counted restarts, oldest first; at most `intensity` entries.
    restarts: VecDeque<Time>,
}

impl Window {
    /// An empty window allowing `intensity` restarts per `period`.
    pub fn new(intensity: u32, period: Duration) -> Window {
        Window {
            intensity,
            period,
            restarts: VecDeque::with_capacity(intensity.min(64) as usize),
        }
    }

    /// Counts a restart at `now`. Returns `false` when it would be restart number
    /// `intensity + 1` within the period: the supervisor must give up. A refused restart
    /// is not recorded.
    #[must_use = "a refused restart means the supervisor gives up"]
    pub fn add(&mut self, now: Time) -> bool {
        if self.intensity == 0 {
            return false;
        }
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) > self.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if self.restarts.len() >= self.intensity as usize {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// Restarts recorded; right after [`Window::add`] this is the count inside the period.
    pub fn len(&self) -> usize {
        self.restarts.len()
    }

    /// Whether no restart is recorded.
    pub fn is_empty(&self) -> bool {
        self.restarts.is_empty()
    }

    /// How many counted restarts are still inside the period as of `now`.
    pub fn count(&self, now: Time) -> usize {
        self.restarts
            .iter()
            .filter(|&&t| now.saturating_duration_since(t) <= self.period)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(t0: Time, secs: f64) -> Time {
        t0 + Duration::from_secs_f64(secs)
    }

    /// The worked example of otp-supervisor.md section 1.5 (MaxR = 2, MaxT = 5).
    #[test]
    fn worked_example() {
        let t0 = Time::ZERO;
        let mut w = Window::new(2, Duration::from_secs(5));
        assert!(w.add(at(t0, 0.0)));
        assert!(w.add(at(t0, 1.0)));
        assert!(!w.add(at(t0, 3.0)), "third restart within 5 s gives up");

        let mut w = Window::new(2, Duration::from_secs(5));
        assert!(w.add(at(t0, 0.0)));
        assert!(w.add(at(t0, 1.0)));
        assert!(w.add(at(t0, 8.0)), "0 and 1 have expired");
        assert!(w.add(at(t0, 8.5)));
        assert!(!w.add(at(t0, 9.0)), "8 and 8.5 are inside the window");
    }

    #[test]
    fn zero_intensity_always_gives_up() {
        let mut w = Window::new(0, Duration::from_secs(1));
        assert!(!w.add(Time::ZERO));
    }

    #[test]
    fn boundary_is_inclusive() {
        let t0 = Time::ZERO;
        let mut w = Window::new(1, Duration::from_secs(5));
        assert!(w.add(t0));
        assert!(!w.add(at(t0, 5.0)), "age == period still counts");
        assert!(w.add(at(t0, 5.001)));
    }

    proptest! {
        /// No period-long window ever holds more accepted restarts than the intensity.
        #[test]
        fn never_more_than_intensity_in_a_period(
            intensity in 0u32..6,
            period_ms in 1u64..5_000,
            gaps in proptest::collection::vec(0u64..3_000, 1..200),
        ) {
            let t0 = Time::ZERO;
            let period = Duration::from_millis(period_ms);
            let mut w = Window::new(intensity, period);
            let mut accepted: Vec<Time> = Vec::new();
            let mut now = t0;
            for gap in gaps {
                now += Duration::from_millis(gap);
                if w.add(now) {
                    accepted.push(now);
                }
                let inside = accepted.iter().filter(|&&t| now.saturating_duration_since(t) <= period).count();
                prop_assert!(inside <= intensity as usize);
                prop_assert_eq!(inside, w.count(now));
            }
        }
    }
}
