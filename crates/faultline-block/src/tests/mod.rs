//! End-to-end tests of the block API against an in-memory object store, and their shared
//! helpers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use faultline_model::query::{service_edges, SpanQuery};
use faultline_model::{
    AttributeValue, Event, InstrumentationScope, KeyValue, Link, Resource, Span, SpanId, SpanKind,
    Status, StatusCode, TraceId, UnixNanos,
};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proptest::prelude::*;

use crate::codec::tests::{arb_attrs, arb_value};
use crate::testgen::realistic_spans;
use crate::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn root() -> Path {
    Path::from("blocks")
}

/// A total order on spans for comparing sets regardless of order.
fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_cached_key(|s| format!("{s:?}"));
    spans
}

/// The spans a block keeps of `spans`: the first of each (trace ID, span ID, kind, start,
/// end, name), in the given order.
fn first_copies(spans: &[Span]) -> Vec<Span> {
    let mut seen = std::collections::HashSet::new();
    spans
        .iter()
        .filter(|s| {
            seen.insert((
                s.trace_id,
                s.span_id,
                s.kind,
                s.start,
                s.end,
                s.name.clone(),
            ))
        })
        .cloned()
        .collect()
}

fn small_settings() -> BlockSettings {
    // Tiny groups and pages so that pruning paths run on small inputs.
    BlockSettings {
        row_group_rows: 64,
        data_page_row_limit: 8,
        ..Default::default()
    }
}

/// `spans` written as one block into a fresh in-memory store.
fn write_test_block(spans: Vec<Span>, settings: &BlockSettings) -> (InMemory, BlockMeta) {
    let store = InMemory::new();
    let meta = rt()
        .block_on(write_block(
            &store,
            &root(),
            spans,
            BlockInfo::default(),
            settings,
        ))
        .unwrap();
    (store, meta)
}

fn realistic_block(n: usize, settings: &BlockSettings) -> (InMemory, Vec<Span>, BlockMeta) {
    let spans = realistic_spans(7, n, UnixNanos(1_700_000_000_000_000_000));
    let (store, meta) = write_test_block(spans.clone(), settings);
    (store, spans, meta)
}

fn by_trace(spans: &[Span]) -> BTreeMap<TraceId, Vec<Span>> {
    let mut m: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    for s in spans {
        m.entry(s.trace_id).or_default().push(s.clone());
    }
    m
}

fn model_search(spans: &[Span], q: &SpanQuery) -> Vec<(UnixNanos, TraceId)> {
    let mut latest: HashMap<TraceId, UnixNanos> = HashMap::new();
    for s in spans.iter().filter(|s| q.matches(s)) {
        let e = latest.entry(s.trace_id).or_insert(s.start);
        *e = (*e).max(s.start);
    }
    let mut hits: Vec<_> = latest.into_iter().map(|(id, t)| (t, id)).collect();
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits.truncate(q.limit);
    hits
}

mod compat;
mod damaged;
mod derived;
mod io;
mod lifecycle;
mod properties;
mod realistic;
