//! The in-memory log head: recent records, indexed by trace, until cut into a log block.

use std::collections::HashMap;

use faultline_model::log::LogQuery;
use faultline_model::{LogRecord, TraceId, UnixNanos};

/// Records of one stretch of the log WAL.
#[derive(Default)]
pub(crate) struct LogHead {
    pub(crate) records: Vec<LogRecord>,
    /// Positions in `records` of each trace's records.
    by_trace: HashMap<TraceId, Vec<usize>>,
    pub(crate) bytes: usize,
    pub(crate) min_time: Option<UnixNanos>,
    pub(crate) max_time: Option<UnixNanos>,
}

impl LogHead {
    pub(crate) fn insert(&mut self, records: Vec<LogRecord>) {
        for r in records {
            self.bytes += record_bytes(&r);
            self.min_time = Some(self.min_time.map_or(r.time, |m| m.min(r.time)));
            self.max_time = Some(self.max_time.map_or(r.time, |m| m.max(r.time)));
            if let Some(t) = r.trace_id {
                self.by_trace.entry(t).or_default().push(self.records.len());
            }
            self.records.push(r);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds the records of the wanted traces to `out`.
    pub(crate) fn collect_traces(&self, ids: &[TraceId], out: &mut Vec<LogRecord>) {
        for id in ids {
            if let Some(at) = self.by_trace.get(id) {
                out.extend(at.iter().filter_map(|i| self.records.get(*i)).cloned());
            }
        }
    }

    /// Adds records matching `q` (normalised) to `out`.
    pub(crate) fn search(&self, q: &LogQuery, out: &mut Vec<LogRecord>) {
        if self
            .max_time
            .is_none_or(|m| m < q.start || self.min_time.is_some_and(|m| m > q.end))
        {
            return;
        }
        if let Some(t) = q.trace_id {
            let mut mine = Vec::new();
            self.collect_traces(&[t], &mut mine);
            out.extend(mine.into_iter().filter(|r| q.matches(r)));
            return;
        }
        out.extend(self.records.iter().filter(|r| q.matches(r)).cloned());
    }
}

/// A head cut off and being written as a block; still queryable until the block is committed.
pub(crate) struct FrozenLogHead {
    pub(crate) head: LogHead,
    /// The last log WAL segment whose records are all in `head` (or older blocks).
    pub(crate) wal_through: u64,
}

impl faultline_block::logs::LogSource for FrozenLogHead {
    fn records(&self) -> Vec<&LogRecord> {
        let mut out: Vec<&LogRecord> = self.head.records.iter().collect();
        // A retried batch sits in the head twice; the block keeps one copy.
        out.sort_by_key(|r| same_key(r));
        out.dedup_by(|a, b| a == b);
        out
    }
}

/// Records equal in every field are one record written twice (a client retry or a WAL replay):
/// sorting by this key puts such copies next to each other.
pub(crate) fn same_key(r: &LogRecord) -> (UnixNanos, Option<TraceId>, UnixNanos, i32) {
    (r.time, r.trace_id, r.observed_time, r.severity_number)
}

/// Removes records that are exact copies of another.
pub(crate) fn dedup_records(records: &mut Vec<LogRecord>) {
    records.sort_by_key(same_key);
    let mut kept: Vec<LogRecord> = Vec::with_capacity(records.len());
    for r in records.drain(..) {
        // Copies share the key, so they sit in one run; compare within the current run.
        let dup = kept
            .iter()
            .rev()
            .take_while(|k| same_key(k) == same_key(&r))
            .any(|k| *k == r);
        if !dup {
            kept.push(r);
        }
    }
    *records = kept;
}

/// Bytes a record is accounted for in the memory budget: its payload plus allocator overhead.
pub(crate) fn record_bytes(r: &LogRecord) -> usize {
    r.heap_size() + 16 * (2 + 2 * r.attributes.len()) + std::mem::size_of::<usize>() * 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_model::AttributeValue;

    fn rec(t: u8, time: u64, body: &str) -> LogRecord {
        LogRecord {
            time: UnixNanos(time),
            observed_time: UnixNanos(time),
            trace_id: (t != 0).then_some(TraceId([t; 16])),
            span_id: None,
            flags: 0,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: AttributeValue::String(body.into()),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            event_name: String::new(),
            resource: Default::default(),
            scope: Default::default(),
        }
    }

    #[test]
    fn copies_are_removed_and_distinct_records_kept() {
        let mut v = vec![
            rec(1, 5, "a"),
            rec(1, 5, "b"),
            rec(1, 5, "a"),
            rec(0, 5, "a"),
        ];
        dedup_records(&mut v);
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn head_finds_records_by_trace() {
        let mut h = LogHead::default();
        h.insert(vec![
            rec(1, 5, "a"),
            rec(2, 6, "b"),
            rec(1, 7, "c"),
            rec(0, 8, "d"),
        ]);
        let mut out = Vec::new();
        h.collect_traces(&[TraceId([1; 16])], &mut out);
        assert_eq!(out.len(), 2);
        assert!(h.bytes > 0);
    }
}
