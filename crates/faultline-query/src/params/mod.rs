//! Query-string parameters: parsing, defaults, limits and validation.
//!
//! Everything here takes the decoded `(name, value)` pairs of a query string and either returns a
//! typed request or a [`QueryError::BadParameter`] naming the parameter and what is expected.
//! As in Jaeger (whose Go handlers use `url.Values.Get`), an empty value counts as absent and
//! only the first occurrence of a single-valued parameter is read.

use faultline_model::query::SpanQuery;
use faultline_model::{SpanKind, TraceId, UnixNanos};

use crate::QueryError;

mod syntax;

pub use syntax::{parse_go_duration, parse_lookback, parse_rfc3339};
use syntax::{NANOS_PER_DAY, NANOS_PER_MILLI};

/// Decoded query-string pairs, in request order.
pub(crate) type Pairs = [(String, String)];

/// Traces returned by a search when the client gives no `limit` (Jaeger UI's default).
pub const DEFAULT_SEARCH_LIMIT: usize = 20;

/// Most traces one search returns; larger `limit`s are lowered to this. Jaeger UI's search form
/// offers at most 1500, and beyond that a single JSON answer grows past what a browser renders
/// comfortably while holding every trace in memory at once.
pub const MAX_SEARCH_LIMIT: usize = 1500;

/// Traces returned by an api_v3 search without `query.search_depth` (Jaeger's default).
pub const DEFAULT_V3_SEARCH_DEPTH: usize = 100;

/// How far back a Jaeger search looks when given neither `start` nor `lookback` (Jaeger's
/// `query.lookback` default).
pub const DEFAULT_SEARCH_LOOKBACK_NANOS: u64 = 2 * NANOS_PER_DAY;

/// How far back `/api/dependencies` looks without `lookback` (Jaeger's default).
pub const DEFAULT_DEPENDENCIES_LOOKBACK_NANOS: u64 = NANOS_PER_DAY;

/// The first non-empty value of `name`.
pub(crate) fn first<'a>(pairs: &'a Pairs, name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// Every non-empty value of `name`, in request order.
fn all<'a>(pairs: &'a Pairs, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs
        .iter()
        .filter(move |(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// The first non-empty value among `names` (canonical name first, then aliases), with the name
/// it was found under so that errors quote what the client sent.
fn first_of<'a>(pairs: &'a Pairs, names: &[&'static str]) -> Option<(&'a str, &'static str)> {
    names
        .iter()
        .find_map(|name| first(pairs, name).map(|v| (v, *name)))
}

/// Parses a hex trace ID (1 to 32 digits; shorter IDs are left-padded with zeroes as in Jaeger).
/// Surrounding whitespace is ignored: IDs are often pasted into Grafana's query box.
pub fn trace_id(param: &str, value: &str) -> Result<TraceId, QueryError> {
    value.trim().parse::<TraceId>().map_err(|e| {
        QueryError::bad_param(
            param,
            format!("{value:?} is not a trace ID ({e}); expected 1 to 32 hexadecimal digits"),
        )
    })
}

/// Parses a span kind: `server`, `client`, `producer`, `consumer`, `internal` or `unspecified`,
/// in any case and with or without OpenTelemetry's `SPAN_KIND_` prefix.
pub fn span_kind(param: &str, value: &str) -> Result<SpanKind, QueryError> {
    let lower = value.to_ascii_lowercase();
    let name = lower.strip_prefix("span_kind_").unwrap_or(&lower);
    SpanKind::from_jaeger_str(name).ok_or_else(|| {
        QueryError::bad_param(
            param,
            format!(
                "{value:?} is not a span kind; expected server, client, producer, consumer, internal or unspecified"
            ),
        )
    })
}

fn duration_param(param: &str, value: &str) -> Result<u64, QueryError> {
    parse_go_duration(value).map_err(|e| QueryError::bad_param(param, e))
}

fn rfc3339_param(param: &str, value: &str) -> Result<UnixNanos, QueryError> {
    parse_rfc3339(value).map_err(|e| QueryError::bad_param(param, e))
}

fn unsigned(param: &str, value: &str, what: &str) -> Result<u64, QueryError> {
    value
        .parse::<u64>()
        .map_err(|_| QueryError::bad_param(param, format!("{value:?} is not {what}")))
}

/// A count limit: absent or `0` means `default`, values over [`MAX_SEARCH_LIMIT`] are lowered to
/// it, negative or non-numeric values are refused.
fn limit_param(param: &str, value: Option<&str>, default: usize) -> Result<usize, QueryError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let n: i64 = value.parse().map_err(|_| {
        QueryError::bad_param(
            param,
            format!("{value:?} is not a number; expected a whole number of traces, at most {MAX_SEARCH_LIMIT}"),
        )
    })?;
    match n {
        n if n < 0 => Err(QueryError::bad_param(
            param,
            format!("{value:?} is negative; expected a whole number of traces, at most {MAX_SEARCH_LIMIT}"),
        )),
        0 => Ok(default),
        n => Ok(usize::try_from(n).map_or(MAX_SEARCH_LIMIT, |n| n.min(MAX_SEARCH_LIMIT))),
    }
}

/// Parses Go's `strconv.ParseBool` forms.
fn bool_param(param: &str, value: &str) -> Result<bool, QueryError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(QueryError::bad_param(
            param,
            format!("{value:?} is not a boolean; expected true or false"),
        )),
    }
}

