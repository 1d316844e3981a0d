//! Watching a server's committed blocks while a benchmark runs: how many spans flushes and
//! compactions wrote into blocks (write amplification), and when the block set stops changing
//! (the server is quiescent: nothing left to flush or compact).
//!
//! The server does not publish its store counters, so the watcher reads what the store commits
//! anyway: every block's `meta.json`, which names its span count and the blocks it was
//! compacted from. Polling sees every block that lives longer than one poll interval; a block
//! named as a compaction's source but never seen is counted as missed, so a figure that
//! undercounts says so.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process;

/// How often the block directory is read.
const POLL: Duration = Duration::from_millis(200);

/// Below this many cores of CPU the server counts as idle: the live analysis ticks, a
/// compaction keeps a core busy.
const IDLE_CORES: f64 = 0.25;

/// What one committed block's `meta.json` says, as far as the watcher cares.
#[derive(Debug, Clone)]
pub(crate) struct SeenBlock {
    /// Spans (or log records) the block holds.
    pub(crate) items: u64,
    sources: Vec<String>,
}

/// Everything the watcher has seen so far.
#[derive(Debug, Default)]
struct Observed {
    /// Every block ever seen committed, by ID.
    seen: HashMap<String, SeenBlock>,
    /// The IDs committed at the last poll.
    live: HashSet<String>,
    /// When the live set last changed (first: the first poll), and the server's CPU-seconds
    /// at that poll.
    last_change: Option<(Instant, f64)>,
    /// The server's CPU-seconds at each recent poll, for its recent CPU rate.
    recent_cpu: Vec<(Instant, f64)>,
}

