//! End-to-end tests of the block API against an in-memory object store.

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

fn small_settings() -> BlockSettings {
    // Tiny groups and pages so that pruning paths run on small inputs.
    BlockSettings {
        row_group_rows: 64,
        data_page_row_limit: 8,
        ..Default::default()
    }
}

// ---- property test: arbitrary spans round-trip exactly ----

fn arb_id16(pool: u8) -> impl Strategy<Value = TraceId> {
    (1..=pool).prop_map(|n| TraceId([n; 16]))
}

fn arb_span_id(pool: u8) -> impl Strategy<Value = SpanId> {
    (1..=pool).prop_map(|n| SpanId([n; 8]))
}

fn arb_span_attrs() -> impl Strategy<Value = Vec<KeyValue>> {
    // Dedicated keys with matching and mismatching types, duplicates, and free keys.
    let key = prop_oneof![
        Just("http.route".to_owned()),
        Just("http.response.status_code".to_owned()),
        Just("server.port".to_owned()),
        Just("db.system.name".to_owned()),
        // Frequent enough to get dynamic columns of every type.
        Just("app.id".to_owned()),
        Just("app.flag".to_owned()),
        Just("app.ratio".to_owned()),
        "[a-z.]{0,10}",
    ];
    let uuid = proptest::array::uniform16(any::<u8>()).prop_map(|b| crate::schema::uuid_string(&b));
    let value = prop_oneof![
        "[a-z/]{0,8}".prop_map(AttributeValue::String),
        any::<i64>().prop_map(AttributeValue::Int),
        any::<bool>().prop_map(AttributeValue::Bool),
        prop_oneof![Just(0.5f64), Just(-0.0), Just(f64::INFINITY)].prop_map(AttributeValue::Double),
        uuid.clone().prop_map(AttributeValue::String),
        // Almost-UUIDs must stay strings exactly as given.
        uuid.prop_map(|u| AttributeValue::String(u.to_uppercase())),
        arb_value(),
    ];
    proptest::collection::vec((key, value), 0..8)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

fn arb_span(
    resources: Vec<Arc<Resource>>,
    scopes: Vec<Arc<InstrumentationScope>>,
) -> impl Strategy<Value = Span> {
    let ids = (
        arb_id16(4),
        arb_span_id(12),
        proptest::option::of(arb_span_id(14)),
        "[a-z=,]{0,6}",
        any::<u32>(),
    );
    let body = (
        "[A-Za-z /]{0,10}",
        0u8..6,
        prop_oneof![Just(0u64), 0..2_000u64, any::<u64>()],
        prop_oneof![Just(0u64), 0..2_000u64, any::<u64>()],
        arb_span_attrs(),
        (any::<u32>(), any::<u32>(), any::<u32>()),
    );
    let extra = (
        proptest::collection::vec(
            (any::<u64>(), ".{0,6}", arb_attrs(), any::<u32>()).prop_map(
                |(t, name, attributes, d)| Event {
                    time: UnixNanos(t),
                    name,
                    attributes,
                    dropped_attributes_count: d,
                },
            ),
            0..3,
        ),
        proptest::collection::vec(
            (
                arb_id16(9),
                arb_span_id(9),
                ".{0,4}",
                arb_attrs(),
                any::<u32>(),
                any::<u32>(),
            )
                .prop_map(
                    |(
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count,
                        flags,
                    )| Link {
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count,
                        flags,
                    },
                ),
            0..2,
        ),
        (0u8..3, ".{0,6}"),
        0..resources.len(),
        0..scopes.len(),
    );
    (ids, body, extra).prop_map(
        move |(
            (trace_id, span_id, parent, trace_state, flags),
            (name, kind, start, len, attributes, dropped),
            (events, links, (code, msg), r, sc),
        )| Span {
            trace_id,
            span_id,
            parent_span_id: parent,
            trace_state,
            flags,
            name,
            kind: SpanKind::from_i32(i32::from(kind)),
            start: UnixNanos(start),
            end: UnixNanos(start.wrapping_add(len)),
            attributes,
            dropped_attributes_count: dropped.0,
            events,
            dropped_events_count: dropped.1,
            links,
            dropped_links_count: dropped.2,
            status: Status {
                code: StatusCode::from_i32(i32::from(code)),
                message: msg,
            },
            resource: resources[r].clone(),
            scope: scopes[sc].clone(),
        },
    )
}

fn pools() -> (Vec<Arc<Resource>>, Vec<Arc<InstrumentationScope>>) {
    let res = |svc: Option<&str>, extra: Vec<KeyValue>| {
        let mut attributes: Vec<KeyValue> = svc
            .map(|s| KeyValue::new("service.name", AttributeValue::String(s.into())))
            .into_iter()
            .collect();
        attributes.extend(extra);
        Arc::new(Resource {
            attributes,
            dropped_attributes_count: 2,
            schema_url: "u".into(),
        })
    };
    (
        vec![
            res(Some("api"), vec![]),
            res(
                Some("db"),
                vec![KeyValue::new("k", AttributeValue::Bytes(vec![0, 255]))],
            ),
            res(None, vec![]),
            res(Some(""), vec![KeyValue::new("n", AttributeValue::Empty)]),
        ],
        vec![
            Arc::new(InstrumentationScope::default()),
            Arc::new(InstrumentationScope {
                name: "lib".into(),
                version: "1".into(),
                attributes: vec![KeyValue::new("a", AttributeValue::Bool(true))],
                dropped_attributes_count: 1,
                schema_url: "s".into(),
            }),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_spans_round_trip(spans in {
        let (r, s) = pools();
        proptest::collection::vec(arb_span(r, s), 1..120)
    }) {
        let store = InMemory::new();
        let meta = rt().block_on(write_block(&store, &root(), spans.clone(), BlockInfo::default(), &small_settings())).unwrap();
        prop_assert_eq!(meta.span_count, spans.len() as u64);
        let back = rt().block_on(read_all(&store, &root(), &meta)).unwrap();
        prop_assert_eq!(sorted(back), sorted(spans.clone()));
        // read_traces returns exactly one trace's spans.
        let id = spans[0].trace_id;
        let got = rt().block_on(read_traces(&store, &root(), &meta, &[id])).unwrap();
        let want: Vec<Span> = spans.iter().filter(|s| s.trace_id == id).cloned().collect();
        prop_assert_eq!(sorted(got), sorted(want));

        // Search over typed and generic attributes agrees with SpanQuery on whole spans.
        let first = &spans[0];
        let mut queries = vec![SpanQuery {
            service: Some(first.service_name().to_owned()),
            start: UnixNanos(0),
            end: UnixNanos(u64::MAX),
            limit: 1000,
            ..Default::default()
        }];
        for kv in first.attributes.iter().chain(&first.resource.attributes) {
            queries.push(SpanQuery {
                tags: vec![(kv.key.clone(), kv.value.to_text())],
                start: UnixNanos(0),
                end: UnixNanos(u64::MAX),
                limit: 3,
                ..Default::default()
            });
        }
        queries.push(SpanQuery {
            tags: vec![("error".into(), "true".into())],
            kind: Some(first.kind),
            start: first.start,
            end: UnixNanos(u64::MAX),
            limit: 1000,
            ..Default::default()
        });
        for q in queries {
            let got = rt().block_on(search(&store, &root(), &meta, &q)).unwrap();
            prop_assert_eq!(got, model_search(&spans, &q), "query {:?}", q);
        }

        // With duplicate span IDs in a trace, which duplicate `service_edges` takes as parent
        // depends on span order; a block's order is (trace, start, span ID), stable otherwise.
        let mut block_order = spans.clone();
        block_order.sort_by_key(|s| (s.trace_id, s.start, s.span_id));
        let mut want = BTreeMap::new();
        for trace in by_trace(&block_order).values() {
            service_edges(trace, UnixNanos(0), UnixNanos(u64::MAX), &mut want);
        }
        let mut got = BTreeMap::new();
        rt().block_on(dependencies(&store, &root(), &meta, UnixNanos(0), UnixNanos(u64::MAX), &mut got)).unwrap();
        prop_assert_eq!(got, want);
    }
}

// ---- realistic data: pruning, search and dependencies agree with the model ----

fn realistic_block(n: usize, settings: &BlockSettings) -> (InMemory, Vec<Span>, BlockMeta) {
    let spans = realistic_spans(7, n, UnixNanos(1_700_000_000_000_000_000));
    let store = InMemory::new();
    let meta = rt()
        .block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            BlockInfo::default(),
            settings,
        ))
        .unwrap();
    (store, spans, meta)
}

fn by_trace(spans: &[Span]) -> BTreeMap<TraceId, Vec<Span>> {
    let mut m: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    for s in spans {
        m.entry(s.trace_id).or_default().push(s.clone());
    }
    m
}

#[test]
fn realistic_round_trip_shares_resources_and_finds_traces() {
    let settings = BlockSettings {
        row_group_rows: 1000,
        data_page_row_limit: 100,
        ..Default::default()
    };
    let (store, spans, meta) = realistic_block(5000, &settings);
    let traces = by_trace(&spans);
    assert_eq!(meta.trace_count, traces.len() as u64);
    let back = rt().block_on(read_all(&store, &root(), &meta)).unwrap();
    // Identical resources come back as one shared Arc.
    let distinct: std::collections::HashSet<usize> = back
        .iter()
        .map(|s| Arc::as_ptr(&s.resource) as usize)
        .collect();
    assert_eq!(distinct.len(), 60);
    assert_eq!(sorted(back), sorted(spans.clone()));

    let ids: Vec<TraceId> = traces.keys().step_by(37).copied().collect();
    let got = rt()
        .block_on(read_traces(&store, &root(), &meta, &ids))
        .unwrap();
    let want: Vec<Span> = ids.iter().flat_map(|id| traces[id].clone()).collect();
    assert_eq!(sorted(got), sorted(want));
    // Absent IDs cost nothing and return nothing.
    let none = rt()
        .block_on(read_traces(&store, &root(), &meta, &[TraceId([0xab; 16])]))
        .unwrap();
    assert!(none.is_empty());
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

#[test]
fn search_agrees_with_span_query() {
    let settings = BlockSettings {
        row_group_rows: 500,
        ..Default::default()
    };
    let (store, spans, meta) = realistic_block(4000, &settings);
    let t0 = meta.min_start.0;
    let span_of_time = meta.max_start.0 - t0;
    let base = SpanQuery {
        start: meta.min_start,
        end: meta.max_start,
        limit: 20,
        ..Default::default()
    };
    let q = |f: &dyn Fn(&mut SpanQuery)| {
        let mut q = base.clone();
        f(&mut q);
        q
    };
    let queries = vec![
        base.clone(),
        q(&|q| q.service = Some("svc-03".into())),
        q(&|q| q.service = Some("svc-04".into())),
        q(&|q| {
            q.service = Some("svc-00".into());
            q.kind = Some(SpanKind::Server);
            q.limit = 1000;
        }),
        q(&|q| q.operation = Some("GET".into())),
        q(&|q| q.tags = vec![("error".into(), "true".into())]),
        q(&|q| q.tags = vec![("http.response.status_code".into(), "404".into())]),
        q(&|q| {
            q.tags = vec![
                ("db.collection.name".into(), "carts".into()),
                ("server.port".into(), "5432".into()),
            ]
        }),
        q(&|q| {
            q.tags = vec![
                ("k8s.cluster.name".into(), "prod-eu-1".into()),
                ("app.cache_hit".into(), "true".into()),
            ]
        }),
        q(&|q| q.tags = vec![("level".into(), "INFO".into())]),
        q(&|q| {
            q.min_duration_nanos = Some(50_000_000);
            q.max_duration_nanos = Some(90_000_000);
        }),
        q(&|q| {
            q.start = UnixNanos(t0 + span_of_time / 3);
            q.end = UnixNanos(t0 + span_of_time / 2);
            q.limit = 5;
        }),
        q(&|q| q.service = Some("nope".into())),
        q(&|q| q.limit = 0),
    ];
    for q in queries {
        let got = rt().block_on(search(&store, &root(), &meta, &q)).unwrap();
        assert_eq!(got, model_search(&spans, &q), "query {q:?}");
    }
}

#[test]
fn dependencies_agree_with_service_edges() {
    let settings = BlockSettings {
        row_group_rows: 300,
        ..Default::default()
    };
    let (store, spans, meta) = realistic_block(3000, &settings);
    let mid = UnixNanos(meta.min_start.0 + (meta.max_start.0 - meta.min_start.0) / 2);
    for (start, end) in [
        (meta.min_start, meta.max_start),
        (meta.min_start, mid),
        (UnixNanos(0), UnixNanos(1)),
    ] {
        let mut want = BTreeMap::new();
        for trace in by_trace(&spans).values() {
            service_edges(trace, start, end, &mut want);
        }
        let mut got = BTreeMap::new();
        rt().block_on(dependencies(&store, &root(), &meta, start, end, &mut got))
            .unwrap();
        assert_eq!(got, want);
    }
}

// ---- lifecycle ----

#[test]
fn list_orphans_and_delete() {
    let rt = rt();
    let store = InMemory::new();
    let spans = realistic_spans(1, 50, UnixNanos(1_000));
    let info = BlockInfo {
        wal_through: 9,
        sources: vec![BlockId("a".into())],
        level: 2,
    };
    let a = rt
        .block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            info.clone(),
            &BlockSettings::default(),
        ))
        .unwrap();
    let b = rt
        .block_on(write_block(
            &store,
            &root(),
            spans,
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap();
    assert!(a.id < b.id, "UUID v7 IDs sort by creation");
    assert_eq!(
        (a.wal_through, a.sources.clone(), a.level),
        (9, info.sources, 2)
    );
    let listed = rt.block_on(list_blocks(&store, &root())).unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    assert!(rt
        .block_on(list_orphans(&store, &root()))
        .unwrap()
        .is_empty());

    // A crash between data and meta leaves an orphan that list_blocks ignores.
    let orphan = BlockId::new();
    rt.block_on(store.put(
        &data_path(&root(), &orphan),
        PutPayload::from_static(b"partial"),
    ))
    .unwrap();
    // A meta that does not parse does not make a block either.
    let broken = BlockId::new();
    rt.block_on(store.put(&meta_path(&root(), &broken), PutPayload::from_static(b"{")))
        .unwrap();
    assert_eq!(
        rt.block_on(list_blocks(&store, &root())).unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        rt.block_on(list_orphans(&store, &root())).unwrap(),
        vec![orphan.clone()]
    );

    rt.block_on(delete_block(&store, &root(), &a.id)).unwrap();
    rt.block_on(delete_block(&store, &root(), &a.id)).unwrap();
    rt.block_on(delete_block(&store, &root(), &orphan)).unwrap();
    assert_eq!(rt.block_on(list_blocks(&store, &root())).unwrap(), vec![b]);
    assert!(rt
        .block_on(list_orphans(&store, &root()))
        .unwrap()
        .is_empty());
}

#[test]
fn empty_block_is_refused() {
    let store = InMemory::new();
    let err = rt()
        .block_on(write_block(
            &store,
            &root(),
            vec![],
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap_err();
    assert!(matches!(err, BlockError::Empty));
}

// ---- robustness: damaged data files give errors, never panics ----

async fn read_everything(
    store: &dyn ObjectStore,
    meta: &BlockMeta,
    spans: &[Span],
) -> Result<(), BlockError> {
    read_all(store, &root(), meta).await?;
    read_traces(store, &root(), meta, &[spans[0].trace_id]).await?;
    let q = SpanQuery {
        tags: vec![("http.route".into(), "x".into())],
        start: meta.min_start,
        end: meta.max_start,
        limit: 5,
        ..Default::default()
    };
    search(store, &root(), meta, &q).await?;
    dependencies(
        store,
        &root(),
        meta,
        meta.min_start,
        meta.max_start,
        &mut BTreeMap::new(),
    )
    .await
}

#[test]
fn corrupt_and_truncated_files_are_errors() {
    let rt = rt();
    let (store, spans, meta) = realistic_block(600, &small_settings());
    let path = data_path(&root(), &meta.id);
    let good = rt.block_on(async { store.get(&path).await.unwrap().bytes().await.unwrap() });
    rt.block_on(read_everything(&store, &meta, &spans)).unwrap();

    let mut rng = crate::testgen::Rng::new(3);
    let mut variants: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"PAR1".to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..good.len() - 1].to_vec(),
    ];
    for _ in 0..60 {
        let mut v = good.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(v.len() as u64) as usize;
            v[at] ^= 1 << rng.below(8);
        }
        variants.push(v);
    }
    // Flips in the footer region hit the metadata and page index rather than page data.
    for _ in 0..60 {
        let mut v = good.to_vec();
        let tail = v.len().min(4096);
        let at = v.len() - 1 - rng.below(tail as u64) as usize;
        v[at] = rng.next() as u8;
        variants.push(v);
    }
    let mut errors = 0;
    for v in variants {
        rt.block_on(store.put(&path, PutPayload::from(v))).unwrap();
        // Must not panic; most variants fail, some flips land in unread padding or values.
        if rt.block_on(read_everything(&store, &meta, &spans)).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 20, "only {errors} damaged files were noticed");
    rt.block_on(store.delete(&path)).unwrap();
    assert!(matches!(
        rt.block_on(read_all(&store, &root(), &meta)),
        Err(BlockError::ObjectStore(_))
    ));
}

#[test]
fn bad_settings_are_errors() {
    let store = InMemory::new();
    let spans = realistic_spans(1, 10, UnixNanos(1));
    for settings in [
        BlockSettings {
            zstd_level: 99,
            ..Default::default()
        },
        BlockSettings {
            row_group_rows: 0,
            ..Default::default()
        },
    ] {
        let r = rt().block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            BlockInfo::default(),
            &settings,
        ));
        assert!(matches!(r, Err(BlockError::Settings(_))));
    }
}

