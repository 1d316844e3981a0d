//! Parser and evaluator tests on a small handmade trace.
//!
//! The trace (IDs are the span numbers):
//!
//! ```text
//! 1 frontend  GET /checkout  server  50ms  error  http.status_code=500 http.method="GET"
//! ├── 2 frontend  POST /cart  client  40ms         retry=true ratio=0.5 tags=["a","b"]
//! │   └── 3 cart  POST /cart  server  30ms  ok     cart.items=3
//! │       └── 5 cart  SELECT  client  5ms           db.system="postgresql"
//! └── 4 frontend  render  internal  2ms   unset    http.method="GET" (span attr shadows nothing)
//! ```

use std::sync::Arc;

use faultline_model::{
    AttributeValue, InstrumentationScope, KeyValue, Resource, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId, UnixNanos,
};

use super::ast::{CmpOp, Field, FieldExpr, Relation, Scope, SpansetExpr, Stage, Static};
use super::eval::{OutValue, TraceView};
use super::plan::{plan, Pushdown};
use super::{
    parse, parse_field, shown_fields, MAX_DEPTH, MAX_OPERANDS, MAX_QUERY_BYTES, MAX_SPANSETS,
};

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn text(s: &str) -> AttributeValue {
    AttributeValue::String(s.into())
}

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![
            KeyValue::new("service.name", text(service)),
            KeyValue::new("deployment.environment", text("prod")),
        ],
        ..Default::default()
    })
}

