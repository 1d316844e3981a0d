use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faultline_model::log::LogQuery;
use faultline_model::otlp_logs::{logs_to_otlp, LogsData};
use faultline_model::{AttributeValue, KeyValue, LogRecord, Resource, TraceId, UnixNanos};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use prost::Message;

use crate::{AckMode, LogBatch, Store, StoreConfig, StoreTuning};

fn config(dir: &std::path::Path, blocks: Arc<dyn ObjectStore>) -> StoreConfig {
    StoreConfig {
        data_dir: dir.to_owned(),
        block_store: blocks,
        max_head_bytes: 64 << 20,
        max_head_age: Duration::from_secs(3600),
        retention: Duration::from_secs(3600 * 24 * 365 * 100),
        max_spans_per_trace: 1000,
        memory_budget_bytes: 256 << 20,
        maintenance_interval: Duration::from_secs(3600),
    }
}

fn record(trace: u8, time: u64, body: &str) -> LogRecord {
    LogRecord {
        time: UnixNanos(time),
        observed_time: UnixNanos(time),
        trace_id: (trace != 0).then_some(TraceId([trace; 16])),
        span_id: None,
        flags: 0,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: AttributeValue::String(body.into()),
        attributes: vec![KeyValue::new("n", AttributeValue::Int(time as i64))],
        dropped_attributes_count: 0,
        event_name: String::new(),
        resource: Arc::new(Resource::for_service("svc")),
        scope: Arc::default(),
    }
}

fn batch(records: Vec<LogRecord>) -> LogBatch {
    let otlp = Bytes::from(
        LogsData {
            resource_logs: logs_to_otlp(&records),
        }
        .encode_to_vec(),
    );
    LogBatch { records, otlp }
}

fn bodies(records: &[LogRecord]) -> Vec<String> {
    records.iter().map(LogRecord::body_text).collect()
}

