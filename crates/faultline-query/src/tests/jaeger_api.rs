//! The Jaeger HTTP JSON API (`/api/...`) through the router.

use super::*;

#[tokio::test]
async fn trace_by_id_is_the_full_jaeger_model() {
    let f = Fixture::new().await;
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    let want = json!({
        "data": [expected_trace_a()],
        "total": 1, "limit": 0, "offset": 0, "errors": null,
    });
    assert_eq!(body, want);

    // Upper-case and start/end hints are accepted.
    let (status, upper) = f
        .get(&format!(
            "/api/traces/{}?start=1&end=2",
            TRACE_A.to_uppercase()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upper, want);

    let (status, b) = f.get(&format!("/api/traces/{TRACE_B}")).await;
    assert_eq!(status, StatusCode::OK);
    let span = &b["data"][0]["spans"][0];
    assert_eq!(
        span["warnings"],
        json!(["2 attributes of this span were dropped"])
    );
    assert_eq!(
        span["tags"],
        json!([
            {"key": "otel.scope.name", "type": "string", "value": "cart-lib"},
            {"key": "tenant", "type": "string", "value": "acme"},
            {"key": "span.kind", "type": "string", "value": "internal"},
            {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"},
        ])
    );
    assert_eq!(span["duration"], json!(2_000_000));
    f.close().await;
}

#[tokio::test]
async fn trace_by_id_errors() {
    let f = Fixture::new().await;
    let (status, body) = f.get("/api/traces/ffff").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0,
               "errors": [{"code": 404, "msg": "trace not found"}]})
    );
    let (status, body) = f.get("/api/traces/zz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request(
            "invalid parameter 'traceID': \"zz\" is not a trace ID (ID is not hexadecimal: \"zz\"); expected 1 to 32 hexadecimal digits"
        )
    );
    for bad in ["0", "0123456789abcdef0123456789abcdef01", "%FF%FE"] {
        let (status, body) = f.get(&format!("/api/traces/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let msg = body["errors"][0]["msg"].as_str().expect("msg");
        assert!(
            msg.starts_with("invalid parameter 'traceID'"),
            "{bad}: {msg}"
        );
        assert_eq!(body["data"], Value::Null);
    }
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}?start=soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'start': \"soon\" is not a whole number of microseconds since the Unix epoch")
    );
    f.close().await;
}

