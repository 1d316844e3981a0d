use std::sync::Arc;

use faultline_model::log::LogQuery;
use faultline_model::{AttributeValue, KeyValue, LogRecord, Resource, SpanId, TraceId, UnixNanos};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

use super::*;

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![KeyValue::new(
            "service.name",
            AttributeValue::String(service.into()),
        )],
        ..Resource::default()
    })
}

fn record(trace: u8, time: u64, service: &Arc<Resource>, body: AttributeValue) -> LogRecord {
    LogRecord {
        time: UnixNanos(time),
        observed_time: UnixNanos(time + 1),
        trace_id: (trace != 0).then_some(TraceId([trace; 16])),
        span_id: (trace != 0).then_some(SpanId([trace; 8])),
        flags: 1,
        severity_number: (time % 24) as i32 + 1,
        severity_text: "INFO".into(),
        body,
        attributes: vec![
            KeyValue::new("n", AttributeValue::Int(time as i64)),
            KeyValue::new(
                "nested",
                AttributeValue::KvList(vec![KeyValue::new("b", AttributeValue::Bool(true))]),
            ),
        ],
        dropped_attributes_count: 0,
        event_name: String::new(),
        resource: Arc::clone(service),
        scope: Arc::default(),
    }
}

fn records() -> Vec<LogRecord> {
    let (a, b) = (resource("a"), resource("b"));
    let mut out = Vec::new();
    for i in 0..3000u64 {
        let trace = (i % 7) as u8; // 0 means untraced
        let svc = if i % 2 == 0 { &a } else { &b };
        out.push(record(
            trace,
            1_000 + i,
            svc,
            AttributeValue::String(format!("line {i}")),
        ));
    }
    out.push(record(3, 10, &a, AttributeValue::Bytes(vec![0, 1])));
    out
}

async fn written(
    settings: LogBlockSettings,
) -> (Arc<dyn ObjectStore>, Path, LogBlockMeta, Vec<LogRecord>) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let root = Path::from("logs");
    let recs = records();
    let meta = write_log_block(
        store.as_ref(),
        &root,
        Arc::new(recs.clone()),
        BlockInfo::default(),
        &settings,
    )
    .await
    .unwrap();
    (store, root, meta, recs)
}

fn small() -> LogBlockSettings {
    LogBlockSettings {
        row_group_rows: 256,
        data_page_row_limit: 32,
        zstd_level: 3,
    }
}

#[tokio::test]
async fn block_round_trips_and_meta_is_listed() {
    let (store, root, meta, mut recs) = written(small()).await;
    assert_eq!(meta.record_count, recs.len() as u64);
    assert_eq!(
        list_log_blocks(store.as_ref(), &root).await.unwrap(),
        vec![meta.clone()]
    );
    let mut all = read_all_logs(&store, &root, &meta).await.unwrap();
    let key = |r: &LogRecord| (r.time, r.trace_id);
    all.sort_by_key(key);
    recs.sort_by_key(key);
    assert_eq!(all, recs);
    assert_eq!(meta.services, vec!["a", "b"]);
    let json = meta.to_json().unwrap();
    assert_eq!(LogBlockMeta::from_json(&json).unwrap(), meta);
}

#[tokio::test]
async fn trace_lookup_returns_exactly_the_trace_in_time_order() {
    let (store, root, meta, recs) = written(small()).await;
    for t in 1..=6u8 {
        let id = TraceId([t; 16]);
        let got = read_logs_of_traces(&store, &root, &meta, &[id])
            .await
            .unwrap();
        let mut want: Vec<LogRecord> = recs
            .iter()
            .filter(|r| r.trace_id == Some(id))
            .cloned()
            .collect();
        want.sort_by_key(|r| r.time);
        assert_eq!(got, want, "trace {t}");
    }
    assert!(
        !meta.may_contain_trace(&TraceId([9; 16]))
            || read_logs_of_traces(&store, &root, &meta, &[TraceId([9; 16])])
                .await
                .unwrap()
                .is_empty()
    );
}

#[tokio::test]
async fn search_filters_and_returns_newest_first() {
    let (store, root, meta, recs) = written(LogBlockSettings::default()).await;
    let q = LogQuery {
        service: Some("b".into()),
        text: Some("LINE 29".into()),
        limit: 5,
        ..LogQuery::default()
    }
    .normalised();
    let got = search_logs(&store, &root, &meta, &q).await.unwrap();
    let mut want: Vec<LogRecord> = recs.iter().filter(|r| q.matches(r)).cloned().collect();
    want.sort_by_key(|r| std::cmp::Reverse(r.time));
    want.truncate(5);
    assert_eq!(got, want);
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|r| r.service_name() == "b"));
}

#[tokio::test]
async fn damaged_data_is_an_error_not_a_panic() {
    let (store, root, meta, _) = written(small()).await;
    let path = crate::data_path(&root, &meta.id);
    let mut bytes = store
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    store.put(&path, bytes.into()).await.unwrap();
    let _ = read_all_logs(&store, &root, &meta).await;
    let _ = read_logs_of_traces(&store, &root, &meta, &[TraceId([1; 16])]).await;
}