#[tokio::test]
async fn acknowledged_logs_survive_reopen_flush_and_compaction_once() {
    let dir = tempfile::tempdir().unwrap();
    let blocks: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tuning = StoreTuning {
        compaction_min_blocks: 2,
        ..StoreTuning::default()
    };
    let store = Store::open_with(config(dir.path(), Arc::clone(&blocks)), tuning.clone())
        .await
        .unwrap();
    let logs = store.logs();
    logs.append(
        batch(vec![record(1, 30, "c"), record(2, 10, "x")]),
        AckMode::Durable,
    )
    .await
    .unwrap();
    logs.append(batch(vec![record(1, 10, "a")]), AckMode::Durable)
        .await
        .unwrap();
    // A client retry: the same batch again.
    logs.append(batch(vec![record(1, 10, "a")]), AckMode::Durable)
        .await
        .unwrap();
    store.shutdown().await.unwrap();
    drop(store);

    let store = Store::open_with(config(dir.path(), Arc::clone(&blocks)), tuning.clone())
        .await
        .unwrap();
    let logs = store.logs();
    assert_eq!(logs.stats().await.wal_replayed_records, 3);
    let got = logs.logs_of_traces(&[TraceId([1; 16])]).await.unwrap();
    assert_eq!(bodies(&got), ["a", "c"]);
    logs.flush().await.unwrap();
    logs.append(
        batch(vec![record(1, 20, "b"), record(0, 40, "plain")]),
        AckMode::Durable,
    )
    .await
    .unwrap();
    logs.flush().await.unwrap();
    assert_eq!(logs.stats().await.blocks, 2);
    logs.run_maintenance().await.unwrap();
    let stats = logs.stats().await;
    assert_eq!((stats.blocks, stats.compactions), (1, 1));
    assert_eq!(stats.block_records, 5);
    let got = logs.logs_of_traces(&[TraceId([1; 16])]).await.unwrap();
    assert_eq!(bodies(&got), ["a", "b", "c"]);
    assert!(logs
        .logs_of_traces(&[TraceId([9; 16])])
        .await
        .unwrap()
        .is_empty());

    let search = logs
        .search(&LogQuery {
            limit: 3,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(bodies(&search), ["plain", "c", "b"]);
    let text = logs
        .search(&LogQuery {
            text: Some("PLA".into()),
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(bodies(&text), ["plain"]);
    store.shutdown().await.unwrap();
    drop(store);

    // Everything is in blocks now: a reopen replays nothing and still finds every record.
    let store = Store::open_with(config(dir.path(), blocks), tuning)
        .await
        .unwrap();
    assert_eq!(store.logs().stats().await.wal_replayed_records, 0);
    let got = store
        .logs()
        .logs_of_traces(&[TraceId([1; 16]), TraceId([2; 16])])
        .await
        .unwrap();
    assert_eq!(bodies(&got), ["a", "x", "b", "c"]);
}

#[tokio::test]
async fn over_budget_appends_are_refused_and_retention_drops_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Arc::new(InMemory::new()));
    cfg.memory_budget_bytes = 2_000;
    cfg.retention = Duration::from_secs(1);
    let store = Store::open(cfg).await.unwrap();
    let logs = store.logs();
    let big: Vec<LogRecord> = (0..50).map(|i| record(1, i, "some body text")).collect();
    let err = logs.append(batch(big), AckMode::Durable).await.unwrap_err();
    assert!(
        matches!(err, crate::StorageError::Overloaded { .. }),
        "{err}"
    );
    assert_eq!(logs.stats().await.appends_refused, 1);
    // Records from 1970 are long past a one-second retention.
    logs.append(batch(vec![record(1, 5, "old")]), AckMode::Durable)
        .await
        .unwrap();
    logs.flush().await.unwrap();
    assert_eq!(logs.stats().await.blocks, 1);
    logs.run_maintenance().await.unwrap();
    assert_eq!(logs.stats().await.blocks, 0);
}

/// Polls `cond` on the log store's cut heads (their record counts) until it holds.
async fn wait_for_cut_heads(
    logs: &super::LogStore,
    what: &str,
    cond: impl Fn(&[usize]) -> bool,
) -> Vec<usize> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let cut: Vec<usize> = {
            let st = logs.state.read().await;
            st.flushing.iter().map(|f| f.head.records.len()).collect()
        };
        if cond(&cut) {
            return cut;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {cut:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_heads_are_cut_while_an_earlier_one_is_written_and_failed_writes_retried() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Arc::new(crate::test_util::FlakyStore::default());
    let mut cfg = config(dir.path(), flaky.clone());
    cfg.max_head_bytes = 2 * 1024;
    let store = Store::open(cfg).await.unwrap();
    let logs = store.logs();
    let fill = |from: u64| async move {
        for i in from..from + 20 {
            logs.append(batch(vec![record(1, i, "a body")]), AckMode::Durable)
                .await
                .unwrap();
        }
    };
    // The first head's block write is held in progress; the next head is cut all the same.
    let held = flaky.hold_writes.write().await;
    fill(0).await;
    wait_for_cut_heads(logs, "first cut", |c| !c.is_empty()).await;
    fill(100).await;
    wait_for_cut_heads(logs, "second cut", |c| c.len() >= 2).await;
    assert_eq!(logs.stats().await.blocks, 0, "a write got through the hold");
    // The held write fails once released. With no new record arriving (the head is empty,
    // so never due), the cut heads are retried and written once the store works again.
    use std::sync::atomic::Ordering::SeqCst;
    flaky.fail_writes.store(true, SeqCst);
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while flaky.failed_writes.load(SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "no write was tried");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    flaky.fail_writes.store(false, SeqCst);
    wait_for_cut_heads(logs, "cut heads written", <[usize]>::is_empty).await;
    assert!(logs.stats().await.blocks >= 2);
    let all = LogQuery {
        limit: 1000,
        ..LogQuery::default()
    };
    assert_eq!(logs.search(&all).await.unwrap().len(), 40);
}