/// Reads a JSON object of tag conditions (`{"http.status_code":"500","error":"true"}`). Numbers
/// and booleans are accepted too, as their text form, since tags are compared as text.
fn json_tag_map(param: &str, value: &str) -> Result<Vec<(String, String)>, QueryError> {
    const EXPECTED: &str =
        r#"expected a JSON object of string values such as {"http.status_code":"500"}"#;
    let parsed: serde_json::Value = serde_json::from_str(value).map_err(|e| {
        QueryError::bad_param(param, format!("{EXPECTED}, but it is not JSON: {e}"))
    })?;
    let serde_json::Value::Object(map) = parsed else {
        return Err(QueryError::bad_param(
            param,
            format!("{EXPECTED}, got {value:?}"),
        ));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(QueryError::bad_param(
                param,
                format!("{EXPECTED}; the value of {k:?} is not a string, number or boolean"),
            )),
        })
        .collect()
}

/// Adds a tag condition; a key given twice keeps its last value, as Jaeger's map does.
fn upsert(tags: &mut Vec<(String, String)>, key: String, value: String) {
    match tags.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => tags.push((key, value)),
    }
}

/// Moves a `span.kind` tag condition into the query's kind filter, since the kind is a span
/// field, not an attribute (the Jaeger view shows it as a tag, so users search it as one).
fn lift_span_kind(tags: &mut Vec<(String, String)>) -> Option<SpanKind> {
    let pos = tags.iter().position(|(k, _)| k == "span.kind")?;
    let kind = SpanKind::from_jaeger_str(&tags[pos].1)?;
    tags.remove(pos);
    Some(kind)
}

/// A parsed `/api/traces` request.
#[derive(Debug, Clone)]
pub struct TraceSearch {
    /// The span conditions, time window and limit.
    pub query: SpanQuery,
    /// Explicit `traceID=` values; when present, Jaeger fetches these and ignores the rest.
    pub trace_ids: Vec<TraceId>,
}