// ---- I/O: lookups fetch only a fraction of the file ----

/// Counts the bytes served by `get` requests.
#[derive(Debug, Default)]
struct CountingStore {
    inner: InMemory,
    bytes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl CountingStore {
    fn take(&self) -> u64 {
        self.bytes.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let got = self.inner.get_opts(location, options).await?;
        self.bytes.fetch_add(
            got.range.end - got.range.start,
            std::sync::atomic::Ordering::SeqCst,
        );
        Ok(got)
    }
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        // Counted as requested: the default implementation would coalesce nearby ranges,
        // which is a store's transfer policy, not what the reader asked for.
        let n: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        self.bytes.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[test]
fn trace_lookup_reads_a_fraction_of_the_file() {
    let rt = rt();
    let store = CountingStore::default();
    let spans = realistic_spans(11, 50_000, UnixNanos(1_700_000_000_000_000_000));
    let settings = BlockSettings {
        data_page_row_limit: 2_000,
        ..Default::default()
    };
    let meta = rt
        .block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            BlockInfo::default(),
            &settings,
        ))
        .unwrap();
    let traces = by_trace(&spans);
    let id = *traces.keys().nth(traces.len() / 2).unwrap();
    store.take();
    let got = rt
        .block_on(read_traces(&store, &root(), &meta, &[id]))
        .unwrap();
    assert_eq!(sorted(got), sorted(traces[&id].clone()));
    let read = store.take();
    eprintln!("one trace: read {read} of {} bytes", meta.data_bytes);
    assert!(
        read * 5 < meta.data_bytes,
        "read {read} of {} bytes for one trace",
        meta.data_bytes
    );
    // IDs the bloom filter rules out cost no request at all.
    let absent = TraceId([0x5a; 16]);
    if !meta.may_contain_trace(&absent) {
        assert!(rt
            .block_on(read_traces(&store, &root(), &meta, &[absent]))
            .unwrap()
            .is_empty());
        assert_eq!(store.take(), 0);
    }
    // Search reads a subset of the columns.
    let q = SpanQuery {
        service: Some("svc-01".into()),
        start: meta.min_start,
        end: meta.max_start,
        limit: 10,
        ..Default::default()
    };
    let hits = rt.block_on(search(&store, &root(), &meta, &q)).unwrap();
    assert_eq!(hits, model_search(&spans, &q));
    let read = store.take();
    eprintln!("service search: read {read} of {} bytes", meta.data_bytes);
    assert!(
        read * 3 < meta.data_bytes,
        "search read {read} of {}",
        meta.data_bytes
    );
}
