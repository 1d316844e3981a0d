//! Lifecycle tests: cuts, flushes, compaction, retention, and crashes at each step.
//!
//! A crash is simulated by putting the files into the state a kill at that moment leaves
//! (the store's own steps are ordered so that each such state is one of these), then reopening.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline_block::{list_blocks, list_orphans, read_all, write_block, BlockInfo};
use faultline_model::query::SpanQuery;
use faultline_model::{Span, UnixNanos};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::test_util::{batch, span, trace_id, FlakyStore};
use crate::{AckMode, StorageError, Store, StoreConfig, StoreTuning};

pub(super) fn config(dir: &Path, objects: Arc<dyn ObjectStore>) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_owned(),
        block_store: objects,
        max_head_bytes: 64 * 1024 * 1024,
        max_head_age: Duration::from_secs(3600),
        retention: Duration::from_secs(3600 * 24 * 365 * 100),
        max_spans_per_trace: 10_000,
        memory_budget_bytes: 256 * 1024 * 1024,
        maintenance_interval: Duration::from_secs(3600),
    }
}

pub(super) fn root() -> ObjectPath {
    ObjectPath::from(super::BLOCK_ROOT)
}

/// Appends `n` single-span batches: trace `i % traces`, span `first + i`.
async fn append_spans(store: &Store, first: u64, n: u64, traces: u64) -> Vec<Span> {
    let mut all = Vec::new();
    for i in first..first + n {
        let s = span(i % traces, i + 1, 1_000 + i, &format!("svc{}", i % 3), "op");
        store
            .append(batch(vec![s.clone()]), AckMode::Durable)
            .await
            .unwrap();
        all.push(s);
    }
    all
}

/// Every stored span of the given traces, sorted, checked for repeats.
async fn all_spans(store: &Store, traces: u64) -> Vec<Span> {
    let ids: Vec<_> = (0..traces).map(trace_id).collect();
    let mut out: Vec<Span> = store
        .traces(&ids)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|(_, t)| t.spans)
        .collect();
    out.sort_by_key(|s| s.span_id);
    out
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| s.span_id);
    spans
}

#[tokio::test]
async fn trace_spanning_head_and_blocks_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Store::open(config(dir.path(), Arc::clone(&objects)))
        .await
        .unwrap();
    let mut expected = append_spans(&store, 0, 10, 2).await;
    store.flush().await.unwrap();
    expected.extend(append_spans(&store, 10, 10, 2).await);
    store.flush().await.unwrap();
    expected.extend(append_spans(&store, 20, 10, 2).await);

    let stats = store.stats().await;
    assert_eq!(stats.blocks, 2);
    assert_eq!(stats.block_spans, 20);
    assert_eq!(stats.head_spans, 10);
    assert_eq!(stats.blocks_flushed, 2);
    assert_eq!(all_spans(&store, 2).await, sorted(expected.clone()));
    let trace = store.trace(trace_id(1)).await.unwrap().unwrap();
    assert_eq!(trace.spans.len(), 15);

    let q = SpanQuery {
        service: Some("svc0".into()),
        end: UnixNanos(u64::MAX),
        limit: 10,
        ..SpanQuery::default()
    };
    let hits = store.search(&q).await.unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(
        store.services().await.unwrap(),
        vec!["svc0", "svc1", "svc2"]
    );
    assert_eq!(store.operations(Some("svc1")).await.unwrap().len(), 1);

    // Flushed WAL segments are gone: a reopen replays only the head's records.
    store.shutdown().await.unwrap();
    drop(store);
    let store = Store::open(config(dir.path(), objects)).await.unwrap();
    assert_eq!(store.stats().await.wal_replayed_records, 10);
    assert_eq!(all_spans(&store, 2).await, sorted(expected));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn dependencies_merge_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Arc::new(InMemory::new())))
        .await
        .unwrap();
    // Each trace: front calls back, and back queries a database nobody instruments (a
    // virtual node named by the client span's `db.system.name`).
    let call = |trace: u64| {
        let parent = span(trace, 1, 100, "front", "GET");
        let mut child = span(trace, 2, 150, "back", "query");
        child.parent_span_id = Some(parent.span_id);
        let mut db = span(trace, 3, 160, "back", "SELECT");
        db.parent_span_id = Some(child.span_id);
        db.kind = faultline_model::SpanKind::Client;
        db.attributes.push(faultline_model::KeyValue::new(
            "db.system.name",
            faultline_model::AttributeValue::String("postgresql".into()),
        ));
        batch(vec![parent, child, db])
    };
    store.append(call(1), AckMode::Durable).await.unwrap();
    store.flush().await.unwrap();
    store.append(call(2), AckMode::Durable).await.unwrap();
    let deps = store
        .dependencies(UnixNanos(0), UnixNanos(u64::MAX))
        .await
        .unwrap();
    assert_eq!(
        deps,
        vec![
            ("back".to_owned(), "postgresql".to_owned(), 2),
            ("front".to_owned(), "back".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn crash_after_block_commit_before_wal_delete_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Store::open(config(dir.path(), Arc::clone(&objects)))
        .await
        .unwrap();
    let expected = append_spans(&store, 0, 20, 4).await;
    let wal_dir = dir.path().join("wal");
    let saved: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.clone(), std::fs::read(&p).unwrap())
        })
        .collect();
    store.flush().await.unwrap();
    store.shutdown().await.unwrap();
    drop(store);
    // The kill came after meta.json was written but before the segments were deleted.
    for (path, bytes) in saved {
        std::fs::write(path, bytes).unwrap();
    }

    let store = Store::open(config(dir.path(), objects)).await.unwrap();
    let stats = store.stats().await;
    assert_eq!(stats.wal_replayed_records, 0);
    assert_eq!(stats.head_spans, 0);
    assert_eq!(stats.block_spans, 20);
    assert_eq!(all_spans(&store, 4).await, sorted(expected));
    assert_eq!(crate::wal::list_segments(&wal_dir).unwrap().len(), 1);
}

