//! Arbitrary spans round-trip exactly, and search and dependencies agree with the model.

use super::*;

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
        // Stored relative to http.route (shared-prefix columns).
        Just("url.path".to_owned()),
        Just("http.target".to_owned()),
        // Fixed string columns that get `ipv4` columns beside them; a peer attribute.
        Just("client.address".to_owned()),
        Just("server.address".to_owned()),
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
        "[a-z/]{0,8}".prop_map(|s: String| AttributeValue::String(s.into())),
        any::<i64>().prop_map(AttributeValue::Int),
        any::<bool>().prop_map(AttributeValue::Bool),
        prop_oneof![Just(0.5f64), Just(-0.0), Just(f64::INFINITY)].prop_map(AttributeValue::Double),
        uuid.clone()
            .prop_map(|s: String| AttributeValue::String(s.into())),
        // Almost-UUIDs must stay strings exactly as given.
        uuid.prop_map(|u| AttributeValue::String(u.to_uppercase().into())),
        // Hex digit strings (`hex` columns) and near misses: upper case, odd, too short.
        "[0-9a-f]{14,20}".prop_map(|s: String| AttributeValue::String(s.into())),
        "[0-9A-F]{16}".prop_map(|s: String| AttributeValue::String(s.into())),
        // IPv4 addresses (`ipv4` columns) and near misses: leading zeros, out of range.
        proptest::array::uniform4(any::<u8>())
            .prop_map(|b| AttributeValue::String(crate::schema::ipv4_string(&b).into())),
        "(0[0-9]|[0-9]{1,3})\\.[0-9]{1,3}\\.[0-9]\\.[0-9]{1,4}"
            .prop_map(|s: String| AttributeValue::String(s.into())),
        // Routes and paths that share prefixes with them, in part or whole, with multi-byte
        // characters so that a shared prefix can end inside one.
        "/(api|é|è)?(/orders)?(/\\{id\\}|/[0-9é]{0,3}){0,2}"
            .prop_map(|s: String| AttributeValue::String(s.into())),
        prop_oneof![Just("/a"), Just("/b")].prop_map(|v| AttributeValue::String(v.into())),
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
        // A few repeated names, so that columns derive values from them.
        prop_oneof![
            "[A-Za-z /]{0,10}",
            Just("GET /a".to_owned()),
            Just("GET /b".to_owned())
        ],
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
            name: name.into(),
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
        let (store, meta) = write_test_block(spans.clone(), &small_settings());
        // Few distinct values make repeated spans likely: the block holds the first of each.
        let spans = first_copies(&spans);
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
                tags: vec![(kv.key.to_string(), kv.value.to_text())],
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
