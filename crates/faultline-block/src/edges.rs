//! A block's service-dependency counts (`meta.json`'s `edges`): calls between services resolved
//! when the block was written, bucketed by time, so a dependencies query sums them without
//! reading any data file.

use std::collections::BTreeMap;

use faultline_model::UnixNanos;
use serde::{Deserialize, Serialize};

use crate::BlockError;

/// Call counts between services by time bucket.
///
/// An edge is counted in the bucket of the span that makes it: the child's start for a
/// parent→child pair, the calling span's start for a call to a virtual node. Counts are signed:
/// a call first counted as a call to a virtual node (its callee had not arrived yet) is taken
/// back with −1 in the table of the block where its callee's span arrives, so the sum over
/// blocks counts it once, as the parent→child edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeTable {
    /// Width of a bucket in seconds; bucket `k` holds edges whose span started in
    /// `[k * bucket_secs, (k + 1) * bucket_secs)` seconds since the epoch.
    pub bucket_secs: u64,
    /// (parent service, child service) → (bucket, count), sorted by bucket, no zero counts.
    pub counts: BTreeMap<(String, String), Vec<(u64, i64)>>,
}

impl EdgeTable {
    /// An empty table with buckets of `bucket_secs` seconds (at least one).
    pub fn new(bucket_secs: u64) -> Self {
        Self {
            bucket_secs: bucket_secs.max(1),
            counts: BTreeMap::new(),
        }
    }

    fn width_nanos(&self) -> u64 {
        self.bucket_secs.saturating_mul(1_000_000_000).max(1)
    }

    /// The bucket holding time `at`.
    pub fn bucket_of(&self, at: UnixNanos) -> u64 {
        at.0 / self.width_nanos()
    }

    /// Adds `n` calls from `parent` to `child` in bucket `bucket`.
    pub fn add(&mut self, parent: &str, child: &str, bucket: u64, n: i64) {
        if n == 0 {
            return;
        }
        let key = (parent.to_owned(), child.to_owned());
        let cells = self.counts.entry(key.clone()).or_default();
        match cells.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => {
                if let Some(cell) = cells.get_mut(i) {
                    cell.1 += n;
                    if cell.1 == 0 {
                        cells.remove(i);
                    }
                }
            }
            Err(i) => cells.insert(i, (bucket, n)),
        }
        if cells.is_empty() {
            self.counts.remove(&key);
        }
    }

    /// Adds every count of `other` to this table. Refuses (returns `false`, changing nothing)
    /// when the bucket widths differ.
    pub fn merge(&mut self, other: &EdgeTable) -> bool {
        if other.bucket_secs != self.bucket_secs {
            return false;
        }
        for ((p, c), cells) in &other.counts {
            for &(b, n) in cells {
                self.add(p, c, b, n);
            }
        }
        true
    }

    /// Adds, per edge, the counts of the buckets that overlap `[start, end]` to `out`: the
    /// window rounded out to whole buckets.
    pub fn sum_into(
        &self,
        start: UnixNanos,
        end: UnixNanos,
        out: &mut BTreeMap<(String, String), i64>,
    ) {
        if start > end {
            return;
        }
        let (first, last) = (self.bucket_of(start), self.bucket_of(end));
        for (edge, cells) in &self.counts {
            let from = cells.partition_point(|&(b, _)| b < first);
            let n: i64 = cells
                .get(from..)
                .unwrap_or_default()
                .iter()
                .take_while(|&&(b, _)| b <= last)
                .map(|&(_, n)| n)
                .sum();
            if n != 0 {
                match out.get_mut(edge) {
                    Some(v) => *v += n,
                    None => {
                        out.insert(edge.clone(), n);
                    }
                }
            }
        }
    }

    /// Number of (edge, bucket) cells.
    pub fn cells(&self) -> usize {
        self.counts.values().map(Vec::len).sum()
    }

    pub(crate) fn to_json(&self) -> EdgeTableJson {
        EdgeTableJson {
            bucket_secs: self.bucket_secs,
            counts: self
                .counts
                .iter()
                .map(|((p, c), cells)| (p.clone(), c.clone(), cells.clone()))
                .collect(),
        }
    }

    pub(crate) fn from_json(w: EdgeTableJson) -> Result<Self, BlockError> {
        let bad = |d: String| BlockError::corrupt("meta.json", d);
        if w.bucket_secs == 0 {
            return Err(bad("edge table with buckets of 0 seconds".into()));
        }
        let mut counts = BTreeMap::new();
        for (p, c, cells) in w.counts {
            if !cells.windows(2).all(|w| w[0].0 < w[1].0) {
                return Err(bad(format!(
                    "edge {p:?} → {c:?}: buckets not strictly increasing"
                )));
            }
            if cells.iter().any(|&(_, n)| n == 0) || cells.is_empty() {
                return Err(bad(format!("edge {p:?} → {c:?}: empty or zero counts")));
            }
            if counts.insert((p.clone(), c.clone()), cells).is_some() {
                return Err(bad(format!("edge {p:?} → {c:?} listed twice")));
            }
        }
        Ok(Self {
            bucket_secs: w.bucket_secs,
            counts,
        })
    }
}