/// Four level-0 blocks of five spans each, plus the spans.
async fn store_with_blocks(dir: &Path, objects: Arc<dyn ObjectStore>) -> (Arc<Store>, Vec<Span>) {
    let store = Store::open(config(dir, objects)).await.unwrap();
    let mut expected = Vec::new();
    for b in 0..4 {
        expected.extend(append_spans(&store, b * 5, 5, 3).await);
        store.flush().await.unwrap();
    }
    (store, expected)
}

#[tokio::test]
async fn compaction_merges_blocks_and_keeps_every_span_once() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (store, mut expected) = store_with_blocks(dir.path(), Arc::clone(&objects)).await;
    // A retried batch that ended up in two blocks.
    let dup = expected[0].clone();
    store
        .append(batch(vec![dup]), AckMode::Durable)
        .await
        .unwrap();
    store.flush().await.unwrap();
    expected.extend(append_spans(&store, 100, 3, 3).await);
    assert_eq!(store.stats().await.blocks, 5);

    store.run_maintenance().await.unwrap();
    let stats = store.stats().await;
    assert_eq!(stats.compactions, 1);
    assert_eq!(stats.blocks, 1);
    assert_eq!(stats.block_spans, 20);
    let metas = list_blocks(objects.as_ref(), &root()).await.unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].level, 1);
    assert_eq!(metas[0].sources.len(), 5);
    assert_eq!(all_spans(&store, 3).await, sorted(expected.clone()));

    store.shutdown().await.unwrap();
    drop(store);
    let store = Store::open(config(dir.path(), objects)).await.unwrap();
    assert_eq!(all_spans(&store, 3).await, sorted(expected));
}

