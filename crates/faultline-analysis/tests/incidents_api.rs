//! Detection, ranking and the incidents/rca API end to end on a real store: synthetic traffic
//! is appended and observed second by second on an explicit clock, the detector is stepped,
//! and the router answers.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use faultline_analysis::{detect_and_rank, AnalysisConfig, Analyzer, Detector};
use faultline_model::{AttributeValue, KeyValue, Span, SpanId, SpanKind, TraceId, UnixNanos};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const SECOND: u64 = 1_000_000_000;

/// gateway → inventory → sqlite; `db_us` and `wait_s` shape the database call.
fn trace(n: u64, start: UnixNanos, db_us: u64, wait_s: f64) -> Vec<Span> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[15] = 1;
    let sid = |k: u64| SpanId((n << 4 | k).to_be_bytes());
    let mk = |service: &str, name: &str, k: u64, parent: Option<u64>, kind, from: u64, len: u64| {
        let mut s = support::span(start, service, name, 0, 0, None, kind, from, from + len);
        s.trace_id = TraceId(id);
        s.span_id = sid(k);
        s.parent_span_id = parent.map(sid);
        s
    };
    let jitter = n % 7 * 150;
    let inv = 1_000 + jitter + db_us;
    let mut db = mk(
        "inventory",
        "SELECT products",
        4,
        Some(3),
        SpanKind::Client,
        600 + jitter,
        db_us,
    );
    db.attributes.push(KeyValue::new(
        "db.system.name",
        AttributeValue::String("sqlite".into()),
    ));
    db.attributes.push(KeyValue::new(
        "db.client.connection.wait_time",
        AttributeValue::Double(wait_s),
    ));
    vec![
        mk(
            "gateway",
            "GET /products",
            1,
            None,
            SpanKind::Server,
            0,
            inv + 2_400 + jitter,
        ),
        mk(
            "gateway",
            "GetProduct",
            2,
            Some(1),
            SpanKind::Client,
            1_000,
            inv + 200,
        ),
        mk(
            "inventory",
            "GetProduct",
            3,
            Some(2),
            SpanKind::Server,
            1_100,
            inv,
        ),
        db,
    ]
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{uri}: {e}: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