/// Parses `/api/traces` search parameters; `now` is the default `end`.
pub fn trace_search(pairs: &Pairs, now: UnixNanos) -> Result<TraceSearch, QueryError> {
    const MICROS: &str = "a whole number of microseconds since the Unix epoch";
    let end = match first(pairs, "end") {
        Some(v) => UnixNanos::from_micros(unsigned("end", v, MICROS)?),
        None => now,
    };
    let lookback = match first(pairs, "lookback") {
        Some(v) => parse_lookback(v).map_err(|e| QueryError::bad_param("lookback", e))?,
        None => None,
    };
    let start = match first(pairs, "start") {
        Some(v) => UnixNanos::from_micros(unsigned("start", v, MICROS)?),
        None => UnixNanos(
            end.0
                .saturating_sub(lookback.unwrap_or(DEFAULT_SEARCH_LOOKBACK_NANOS)),
        ),
    };
    if start > end {
        return Err(QueryError::bad_param(
            "start",
            format!(
                "start ({} µs) is after end ({} µs); expected start <= end",
                start.as_micros(),
                end.as_micros()
            ),
        ));
    }
    let min_duration_nanos = first(pairs, "minDuration")
        .map(|v| duration_param("minDuration", v))
        .transpose()?;
    let max_duration_nanos = first(pairs, "maxDuration")
        .map(|v| duration_param("maxDuration", v))
        .transpose()?;
    if let (Some(min), Some(max)) = (min_duration_nanos, max_duration_nanos) {
        if max < min {
            return Err(QueryError::bad_param(
                "maxDuration",
                "must not be less than 'minDuration'",
            ));
        }
    }
    let limit = limit_param("limit", first(pairs, "limit"), DEFAULT_SEARCH_LIMIT)?;

    let mut tags = Vec::new();
    for tag in all(pairs, "tag") {
        match tag.split_once(':') {
            Some((k, v)) if !k.is_empty() => upsert(&mut tags, k.to_owned(), v.to_owned()),
            _ => {
                return Err(QueryError::bad_param(
                    "tag",
                    format!("{tag:?} is not a tag condition; expected key:value"),
                ))
            }
        }
    }
    for json in all(pairs, "tags") {
        for (k, v) in json_tag_map("tags", json)? {
            upsert(&mut tags, k, v);
        }
    }
    let kind = lift_span_kind(&mut tags);

    let trace_ids = all(pairs, "traceID")
        .map(|v| trace_id("traceID", v))
        .collect::<Result<Vec<_>, _>>()?;
    if trace_ids.len() > MAX_SEARCH_LIMIT {
        return Err(QueryError::bad_param(
            "traceID",
            format!(
                "{} trace IDs given; at most {MAX_SEARCH_LIMIT} per request",
                trace_ids.len()
            ),
        ));
    }

    Ok(TraceSearch {
        query: SpanQuery {
            service: first(pairs, "service").map(str::to_owned),
            operation: first(pairs, "operation").map(str::to_owned),
            kind,
            tags,
            min_duration_nanos,
            max_duration_nanos,
            start,
            end,
            limit,
        },
        trace_ids,
    })
}

/// Validates the optional `start`/`end` (µs) hints of `/api/traces/{id}`. The store finds a
/// trace by ID alone, so the hints only need to be well-formed.
pub fn trace_by_id_hints(pairs: &Pairs) -> Result<(), QueryError> {
    for name in ["start", "end"] {
        if let Some(v) = first(pairs, name) {
            unsigned(
                name,
                v,
                "a whole number of microseconds since the Unix epoch",
            )?;
        }
    }
    if let Some(v) = first(pairs, "raw") {
        bool_param("raw", v)?;
    }
    Ok(())
}

/// The window and optional service filter of `/api/dependencies`.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyWindow {
    /// Earliest span start counted.
    pub start: UnixNanos,
    /// Latest span start counted.
    pub end: UnixNanos,
    /// Only edges touching this service, when given.
    pub service: Option<String>,
}

/// Parses `/api/dependencies?endTs=<ms>&lookback=<ms>[&service=]`; `now` is the default `endTs`.
pub fn dependencies(pairs: &Pairs, now: UnixNanos) -> Result<DependencyWindow, QueryError> {
    const MILLIS: &str = "a whole number of milliseconds";
    let end = match first(pairs, "endTs") {
        Some(v) => UnixNanos(
            unsigned(
                "endTs",
                v,
                "a whole number of milliseconds since the Unix epoch",
            )?
            .saturating_mul(NANOS_PER_MILLI),
        ),
        None => now,
    };
    let lookback = match first(pairs, "lookback") {
        Some(v) => unsigned("lookback", v, MILLIS)?.saturating_mul(NANOS_PER_MILLI),
        None => DEFAULT_DEPENDENCIES_LOOKBACK_NANOS,
    };
    Ok(DependencyWindow {
        start: UnixNanos(end.0.saturating_sub(lookback)),
        end,
        service: first(pairs, "service").map(str::to_owned),
    })
}