#[tokio::test]
async fn crash_after_compaction_commit_before_deleting_sources() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (store, expected) = store_with_blocks(dir.path(), Arc::clone(&objects)).await;
    store.shutdown().await.unwrap();
    drop(store);

    // The compaction wrote its block, then the process died before deleting any input; in a
    // second variant it died after deleting the first input's meta.json only.
    let inputs = list_blocks(objects.as_ref(), &root()).await.unwrap();
    let mut spans = Vec::new();
    for m in &inputs {
        spans.extend(read_all(objects.as_ref(), &root(), m).await.unwrap());
    }
    let info = BlockInfo {
        wal_through: inputs.iter().map(|m| m.wal_through).max().unwrap(),
        sources: inputs.iter().map(|m| m.id.clone()).collect(),
        level: 1,
        edges: None,
    };
    let merged = write_block(objects.as_ref(), &root(), spans, info, &Default::default())
        .await
        .unwrap();
    objects
        .delete(&faultline_block::meta_path(&root(), &inputs[0].id))
        .await
        .unwrap();

    let store = Store::open(config(dir.path(), Arc::clone(&objects)))
        .await
        .unwrap();
    assert_eq!(all_spans(&store, 3).await, sorted(expected));
    let metas = list_blocks(objects.as_ref(), &root()).await.unwrap();
    assert_eq!(
        metas.iter().map(|m| &m.id).collect::<Vec<_>>(),
        vec![&merged.id]
    );
    assert!(list_orphans(objects.as_ref(), &root())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn crash_during_block_write_or_delete_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (store, expected) = store_with_blocks(dir.path(), Arc::clone(&objects)).await;
    store.shutdown().await.unwrap();
    drop(store);
    // A block whose data landed but whose meta.json never did.
    objects
        .put(
            &root()
                .clone()
                .join("01900000-0000-7000-8000-000000000000")
                .join("data.parquet"),
            PutPayload::from_static(b"PAR1 torn"),
        )
        .await
        .unwrap();

    let store = Store::open(config(dir.path(), Arc::clone(&objects)))
        .await
        .unwrap();
    assert_eq!(all_spans(&store, 3).await, sorted(expected));
    assert!(list_orphans(objects.as_ref(), &root())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.stats().await.blocks, 4);
}

