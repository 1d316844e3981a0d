//! The api_v3 HTTP API (`/api/v3/...`) through the router.

use super::*;

fn attr(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

#[tokio::test]
async fn v3_trace_by_id_is_otlp_json_grouped_by_resource() {
    let f = Fixture::new().await;
    let (status, body) = f.get(&format!("/api/v3/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resource_spans = body["result"]["resourceSpans"]
        .as_array()
        .expect("resourceSpans");
    assert_eq!(resource_spans.len(), 2);

    let frontend = &resource_spans[0];
    assert_eq!(
        frontend["resource"]["attributes"],
        json!([
            attr("service.name", json!({"stringValue": "frontend"})),
            attr("host.name", json!({"stringValue": "web-1"})),
            attr("process.pid", json!({"intValue": "4242"})),
        ])
    );
    let scope_spans = frontend["scopeSpans"].as_array().expect("scopeSpans");
    assert_eq!(scope_spans.len(), 1);
    assert_eq!(scope_spans[0]["scope"]["name"], json!("frontend-lib"));
    assert_eq!(scope_spans[0]["scope"]["version"], json!("1.0.0"));
    let spans = scope_spans[0]["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 2);
    let root = &spans[0];
    assert_eq!(root["traceId"], json!(TRACE_A));
    assert_eq!(root["spanId"], json!("0101010101010101"));
    assert_eq!(root["parentSpanId"], json!(""));
    assert_eq!(root["name"], json!("GET /checkout"));
    assert_eq!(root["kind"], json!(2));
    assert_eq!(root["flags"], json!(0x301));
    assert_eq!(root["startTimeUnixNano"], json!(T0.to_string()));
    assert_eq!(root["endTimeUnixNano"], json!((T0 + 50 * MS).to_string()));
    assert_eq!(
        root["attributes"],
        json!([
            attr("http.request.method", json!({"stringValue": "GET"})),
            attr("http.response.status_code", json!({"intValue": "500"})),
        ])
    );
    assert_eq!(
        root["status"],
        json!({"message": "upstream failed", "code": 2})
    );
    assert_eq!(root["events"][0]["name"], json!("exception"));
    assert_eq!(
        root["events"][0]["timeUnixNano"],
        json!((T0 + 40 * MS).to_string())
    );
    // The client span, every field as OTLP JSON writes it.
    assert_eq!(
        spans[1],
        json!({
            "traceId": TRACE_A,
            "spanId": "0202020202020202",
            "parentSpanId": "0101010101010101",
            "traceState": "",
            "flags": 1,
            "name": "POST /cart",
            "kind": 3,
            "startTimeUnixNano": (T0 + 5 * MS).to_string(),
            "endTimeUnixNano": (T0 + 45 * MS).to_string(),
            "attributes": [
                attr("retry", json!({"boolValue": true})),
                attr("ratio", json!({"doubleValue": 0.5})),
                attr("payload", json!({"bytesValue": "AQID"})),
            ],
            "droppedAttributesCount": 0,
            "events": [],
            "droppedEventsCount": 0,
            "links": [{
                "traceId": TRACE_B,
                "spanId": "0404040404040404",
                "traceState": "",
                "attributes": [],
                "droppedAttributesCount": 0,
                "flags": 0,
            }],
            "droppedLinksCount": 0,
            "status": null,
        })
    );

    let cart = &resource_spans[1];
    assert_eq!(
        cart["resource"]["attributes"][0],
        attr("service.name", json!({"stringValue": "cart"}))
    );
    let cart_span = &cart["scopeSpans"][0]["spans"][0];
    assert_eq!(cart_span["spanId"], json!("0303030303030303"));
    assert_eq!(cart_span["parentSpanId"], json!("0202020202020202"));
    assert_eq!(cart_span["status"]["code"], json!(1));
    f.close().await;
}

#[tokio::test]
async fn v3_search_services_operations() {
    let f = Fixture::new().await;
    let window = format!(
        "query.start_time_min={}&query.start_time_max={}",
        enc("2023-11-14T22:00:00Z"),
        enc("2023-11-14T23:59:59.999+00:00")
    );
    let first_trace_ids = |body: &Value| -> Vec<String> {
        body["result"]["resourceSpans"]
            .as_array()
            .expect("resourceSpans")
            .iter()
            .map(|rs| {
                rs["scopeSpans"][0]["spans"][0]["traceId"]
                    .as_str()
                    .expect("traceId")
                    .to_owned()
            })
            .collect()
    };
    let (status, body) = f
        .get(&format!("/api/v3/traces?query.service_name=cart&{window}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // B (one resource) first, then A's two resources.
    assert_eq!(first_trace_ids(&body), vec![TRACE_B, TRACE_A, TRACE_A]);

    let attributes = enc(r#"{"tenant":"acme"}"#);
    let (_, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.attributes={attributes}"
        ))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_B]);
    let (_, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.operationName=POST%20%2Fcart&query.duration_max=35ms"
        ))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_A, TRACE_A]);
    let (_, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.duration_min=1s&query.search_depth=5"
        ))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_B]);
    let (_, body) = f
        .get(&format!("/api/v3/traces?{window}&query.num_traces=1"))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_B]);
    let (status, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.service_name=nobody"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"result": {"resourceSpans": []}}));

    let (status, body) = f.get("/api/v3/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"services": ["cart", "frontend"]}));
    let (_, body) = f.get("/api/v3/operations?service=cart").await;
    assert_eq!(
        body,
        json!({"operations": [
            {"name": "POST /cart", "spanKind": "server"},
            {"name": "refresh", "spanKind": "internal"},
        ]})
    );
    let (_, body) = f
        .get("/api/v3/operations?service=cart&span_kind=internal")
        .await;
    assert_eq!(
        body,
        json!({"operations": [{"name": "refresh", "spanKind": "internal"}]})
    );
    let (_, body) = f.get("/api/v3/operations").await;
    assert_eq!(
        body,
        json!({"operations": [
            {"name": "GET /checkout", "spanKind": "server"},
            {"name": "POST /cart", "spanKind": "server"},
            {"name": "POST /cart", "spanKind": "client"},
            {"name": "refresh", "spanKind": "internal"},
        ]})
    );
    f.close().await;
}

#[tokio::test]
async fn v3_errors() {
    let f = Fixture::new().await;
    let gateway =
        |code: u16, message: &str| json!({"error": {"httpCode": code, "message": message}});
    let (status, body) = f.get("/api/v3/traces/ffff").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, gateway(404, "trace not found"));
    let (status, body) = f.get("/api/v3/traces/not-hex").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'trace_id': \"not-hex\" is not a trace ID (ID is not hexadecimal: \"not-hex\"); expected 1 to 32 hexadecimal digits")
    );
    let (status, body) = f.get("/api/v3/traces?query.service_name=cart").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'query.start_time_min': query.start_time_min and query.start_time_max are both required, as RFC 3339 times such as 2024-05-01T12:00:00Z")
    );
    let (status, body) = f
        .get("/api/v3/traces?query.start_time_min=2023-11-14T23:00:00Z&query.start_time_max=2023-11-14T22:00:00Z")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'query.start_time_min': query.start_time_min must be before query.start_time_max")
    );
    let (status, body) = f
        .get("/api/v3/traces?query.start_time_min=2023-11-14T22:00:00Z&query.start_time_max=2023-11-14T23:00:00Z&query.duration_min=fast")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'query.duration_min': \"fast\" is not a duration; expected a Go duration such as 250ms, 1.5s or 1h30m (units ns, us, µs, ms, s, m, h)")
    );
    let (status, body) = f.get("/api/v3/operations?span_kind=everything").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'span_kind': \"everything\" is not a span kind; expected server, client, producer, consumer, internal or unspecified")
    );
    f.close().await;
}