/// Parses an api_v3 `/api/v3/traces` search. Both Jaeger's canonical camelCase names
/// (`query.serviceName`) and the older snake_case ones (`query.service_name`) are accepted.
pub fn v3_trace_search(pairs: &Pairs) -> Result<SpanQuery, QueryError> {
    let time_min = first_of(pairs, &["query.startTimeMin", "query.start_time_min"]);
    let time_max = first_of(pairs, &["query.startTimeMax", "query.start_time_max"]);
    let (Some((min_v, min_name)), Some((max_v, max_name))) = (time_min, time_max) else {
        return Err(QueryError::bad_param(
            "query.start_time_min",
            "query.start_time_min and query.start_time_max are both required, as RFC 3339 times such as 2024-05-01T12:00:00Z",
        ));
    };
    let start = rfc3339_param(min_name, min_v)?;
    let end = rfc3339_param(max_name, max_v)?;
    if start >= end {
        return Err(QueryError::bad_param(
            min_name,
            format!("{min_name} must be before {max_name}"),
        ));
    }
    let mut tags = match first(pairs, "query.attributes") {
        Some(v) => json_tag_map("query.attributes", v)?,
        None => Vec::new(),
    };
    // grpc-gateway's map syntax, which older Jaeger versions and generated clients use.
    for (name, value) in pairs {
        let key = name
            .strip_prefix("query.attributes[")
            .and_then(|rest| rest.strip_suffix(']'));
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            upsert(&mut tags, key.to_owned(), value.clone());
        }
    }
    let kind = lift_span_kind(&mut tags);
    let duration = |names: &[&'static str]| {
        first_of(pairs, names)
            .map(|(v, name)| duration_param(name, v))
            .transpose()
    };
    let min_duration_nanos = duration(&["query.durationMin", "query.duration_min"])?;
    let max_duration_nanos = duration(&["query.durationMax", "query.duration_max"])?;
    if let (Some(min), Some(max)) = (min_duration_nanos, max_duration_nanos) {
        if max < min {
            return Err(QueryError::bad_param(
                "query.duration_max",
                "must not be less than query.duration_min",
            ));
        }
    }
    let depth = first_of(
        pairs,
        &[
            "query.searchDepth",
            "query.search_depth",
            "query.num_traces",
        ],
    );
    let limit = match depth {
        Some((v, name)) => limit_param(name, Some(v), DEFAULT_V3_SEARCH_DEPTH)?,
        None => DEFAULT_V3_SEARCH_DEPTH,
    };
    if let Some((v, name)) = first_of(pairs, &["query.rawTraces", "query.raw_traces"]) {
        bool_param(name, v)?;
    }
    Ok(SpanQuery {
        service: first_of(pairs, &["query.serviceName", "query.service_name"])
            .map(|(v, _)| v.to_owned()),
        operation: first_of(pairs, &["query.operationName", "query.operation_name"])
            .map(|(v, _)| v.to_owned()),
        kind,
        tags,
        min_duration_nanos,
        max_duration_nanos,
        start,
        end,
        limit,
    })
}

/// Validates the optional `start_time`/`end_time` (RFC 3339) and `raw_traces` hints of
/// `/api/v3/traces/{id}`.
pub fn v3_trace_by_id_hints(pairs: &Pairs) -> Result<(), QueryError> {
    for names in [["startTime", "start_time"], ["endTime", "end_time"]] {
        if let Some((v, name)) = first_of(pairs, &names) {
            rfc3339_param(name, v)?;
        }
    }
    if let Some((v, name)) = first_of(pairs, &["rawTraces", "raw_traces"]) {
        bool_param(name, v)?;
    }
    Ok(())
}

