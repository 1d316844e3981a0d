//! A latency histogram with about 1% relative precision in fixed memory.

use std::time::Duration;

/// Bucket growth factor: each bucket is 1% wider than the one before.
const GROWTH: f64 = 1.01;
/// Enough buckets for one hour in microseconds.
const BUCKETS: usize = 2_300;

/// Counts of latencies in logarithmic buckets.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

fn bucket(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    ((us as f64).ln() / GROWTH.ln()) as usize
}

impl Histogram {
    /// Adds one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = bucket(us).min(BUCKETS - 1);
        self.counts[index] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Adds everything in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest latency recorded.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The latency below which a fraction `q` of the recorded ones lie (upper bucket bound,
    /// capped at the maximum); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                if index == BUCKETS - 1 {
                    // The overflow bucket has no upper bound but the maximum.
                    return self.max();
                }
                let upper = GROWTH.powi(i32::try_from(index + 1).unwrap_or(i32::MAX));
                let upper_us = (upper as u64).min(self.max_us);
                return Duration::from_micros(upper_us);
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for ms in 1..=1000 {
            h.record(Duration::from_millis(ms));
        }
        for (q, expected_ms) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = h.quantile(q).as_secs_f64() * 1000.0;
            assert!(
                (got - expected_ms).abs() / expected_ms < 0.02,
                "q{q}: got {got}ms, expected about {expected_ms}ms"
            );
        }
        assert_eq!(h.max(), Duration::from_secs(1));
        assert_eq!(h.count(), 1000);
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }

    #[test]
    fn huge_values_land_in_the_last_bucket() {
        let mut h = Histogram::default();
        h.record(Duration::from_secs(100_000));
        assert_eq!(h.quantile(1.0), Duration::from_secs(100_000));
    }
}