/// The `meta.json` form: `{"bucket_secs": 10, "counts": [["front", "back", [[bucket, n], …]], …]}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EdgeTableJson {
    bucket_secs: u64,
    counts: Vec<EdgeJson>,
}

/// One edge in `meta.json`: parent, child, (bucket, count) pairs.
type EdgeJson = (String, String, Vec<(u64, i64)>);

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn add_merge_and_sum_by_bucket() {
        let mut t = EdgeTable::new(10);
        t.add("a", "b", t.bucket_of(UnixNanos(5 * S)), 2);
        t.add("a", "b", t.bucket_of(UnixNanos(25 * S)), 1);
        t.add("a", "db", t.bucket_of(UnixNanos(25 * S)), 1);
        let mut u = EdgeTable::new(10);
        // A call counted to a virtual node, taken back when its callee arrived.
        u.add("a", "db", 2, -1);
        u.add("a", "b", 0, 1);
        assert!(t.merge(&u));
        assert_eq!(t.counts.len(), 1, "the virtual edge cancelled out");
        assert_eq!(t.counts[&("a".into(), "b".into())], vec![(0, 3), (2, 1)]);
        let sum = |s: u64, e: u64| {
            let mut out = BTreeMap::new();
            t.sum_into(UnixNanos(s), UnixNanos(e), &mut out);
            out.get(&("a".to_owned(), "b".to_owned())).copied()
        };
        assert_eq!(sum(0, u64::MAX), Some(4));
        // Rounded out to whole buckets: 9 s reaches into bucket 0, 20 s into bucket 2.
        assert_eq!(sum(9 * S, 20 * S), Some(4));
        assert_eq!(sum(10 * S, 19 * S), None);
        assert_eq!(sum(21 * S, 22 * S), Some(1));
        assert!(!t.merge(&EdgeTable::new(1)));
    }

    #[test]
    fn json_is_checked() {
        let mut t = EdgeTable::new(10);
        t.add("a", "b", 3, 2);
        t.add("a", "b", 1, -1);
        let back = EdgeTable::from_json(t.to_json()).unwrap();
        assert_eq!(back, t);
        let bad = |counts: Vec<EdgeJson>| {
            EdgeTable::from_json(EdgeTableJson {
                bucket_secs: 10,
                counts,
            })
            .is_err()
        };
        assert!(bad(vec![("a".into(), "b".into(), vec![(2, 1), (1, 1)])]));
        assert!(bad(vec![("a".into(), "b".into(), vec![(2, 0)])]));
        assert!(bad(vec![("a".into(), "b".into(), vec![])]));
        assert!(bad(vec![
            ("a".into(), "b".into(), vec![(1, 1)]),
            ("a".into(), "b".into(), vec![(2, 1)])
        ]));
        assert!(EdgeTable::from_json(EdgeTableJson {
            bucket_secs: 0,
            counts: vec![]
        })
        .is_err());
    }
}