/// The optional span kind filter of an operations listing, under any of `names`.
pub fn operations_kind(
    pairs: &Pairs,
    names: &[&'static str],
) -> Result<Option<SpanKind>, QueryError> {
    first_of(pairs, names)
        .map(|(v, name)| span_kind(name, v))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::syntax::{NANOS_PER_HOUR, NANOS_PER_SEC};
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bad_param_of(e: QueryError) -> (String, String) {
        match e {
            QueryError::BadParameter { param, reason } => (param, reason),
            other => panic!("expected BadParameter, got {other:?}"),
        }
    }

    const NOW: UnixNanos = UnixNanos(1_700_000_000_000_000_000);

    #[test]
    fn search_defaults() {
        let s = trace_search(&pairs(&[("service", "checkout")]), NOW).unwrap();
        assert_eq!(s.query.service.as_deref(), Some("checkout"));
        assert_eq!(s.query.operation, None);
        assert_eq!(s.query.limit, DEFAULT_SEARCH_LIMIT);
        assert_eq!(s.query.end, NOW);
        assert_eq!(
            s.query.start,
            UnixNanos(NOW.0 - DEFAULT_SEARCH_LOOKBACK_NANOS)
        );
        assert!(s.query.tags.is_empty());
        assert!(s.trace_ids.is_empty());
    }

    #[test]
    fn search_every_parameter() {
        let s = trace_search(
            &pairs(&[
                ("service", "checkout"),
                ("operation", "GET /cart"),
                ("start", "1000"),
                ("end", "5000"),
                ("lookback", "custom"),
                ("minDuration", "1.2ms"),
                ("maxDuration", "1s"),
                ("limit", "7"),
                ("tag", "http.route:/cart:id"),
                ("tag", "a:1"),
                ("tags", r#"{"a":"2","n":500,"b":true,"span.kind":"server"}"#),
            ]),
            NOW,
        )
        .unwrap();
        let q = s.query;
        assert_eq!(q.operation.as_deref(), Some("GET /cart"));
        assert_eq!(q.start, UnixNanos(1_000_000));
        assert_eq!(q.end, UnixNanos(5_000_000));
        assert_eq!(q.min_duration_nanos, Some(1_200_000));
        assert_eq!(q.max_duration_nanos, Some(NANOS_PER_SEC));
        assert_eq!(q.limit, 7);
        assert_eq!(q.kind, Some(SpanKind::Server));
        let mut tags = q.tags;
        tags.sort();
        assert_eq!(
            tags,
            vec![
                ("a".to_owned(), "2".to_owned()),
                ("b".to_owned(), "true".to_owned()),
                ("http.route".to_owned(), "/cart:id".to_owned()),
                ("n".to_owned(), "500".to_owned()),
            ]
        );
    }

    #[test]
    fn search_lookback_and_ids() {
        let s = trace_search(
            &pairs(&[("lookback", "1h"), ("traceID", "abc"), ("traceID", "00ff")]),
            NOW,
        )
        .unwrap();
        assert_eq!(s.query.start, UnixNanos(NOW.0 - NANOS_PER_HOUR));
        assert_eq!(
            trace_id("traceID", " abc\n").unwrap(),
            trace_id("traceID", "abc").unwrap()
        );
        assert_eq!(
            s.trace_ids.iter().map(TraceId::to_hex).collect::<Vec<_>>(),
            vec![
                "00000000000000000000000000000abc",
                "000000000000000000000000000000ff"
            ]
        );
    }

    #[test]
    fn search_limits() {
        let limit = |v: &str| trace_search(&pairs(&[("limit", v)]), NOW).map(|s| s.query.limit);
        assert_eq!(limit("0").unwrap(), DEFAULT_SEARCH_LIMIT);
        assert_eq!(limit("1500").unwrap(), 1500);
        assert_eq!(limit("1501").unwrap(), MAX_SEARCH_LIMIT);
        assert_eq!(limit("9223372036854775807").unwrap(), MAX_SEARCH_LIMIT);
        for bad in ["-1", "ten", "1.5", "99999999999999999999"] {
            let (param, reason) = bad_param_of(limit(bad).unwrap_err());
            assert_eq!(param, "limit");
            assert!(reason.contains("whole number"), "{reason}");
        }
    }

    #[test]
    fn search_rejects_bad_parameters() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[("minDuration", "fast")], "minDuration", "Go duration"),
            (&[("maxDuration", "10")], "maxDuration", "without a unit"),
            (
                &[("minDuration", "2s"), ("maxDuration", "1s")],
                "maxDuration",
                "minDuration",
            ),
            (&[("start", "yesterday")], "start", "microseconds"),
            (&[("end", "-5")], "end", "microseconds"),
            (&[("start", "20"), ("end", "10")], "start", "after end"),
            (&[("lookback", "forever")], "lookback", "custom"),
            (&[("tags", "{not json")], "tags", "not JSON"),
            (&[("tags", "[1,2]")], "tags", "JSON object"),
            (&[("tags", r#"{"a":{"b":1}}"#)], "tags", "\"a\""),
            (&[("tags", r#"{"a":null}"#)], "tags", "\"a\""),
            (&[("tag", "novalue")], "tag", "key:value"),
            (&[("tag", ":v")], "tag", "key:value"),
            (&[("traceID", "xyz")], "traceID", "hexadecimal"),
            (&[("traceID", "0")], "traceID", "zero"),
            (
                &[("traceID", "0123456789abcdef0123456789abcdef0")],
                "traceID",
                "hexadecimal",
            ),
        ];
        for (input, want_param, want_reason) in cases {
            let (param, reason) = bad_param_of(trace_search(&pairs(input), NOW).unwrap_err());
            assert_eq!(&param, want_param, "{input:?}");
            assert!(reason.contains(want_reason), "{input:?}: {reason}");
        }
    }

    #[test]
    fn empty_values_count_as_absent() {
        let s = trace_search(
            &pairs(&[
                ("service", ""),
                ("limit", ""),
                ("minDuration", ""),
                ("tags", ""),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(s.query.service, None);
        assert_eq!(s.query.limit, DEFAULT_SEARCH_LIMIT);
        assert_eq!(s.query.min_duration_nanos, None);
    }

    #[test]
    fn dependency_windows() {
        let w = dependencies(&pairs(&[("endTs", "5000"), ("lookback", "2000")]), NOW).unwrap();
        assert_eq!(w.start, UnixNanos(3_000 * NANOS_PER_MILLI));
        assert_eq!(w.end, UnixNanos(5_000 * NANOS_PER_MILLI));
        let w = dependencies(&pairs(&[("lookback", "99999999999999999")]), NOW).unwrap();
        assert_eq!(w.start, UnixNanos(0));
        let w = dependencies(&pairs(&[]), NOW).unwrap();
        assert_eq!(w.end, NOW);
        assert_eq!(w.start, UnixNanos(NOW.0 - NANOS_PER_DAY));
        for (k, v) in [("endTs", "now"), ("lookback", "1h"), ("lookback", "-1")] {
            let (param, _) = bad_param_of(dependencies(&pairs(&[(k, v)]), NOW).unwrap_err());
            assert_eq!(param, k);
        }
    }

    #[test]
    fn v3_search() {
        let q = v3_trace_search(&pairs(&[
            ("query.service_name", "checkout"),
            ("query.operationName", "GET /cart"),
            ("query.start_time_min", "2023-11-14T22:13:20Z"),
            ("query.start_time_max", "2023-11-14T23:13:20Z"),
            ("query.duration_min", "1ms"),
            ("query.durationMax", "2s"),
            ("query.search_depth", "5"),
            ("query.attributes", r#"{"http.route":"/cart"}"#),
            ("query.raw_traces", "true"),
        ]))
        .unwrap();
        assert_eq!(q.service.as_deref(), Some("checkout"));
        assert_eq!(q.operation.as_deref(), Some("GET /cart"));
        assert_eq!(q.start, UnixNanos(1_700_000_000 * NANOS_PER_SEC));
        assert_eq!(q.end, UnixNanos(1_700_003_600 * NANOS_PER_SEC));
        assert_eq!(q.min_duration_nanos, Some(NANOS_PER_MILLI));
        assert_eq!(q.max_duration_nanos, Some(2 * NANOS_PER_SEC));
        assert_eq!(q.limit, 5);
        assert_eq!(q.tags, vec![("http.route".to_owned(), "/cart".to_owned())]);

        let q = v3_trace_search(&pairs(&[
            ("query.start_time_min", "2023-11-14T22:13:20Z"),
            ("query.start_time_max", "2023-11-14T23:13:20Z"),
            ("query.attributes", r#"{"a":"1","b":"2"}"#),
            ("query.attributes[b]", "3"),
            ("query.attributes[c]", "x:y"),
            ("query.attributes[]", "ignored"),
        ]))
        .unwrap();
        assert_eq!(
            q.tags,
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "3".to_owned()),
                ("c".to_owned(), "x:y".to_owned()),
            ]
        );

        let window = [
            ("query.start_time_min", "2023-11-14T22:13:20Z"),
            ("query.start_time_max", "2023-11-14T23:13:20Z"),
        ];
        assert_eq!(
            v3_trace_search(&pairs(&window)).unwrap().limit,
            DEFAULT_V3_SEARCH_DEPTH
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "query.start_time_min"),
            (
                &[("query.start_time_min", "2023-11-14T22:13:20Z")],
                "query.start_time_min",
            ),
            (
                &[
                    ("query.start_time_min", "2023-11-14T23:13:20Z"),
                    ("query.start_time_max", "2023-11-14T22:13:20Z"),
                ],
                "query.start_time_min",
            ),
            (
                &[
                    ("query.start_time_min", "yesterday"),
                    ("query.start_time_max", "2023-11-14T22:13:20Z"),
                ],
                "query.start_time_min",
            ),
        ];
        for (input, want) in cases {
            let (param, _) = bad_param_of(v3_trace_search(&pairs(input)).unwrap_err());
            assert_eq!(&param, want, "{input:?}");
        }
        for (k, v) in [
            ("query.duration_min", "x"),
            ("query.search_depth", "-3"),
            ("query.attributes", "[]"),
            ("query.raw_traces", "maybe"),
        ] {
            let mut input = pairs(&window);
            input.push((k.to_owned(), v.to_owned()));
            let (param, _) = bad_param_of(v3_trace_search(&input).unwrap_err());
            assert_eq!(param, k);
        }
    }

    #[test]
    fn span_kinds() {
        assert_eq!(span_kind("spanKind", "server").unwrap(), SpanKind::Server);
        assert_eq!(span_kind("spanKind", "CLIENT").unwrap(), SpanKind::Client);
        assert_eq!(
            span_kind("span_kind", "SPAN_KIND_PRODUCER").unwrap(),
            SpanKind::Producer
        );
        let (param, reason) = bad_param_of(span_kind("spanKind", "sever").unwrap_err());
        assert_eq!(param, "spanKind");
        assert!(reason.contains("expected server, client"), "{reason}");
    }

    #[test]
    fn trace_by_id_hint_validation() {
        assert!(
            trace_by_id_hints(&pairs(&[("start", "1"), ("end", "2"), ("raw", "true")])).is_ok()
        );
        assert!(trace_by_id_hints(&pairs(&[("start", "x")])).is_err());
        assert!(v3_trace_by_id_hints(&pairs(&[("start_time", "2023-11-14T22:13:20Z")])).is_ok());
        let (param, _) =
            bad_param_of(v3_trace_by_id_hints(&pairs(&[("endTime", "soon")])).unwrap_err());
        assert_eq!(param, "endTime");
    }

    proptest::proptest! {
        #[test]
        fn request_parsers_never_panic(
            pairs in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "service", "operation", "tag", "tags", "minDuration", "maxDuration",
                        "start", "end", "lookback", "limit", "traceID", "endTs", "raw",
                        "query.start_time_min", "query.start_time_max", "query.attributes",
                        "query.duration_min", "query.search_depth", "spanKind", "span_kind",
                    ]),
                    "\\PC{0,30}",
                ),
                0..8,
            )
        ) {
            let pairs: Vec<(String, String)> =
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            let _ = trace_search(&pairs, NOW);
            let _ = trace_by_id_hints(&pairs);
            let _ = dependencies(&pairs, NOW);
            let _ = v3_trace_search(&pairs);
            let _ = v3_trace_by_id_hints(&pairs);
            let _ = operations_kind(&pairs, &["spanKind", "span_kind"]);
            for (_, v) in &pairs {
                let _ = trace_id("traceID", v);
            }
        }
    }
}