#[tokio::test]
async fn retention_deletes_expired_blocks_meta_first() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut cfg = config(dir.path(), Arc::clone(&objects));
    cfg.retention = Duration::from_secs(3600);
    let store = Store::open(cfg).await.unwrap();
    // Spans from 1970: long expired.
    append_spans(&store, 0, 5, 2).await;
    store.flush().await.unwrap();
    let now = UnixNanos::now();
    let fresh = span(7, 1, now.0, "svc", "op");
    store
        .append(batch(vec![fresh.clone()]), AckMode::Durable)
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.stats().await.blocks, 2);

    store.run_maintenance().await.unwrap();
    let stats = store.stats().await;
    assert_eq!(stats.blocks, 1);
    assert_eq!(stats.blocks_expired, 1);
    assert!(store.trace(trace_id(0)).await.unwrap().is_none());
    assert_eq!(
        store.trace(trace_id(7)).await.unwrap().unwrap().spans,
        vec![fresh]
    );
    assert_eq!(
        list_blocks(objects.as_ref(), &root()).await.unwrap().len(),
        1
    );
    assert!(list_orphans(objects.as_ref(), &root())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_are_cut_at_their_size_while_an_earlier_one_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyStore::default());
    let mut cfg = config(dir.path(), flaky.clone());
    cfg.max_head_bytes = 4 * 1024;
    let store = Store::open(cfg).await.unwrap();
    let mut acked = Vec::new();
    let flushing = |store: &Arc<Store>| {
        let store = Arc::clone(store);
        async move {
            let st = store.state.read().await;
            st.flushing.iter().map(|f| f.head.spans).collect::<Vec<_>>()
        }
    };
    let wait_for = |store: &Arc<Store>, heads: usize| {
        let store = Arc::clone(store);
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let sizes = flushing(&store).await;
                if sizes.len() >= heads {
                    return sizes;
                }
                assert!(Instant::now() < deadline, "cut heads: {sizes:?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    // The first head's block write is held in progress.
    let held = flaky.hold_writes.write().await;
    let mut next = 0;
    let mut fill = |store: &Arc<Store>| {
        let store = Arc::clone(store);
        let first = next;
        next += 20;
        async move { append_spans(&store, first, 20, 4).await }
    };
    acked.extend(fill(&store).await);
    let first = wait_for(&store, 1).await;
    // The head fills past its cut size again while that write waits: it is cut too, rather
    // than growing until the write is done.
    acked.extend(fill(&store).await);
    let both = wait_for(&store, 2).await;
    assert_eq!(both.first(), first.first());
    assert_eq!(
        store.stats().await.blocks,
        0,
        "a write got through the hold"
    );
    assert_eq!(all_spans(&store, 4).await, sorted(acked.clone()));

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !flushing(&store).await.is_empty() {
        assert!(Instant::now() < deadline, "cut heads were never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let blocks = list_blocks(&*flaky, &root()).await.unwrap();
    assert!(blocks.len() >= 2, "{} blocks", blocks.len());
    assert_eq!(all_spans(&store, 4).await, sorted(acked));
}

#[tokio::test]
async fn over_budget_appends_fail_fast_and_acknowledged_spans_stay() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyStore::default());
    flaky.fail_writes.store(true, Ordering::SeqCst);
    let mut cfg = config(dir.path(), flaky.clone());
    cfg.memory_budget_bytes = 16 * 1024;
    cfg.max_head_bytes = 2 * 1024;
    let store = Store::open(cfg).await.unwrap();

    let mut acked = Vec::new();
    let mut refused = false;
    for i in 0..1_000 {
        let s = span(i % 5, i + 1, 10 + i, "a", "x");
        match store.append(batch(vec![s.clone()]), AckMode::Durable).await {
            Ok(()) => acked.push(s),
            Err(StorageError::Overloaded { budget, .. }) => {
                assert_eq!(budget, 16 * 1024);
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused, "the budget never pushed back");
    assert!(store.stats().await.appends_refused >= 1);
    assert_eq!(all_spans(&store, 5).await, sorted(acked.clone()));

    // Once the block store works again the writer drains the heads and appends are accepted.
    flaky.fail_writes.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = span(1, 5_000, 5, "a", "x");
        match store.append(batch(vec![s.clone()]), AckMode::Durable).await {
            Ok(()) => {
                acked.push(s);
                break;
            }
            Err(StorageError::Overloaded { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(all_spans(&store, 5).await, sorted(acked));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn old_heads_are_cut_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(tempfile::tempdir().unwrap().keep())
            .unwrap(),
    );
    let mut cfg = config(dir.path(), objects);
    cfg.max_head_age = Duration::from_millis(50);
    cfg.maintenance_interval = Duration::from_millis(50);
    let tuning = StoreTuning {
        compaction_min_blocks: 2,
        ..StoreTuning::default()
    };
    let store = Store::open_with(cfg, tuning).await.unwrap();
    let mut expected = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while store.stats().await.compactions == 0 {
        assert!(Instant::now() < deadline, "no compaction happened");
        expected.extend(append_spans(&store, round * 4, 4, 3).await);
        round += 1;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(all_spans(&store, 3).await, sorted(expected));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn query_futures_can_be_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store_with_blocks(dir.path(), Arc::new(InMemory::new())).await;
    let s = Arc::clone(&store);
    let search = tokio::spawn(async move {
        let q = SpanQuery {
            end: UnixNanos(u64::MAX),
            limit: 5,
            ..SpanQuery::default()
        };
        s.search(&q).await
    });
    let s = Arc::clone(&store);
    let traces = tokio::spawn(async move { s.traces(&[trace_id(0), trace_id(1)]).await });
    let s = Arc::clone(&store);
    let deps = tokio::spawn(async move { s.dependencies(UnixNanos(0), UnixNanos(u64::MAX)).await });
    assert_eq!(search.await.unwrap().unwrap().len(), 3);
    assert_eq!(traces.await.unwrap().unwrap().len(), 2);
    assert!(deps.await.unwrap().unwrap().is_empty());
}

/// Throughput of durable appends with many concurrent writers (group commit) and of block
/// flushes. Prints numbers; run with `cargo test -p faultline-storage -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a test"]
async fn measure_durable_append_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(tempfile::tempdir().unwrap().keep())
            .unwrap(),
    );
    let big = |objects| StoreConfig {
        max_head_bytes: 1 << 30,
        memory_budget_bytes: 2 << 30,
        ..config(dir.path(), objects)
    };
    let store = Store::open(big(objects)).await.unwrap();
    let (writers, batches, per_batch) = (64u64, 40u64, 100u64);
    // Batches are built first so that only the store's work is timed.
    let mut work: Vec<Vec<crate::AppendBatch>> = (0..writers)
        .map(|w| {
            (0..batches)
                .map(|b| {
                    batch(
                        (0..per_batch)
                            .map(|i| {
                                let n = (w * batches + b) * per_batch + i;
                                span(n / 10, n + 1, 1_000 + n, "svc", "op")
                            })
                            .collect(),
                    )
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mine in work.drain(..) {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for b in mine {
                store.append(b, AckMode::Durable).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let spans = writers * batches * per_batch;
    let stats = store.stats().await;
    println!(
        "group commit: {} records in {} fsyncs",
        stats.wal_records_written, stats.wal_syncs
    );
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    store.shutdown().await.unwrap();
    let objects = Arc::clone(&store.config.block_store);
    drop(store);
    let replay_started = Instant::now();
    let store = Store::open(big(objects)).await.unwrap();
    println!(
        "WAL: {wal_bytes} bytes ({:.0} B/span); replay of {} records: {:.2?}",
        wal_bytes as f64 / spans as f64,
        store.stats().await.wal_replayed_records,
        replay_started.elapsed()
    );
    let flush_started = Instant::now();
    store.flush().await.unwrap();
    let stats = store.stats().await;
    println!(
        "durable append: {spans} spans in {:.2?} = {:.0} spans/s; flush to block: {:.2?}, {} bytes ({:.1} B/span)",
        elapsed,
        spans as f64 / elapsed.as_secs_f64(),
        flush_started.elapsed(),
        stats.block_bytes,
        stats.block_bytes as f64 / spans as f64,
    );
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn crash_with_heads_cut_but_not_yet_written_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyStore::default());
    flaky.fail_writes.store(true, Ordering::SeqCst);
    let store = Store::open(config(dir.path(), flaky.clone()))
        .await
        .unwrap();
    let mut expected = append_spans(&store, 0, 6, 2).await;
    assert!(store.flush().await.is_err());
    expected.extend(append_spans(&store, 6, 6, 2).await);
    assert!(store.flush().await.is_err());
    expected.extend(append_spans(&store, 12, 6, 2).await);
    let stats = store.stats().await;
    assert_eq!(stats.flushing_heads, 2);
    assert_eq!(stats.blocks, 0);
    // Heads being flushed are still served.
    assert_eq!(all_spans(&store, 2).await, sorted(expected.clone()));
    store.shutdown().await.unwrap();
    drop(store);

    flaky.fail_writes.store(false, Ordering::SeqCst);
    let store = Store::open(config(dir.path(), flaky.clone()))
        .await
        .unwrap();
    assert_eq!(store.stats().await.wal_replayed_records, 18);
    assert_eq!(all_spans(&store, 2).await, sorted(expected.clone()));
    store.flush().await.unwrap();
    assert_eq!(store.stats().await.block_spans, 18);
    assert_eq!(all_spans(&store, 2).await, sorted(expected));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn nonsense_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Arc::new(InMemory::new()));
    cfg.memory_budget_bytes = 0;
    let err = Store::open(cfg).await.err().unwrap();
    assert!(err.to_string().contains("memory_budget_bytes"), "{err}");
}

#[derive(Clone, Debug)]
enum Op {
    /// Append `n` new spans to trace `trace`.
    Append {
        trace: u64,
        n: u64,
    },
    /// Send the `k`-th earlier batch again, as a client retry does.
    Retry {
        k: usize,
    },
    Flush,
    Maintain,
    Reopen,
}

fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u64..4, 1u64..4).prop_map(|(trace, n)| Op::Append { trace, n }),
        1 => any::<usize>().prop_map(|k| Op::Retry { k }),
        2 => Just(Op::Flush),
        2 => Just(Op::Maintain),
        1 => Just(Op::Reopen),
    ]
}

/// Runs `ops` against a store and checks after each step that every trace reads back as
/// exactly the distinct spans appended to it, whatever mix of head, flushing heads, blocks,
/// compactions and restarts holds them.
async fn check_against_model(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tuning = || StoreTuning {
        compaction_min_blocks: 2,
        compaction_max_blocks: 3,
        ..StoreTuning::default()
    };
    let open = || Store::open_with(config(dir.path(), Arc::clone(&objects)), tuning());
    let mut store = open().await.unwrap();
    let mut batches: Vec<Vec<Span>> = Vec::new();
    let mut model: BTreeMap<u64, Vec<Span>> = BTreeMap::new();
    let mut next_id = 1u64;
    for op in ops {
        match op {
            Op::Append { trace, n } => {
                let spans: Vec<Span> = (0..n)
                    .map(|i| span(trace, next_id + i, 1_000 + next_id + i, "svc", "op"))
                    .collect();
                next_id += n;
                store
                    .append(batch(spans.clone()), AckMode::Durable)
                    .await
                    .unwrap();
                model
                    .entry(trace)
                    .or_default()
                    .extend(spans.iter().cloned());
                batches.push(spans);
            }
            Op::Retry { k } => {
                if !batches.is_empty() {
                    let spans = batches[k % batches.len()].clone();
                    store.append(batch(spans), AckMode::Durable).await.unwrap();
                }
            }
            Op::Flush => store.flush().await.unwrap(),
            Op::Maintain => store.run_maintenance().await.unwrap(),
            Op::Reopen => {
                store.shutdown().await.unwrap();
                drop(store);
                store = open().await.unwrap();
            }
        }
        for (trace, spans) in &model {
            let got = store.trace(trace_id(*trace)).await.unwrap().unwrap();
            assert_eq!(sorted(got.spans), sorted(spans.clone()), "trace {trace}");
        }
        let q = SpanQuery {
            end: UnixNanos(u64::MAX),
            limit: 100,
            ..SpanQuery::default()
        };
        assert_eq!(store.search(&q).await.unwrap().len(), model.len());
        let st = store.state.read().await;
        assert_eq!(
            store.in_memory.load(Ordering::Relaxed),
            st.head.bytes + st.flushing_bytes(),
            "memory accounting drifted"
        );
    }
    store.shutdown().await.unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
    #[test]
    fn lifecycle_matches_a_model(ops in proptest::collection::vec(arb_op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check_against_model(ops));
    }
}

#[tokio::test]
async fn half_written_blocks_from_failed_writes_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyStore::default());
    flaky.fail_meta_writes.store(true, Ordering::SeqCst);
    let store = Store::open(config(dir.path(), flaky.clone()))
        .await
        .unwrap();
    let expected = append_spans(&store, 0, 8, 2).await;
    assert!(store.flush().await.is_err());
    // The background writer may have retried (and failed) once more meanwhile.
    let orphans = list_orphans(flaky.as_ref(), &root()).await.unwrap();
    assert!(!orphans.is_empty());

    flaky.fail_meta_writes.store(false, Ordering::SeqCst);
    store.run_maintenance().await.unwrap();
    assert!(list_orphans(flaky.as_ref(), &root())
        .await
        .unwrap()
        .is_empty());
    store.flush().await.unwrap();
    assert_eq!(store.stats().await.blocks, 1);
    assert_eq!(all_spans(&store, 2).await, sorted(expected));
    store.shutdown().await.unwrap();
}

#[tokio::test]
async fn superseded_blocks_that_cannot_be_deleted_stay_hidden_and_block_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(FlakyStore::default());
    let objects: Arc<dyn ObjectStore> = flaky.clone();
    let tuning = || StoreTuning {
        compaction_min_blocks: 2,
        ..StoreTuning::default()
    };
    let store = Store::open_with(config(dir.path(), Arc::clone(&objects)), tuning())
        .await
        .unwrap();
    let mut expected = append_spans(&store, 0, 5, 3).await;
    store.flush().await.unwrap();
    expected.extend(append_spans(&store, 5, 5, 3).await);
    store.flush().await.unwrap();
    store.shutdown().await.unwrap();
    drop(store);
    // A compaction committed its block and died before deleting the inputs.
    let inputs = list_blocks(objects.as_ref(), &root()).await.unwrap();
    let mut spans = Vec::new();
    for m in &inputs {
        spans.extend(read_all(objects.as_ref(), &root(), m).await.unwrap());
    }
    let info = BlockInfo {
        wal_through: inputs.iter().map(|m| m.wal_through).max().unwrap(),
        sources: inputs.iter().map(|m| m.id.clone()).collect(),
        level: 1,
        edges: None,
    };
    write_block(objects.as_ref(), &root(), spans, info, &Default::default())
        .await
        .unwrap();

    flaky.fail_deletes.store(true, Ordering::SeqCst);
    let store = Store::open_with(config(dir.path(), Arc::clone(&objects)), tuning())
        .await
        .unwrap();
    assert_eq!(store.stats().await.blocks, 1);
    assert_eq!(all_spans(&store, 3).await, sorted(expected.clone()));
    // More level-1 blocks would be compacted, but not while the inputs linger.
    expected.extend(append_spans(&store, 10, 5, 3).await);
    store.flush().await.unwrap();
    assert!(store.run_maintenance().await.is_err());
    assert_eq!(store.stats().await.compactions, 0);
    assert_eq!(
        list_blocks(objects.as_ref(), &root()).await.unwrap().len(),
        4
    );

    flaky.fail_deletes.store(false, Ordering::SeqCst);
    store.run_maintenance().await.unwrap();
    assert_eq!(
        list_blocks(objects.as_ref(), &root()).await.unwrap().len(),
        2
    );
    assert_eq!(all_spans(&store, 3).await, sorted(expected));
    store.shutdown().await.unwrap();
}
