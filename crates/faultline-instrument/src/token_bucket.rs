//! A token bucket shared by the rate-limited sampler and the rate-limit layer.

use std::sync::Mutex;
use std::time::Instant;

/// Grants up to `rate` permits per second with bursts of up to `burst`.
///
/// ```
/// use faultline_instrument::TokenBucket;
/// let bucket = TokenBucket::new(10.0, 2.0);
/// assert!(bucket.try_acquire());
/// ```
#[derive(Debug)]
pub struct TokenBucket {
    rate_per_sec: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate_per_sec`, holding at most `burst` (at least one) tokens.
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        let rate_per_sec = if rate_per_sec.is_finite() {
            rate_per_sec.max(0.0)
        } else {
            0.0
        };
        let burst = if burst.is_finite() {
            burst.max(1.0)
        } else {
            1.0
        };
        TokenBucket {
            rate_per_sec,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Permits per second.
    pub fn rate_per_sec(&self) -> f64 {
        self.rate_per_sec
    }

    /// Takes one token if there is one.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    /// Takes one token if there is one at `now`; time never runs backwards for the bucket.
    pub fn try_acquire_at(&self, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        if now > state.refilled_at {
            state.refilled_at = now;
        }
        state.tokens = (state.tokens + elapsed * self.rate_per_sec).min(self.burst);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refills_at_the_configured_rate() {
        let bucket = TokenBucket::new(2.0, 2.0);
        let start = Instant::now();
        assert!(bucket.try_acquire_at(start));
        assert!(bucket.try_acquire_at(start));
        assert!(!bucket.try_acquire_at(start));
        assert!(!bucket.try_acquire_at(start + Duration::from_millis(400)));
        assert!(bucket.try_acquire_at(start + Duration::from_millis(500)));
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!(bucket.try_acquire_at(later));
        assert!(bucket.try_acquire_at(later));
        assert!(!bucket.try_acquire_at(later));
    }

    #[test]
    fn zero_rate_grants_only_the_initial_burst() {
        let bucket = TokenBucket::new(0.0, 1.0);
        let start = Instant::now();
        assert!(bucket.try_acquire_at(start));
        assert!(!bucket.try_acquire_at(start + Duration::from_secs(3600)));
    }
}