/// A background task that polls a block directory; see the module docs.
pub(crate) struct BlockWatcher {
    observed: Arc<Mutex<Observed>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the watcher concluded once the server was quiescent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quiescence {
    /// The server's CPU-seconds (since its start) when the block set last changed.
    pub(crate) cpu_seconds_at_last_change: f64,
    /// Items (`count_key`) written into blocks by flushes and compactions together.
    pub(crate) items_written: u64,
    /// Blocks named as compaction sources that the watcher never saw: each one's items are
    /// missing from `items_written`, which is then a lower bound.
    pub(crate) blocks_missed: usize,
    /// Whether the wait ended because the block set stopped changing (not by timeout).
    pub(crate) reached: bool,
}

impl BlockWatcher {
    /// Starts polling `dir` (blocks as `<dir>/<id>/meta.json`) for server `pid`.
    pub(crate) fn start(dir: PathBuf, count_key: &'static str, pid: u32) -> Self {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let shared = Arc::clone(&observed);
        let task = tokio::spawn(async move {
            loop {
                let now = Instant::now();
                let cpu = process::cpu_seconds(pid).unwrap_or(0.0);
                let live = read_blocks(&dir, count_key);
                if let Ok(mut o) = shared.lock() {
                    o.record(live, now, cpu);
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Self { observed, task }
    }

    /// Waits until the block set has not changed for `quiet` and the server used under a
    /// tenth of a core over the last `quiet` (so no compaction is running either), or until
    /// `patience` has passed.
    pub(crate) async fn wait_quiescent(&self, quiet: Duration, patience: Duration) -> Quiescence {
        let deadline = Instant::now() + patience;
        loop {
            let (done, q) = self.check(quiet);
            if done || Instant::now() > deadline {
                return Quiescence { reached: done, ..q };
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn check(&self, quiet: Duration) -> (bool, Quiescence) {
        match self.observed.lock() {
            Ok(o) => {
                let q = o.conclude(Instant::now(), quiet);
                (q.reached, q)
            }
            Err(_) => (false, Quiescence::empty()),
        }
    }
}

impl Drop for BlockWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Quiescence {
    fn empty() -> Self {
        Self {
            cpu_seconds_at_last_change: 0.0,
            items_written: 0,
            blocks_missed: 0,
            reached: false,
        }
    }
}

impl Observed {
    /// What has been seen by `now`; `reached` when the block set has not changed for `quiet`
    /// and the server used under `IDLE_CORES` over the last `quiet`.
    fn conclude(&self, now: Instant, quiet: Duration) -> Quiescence {
        let (changed_at, cpu_at_change) = self.last_change.unwrap_or((now, 0.0));
        // The CPU rate from the newest poll at least `quiet` old to the newest poll.
        let since = self
            .recent_cpu
            .iter()
            .rev()
            .find(|(t, _)| now.duration_since(*t) >= quiet);
        let idle = match (since, self.recent_cpu.last()) {
            (Some(&(t0, c0)), Some(&(t1, c1))) if t1 > t0 => {
                (c1 - c0) / t1.duration_since(t0).as_secs_f64() < IDLE_CORES
            }
            _ => false,
        };
        let named: HashSet<&String> = self.seen.values().flat_map(|b| &b.sources).collect();
        Quiescence {
            cpu_seconds_at_last_change: cpu_at_change,
            items_written: self.seen.values().map(|b| b.items).sum(),
            blocks_missed: named
                .iter()
                .filter(|id| !self.seen.contains_key(**id))
                .count(),
            reached: idle && now.duration_since(changed_at) >= quiet,
        }
    }

    /// Takes one poll's committed blocks (`live`), seen at `now` with the server at `cpu` seconds.
    fn record(&mut self, live: HashMap<String, SeenBlock>, now: Instant, cpu: f64) {
        let ids: HashSet<String> = live.keys().cloned().collect();
        if ids != self.live || self.last_change.is_none() {
            self.last_change = Some((now, cpu));
            self.live = ids;
        }
        for (id, block) in live {
            self.seen.entry(id).or_insert(block);
        }
        self.recent_cpu.push((now, cpu));
        // Keep a minute of history: enough for any quiet window the benchmark asks for.
        let keep_from = now.checked_sub(Duration::from_secs(60));
        if let Some(from) = keep_from {
            self.recent_cpu.retain(|(t, _)| *t >= from);
        }
    }
}

/// The committed blocks anywhere under `dir` (those whose `meta.json` parses), by the name of
/// the directory holding `meta.json`.
pub(crate) fn read_blocks(dir: &Path, count_key: &str) -> HashMap<String, SeenBlock> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if e.file_name() != "meta.json" {
                continue;
            }
            let Some(id) = d.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let meta: Option<serde_json::Value> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(meta) = meta else { continue };
            let Some(items) = meta[count_key].as_u64() else {
                continue;
            };
            let sources = meta["sources"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(id, SeenBlock { items, sources });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(items: u64, sources: &[&str]) -> SeenBlock {
        SeenBlock {
            items,
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn counts_every_block_once_and_notices_missed_sources() {
        let mut o = Observed::default();
        let t0 = Instant::now();
        let live = |bs: &[(&str, SeenBlock)]| {
            bs.iter()
                .map(|(id, b)| ((*id).to_owned(), b.clone()))
                .collect::<HashMap<_, _>>()
        };
        o.record(
            live(&[("a", block(10, &[])), ("b", block(10, &[]))]),
            t0,
            1.0,
        );
        // The same blocks again change nothing.
        o.record(
            live(&[("a", block(10, &[])), ("b", block(10, &[]))]),
            t0 + Duration::from_secs(1),
            2.0,
        );
        assert_eq!(o.last_change.map(|(_, c)| c), Some(1.0));
        // "c" merged a, b and a block "x" that was flushed and merged between two polls.
        o.record(
            live(&[("c", block(25, &["a", "b", "x"]))]),
            t0 + Duration::from_secs(2),
            3.0,
        );
        assert_eq!(o.last_change.map(|(_, c)| c), Some(3.0));
        let q = o.conclude(t0 + Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(q.items_written, 45);
        assert_eq!(q.blocks_missed, 1);
        assert_eq!(q.cpu_seconds_at_last_change, 3.0);
        assert!(!q.reached, "changed just now");
    }

    #[test]
    fn reads_nested_block_directories() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let write = |rel: &str, body: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap_or(dir.path()))
                .unwrap_or_else(|e| panic!("mkdir: {e}"));
            std::fs::write(p, body).unwrap_or_else(|e| panic!("write: {e}"));
        };
        write("blocks/a/meta.json", r#"{"span_count": 3, "sources": []}"#);
        write(
            "blocks/b/meta.json",
            r#"{"span_count": 4, "sources": ["x"]}"#,
        );
        write("blocks/c/data.parquet", "no meta: not committed");
        write("blocks/d/meta.json", "{ half-written");
        let seen = read_blocks(dir.path(), "span_count");
        let mut ids: Vec<_> = seen.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(seen["b"].items, 4);
        assert_eq!(seen["b"].sources, ["x"]);
    }

    #[test]
    fn quiescent_only_when_unchanged_and_idle() {
        let mut o = Observed::default();
        let t0 = Instant::now();
        let one = || HashMap::from([("a".to_owned(), block(5, &[]))]);
        // Unchanged for 12 s, but busy (a compaction running): one CPU-second per second.
        for s in 0..=12 {
            o.record(one(), t0 + Duration::from_secs(s), s as f64);
        }
        let quiet = Duration::from_secs(10);
        assert!(!o.conclude(t0 + Duration::from_secs(12), quiet).reached);
        // Then idle for 10 s more.
        for s in 13..=23 {
            o.record(one(), t0 + Duration::from_secs(s), 12.0);
        }
        let q = o.conclude(t0 + Duration::from_secs(23), quiet);
        assert!(q.reached);
        assert_eq!(q.cpu_seconds_at_last_change, 0.0);
    }
}