#[tokio::test]
async fn an_exhausted_pool_opens_an_incident_ranked_on_its_wait_attribute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(&dir).await;
    let analyzer = Arc::new(Analyzer::new(AnalysisConfig::default()).expect("config"));
    let mut detector = Detector::new(&analyzer);
    // Span times and the detector's clock agree: fifteen minutes ago onwards.
    let t0 = (UnixNanos::now().0 / SECOND - 900) * SECOND;
    let (normal_secs, fault_secs) = (300u64, 60u64);
    let mut n = 0u64;
    let mut fault_start = None;
    for sec in 0..normal_secs + fault_secs {
        let now = UnixNanos(t0 + sec * SECOND);
        let faulty = sec >= normal_secs;
        let mut spans = Vec::new();
        for i in 0..4 {
            n += 1;
            let start = UnixNanos(now.0 + i * 200_000_000);
            spans.extend(if faulty {
                trace(n, start, 180_000, 0.17)
            } else {
                trace(n, start, 2_000 + n % 5 * 300, 0.0002)
            });
        }
        let prepared = analyzer.prepare(&spans);
        support::append(&store, spans).await;
        analyzer.commit_at(prepared, UnixNanos(now.0 + SECOND - 1));
        if sec % 5 == 4 {
            detect_and_rank(&mut detector, &analyzer, &store, UnixNanos(now.0 + SECOND)).await;
            if fault_start.is_none() && faulty {
                fault_start = Some(sec);
            }
        }
    }
    let app = faultline_analysis::router(Arc::clone(&analyzer), Arc::clone(&store), Arc::new(()));

    let (status, v) = get(&app, "/api/incidents?status=open&limit=5").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["errors"].is_null());
    let incidents = v["data"].as_array().expect("data");
    assert_eq!(incidents.len(), 1, "{v:#}");
    let incident = &incidents[0];
    let opened = incident["openedAt"].as_u64().expect("openedAt");
    let onset_us = (t0 + normal_secs * SECOND) / 1_000;
    assert!(
        opened > onset_us && opened - onset_us <= 30_000_000,
        "detected {} s after onset",
        (opened - onset_us) / 1_000_000
    );
    assert!(incident["resolvedAt"].is_null());
    let symptom = &incident["symptoms"][0];
    assert_eq!(symptom["signal"], "latency", "{incident:#}");
    assert_eq!(symptom["unit"], "us");
    assert!(symptom["observed"].as_f64() > symptom["baseline"].as_f64());
    let top = &incident["rootCauses"][0];
    assert_eq!(top["rank"], 1);
    assert_eq!(top["service"], "inventory", "{incident:#}");
    assert_eq!(top["kind"], "attribute", "{top:#}");
    assert_eq!(top["attribute"]["key"], "db.client.connection.wait_time");
    assert_eq!(top["dependency"], "sqlite");
    let evidence = &top["evidence"];
    assert!(!evidence["traceIDs"].as_array().expect("ids").is_empty());
    assert_eq!(evidence["attributes"][0]["slowOrFailedShare"], 1.0);
    assert!(evidence["facts"].as_array().expect("facts").len() >= 2);
    // A listed trace is a stored one.
    let tid = evidence["traceIDs"][0].as_str().expect("id");
    let (status, _) = get(&app, &format!("/api/analysis/traces/{tid}")).await;
    assert_eq!(status, StatusCode::OK);

    let id = incident["id"].as_str().expect("id");
    let (status, one) = get(&app, &format!("/api/incidents/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["data"]["id"], id);
    let (status, none) = get(&app, "/api/incidents?status=resolved").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none["data"], serde_json::json!([]));

    // The same window on demand, from the store alone.
    let (start, end) = (onset_us, onset_us + fault_secs * 1_000_000);
    let (status, rca) = get(&app, &format!("/api/rca?start={start}&end={end}")).await;
    assert_eq!(status, StatusCode::OK, "{rca}");
    let symptoms = rca["data"]["symptoms"].as_array().expect("symptoms");
    assert!(symptoms
        .iter()
        .any(|s| s["service"] == "inventory" && s["signal"] == "latency"));
    assert_eq!(
        rca["data"]["rootCauses"][0]["service"], "inventory",
        "{rca:#}"
    );
    // A quiet baseline against itself: nothing to explain.
    let quiet = onset_us - 120_000_000;
    let (status, calm) = get(
        &app,
        &format!(
            "/api/rca?start={quiet}&end={}&baselineStart={}&baselineEnd={quiet}",
            quiet + 60_000_000,
            quiet - 120_000_000
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calm["data"]["symptoms"], serde_json::json!([]), "{calm:#}");
    assert_eq!(calm["data"]["rootCauses"], serde_json::json!([]));
}

#[tokio::test]
async fn hostile_parameters_get_a_400_or_404_envelope() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = support::store(&dir).await;
    let app = faultline_analysis::router(support::analyzer(), store, Arc::new(()));
    for (uri, code) in [
        ("/api/incidents?status=maybe", 400),
        ("/api/incidents?limit=0", 400),
        ("/api/incidents?limit=x", 400),
        ("/api/incidents?bogus=1", 400),
        ("/api/incidents/inc-1", 404),
        ("/api/rca", 400),
        ("/api/rca?start=10", 400),
        ("/api/rca?start=10&end=5", 400),
        ("/api/rca?start=a&end=5", 400),
        ("/api/rca?start=1&end=99999999999999999999", 400),
        ("/api/rca?start=1&end=5&baselineStart=0", 400),
        ("/api/rca?start=1&end=5&baselineStart=3&baselineEnd=2", 400),
        ("/api/rca?start=0&end=100000000000", 400),
    ] {
        let (status, v) = get(&app, uri).await;
        assert_eq!(status.as_u16(), code, "{uri}: {v}");
        assert!(v["data"].is_null(), "{uri}: {v}");
        assert_eq!(v["errors"][0]["code"], code, "{uri}: {v}");
        assert!(v["errors"][0]["msg"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, v) = get(&app, "/api/incidents").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"], serde_json::json!([]));
    let (status, v) = get(&app, "/api/rca?start=1000000&end=2000000").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["rootCauses"], serde_json::json!([]));
}
