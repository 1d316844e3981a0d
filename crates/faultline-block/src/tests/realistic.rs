//! Realistic traces: interning, trace lookups, search and dependencies agree with the model.

use super::*;

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
    assert_eq!(meta.span_count, spans.len() as u64);
    assert_eq!(meta.min_trace_id, *traces.keys().next().unwrap());
    assert_eq!(meta.max_trace_id, *traces.keys().last().unwrap());
    assert_eq!(meta.min_start, spans.iter().map(|s| s.start).min().unwrap());
    assert_eq!(meta.max_start, spans.iter().map(|s| s.start).max().unwrap());
    assert_eq!(meta.max_end, spans.iter().map(|s| s.end).max().unwrap());
    let mut ops: BTreeMap<String, std::collections::BTreeSet<(String, SpanKind)>> = BTreeMap::new();
    for s in &spans {
        ops.entry(s.service_name().to_owned())
            .or_default()
            .insert((s.name.to_string(), s.kind));
    }
    assert_eq!(meta.operations, ops);
    assert!(traces.keys().all(|id| meta.may_contain_trace(id)));
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

#[test]
fn thousands_of_distinct_resources_round_trip() {
    let mut spans = realistic_spans(9, 3000, UnixNanos(1_000_000));
    for (i, s) in spans.iter_mut().enumerate() {
        let mut r = (*s.resource).clone();
        r.attributes.push(KeyValue::new(
            "k8s.pod.uid",
            AttributeValue::String(format!("pod-{}", i / 2).into()),
        ));
        s.resource = Arc::new(r);
    }
    let (store, meta) = write_test_block(spans.clone(), &BlockSettings::default());
    let back = rt().block_on(read_all(&store, &root(), &meta)).unwrap();
    let distinct: std::collections::HashSet<usize> = back
        .iter()
        .map(|s| Arc::as_ptr(&s.resource) as usize)
        .collect();
    let contents: std::collections::HashSet<String> =
        spans.iter().map(|s| format!("{:?}", s.resource)).collect();
    assert!(contents.len() > 1500);
    assert_eq!(distinct.len(), contents.len());
    assert_eq!(sorted(back), sorted(spans));
}