#[tokio::test]
async fn services_and_operations() {
    let f = Fixture::new().await;
    let (status, body) = f.get("/api/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": ["cart", "frontend"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );

    let (_, body) = f.get("/api/services/frontend/operations").await;
    assert_eq!(
        body,
        json!({"data": ["GET /checkout", "POST /cart"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    let (_, body) = f.get("/api/services/nobody/operations").await;
    assert_eq!(body["data"], json!([]));

    let (status, body) = f.get("/api/operations?service=cart").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": [
            {"name": "POST /cart", "spanKind": "server"},
            {"name": "refresh", "spanKind": "internal"},
        ], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    let (_, body) = f
        .get("/api/operations?service=frontend&spanKind=client")
        .await;
    assert_eq!(
        body,
        json!({"data": [{"name": "POST /cart", "spanKind": "client"}],
               "total": 1, "limit": 0, "offset": 0, "errors": null})
    );

    let (status, body) = f.get("/api/operations?spanKind=server").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request(
            "invalid parameter 'service': is required: the service whose operations to list"
        )
    );
    let (status, body) = f.get("/api/operations?service=cart&spanKind=sever").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'spanKind': \"sever\" is not a span kind; expected server, client, producer, consumer, internal or unspecified")
    );
    f.close().await;
}

#[tokio::test]
async fn search_by_each_parameter() {
    let f = Fixture::new().await;
    let a = || TRACE_A.to_owned();
    let b = || TRACE_B.to_owned();

    // Most recent first: B's span starts ten minutes after A's.
    assert_eq!(f.search("service=cart").await, vec![b(), a()]);
    assert_eq!(f.search("").await, vec![b(), a()]);
    assert_eq!(f.search("service=frontend").await, vec![a()]);
    assert_eq!(f.search("service=nobody").await, Vec::<String>::new());
    assert_eq!(f.search("service=cart&operation=refresh").await, vec![b()]);
    assert_eq!(
        f.search(&format!("operation={}", enc("GET /checkout")))
            .await,
        vec![a()]
    );

    // Tags: JSON object, repeated tag=k:v, resource attributes, error status, span kind.
    let tags = enc(r#"{"http.response.status_code":"500"}"#);
    assert_eq!(f.search(&format!("tags={tags}")).await, vec![a()]);
    let tags = enc(r#"{"http.response.status_code":500,"http.request.method":"GET"}"#);
    assert_eq!(f.search(&format!("tags={tags}")).await, vec![a()]);
    let tags = enc(r#"{"http.response.status_code":"404"}"#);
    assert_eq!(
        f.search(&format!("tags={tags}")).await,
        Vec::<String>::new()
    );
    assert_eq!(f.search("tag=tenant:acme").await, vec![b()]);
    assert_eq!(
        f.search("tag=tenant:acme&tag=retry:true").await,
        Vec::<String>::new()
    );
    assert_eq!(f.search("tag=retry:true&tag=ratio:0.5").await, vec![a()]);
    assert_eq!(f.search("tag=error:true").await, vec![a()]);
    assert_eq!(f.search("tag=host.name:cart-1").await, vec![b(), a()]);
    assert_eq!(f.search("tag=span.kind:internal").await, vec![b()]);
    assert_eq!(
        f.search("service=cart&tag=span.kind:server").await,
        vec![a()]
    );

    // Durations in Go syntax.
    assert_eq!(f.search("minDuration=1s").await, vec![b()]);
    assert_eq!(f.search("minDuration=1.5s&maxDuration=2s").await, vec![b()]);
    assert_eq!(f.search("maxDuration=35ms").await, vec![a()]);
    assert_eq!(
        f.search(&format!("minDuration=41ms&maxDuration={}", enc("50000µs")))
            .await,
        vec![a()]
    );
    assert_eq!(f.search("minDuration=1h30m").await, Vec::<String>::new());

    // Time window: start/end in µs, lookback relative to end.
    let (s, e) = (T0_US + 5 * 60_000_000, T0_US + 20 * 60_000_000);
    assert_eq!(f.search(&format!("start={s}&end={e}")).await, vec![b()]);
    assert_eq!(f.search(&format!("end={s}")).await, vec![a()]);
    assert_eq!(f.search("service=cart&lookback=55m").await, vec![b()]);
    assert_eq!(f.search("service=cart&lookback=2d").await, vec![b(), a()]);
    assert_eq!(
        f.search(&format!("service=cart&lookback=custom&start={s}"))
            .await,
        vec![b()]
    );

    // Limit keeps the most recent.
    assert_eq!(f.search("service=cart&limit=1").await, vec![b()]);
    assert_eq!(f.search("service=cart&limit=100000").await, vec![b(), a()]);
    f.close().await;
}

#[tokio::test]
async fn search_returns_full_traces() {
    let f = Fixture::new().await;
    let (status, body) = f.get("/api/traces?service=frontend").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": [expected_trace_a()], "total": 1, "limit": 0, "offset": 0, "errors": null})
    );
    f.close().await;
}

#[tokio::test]
async fn search_by_trace_ids() {
    let f = Fixture::new().await;
    let (status, body) = f
        .get(&format!(
            "/api/traces?traceID={TRACE_B}&traceID=ffff&traceID={TRACE_A}&traceID={TRACE_B}&traceID=FFFF"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["traceID"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![TRACE_B, TRACE_A]);
    assert_eq!(body["data"][1], expected_trace_a());
    assert_eq!(body["total"], json!(2));
    assert_eq!(
        body["errors"],
        json!([{"msg": "trace not found", "traceID": "0000000000000000000000000000ffff"}])
    );
    f.close().await;
}

#[tokio::test]
async fn search_rejects_each_bad_parameter() {
    let f = Fixture::new().await;
    let cases: Vec<(String, &str)> = vec![
        (
            "minDuration=abc".into(),
            "invalid parameter 'minDuration': \"abc\" is not a duration; expected a Go duration such as 250ms, 1.5s or 1h30m (units ns, us, µs, ms, s, m, h)",
        ),
        (
            "maxDuration=5".into(),
            "invalid parameter 'maxDuration': \"5\" has a number without a unit; expected a Go duration such as 250ms, 1.5s or 1h30m (units ns, us, µs, ms, s, m, h)",
        ),
        (
            "minDuration=2s&maxDuration=1s".into(),
            "invalid parameter 'maxDuration': must not be less than 'minDuration'",
        ),
        (
            format!("tags={}", enc("{bad")),
            "invalid parameter 'tags': expected a JSON object of string values such as {\"http.status_code\":\"500\"}, but it is not JSON: key must be a string at line 1 column 2",
        ),
        (
            format!("tags={}", enc(r#"["a"]"#)),
            "invalid parameter 'tags': expected a JSON object of string values such as {\"http.status_code\":\"500\"}, got \"[\\\"a\\\"]\"",
        ),
        (
            "tag=novalue".into(),
            "invalid parameter 'tag': \"novalue\" is not a tag condition; expected key:value",
        ),
        (
            "limit=-1".into(),
            "invalid parameter 'limit': \"-1\" is negative; expected a whole number of traces, at most 1500",
        ),
        (
            "limit=lots".into(),
            "invalid parameter 'limit': \"lots\" is not a number; expected a whole number of traces, at most 1500",
        ),
        (
            "start=20&end=10".into(),
            "invalid parameter 'start': start (20 µs) is after end (10 µs); expected start <= end",
        ),
        (
            "start=yesterday".into(),
            "invalid parameter 'start': \"yesterday\" is not a whole number of microseconds since the Unix epoch",
        ),
        (
            "end=1.5".into(),
            "invalid parameter 'end': \"1.5\" is not a whole number of microseconds since the Unix epoch",
        ),
        (
            "lookback=forever".into(),
            "invalid parameter 'lookback': \"forever\" is not a lookback; expected a duration such as 1h, 2d or 1w, or \"custom\"",
        ),
        (
            "traceID=xyz".into(),
            "invalid parameter 'traceID': \"xyz\" is not a trace ID (ID is not hexadecimal: \"xyz\"); expected 1 to 32 hexadecimal digits",
        ),
    ];
    for (query, msg) in cases {
        let (status, body) = f.get(&format!("/api/traces?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body, bad_request(msg), "{query}");
    }
    f.close().await;
}

#[tokio::test]
async fn dependencies() {
    let f = Fixture::new().await;
    let end_ms = (T0 + HOUR) / MS;
    let edge = json!({"data": [{"parent": "frontend", "child": "cart", "callCount": 1}],
                      "total": 1, "limit": 0, "offset": 0, "errors": null});
    let empty = json!({"data": [], "total": 0, "limit": 0, "offset": 0, "errors": null});
    let lookback_ms = 2 * HOUR / MS;
    let (status, body) = f
        .get(&format!(
            "/api/dependencies?endTs={end_ms}&lookback={lookback_ms}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, edge);
    // Defaults: now (the test clock) and a day back.
    assert_eq!(f.get("/api/dependencies").await.1, edge);
    assert_eq!(f.get("/api/dependencies?service=frontend").await.1, edge);
    assert_eq!(f.get("/api/dependencies?service=nobody").await.1, empty);
    // A window that ends before the trace started sees nothing.
    let before = T0 / MS - 1;
    assert_eq!(
        f.get(&format!("/api/dependencies?endTs={before}&lookback=60000"))
            .await
            .1,
        empty
    );
    let (status, body) = f.get("/api/dependencies?endTs=now").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'endTs': \"now\" is not a whole number of milliseconds since the Unix epoch")
    );
    let (status, body) = f.get("/api/dependencies?lookback=1h").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'lookback': \"1h\" is not a whole number of milliseconds")
    );
    f.close().await;
}

#[tokio::test]
async fn trace_warnings_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir, 2).await;
    append(&store, fixture()).await;
    let app = router(QueryState::new(Arc::clone(&store)).with_clock(test_now));
    let f = Fixture {
        app,
        store,
        _dir: dir,
    };
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    let trace = &body["data"][0];
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(2));
    let warnings = trace["warnings"].as_array().expect("warnings is a list");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].as_str().is_some_and(|w| w.contains("dropped")),
        "{warnings:?}"
    );
    f.close().await;
}

/// Waits until the store has flushed `blocks` heads and holds nothing in its head, or panics at
/// the deadline.
async fn wait_for_flush(store: &Store, blocks: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = store.stats().await;
        if stats.blocks_flushed >= blocks && stats.flushing_heads == 0 && stats.head_spans == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "store did not flush {blocks} blocks in time: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn trace_split_across_blocks_comes_back_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every append fills the head, so each batch below becomes its own block.
    let store = open_store_cutting_at(&dir, 1000, 1).await;
    let spans = fixture();
    for (i, span) in spans.iter().enumerate() {
        append(&store, vec![span.clone()]).await;
        if i < 2 {
            wait_for_flush(&store, i as u64 + 1).await;
        }
    }
    let app = router(QueryState::new(Arc::clone(&store)).with_clock(test_now));
    let f = Fixture {
        app,
        store,
        _dir: dir,
    };
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": [expected_trace_a()], "total": 1, "limit": 0, "offset": 0, "errors": null})
    );
    assert_eq!(f.search("service=cart").await, vec![TRACE_B, TRACE_A]);
    assert_eq!(
        f.get("/api/services").await.1["data"],
        json!(["cart", "frontend"])
    );
    let (_, v3) = f.get(&format!("/api/v3/traces/{TRACE_A}")).await;
    assert_eq!(
        v3["result"]["resourceSpans"].as_array().map(Vec::len),
        Some(2)
    );
    f.close().await;
}
