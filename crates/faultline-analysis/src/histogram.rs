//! Fixed-bucket latency histograms, their quantile estimates and exemplars.
//!
//! Buckets are the ones Tempo's span metrics use (2 ms doubling to 16.384 s, then `+Inf`), so
//! dashboards written for Tempo read ours unchanged. Quantiles interpolate linearly inside the
//! bucket, as Prometheus' `histogram_quantile` does, so the JSON API and PromQL agree.

use faultline_model::{TraceId, UnixNanos};

/// Upper bounds of the finite buckets, in nanoseconds.
pub const BUCKET_BOUNDS_NANOS: [u64; 14] = [
    2_000_000,
    4_000_000,
    8_000_000,
    16_000_000,
    32_000_000,
    64_000_000,
    128_000_000,
    256_000_000,
    512_000_000,
    1_024_000_000,
    2_048_000_000,
    4_096_000_000,
    8_192_000_000,
    16_384_000_000,
];

/// Number of buckets including `+Inf`.
pub const BUCKETS: usize = BUCKET_BOUNDS_NANOS.len() + 1;

/// The bucket a duration falls in: the first whose upper bound is at least `nanos`.
///
/// The bounds are 2 ms × 2^k, so that bucket is the smallest k with 2^k ≥ ⌈nanos / 2 ms⌉:
/// a division by a constant and a leading-zero count, instead of a branchy binary search
/// (every span and every edge observation takes this).
#[inline]
pub fn bucket_index(nanos: u64) -> usize {
    const UNIT: u64 = BUCKET_BOUNDS_NANOS[0];
    let units = nanos.div_ceil(UNIT);
    if units <= 1 {
        return 0;
    }
    // ⌈log2(units)⌉ for units ≥ 2.
    let k = (u64::BITS - (units - 1).leading_zeros()) as usize;
    k.min(BUCKETS - 1)
}

/// A cumulative-over-time latency histogram (non-cumulative bucket counts).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative across buckets).
    pub counts: [u64; BUCKETS],
    /// Sum of all observed durations, in nanoseconds.
    pub sum_nanos: u64,
}

impl Histogram {
    /// Counts one duration.
    #[inline]
    pub fn record(&mut self, nanos: u64) {
        self.counts[bucket_index(nanos)] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }

    /// Adds the observations of a slot histogram.
    pub fn add_slot(&mut self, counts: &[u32; BUCKETS], sum_nanos: u64) {
        for (total, &c) in self.counts.iter_mut().zip(counts) {
            *total += u64::from(c);
        }
        self.sum_nanos = self.sum_nanos.saturating_add(sum_nanos);
    }

    /// Adds another histogram's observations.
    pub fn merge(&mut self, other: &Histogram) {
        for (total, &c) in self.counts.iter_mut().zip(&other.counts) {
            *total += c;
        }
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean duration in seconds, `None` when empty.
    pub fn mean_seconds(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum_nanos as f64 / n as f64 / 1e9)
    }

    /// Estimates the `q` quantile (0..=1) in seconds; `None` when empty. Values in the `+Inf`
    /// bucket report the largest finite bound, as Prometheus does.
    pub fn quantile_seconds(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total as f64;
        let mut before = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (before + c) as f64 >= rank {
                let Some(&upper) = BUCKET_BOUNDS_NANOS.get(i) else {
                    return Some(BUCKET_BOUNDS_NANOS[BUCKETS - 2] as f64 / 1e9);
                };
                let lower = if i == 0 {
                    0
                } else {
                    BUCKET_BOUNDS_NANOS[i - 1]
                };
                let within = ((rank - before as f64) / c as f64).clamp(0.0, 1.0);
                return Some((lower as f64 + (upper - lower) as f64 * within) / 1e9);
            }
            before += c;
        }
        None
    }
}

/// One trace that illustrates a bucket: the last observation that landed in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exemplar {
    /// The trace the observation came from.
    pub trace_id: TraceId,
    /// The observed duration in nanoseconds.
    pub value_nanos: u64,
    /// When the span ended.
    pub at: UnixNanos,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges_are_inclusive_upper_bounds() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(2_000_000), 0);
        assert_eq!(bucket_index(2_000_001), 1);
        assert_eq!(bucket_index(16_384_000_000), 13);
        assert_eq!(bucket_index(16_384_000_001), 14);
        assert_eq!(bucket_index(u64::MAX), 14);
    }

    /// What `bucket_index` computes arithmetically, by its definition.
    fn by_search(nanos: u64) -> usize {
        BUCKET_BOUNDS_NANOS.partition_point(|&bound| bound < nanos)
    }

    #[test]
    fn bucket_index_agrees_with_the_bounds_at_every_edge() {
        for (k, &bound) in BUCKET_BOUNDS_NANOS.iter().enumerate() {
            assert_eq!(bound, BUCKET_BOUNDS_NANOS[0] << k, "bounds double");
            for nanos in [
                bound - 1,
                bound,
                bound + 1,
                bound / 2 + 1,
                bound + bound / 2,
            ] {
                assert_eq!(bucket_index(nanos), by_search(nanos), "{nanos}");
            }
        }
        for nanos in [0, 1, 999_999, u64::MAX - 1, u64::MAX] {
            assert_eq!(bucket_index(nanos), by_search(nanos), "{nanos}");
        }
    }

    proptest::proptest! {
        #[test]
        fn bucket_index_agrees_with_a_search(nanos in proptest::num::u64::ANY, small in 0u64..40_000_000_000) {
            proptest::prop_assert_eq!(bucket_index(nanos), by_search(nanos));
            proptest::prop_assert_eq!(bucket_index(small), by_search(small));
        }
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let mut h = Histogram::default();
        // 100 observations evenly in (4 ms, 8 ms]: bucket 2.
        for i in 0..100 {
            h.record(4_000_001 + i * 39_000);
        }
        assert_eq!(h.count(), 100);
        let p50 = h.quantile_seconds(0.5).unwrap();
        assert!((p50 - 0.006).abs() < 1e-9, "{p50}");
        let p99 = h.quantile_seconds(0.99).unwrap();
        assert!((p99 - 0.00796).abs() < 1e-9, "{p99}");
        assert_eq!(h.quantile_seconds(0.0), Some(0.004));
    }

    #[test]
    fn quantiles_span_buckets_and_cap_at_the_last_bound() {
        let mut h = Histogram::default();
        for _ in 0..90 {
            h.record(1_000_000); // bucket 0
        }
        for _ in 0..10 {
            h.record(100_000_000_000); // +Inf
        }
        // p50 is the 50th of 90 in [0, 2 ms].
        let p50 = h.quantile_seconds(0.5).unwrap();
        assert!((p50 - 0.002 * 50.0 / 90.0).abs() < 1e-12, "{p50}");
        assert_eq!(h.quantile_seconds(0.99), Some(16.384));
        assert_eq!(h.quantile_seconds(1.5), None);
        assert_eq!(Histogram::default().quantile_seconds(0.5), None);
    }

    #[test]
    fn merge_and_slots_add_up() {
        let mut a = Histogram::default();
        a.record(3_000_000);
        let mut slot = [0u32; BUCKETS];
        slot[1] = 2;
        a.add_slot(&slot, 7_000_000);
        let mut b = Histogram::default();
        b.merge(&a);
        b.merge(&a);
        assert_eq!(b.counts[1], 6);
        assert_eq!(b.sum_nanos, 20_000_000);
        assert_eq!(b.mean_seconds(), Some(20_000_000.0 / 6.0 / 1e9));
    }
}
