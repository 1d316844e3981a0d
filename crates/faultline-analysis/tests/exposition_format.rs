//! `/metrics` output, checked by a strict parser of both text formats.

mod support;

use faultline_analysis::Format;
use faultline_model::{SpanKind, UnixNanos};
use support::promtext::parse;

fn fed() -> std::sync::Arc<faultline_analysis::Analyzer> {
    let analyzer = support::analyzer();
    let base = UnixNanos::now();
    for t in 1..=5u8 {
        analyzer.observe(&support::checkout_trace(base, t));
    }
    // A hostile operation name needing every escape.
    analyzer.observe(&[support::span(
        base,
        "weird\"svc",
        "a\\b\nc",
        9,
        1,
        None,
        SpanKind::Server,
        0,
        10,
    )]);
    analyzer
}

#[test]
fn prometheus_text_parses_and_carries_tempo_names() {
    let analyzer = fed();
    let text = analyzer.prometheus(Format::Prometheus, &[]);
    let e = parse(&text, false).unwrap_or_else(|err| panic!("{err}\n{text}"));
    let edge = [("client", "frontend"), ("server", "cart")];
    assert_eq!(e.value("traces_service_graph_request_total", &edge), 5.0);
    assert_eq!(
        e.value("traces_service_graph_request_failed_total", &edge),
        5.0
    );
    assert_eq!(
        e.value("traces_service_graph_request_server_seconds_count", &edge),
        5.0
    );
    let client_le = [("client", "frontend"), ("server", "cart"), ("le", "0.002")];
    assert_eq!(
        e.value(
            "traces_service_graph_request_client_seconds_bucket",
            &client_le
        ),
        5.0
    );
    let cart = [
        ("service", "cart"),
        ("span_name", "GetCart"),
        ("span_kind", "SPAN_KIND_SERVER"),
        ("status_code", "STATUS_CODE_ERROR"),
    ];
    assert_eq!(e.value("traces_spanmetrics_calls_total", &cart), 5.0);
    let fe = [
        ("service", "frontend"),
        ("span_name", "GET /checkout"),
        ("le", "+Inf"),
    ];
    assert_eq!(e.value("traces_spanmetrics_latency_bucket", &fe), 5.0);
    let sum = e.value(
        "traces_spanmetrics_latency_sum",
        &[("service", "frontend"), ("span_name", "GET /checkout")],
    );
    assert!((sum - 0.015).abs() < 1e-9, "{sum}");
    // Escapes round-trip.
    assert_eq!(
        e.find(
            "traces_spanmetrics_latency_count",
            &[("service", "weird\"svc"), ("span_name", "a\\b\nc")]
        )
        .len(),
        1
    );
    assert_eq!(
        e.value("faultline_analysis_spans_observed_total", &[]),
        21.0
    );
    assert!(e.samples.iter().all(|s| s.exemplar.is_none()));
}

#[test]
fn openmetrics_text_parses_with_trace_id_exemplars() {
    let analyzer = fed();
    let text = analyzer.prometheus(Format::OpenMetrics, &[]);
    let e = parse(&text, true).unwrap_or_else(|err| panic!("{err}\n{text}"));
    assert_eq!(
        e.types.get("traces_spanmetrics_calls").map(String::as_str),
        Some("counter")
    );
    let bucket = e.find(
        "traces_spanmetrics_latency_bucket",
        &[
            ("service", "frontend"),
            ("span_name", "GET /checkout"),
            ("le", "0.004"),
        ],
    );
    let (labels, value) = bucket[0].exemplar.clone().expect("an exemplar");
    assert_eq!(
        labels.get("trace_id").map(String::as_str),
        Some(&*"05".repeat(16))
    );
    assert!((value - 0.003).abs() < 1e-12);
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn the_parser_rejects_broken_text() {
    for (bad, om) in [
        ("x 1\n", false),                              // undeclared
        ("# TYPE x counter\nx{a=\"b} 1\n", false),     // unterminated
        ("# TYPE x gauge\nx{a=\"\\q\"} 1\n", false),   // bad escape
        ("# TYPE x gauge\nx 1 # {t=\"1\"} 1\n", true), // exemplar on gauge
        ("# TYPE x gauge\nx 1\n", true),               // no EOF
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            false,
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n",
            false,
        ),
    ] {
        assert!(parse(bad, om).is_err(), "accepted {bad:?}");
    }
    assert!(parse("# TYPE x_total counter\nx_total 1\n", false).is_ok());
}

