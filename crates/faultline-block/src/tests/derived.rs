//! Columns whose values follow from the span name store nulls for those values, and every
//! reader gives the values back: whole spans, trace lookups, tag search and dependencies.

use super::*;

/// `GET /x` spans whose route is `/x` except on every seventh span; client spans to
/// `db.svc` (and every fifth to an IPv4 address); paths below the route.
pub(super) fn spans() -> Vec<Span> {
    let resource = |svc: &str| Arc::new(Resource::for_service(svc));
    let (web, db) = (resource("web"), resource("db"));
    let s = |k: &str, v: String| KeyValue::new(k, AttributeValue::String(v.into()));
    let mut out = Vec::new();
    for i in 0..600u32 {
        let route = ["/x", "/y", "/z"][i as usize % 3];
        // All-zero trace IDs are invalid.
        let trace_id = TraceId([(i / 3 + 1) as u8; 16]);
        let server = Span {
            trace_id,
            span_id: SpanId([1, (i % 3) as u8, 0, 0, 0, 0, 0, 0]),
            name: format!("GET {route}").into(),
            kind: SpanKind::Server,
            start: UnixNanos(1_000 + u64::from(i)),
            end: UnixNanos(2_000 + u64::from(i)),
            attributes: vec![
                s("url.path", format!("{route}/{i}")),
                s(
                    "http.route",
                    if i % 7 == 0 {
                        "/other".into()
                    } else {
                        route.into()
                    },
                ),
                s("http.request.method", "GET".into()),
            ],
            resource: web.clone(),
            ..Default::default()
        };
        let client = Span {
            trace_id,
            span_id: SpanId([2, (i % 3) as u8, 0, 0, 0, 0, 0, 0]),
            parent_span_id: Some(server.span_id),
            name: "query".into(),
            kind: SpanKind::Client,
            start: UnixNanos(1_500 + u64::from(i)),
            end: UnixNanos(1_600 + u64::from(i)),
            attributes: vec![s(
                "server.address",
                if i % 5 == 0 {
                    format!("10.0.0.{}", i % 250)
                } else {
                    "db.svc".into()
                },
            )],
            resource: db.clone(),
            ..Default::default()
        };
        out.push(server);
        out.push(client);
    }
    out
}

/// A block of `spans` (small row groups), and the attribute columns its file has.
fn written(spans: &[Span]) -> (InMemory, BlockMeta, Vec<crate::schema::AttrColumn>) {
    let (store, meta) = write_test_block(spans.to_vec(), &small_settings());
    let file = rt()
        .block_on(crate::read::DataFile::open(
            &store,
            data_path(&root(), &meta.id),
        ))
        .unwrap();
    let cols = file.attr_columns().columns.clone();
    (store, meta, cols)
}

#[test]
fn derived_values_read_back_everywhere() {
    let spans = spans();
    let (store, meta, cols) = written(&spans);
    // The file derives the route and the server address, and keeps the exceptions.
    let route = cols.iter().find(|c| c.key == "http.route").unwrap();
    let derived = route.derived.as_ref().expect("http.route is derived");
    assert_eq!(derived.value_for("GET /y"), "/y");
    assert_eq!(derived.value_for("GET /z"), "/z");
    assert_eq!(derived.value_for("GET /x"), "/x");
    let server = cols
        .iter()
        .find(|c| c.column == "attr.server.address")
        .unwrap();
    assert_eq!(
        server.derived.as_ref().unwrap().value_for("query"),
        "db.svc"
    );
    assert!(cols
        .iter()
        .any(|c| c.key == "server.address" && c.ty == crate::schema::ValueType::Ipv4));

    let back = rt().block_on(read_all(&store, &root(), &meta)).unwrap();
    assert_eq!(sorted(back), sorted(spans.clone()));
    let id = spans[10].trace_id;
    let got = rt()
        .block_on(read_traces(&store, &root(), &meta, &[id]))
        .unwrap();
    let want: Vec<Span> = spans.iter().filter(|s| s.trace_id == id).cloned().collect();
    assert_eq!(sorted(got), sorted(want));

    for (key, value) in [
        ("http.route", "/y"),
        ("http.route", "/other"),
        ("url.path", "/z/5"),
        ("server.address", "db.svc"),
        ("server.address", "10.0.0.10"),
    ] {
        let q = SpanQuery {
            tags: vec![(key.into(), value.into())],
            start: UnixNanos(0),
            end: UnixNanos(u64::MAX),
            limit: 1000,
            ..Default::default()
        };
        let got = rt().block_on(search(&store, &root(), &meta, &q)).unwrap();
        assert!(!got.is_empty(), "{key}={value}");
        assert_eq!(got, model_search(&spans, &q), "{key}={value}");
    }

    let mut want = BTreeMap::new();
    for trace in by_trace(&spans).values() {
        service_edges(trace, UnixNanos(0), UnixNanos(u64::MAX), &mut want);
    }
    assert!(want.keys().any(|(_, to)| to == "db.svc"));
    assert!(want.keys().any(|(_, to)| to == "10.0.0.10"));
    let mut got = BTreeMap::new();
    rt().block_on(dependencies(
        &store,
        &root(),
        &meta,
        UnixNanos(0),
        UnixNanos(u64::MAX),
        &mut got,
    ))
    .unwrap();
    assert_eq!(got, want);
}

/// A span name's values of a derivable column are counted up to a limit: values first seen
/// after it are stored by comparing them with the derived value, never taken for it.
#[test]
fn values_past_the_counting_limit_read_back() {
    let db = Arc::new(Resource::for_service("db"));
    let span = |i: u32, address: String| Span {
        trace_id: TraceId([(i % 200 + 1) as u8; 16]),
        span_id: SpanId((u64::from(i) + 1).to_be_bytes()),
        name: "call".into(),
        kind: SpanKind::Client,
        start: UnixNanos(1_000 + u64::from(i)),
        end: UnixNanos(2_000 + u64::from(i)),
        attributes: vec![KeyValue::new(
            "server.address",
            AttributeValue::String(address.into()),
        )],
        resource: db.clone(),
        ..Default::default()
    };
    // First the common value, then more distinct ones than are counted, then mostly the
    // common value again with new distinct ones among it.
    let early: Vec<Span> = (0..1_000u32)
        .map(|i| match i {
            0..=9 => span(i, "db.svc".into()),
            10..=209 => span(i, format!("host-{i}")),
            _ if i % 9 == 0 => span(i, format!("late-{i}")),
            _ => span(i, "db.svc".into()),
        })
        .collect();
    // The common value only after the limit: it is never counted.
    let late: Vec<Span> = (0..1_000u32)
        .map(|i| match i {
            0..=199 => span(i, format!("host-{i}")),
            _ => span(i, "db.svc".into()),
        })
        .collect();
    for (spans, derived) in [(early, true), (late, false)] {
        let (store, meta, cols) = written(&spans);
        let column = cols
            .into_iter()
            .find(|c| c.column == "attr.server.address")
            .unwrap();
        assert_eq!(column.derived.is_some(), derived);
        if derived {
            assert_eq!(column.derived.unwrap().value_for("call"), "db.svc");
        }
        let back = rt().block_on(read_all(&store, &root(), &meta)).unwrap();
        assert_eq!(sorted(back), sorted(spans));
    }
}
