//! The router in process: `/metrics` content negotiation, the JSON APIs, hostile parameters.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use faultline_model::UnixNanos;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

struct App {
    app: Router,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(&dir).await;
    let analyzer = support::analyzer();
    let base = UnixNanos::now();
    for t in 1..=3u8 {
        let spans = support::checkout_trace(base, t);
        // As the ingest pipeline does: prepare, hand the spans to the store, commit on success.
        let prepared = analyzer.prepare(&spans);
        support::append(&store, spans).await;
        analyzer.commit(prepared);
    }
    // Let the database client halves expire into the virtual node.
    tokio::time::sleep(Duration::from_millis(100)).await;
    App {
        app: faultline_analysis::router(analyzer, store, std::sync::Arc::new(())),
        _dir: dir,
    }
}

async fn get(app: &Router, uri: &str, accept: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::get(uri);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, ctype, String::from_utf8_lossy(&body).into_owned())
}

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = get(app, uri, None).await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}"));
    (status, json)
}

#[tokio::test]
async fn metrics_negotiates_the_format() {
    let a = app().await;
    let (status, ctype, body) = get(&a.app, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let e = support::promtext::parse(&body, false).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(
        e.value(
            "traces_service_graph_request_total",
            &[
                ("client", "cart"),
                ("server", "postgresql"),
                ("connection_type", "virtual_node")
            ]
        ),
        3.0
    );

    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (status, ctype, body) = get(&a.app, "/metrics", Some(accept)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let e = support::promtext::parse(&body, true).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert!(e.samples.iter().any(|s| s.exemplar.is_some()));
}

#[tokio::test]
async fn service_graph_has_edges_nodes_and_virtual_dependencies() {
    let a = app().await;
    let (status, v) = get_json(&a.app, "/api/analysis/service-graph?window=1m").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["windowSeconds"], 60.0);
    let edges = v["data"]["edges"].as_array().expect("edges");
    let fe_cart = edges
        .iter()
        .find(|e| e["client"] == "frontend" && e["server"] == "cart")
        .expect("frontend → cart");
    assert_eq!(fe_cart["kind"], "request");
    assert_eq!(fe_cart["clientSide"]["calls"], 3);
    assert_eq!(fe_cart["clientSide"]["errors"], 3);
    assert_eq!(fe_cart["clientSide"]["errorRatio"], 1.0);
    assert_eq!(fe_cart["serverSide"]["calls"], 3);
    assert_eq!(
        fe_cart["exemplarTraceIDs"].as_array().map(Vec::len),
        Some(1)
    );
    let db = edges
        .iter()
        .find(|e| e["server"] == "postgresql")
        .expect("virtual edge");
    assert_eq!(db["kind"], "virtual");
    assert_eq!(db["virtualNodeFrom"], "db.system.name");
    let nodes = v["data"]["nodes"].as_array().expect("nodes");
    let pg = nodes
        .iter()
        .find(|n| n["id"] == "postgresql")
        .expect("node");
    assert_eq!(pg["virtual"], true);
    assert_eq!(pg["incoming"]["calls"], 3);
}

#[tokio::test]
async fn dependencies_answer_in_jaeger_shape_from_the_live_graph() {
    let a = app().await;
    let (status, v) = get_json(&a.app, "/api/analysis/dependencies?lookback=60000").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let links = v["data"].as_array().expect("links");
    assert_eq!(v["total"], links.len());
    assert!(links
        .iter()
        .any(|l| l["parent"] == "frontend" && l["child"] == "cart" && l["callCount"] == 3));
    assert!(links
        .iter()
        .any(|l| l["parent"] == "cart" && l["child"] == "postgresql"));
    for (uri, needle) in [
        ("/api/analysis/dependencies?lookback=-1", "'lookback'"),
        ("/api/analysis/dependencies?lookback=99999999", "'lookback'"),
        ("/api/analysis/dependencies?endTs=1000", "'endTs'"),
        ("/api/analysis/dependencies?endTs=soon", "'endTs'"),
    ] {
        let (status, v) = get_json(&a.app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {v}");
        assert!(
            v["errors"][0]["msg"]
                .as_str()
                .unwrap_or("")
                .contains(needle),
            "{uri}: {v}"
        );
    }
}

#[tokio::test]
async fn red_filters_by_service_and_kind_with_percentiles() {
    let a = app().await;
    let (status, v) = get_json(&a.app, "/api/analysis/red?service=frontend&spanKind=server").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let series = v["data"].as_array().expect("series");
    assert_eq!(series.len(), 1, "{v}");
    let s = &series[0];
    assert_eq!(s["operation"], "GET /checkout");
    assert_eq!(s["calls"], 3);
    assert_eq!(s["errors"], 0);
    let p50 = s["p50Ms"].as_f64().expect("p50");
    assert!((2.0..=4.0).contains(&p50), "{p50}");
    assert_eq!(v["windowSeconds"], 300.0);
    let (_, all) = get_json(&a.app, "/api/analysis/red").await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn trace_analysis_reads_the_store() {
    let a = app().await;
    let id = "02".repeat(16);
    let (status, v) = get_json(&a.app, &format!("/api/analysis/traces/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let d = &v["data"];
    assert_eq!(d["traceID"], id);
    assert_eq!(d["durationMicros"], 3000);
    let total: u64 = d["criticalPath"]
        .as_array()
        .expect("path")
        .iter()
        .map(|s| s["durationMicros"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 3000);
    assert_eq!(d["errorOrigins"][0]["operation"], "SELECT carts");
    assert_eq!(d["errorOrigins"][0]["message"], "pool timeout \"carts\"");
    assert_eq!(d["services"][0]["service"], "frontend");
}

#[tokio::test]
async fn hostile_parameters_get_400_naming_the_parameter() {
    let a = app().await;
    for (uri, status, needle) in [
        ("/api/analysis/service-graph?window=5", 400, "'window'"),
        ("/api/analysis/service-graph?window=fast", 400, "'window'"),
        ("/api/analysis/service-graph?window=0s", 400, "'window'"),
        ("/api/analysis/service-graph?window=2h", 400, "at most 600s"),
        (
            "/api/analysis/service-graph?window=99999999999999999999h",
            400,
            "'window'",
        ),
        (
            "/api/analysis/service-graph?bogus=1",
            400,
            "unknown parameter \\\"bogus\\\"",
        ),
        ("/api/analysis/red?spanKind=sideways", 400, "'spanKind'"),
        ("/api/analysis/red?window=%FF%FE", 400, "'window'"),
        ("/api/analysis/traces/not-hex", 400, "'traceID'"),
        (
            "/api/analysis/traces/0123456789abcdef0123456789abcdef00",
            400,
            "'traceID'",
        ),
        (
            "/api/analysis/traces/00000000000000000000000000000000",
            400,
            "'traceID'",
        ),
        (
            "/api/analysis/traces/abababababababababababababababab",
            404,
            "trace not found",
        ),
    ] {
        let (got, _, body) = get(&a.app, uri, None).await;
        assert_eq!(got.as_u16(), status, "{uri}: {body}");
        assert!(body.contains(needle), "{uri}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(v["errors"][0]["code"], status);
    }
}