#[test]
fn configured_dimensions_split_the_span_metrics_and_each_span_counts_once() {
    use faultline_analysis::{AnalysisConfig, Analyzer};
    use faultline_model::{AttributeValue, KeyValue};
    use std::sync::Arc;

    let analyzer = Analyzer::new(AnalysisConfig {
        red_dimensions: vec![
            "http.response.status_code".into(),
            "deployment.environment".into(),
        ],
        ..AnalysisConfig::default()
    })
    .unwrap();
    let base = UnixNanos::now();
    let mut spans = Vec::new();
    for (i, status) in [200i64, 200, 503].into_iter().enumerate() {
        let mut s = support::span(
            base,
            "cart",
            "GET /cart",
            1,
            i as u8 + 1,
            None,
            SpanKind::Server,
            0,
            1_000,
        );
        s.attributes.push(KeyValue::new(
            "http.response.status_code",
            AttributeValue::Int(status),
        ));
        // The environment comes from the resource.
        let mut resource = (*s.resource).clone();
        resource.attributes.push(KeyValue::new(
            "deployment.environment",
            AttributeValue::String("prod".into()),
        ));
        s.resource = Arc::new(resource);
        spans.push(s);
    }
    // A span without either attribute gets empty values.
    spans.push(support::span(
        base,
        "cart",
        "GET /cart",
        1,
        9,
        None,
        SpanKind::Server,
        0,
        1_000,
    ));
    analyzer.observe(&spans);
    let text = analyzer.prometheus(Format::Prometheus, &[]);
    let e = parse(&text, false).unwrap_or_else(|err| panic!("{err}\n{text}"));
    let count = |status: &str, env: &str| {
        e.value(
            "traces_spanmetrics_latency_count",
            &[
                ("service", "cart"),
                ("span_name", "GET /cart"),
                ("http_response_status_code", status),
                ("deployment_environment", env),
            ],
        )
    };
    assert_eq!(count("200", "prod"), 2.0);
    assert_eq!(count("503", "prod"), 1.0);
    assert_eq!(count("", ""), 1.0);
    // Four spans, four counts: no undimensioned copy of the same spans.
    let total: f64 = e
        .find("traces_spanmetrics_latency_count", &[("service", "cart")])
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 4.0, "{text}");
    // The JSON API and the detector still see one series per operation and kind.
    let red = analyzer.red(Some("cart"), UnixNanos::now(), 6);
    assert_eq!(red.len(), 1);
    assert_eq!(red[0].stats.calls, 4);
}

#[test]
fn dimensions_that_would_clash_with_labels_are_refused() {
    use faultline_analysis::{AnalysisConfig, Analyzer};
    for (dims, why) in [
        (vec!["span.kind"], "reserved"),
        (vec!["a.b", "a_b"], "twice"),
        (vec![""], "empty"),
        (vec!["__x"], "reserved"),
    ] {
        let err = Analyzer::new(AnalysisConfig {
            red_dimensions: dims.iter().map(|d| d.to_string()).collect(),
            ..AnalysisConfig::default()
        })
        .err()
        .unwrap_or_else(|| panic!("{dims:?} accepted"));
        assert!(err.to_string().contains(why), "{dims:?}: {err}");
    }
}

#[test]
fn the_servers_own_metrics_follow_the_analysis_in_both_formats() {
    use faultline_analysis::SelfMetric;
    let analyzer = fed();
    let own = [
        SelfMetric::counter("faultline_test_things_total", "Things.", 7),
        SelfMetric::gauge("faultline_test_level", "A level.", 3),
    ];
    let text = analyzer.prometheus(Format::Prometheus, &own);
    let e = parse(&text, false).unwrap_or_else(|err| panic!("{err}\n{text}"));
    assert_eq!(e.value("faultline_test_things_total", &[]), 7.0);
    assert_eq!(e.value("faultline_test_level", &[]), 3.0);
    assert_eq!(
        e.types.get("faultline_test_level").map(String::as_str),
        Some("gauge")
    );

    let text = analyzer.prometheus(Format::OpenMetrics, &own);
    let e = parse(&text, true).unwrap_or_else(|err| panic!("{err}\n{text}"));
    assert_eq!(
        e.types.get("faultline_test_things").map(String::as_str),
        Some("counter")
    );
    assert_eq!(e.value("faultline_test_things_total", &[]), 7.0);
    assert_eq!(e.value("faultline_test_level", &[]), 3.0);
    assert!(text.ends_with("# EOF\n"));
}
