//! Streaming statistics of one series (a service operation, an edge side) over sliding windows.
//!
//! Time is cut into fixed slots (10 s by default) indexed by arrival time; a series keeps the
//! slots it saw traffic in, up to the retained horizon, so an idle series costs little and a
//! busy one at most `slots` × ~90 bytes. Windows are answered by summing the newest slots.
//! Cumulative totals (for Prometheus counters) and one exemplar per bucket are kept beside them.
//!
//! Baselines for anomaly detection are meant to sit beside these slots (see `docs/analysis.md`):
//! a closed slot is exactly one sample of rate, error ratio and latency quantiles.

use std::collections::VecDeque;

use faultline_model::{TraceId, UnixNanos};

use crate::histogram::{bucket_index, Exemplar, Histogram, BUCKETS};

/// One observation fed to a series.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    /// Duration in nanoseconds.
    pub nanos: u64,
    /// Whether the call failed.
    pub error: bool,
    /// Trace the observation came from, kept as an exemplar.
    pub trace_id: TraceId,
    /// When the span ended (the exemplar's timestamp).
    pub end: UnixNanos,
}

/// Counts of one time slot; `u32` counters keep a slot small (a slot never sees 4 billion calls).
#[derive(Clone, Debug)]
struct Slot {
    index: u64,
    counts: [u32; BUCKETS],
    errors: u32,
    sum_nanos: u64,
}

/// Sums over a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowStats {
    /// Calls seen.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Their latency distribution.
    pub latency: Histogram,
}

impl WindowStats {
    /// Adds another window's sums.
    pub fn merge(&mut self, other: &WindowStats) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// A series: sliding slots, cumulative totals and exemplars.
#[derive(Clone, Debug, Default)]
pub struct WindowedSeries {
    slots: VecDeque<Slot>,
    total: Histogram,
    total_errors: u64,
    exemplars: [Option<Exemplar>; BUCKETS],
}

impl WindowedSeries {
    /// Records `obs` into slot `slot_index`, keeping at most `max_slots` slots.
    #[inline]
    pub fn record(&mut self, obs: &Observation, slot_index: u64, max_slots: usize) {
        let bucket = bucket_index(obs.nanos);
        self.total.counts[bucket] += 1;
        self.total.sum_nanos = self.total.sum_nanos.saturating_add(obs.nanos);
        self.total_errors += u64::from(obs.error);
        self.exemplars[bucket] = Some(Exemplar {
            trace_id: obs.trace_id,
            value_nanos: obs.nanos,
            at: obs.end,
        });
        let slot = match self.slots.back_mut() {
            Some(last) if last.index == slot_index => last,
            // Late arrivals from a slot already closed land in the newest slot: arrival time
            // is what windows mean, and it only moves forward.
            Some(last) if last.index > slot_index => last,
            _ => {
                while self.slots.len() >= max_slots.max(1) {
                    self.slots.pop_front();
                }
                self.slots.push_back(Slot {
                    index: slot_index,
                    counts: [0; BUCKETS],
                    errors: 0,
                    sum_nanos: 0,
                });
                // Just pushed, so present.
                let len = self.slots.len();
                &mut self.slots[len - 1]
            }
        };
        slot.counts[bucket] = slot.counts[bucket].saturating_add(1);
        slot.errors = slot.errors.saturating_add(u32::from(obs.error));
        slot.sum_nanos = slot.sum_nanos.saturating_add(obs.nanos);
    }

    /// Sums the slots whose index is in `(now_slot - window_slots, now_slot]`.
    pub fn window(&self, now_slot: u64, window_slots: u64) -> WindowStats {
        let oldest = now_slot.saturating_sub(window_slots.saturating_sub(1));
        let mut out = WindowStats::default();
        for slot in self.slots.iter().rev() {
            if slot.index < oldest {
                break;
            }
            if slot.index > now_slot {
                continue;
            }
            out.latency.add_slot(&slot.counts, slot.sum_nanos);
            out.errors += u64::from(slot.errors);
        }
        out.calls = out.latency.count();
        out
    }

    /// Index of the oldest slot still kept.
    pub fn oldest_slot(&self) -> Option<u64> {
        self.slots.front().map(|s| s.index)
    }

    /// All calls since start, as Prometheus counters want them.
    pub fn total(&self) -> &Histogram {
        &self.total
    }

    /// All failed calls since start.
    pub fn total_errors(&self) -> u64 {
        self.total_errors
    }

    /// The latest exemplar per bucket.
    pub fn exemplars(&self) -> &[Option<Exemplar>; BUCKETS] {
        &self.exemplars
    }

    /// The most recent exemplars (at most `n`), newest first, for the JSON API.
    pub fn recent_exemplars(&self, n: usize) -> Vec<Exemplar> {
        let mut all: Vec<Exemplar> = self.exemplars.iter().flatten().copied().collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.at));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(ms: u64, error: bool) -> Observation {
        Observation {
            nanos: ms * 1_000_000,
            error,
            trace_id: TraceId([1; 16]),
            end: UnixNanos(ms),
        }
    }

    #[test]
    fn windows_sum_only_recent_slots() {
        let mut s = WindowedSeries::default();
        s.record(&obs(1, false), 10, 6);
        s.record(&obs(3, true), 11, 6);
        s.record(&obs(3, false), 11, 6);
        s.record(&obs(100, false), 13, 6);
        let w = s.window(13, 1);
        assert_eq!((w.calls, w.errors), (1, 0));
        let w = s.window(13, 3);
        assert_eq!((w.calls, w.errors), (3, 1));
        let w = s.window(13, 10);
        assert_eq!(w.calls, 4);
        assert_eq!(w.latency.counts[0], 1);
        assert_eq!(s.total().count(), 4);
        assert_eq!(s.total_errors(), 1);
        // Much later, the window is empty but totals stay.
        assert_eq!(s.window(100, 6).calls, 0);
    }

    #[test]
    fn slots_are_bounded_and_late_data_goes_to_the_newest_slot() {
        let mut s = WindowedSeries::default();
        for i in 0..20 {
            s.record(&obs(1, false), i, 4);
        }
        assert_eq!(s.slots.len(), 4);
        s.record(&obs(1, false), 5, 4);
        assert_eq!(s.slots.len(), 4);
        assert_eq!(s.window(19, 1).calls, 2);
        assert_eq!(s.window(19, 100).calls, 5);
    }

    #[test]
    fn exemplars_keep_the_latest_per_bucket() {
        let mut s = WindowedSeries::default();
        let mut o = obs(1, false);
        s.record(&o, 0, 4);
        o.trace_id = TraceId([2; 16]);
        o.end = UnixNanos(99);
        s.record(&o, 0, 4);
        let ex = s.exemplars()[0].unwrap();
        assert_eq!(ex.trace_id, TraceId([2; 16]));
        assert_eq!(s.recent_exemplars(5).len(), 1);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The memory bounds in `docs/analysis.md` are computed from these sizes.
    #[test]
    fn slots_and_series_stay_small() {
        assert_eq!(std::mem::size_of::<Slot>(), 80);
        assert!(std::mem::size_of::<WindowedSeries>() <= 800);
    }
}