#[allow(clippy::too_many_arguments)]
fn span(
    id: u8,
    parent: Option<u8>,
    r: &Arc<Resource>,
    name: &str,
    kind: SpanKind,
    start_ms: u64,
    dur_ms: u64,
    status: StatusCode,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: TraceId([9; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: String::new(),
        flags: 1,
        name: name.into(),
        kind,
        start: UnixNanos(T0 + start_ms * MS),
        end: UnixNanos(T0 + (start_ms + dur_ms) * MS),
        attributes,
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Status {
            code: status,
            message: if status == StatusCode::Error {
                "upstream failed".to_owned()
            } else {
                String::new()
            },
        },
        resource: Arc::clone(r),
        scope: Arc::new(InstrumentationScope {
            name: "lib".into(),
            version: "1.0".into(),
            ..Default::default()
        }),
    }
}

fn trace() -> Vec<Span> {
    let frontend = resource("frontend");
    let cart = resource("cart");
    vec![
        span(
            1,
            None,
            &frontend,
            "GET /checkout",
            SpanKind::Server,
            0,
            50,
            StatusCode::Error,
            vec![
                KeyValue::new("http.status_code", AttributeValue::Int(500)),
                KeyValue::new("http.method", text("GET")),
            ],
        ),
        span(
            2,
            Some(1),
            &frontend,
            "POST /cart",
            SpanKind::Client,
            5,
            40,
            StatusCode::Unset,
            vec![
                KeyValue::new("retry", AttributeValue::Bool(true)),
                KeyValue::new("ratio", AttributeValue::Double(0.5)),
                KeyValue::new("tags", AttributeValue::Array(vec![text("a"), text("b")])),
            ],
        ),
        span(
            3,
            Some(2),
            &cart,
            "POST /cart",
            SpanKind::Server,
            10,
            30,
            StatusCode::Ok,
            vec![KeyValue::new("cart.items", AttributeValue::Int(3))],
        ),
        span(
            4,
            Some(1),
            &frontend,
            "render",
            SpanKind::Internal,
            46,
            2,
            StatusCode::Unset,
            vec![KeyValue::new("http.method", text("GET"))],
        ),
        span(
            5,
            Some(3),
            &cart,
            "SELECT",
            SpanKind::Client,
            20,
            5,
            StatusCode::Unset,
            vec![KeyValue::new("db.system", text("postgresql"))],
        ),
    ]
}

/// The span numbers of each spanset `q` selects.
fn run(q: &str) -> Vec<Vec<u8>> {
    let spans = trace();
    let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    TraceView::new(&spans)
        .evaluate(&query)
        .into_iter()
        .map(|set| set.spans.iter().map(|&i| spans[i].span_id.0[0]).collect())
        .collect()
}

/// The span numbers of the single spanset `q` selects (empty when the trace does not match).
fn ids(q: &str) -> Vec<u8> {
    let mut sets = run(q);
    assert!(sets.len() <= 1, "{q}: {sets:?}");
    sets.pop().unwrap_or_default()
}

#[test]
fn empty_filter_selects_every_span() {
    assert_eq!(ids("{}"), vec![1, 2, 3, 5, 4]);
    assert_eq!(ids("{ true }"), vec![1, 2, 3, 5, 4]);
    assert_eq!(ids("{ false }"), Vec::<u8>::new());
}

#[test]
fn comparison_operators_on_each_type() {
    // Strings.
    assert_eq!(ids(r#"{ name = "POST /cart" }"#), vec![2, 3]);
    assert_eq!(ids(r#"{ name != "POST /cart" }"#), vec![1, 5, 4]);
    assert_eq!(ids(r#"{ name > "R" }"#), vec![5, 4]);
    assert_eq!(ids(r#"{ name <= "GET /checkout" }"#), vec![1]);
    // Integers, and an integer against a float.
    assert_eq!(ids("{ span.http.status_code >= 500 }"), vec![1]);
    assert_eq!(ids("{ span.http.status_code < 500 }"), Vec::<u8>::new());
    assert_eq!(ids("{ span.cart.items = 3.0 }"), vec![3]);
    assert_eq!(ids("{ span.cart.items != 2 }"), vec![3]);
    // Floats.
    assert_eq!(ids("{ span.ratio > 0.25 }"), vec![2]);
    assert_eq!(ids("{ span.ratio < 0.25 }"), Vec::<u8>::new());
    // Booleans, alone and compared.
    assert_eq!(ids("{ span.retry = true }"), vec![2]);
    assert_eq!(ids("{ span.retry }"), vec![2]);
    assert_eq!(ids("{ span.retry != false }"), vec![2]);
    // Durations.
    assert_eq!(ids("{ duration > 30ms }"), vec![1, 2]);
    assert_eq!(ids("{ duration >= 30ms }"), vec![1, 2, 3]);
    assert_eq!(ids("{ span:duration < 0.005s }"), vec![4]);
    assert_eq!(ids("{ duration <= 5ms }"), vec![5, 4]);
    assert_eq!(ids("{ duration = 40ms }"), vec![2]);
    // Status and kind literals.
    assert_eq!(ids("{ status = error }"), vec![1]);
    assert_eq!(ids("{ span:status = ok }"), vec![3]);
    assert_eq!(ids("{ status = unset }"), vec![2, 5, 4]);
    assert_eq!(ids("{ status != unset }"), vec![1, 3]);
    assert_eq!(ids("{ kind = server }"), vec![1, 3]);
    assert_eq!(ids("{ span:kind = client }"), vec![2, 5]);
    assert_eq!(ids("{ kind = internal }"), vec![4]);
    assert_eq!(ids("{ kind = producer }"), Vec::<u8>::new());
    assert_eq!(ids(r#"{ statusMessage = "upstream failed" }"#), vec![1]);
    // A type mismatch never matches, whatever the operator.
    assert_eq!(
        ids(r#"{ span.http.status_code = "500" }"#),
        Vec::<u8>::new()
    );
    assert_eq!(
        ids(r#"{ span.http.status_code != "500" }"#),
        Vec::<u8>::new()
    );
}

#[test]
fn regex_is_anchored_and_negatable() {
    assert_eq!(ids(r#"{ name =~ "POST.*" }"#), vec![2, 3]);
    assert_eq!(ids(r#"{ name =~ "POST" }"#), Vec::<u8>::new());
    assert_eq!(ids(r#"{ name !~ ".*cart" }"#), vec![1, 5, 4]);
    assert_eq!(ids(r#"{ span.db.system =~ "postgresql|mysql" }"#), vec![5]);
    // Absent attributes match neither =~ nor !~.
    assert_eq!(ids(r#"{ span.db.system !~ "mysql" }"#), vec![5]);
}

#[test]
fn scopes() {
    assert_eq!(ids(r#"{ resource.service.name = "cart" }"#), vec![3, 5]);
    assert_eq!(ids(r#"{ .service.name = "cart" }"#), vec![3, 5]);
    // `span.` does not look at the resource.
    assert_eq!(ids(r#"{ span.service.name = "cart" }"#), Vec::<u8>::new());
    // `resource.` does not look at the span.
    assert_eq!(ids(r#"{ resource.http.method = "GET" }"#), Vec::<u8>::new());
    assert_eq!(ids(r#"{ .http.method = "GET" }"#), vec![1, 4]);
    assert_eq!(
        ids(r#"{ resource.deployment.environment = "prod" }"#).len(),
        5
    );
    // Quoted attribute names.
    assert_eq!(ids(r#"{ span."db.system" = "postgresql" }"#), vec![5]);
}

#[test]
fn absent_attributes_and_nil() {
    assert_eq!(ids("{ span.cart.items != 4 }"), vec![3]);
    assert_eq!(ids("{ span.cart.items = nil }"), vec![1, 2, 5, 4]);
    assert_eq!(ids("{ span.cart.items != nil }"), vec![3]);
    assert_eq!(ids("{ !(span.cart.items = 3) }"), vec![1, 2, 5, 4]);
}

#[test]
fn arrays_match_any_element() {
    assert_eq!(ids(r#"{ span.tags = "b" }"#), vec![2]);
    assert_eq!(ids(r#"{ span.tags != "c" }"#), vec![2]);
    assert_eq!(ids(r#"{ span.tags != "a" }"#), Vec::<u8>::new());
    assert_eq!(ids(r#"{ span.tags =~ "[ab]" }"#), vec![2]);
    assert_eq!(ids(r#"{ span.tags !~ "a" }"#), Vec::<u8>::new());
}

#[test]
fn trace_level_intrinsics() {
    assert_eq!(
        ids(r#"{ rootName = "GET /checkout" && kind = client }"#),
        vec![2, 5]
    );
    assert_eq!(ids(r#"{ trace:rootName = "nope" }"#), Vec::<u8>::new());
    assert_eq!(
        ids(r#"{ trace:rootService = "frontend" && name = "SELECT" }"#),
        vec![5]
    );
    assert_eq!(ids(r#"{ rootServiceName = "cart" }"#), Vec::<u8>::new());
    assert_eq!(ids("{ traceDuration = 50ms && kind = server }"), vec![1, 3]);
    assert_eq!(ids("{ trace:duration > 50ms }"), Vec::<u8>::new());
    assert_eq!(ids("{ span:childCount = 2 }"), vec![1]);
    assert_eq!(ids("{ span:childCount = 0 }"), vec![5, 4]);
    assert_eq!(ids(r#"{ span:id = "0303030303030303" }"#), vec![3]);
    assert_eq!(ids(r#"{ span:parentID = "0101010101010101" }"#), vec![2, 4]);
    assert_eq!(ids(r#"{ instrumentation:name = "lib" }"#).len(), 5);
}

#[test]
fn boolean_precedence_inside_braces() {
    // && binds tighter than ||.
    assert_eq!(
        ids(r#"{ name = "SELECT" || name = "render" && kind = server }"#),
        vec![5]
    );
    assert_eq!(
        ids(r#"{ (name = "SELECT" || name = "render") && kind = client }"#),
        vec![5]
    );
    assert_eq!(ids(r#"{ !(kind = server) && !(kind = client) }"#), vec![4]);
    assert_eq!(ids("{ !span.retry }"), vec![1, 3, 5, 4]);
}

#[test]
fn spanset_and_or() {
    // && needs both sides in the trace and returns the spans of both.
    assert_eq!(ids("{ status = error } && { kind = internal }"), vec![1, 4]);
    assert_eq!(
        ids("{ status = error } && { kind = producer }"),
        Vec::<u8>::new()
    );
    assert_eq!(ids("{ status = error } || { kind = producer }"), vec![1]);
    assert_eq!(ids("{ status = ok } || { kind = internal }"), vec![3, 4]);
    // || binds looser than &&.
    assert_eq!(
        ids("{ kind = producer } && { kind = server } || { status = ok }"),
        vec![3]
    );
    assert_eq!(
        ids("{ kind = producer } && ({ kind = server } || { status = ok })"),
        Vec::<u8>::new()
    );
}

#[test]
fn structural_operators() {
    // Children of servers.
    assert_eq!(ids("{ kind = server } > { }"), vec![2, 5, 4]);
    assert_eq!(ids(r#"{ name = "GET /checkout" } > { }"#), vec![2, 4]);
    // Descendants.
    assert_eq!(
        ids(r#"{ name = "GET /checkout" } >> { kind = client }"#),
        vec![2, 5]
    );
    assert_eq!(ids(r#"{ resource.service.name = "cart" } >> { }"#), vec![5]);
    // Parents: right-hand spans with a child on the left.
    assert_eq!(ids(r#"{ name = "SELECT" } < { }"#), vec![3]);
    assert_eq!(ids("{ kind = internal } < { kind = server }"), vec![1]);
    // Ancestors.
    assert_eq!(ids(r#"{ name = "SELECT" } << { }"#), vec![1, 2, 3]);
    assert_eq!(
        ids(r#"{ name = "SELECT" } << { kind = server }"#),
        vec![1, 3]
    );
    // Siblings: same parent, another span.
    assert_eq!(ids("{ kind = internal } ~ { }"), vec![2]);
    assert_eq!(
        ids("{ kind = client } ~ { kind = client }"),
        Vec::<u8>::new()
    );
    assert_eq!(ids(r#"{ .http.method = "GET" } ~ { }"#), vec![2]);
    // Left-associative chains.
    assert_eq!(ids(r#"{ name = "GET /checkout" } > { } > { }"#), vec![3]);
}

#[test]
fn pipelines() {
    assert_eq!(ids("{ kind = client } | count() > 1"), vec![2, 5]);
    assert_eq!(ids("{ kind = client } | count() > 2"), Vec::<u8>::new());
    assert_eq!(ids("{ } | count() = 5"), vec![1, 2, 3, 5, 4]);
    assert_eq!(ids("{ kind = server } | avg(duration) = 40ms"), vec![1, 3]);
    assert_eq!(
        ids("{ kind = server } | avg(duration) > 40ms"),
        Vec::<u8>::new()
    );
    assert_eq!(ids("{ } | max(duration) >= 50ms"), vec![1, 2, 3, 5, 4]);
    assert_eq!(ids("{ } | min(duration) < 2ms"), Vec::<u8>::new());
    assert_eq!(ids("{ } | sum(span.cart.items) = 3"), vec![1, 2, 3, 5, 4]);
    // An aggregate over a field no span has drops the spanset.
    assert_eq!(ids("{ } | avg(span.nope) > 0"), Vec::<u8>::new());
    // Filter stages narrow spansets.
    assert_eq!(ids("{ } | { kind = server } | count() = 2"), vec![1, 3]);
    // by() splits spansets per value, and later stages apply to each.
    let by = run("{ } | by(resource.service.name)");
    assert_eq!(by, vec![vec![1, 2, 4], vec![3, 5]]);
    let by = run("{ } | by(resource.service.name) | count() > 2");
    assert_eq!(by, vec![vec![1, 2, 4]]);
    // select() keeps the spans.
    assert_eq!(
        ids("{ kind = server } | select(span.http.method)"),
        vec![1, 3]
    );
}

#[test]
fn by_groups_carry_their_value() {
    let spans = trace();
    let q = parse("{ } | by(kind)").expect("parses");
    let sets = TraceView::new(&spans).evaluate(&q);
    let labels: Vec<_> = sets.iter().map(|s| s.by.clone()).collect();
    assert_eq!(
        labels,
        vec![
            vec![("by(kind)".to_owned(), OutValue::Str("server".into()))],
            vec![("by(kind)".to_owned(), OutValue::Str("client".into()))],
            vec![("by(kind)".to_owned(), OutValue::Str("internal".into()))],
        ]
    );
}

#[test]
fn ast_shape() {
    let q = parse(r#"{ .a = 1 } > { span.b != "x" } | count() > 2 | by(name)"#).expect("parses");
    let SpansetExpr::Structural(Relation::Child, left, _) = &q.spansets else {
        panic!("{q:?}");
    };
    let SpansetExpr::Filter(FieldExpr::Compare(CmpOp::Eq, l, r)) = left.as_ref() else {
        panic!("{left:?}");
    };
    assert!(matches!(
        l.as_ref(),
        FieldExpr::Field(Field::Attribute { scope: Scope::Unscoped, name }) if name == "a"
    ));
    assert!(matches!(r.as_ref(), FieldExpr::Static(Static::Int(1))));
    assert!(matches!(q.stages[0], Stage::Aggregate { .. }));
    assert!(matches!(q.stages[1], Stage::By(_)));
    assert_eq!(
        parse_field("resource.service.name").expect("field"),
        Field::Attribute {
            scope: Scope::Resource,
            name: "service.name".into()
        }
    );
    assert!(parse_field("name = 1").is_err());
}

/// The error's (line, column) and message for an invalid query.
fn error(q: &str) -> (usize, usize, String) {
    let e = parse(q).expect_err(q);
    (e.line, e.column, e.message)
}

#[test]
fn errors_name_position_and_expectation() {
    let (line, col, msg) = error("{ .a = }");
    assert_eq!((line, col), (1, 8));
    assert!(
        msg.contains("expected a field") && msg.contains("found '}'"),
        "{msg}"
    );

    let (_, col, msg) = error(r#"{ name = "a" "#);
    assert_eq!(col, 14);
    assert!(msg.contains("expected '}'"), "{msg}");

    let (line, col, msg) = error("{ .a = 1 }\n  && foo");
    assert_eq!((line, col), (2, 6));
    assert!(msg.contains("expected '{'"), "{msg}");

    let (_, col, msg) = error("{ http.method = 1 }");
    assert_eq!(col, 3);
    assert!(msg.contains("unknown identifier 'http.method'"), "{msg}");

    let (_, _, msg) = error(r#"{ .a =~ "(" }"#);
    assert!(msg.contains("invalid regular expression"), "{msg}");

    let (_, _, msg) = error("{ 3 }");
    assert!(msg.contains("lone value"), "{msg}");

    let (_, _, msg) = error("{ } |");
    assert!(msg.contains("expected a pipeline stage"), "{msg}");

    let (_, _, msg) = error("{ } | count() > ");
    assert!(msg.contains("a number or duration"), "{msg}");

    let (_, _, msg) = error("{ } { }");
    assert!(msg.contains("the end of the query"), "{msg}");
}

#[test]
fn unsupported_constructs_are_named() {
    for (q, names) in [
        ("{ } | rate()", "'rate' is a TraceQL metrics function"),
        (
            "{ } | quantile_over_time(duration, .99)",
            "'quantile_over_time'",
        ),
        ("{ } !< { }", "structural operator '!<'"),
        ("{ } !~ { }", "structural operator '!~'"),
        ("{ } &>> { }", "'&>'"),
        ("{ .a + 1 = 2 }", "operator '+'"),
        ("{ event.name = \"x\" }", "'event.name' is not supported"),
        (
            "{ link:traceID = \"x\" }",
            "'link:traceID' is not supported",
        ),
        ("({ } | count() > 1) && { }", "pipeline inside parentheses"),
        ("{ } | coalesce()", "coalesce() is not supported"),
    ] {
        let msg = parse(q).expect_err(q).message;
        assert!(msg.contains(names), "{q}: {msg}");
    }
}

#[test]
fn limits_on_untrusted_queries() {
    let long = format!("{{ .a = \"{}\" }}", "x".repeat(MAX_QUERY_BYTES));
    assert!(parse(&long)
        .expect_err("long")
        .message
        .contains("longer than"));
    let deep = format!(
        "{{ {}true{} }}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(parse(&deep)
        .expect_err("deep")
        .message
        .contains("nests deeper"));
    let nots = format!("{{ {}true }}", "!".repeat(MAX_DEPTH + 1));
    assert!(parse(&nots)
        .expect_err("nots")
        .message
        .contains("nests deeper"));
    let within = format!("{{ {}true{} }}", "(".repeat(10), ")".repeat(10));
    assert!(parse(&within).is_ok());
    // Long flat chains are bounded too: they recurse in evaluation as deep as they are long.
    let spansets = vec!["{ }"; MAX_SPANSETS + 1].join(" && ");
    assert!(parse(&spansets)
        .expect_err("spansets")
        .message
        .contains("spanset filters"));
    assert!(parse(&vec!["{ }"; MAX_SPANSETS].join(" || ")).is_ok());
    let operands = format!("{{{}}}", vec!["true"; MAX_OPERANDS + 1].join("&&"));
    assert!(parse(&operands)
        .expect_err("operands")
        .message
        .contains("fields and values"));
}

#[test]
fn parsing_arbitrary_text_never_panics() {
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&"[{}()|&!=<>~.a-z0-9\" :,*+-]{0,60}", |s| {
            let _ = parse(&s);
            Ok(())
        })
        .expect("no panic");
    runner
        .run(&"\\PC{0,40}", |s| {
            let _ = parse(&s);
            let _ = parse_field(&s);
            Ok(())
        })
        .expect("no panic");
}

#[test]
fn pushdown_only_widens() {
    let p = |q: &str| plan(&parse(q).expect("parses"));
    assert_eq!(
        p(
            r#"{ resource.service.name = "cart" && name = "SELECT" && kind = client && duration > 1ms && duration <= 1s && span.db.system = "postgresql" && status = error && .n = 3 && .b = true }"#
        ),
        vec![Pushdown {
            service: Some("cart".into()),
            operation: Some("SELECT".into()),
            kind: Some(SpanKind::Client),
            tags: vec![
                ("db.system".into(), "postgresql".into()),
                ("error".into(), "true".into()),
                ("n".into(), "3".into()),
                ("b".into(), "true".into()),
            ],
            min_duration_nanos: Some(MS + 1),
            max_duration_nanos: Some(1_000 * MS),
        }]
    );
    // Nothing SpanQuery cannot express is pushed.
    for q in [
        "{ }",
        r#"{ name != "x" }"#,
        r#"{ name =~ "x" }"#,
        r#"{ name = "a" || name = "b" }"#,
        r#"{ !(name = "a") }"#,
        r#"{ rootName = "a" }"#,
        "{ span.ratio = 0.5 }",
        "{ kind = server } || { }",
    ] {
        assert_eq!(p(q), vec![Pushdown::default()], "{q}");
    }
    // Spanset || gives alternatives; && and structural take one side.
    assert_eq!(
        p(r#"{ name = "a" } || { name = "b" }"#)
            .into_iter()
            .map(|a| a.operation)
            .collect::<Vec<_>>(),
        vec![Some("a".into()), Some("b".into())]
    );
    assert_eq!(
        p(r#"{ } >> { name = "b" }"#)[0].operation.as_deref(),
        Some("b")
    );
    // The more selective side wins: an error status over a span kind.
    assert_eq!(
        p("{ kind = server } >> { status = error }"),
        vec![Pushdown {
            tags: vec![("error".into(), "true".into())],
            ..Pushdown::default()
        }]
    );
    assert_eq!(
        p(r#"{ name = "a" && kind = server } && { kind = client }"#)[0]
            .operation
            .as_deref(),
        Some("a")
    );
    // Reversed comparisons flip.
    assert_eq!(
        p("{ 5ms < duration }")[0].min_duration_nanos,
        Some(5 * MS + 1)
    );
}

#[test]
fn pushdown_agrees_with_evaluation() {
    // Every span the query selects also matches one of the pushdown alternatives, so the
    // pre-filter never loses a trace.
    let spans = trace();
    let view = TraceView::new(&spans);
    for q in [
        r#"{ resource.service.name = "cart" && kind = client }"#,
        "{ status = error && span.http.status_code = 500 }",
        r#"{ name = "POST /cart" } > { duration < 10ms }"#,
        r#"{ .http.method = "GET" && duration >= 2ms }"#,
        r#"{ name = "SELECT" } || { kind = internal }"#,
    ] {
        let query = parse(q).expect("parses");
        assert!(!view.evaluate(&query).is_empty(), "{q} matches the fixture");
        let alternatives = plan(&query);
        let window = (UnixNanos(0), UnixNanos(u64::MAX));
        assert!(
            alternatives.iter().any(|a| {
                let sq = a.to_span_query(window.0, window.1, 10);
                spans.iter().any(|s| sq.matches(s))
            }),
            "{q}: {alternatives:?}"
        );
    }
}

#[test]
fn shown_fields_in_order() {
    let q = parse(
        r#"{ .a = 1 && name = "x" } && { .a = 2 || status = error } | select(resource.b, .a)"#,
    )
    .expect("parses");
    let labels: Vec<String> = shown_fields(&q).iter().map(Field::label).collect();
    assert_eq!(labels, vec![".a", "name", "status", "resource.b"]);
}
