//! `GET /api/logs`: the log records of a trace (time order), or a log search (newest first),
//! in the Jaeger envelope. Records carry `spanID`, so the UI attaches them to their spans.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use faultline_model::log::{severity_number_from_text, LogQuery};
use faultline_model::{AttributeValue, KeyValue, LogRecord, SpanId, UnixNanos};
use serde::Serialize;

use crate::error::Envelope;
use crate::params::{self, first, parse_lookback};
use crate::{query_pairs, QueryError, QueryPairs, QueryState};

/// Records returned by a search without `limit`.
pub const DEFAULT_LOG_LIMIT: usize = 100;
/// Most records one request returns.
pub const MAX_LOG_LIMIT: usize = 5_000;
/// How far back a search looks without `start` or `lookback`.
const DEFAULT_LOOKBACK_NANOS: u64 = 2 * 24 * 3_600 * 1_000_000_000;

/// One record as `/api/logs` returns it.
#[derive(Serialize, Debug, PartialEq)]
pub struct LogJson {
    /// Record time in nanoseconds since the epoch, as a decimal string.
    #[serde(rename = "timeUnixNano")]
    pub time_unix_nano: String,
    /// Severity as the source wrote it.
    #[serde(rename = "severityText")]
    pub severity_text: String,
    /// OTLP severity number (0 unspecified).
    #[serde(rename = "severityNumber")]
    pub severity_number: i32,
    /// The message: a string, or JSON for structured bodies.
    pub body: serde_json::Value,
    /// The writing service.
    #[serde(rename = "serviceName")]
    pub service_name: String,
    /// Lower-case hex trace ID, `""` when absent.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Lower-case hex span ID, `""` when absent.
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Record attributes, key → value.
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Resource attributes, key → value.
    pub resource: BTreeMap<String, serde_json::Value>,
}

fn object(kvs: &[KeyValue]) -> BTreeMap<String, serde_json::Value> {
    kvs.iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_json()))
        .collect()
}

impl LogJson {
    /// The JSON form of a record.
    pub fn from_record(r: &LogRecord) -> Self {
        Self {
            time_unix_nano: r.time.0.to_string(),
            severity_text: r.severity_text.clone(),
            severity_number: r.severity_number,
            body: match &r.body {
                AttributeValue::String(s) => serde_json::Value::String(s.to_string()),
                other => other.to_json(),
            },
            service_name: r.service_name().to_owned(),
            trace_id: r.trace_id.map(|t| t.to_hex()).unwrap_or_default(),
            span_id: r.span_id.map(|s| s.to_hex()).unwrap_or_default(),
            attributes: object(&r.attributes),
            resource: object(&r.resource.attributes),
        }
    }
}

/// Reads `/api/logs` parameters into a query; `true` when it is a by-trace lookup.
pub fn log_query(
    pairs: &[(String, String)],
    now: UnixNanos,
) -> Result<(LogQuery, bool), QueryError> {
    let pairs = pairs.to_vec();
    let mut q = LogQuery::default();
    if let Some(v) = first(&pairs, "traceID") {
        q.trace_id = Some(params::trace_id("traceID", v)?);
    }
    if let Some(v) = first(&pairs, "spanID") {
        q.span_id = Some(v.trim().parse::<SpanId>().map_err(|e| {
            QueryError::bad_param(
                "spanID",
                format!("{v:?} is not a span ID ({e}); expected 16 hexadecimal digits"),
            )
        })?);
    }
    let by_trace = q.trace_id.is_some();
    q.service = first(&pairs, "service").map(str::to_owned);
    if let Some(v) = first(&pairs, "severity") {
        let n = match v.trim().parse::<i32>() {
            Ok(n) if (0..=24).contains(&n) => n,
            _ => severity_number_from_text(v).ok_or_else(|| {
                QueryError::bad_param(
                    "severity",
                    format!("{v:?} is not a severity; expected trace, debug, info, warn, error, fatal or a number 0-24"),
                )
            })?,
        };
        q.min_severity = Some(n);
    }
    q.text = first(&pairs, "q").map(str::to_owned);
    for (k, v) in pairs.iter().filter(|(k, v)| k == "tag" && !v.is_empty()) {
        let Some((key, value)) = v.split_once(':') else {
            return Err(QueryError::bad_param(
                k,
                format!("{v:?} has no ':'; expected key:value"),
            ));
        };
        q.tags.push((key.to_owned(), value.to_owned()));
    }
    let micros =
        |name: &str| -> Result<Option<UnixNanos>, QueryError> {
            first(&pairs, name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(UnixNanos::from_micros)
                        .map_err(|_| {
                            QueryError::bad_param(
                        name,
                        format!("{v:?} is not a time; expected microseconds since the Unix epoch"),
                    )
                        })
                })
                .transpose()
        };
    let end = micros("end")?;
    let start = micros("start")?;
    let lookback = match first(&pairs, "lookback") {
        Some(v) => parse_lookback(v).map_err(|e| QueryError::bad_param("lookback", e))?,
        None => None,
    };
    if by_trace {
        // A trace's logs are wanted whole; times only narrow when given.
        q.start = start.unwrap_or(UnixNanos(0));
        q.end = end.unwrap_or(UnixNanos(u64::MAX));
    } else {
        q.end = end.unwrap_or(now);
        q.start = start.unwrap_or_else(|| {
            UnixNanos(
                q.end
                    .0
                    .saturating_sub(lookback.unwrap_or(DEFAULT_LOOKBACK_NANOS)),
            )
        });
    }
    if q.start > q.end {
        return Err(QueryError::bad_param(
            "start",
            "start is after end; expected start <= end",
        ));
    }
    q.limit = match first(&pairs, "limit") {
        None => {
            if by_trace {
                MAX_LOG_LIMIT
            } else {
                DEFAULT_LOG_LIMIT
            }
        }
        Some(v) => match v.trim().parse::<u64>() {
            Ok(0) => DEFAULT_LOG_LIMIT,
            Ok(n) => usize::try_from(n).map_or(MAX_LOG_LIMIT, |n| n.min(MAX_LOG_LIMIT)),
            Err(_) => {
                return Err(QueryError::bad_param(
                    "limit",
                    format!("{v:?} is not a number; expected a whole number of records, at most {MAX_LOG_LIMIT}"),
                ))
            }
        },
    };
    Ok((q, by_trace))
}

/// `GET /api/logs`.
pub(crate) async fn logs(
    State(state): State<QueryState>,
    query: QueryPairs,
) -> Result<Json<Envelope<Vec<LogJson>>>, QueryError> {
    let pairs = query_pairs(query)?;
    let (q, by_trace) = log_query(&pairs, state.now())?;
    let logs = state.store.logs();
    let records = if by_trace {
        let mut records: Vec<LogRecord> = logs
            .logs_of_traces(&q.trace_id.into_iter().collect::<Vec<_>>())
            .await?;
        let q = q.clone().normalised();
        records.retain(|r| q.matches(r));
        records.truncate(q.limit);
        records
    } else {
        logs.search(&q).await?
    };
    let data: Vec<LogJson> = records.iter().map(LogJson::from_record).collect();
    let total = data.len();
    Ok(Json(Envelope::ok(data, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn search_parameters_are_read() {
        let (q, by_trace) = log_query(
            &pairs(&[
                ("service", "cart"),
                ("severity", "warn"),
                ("q", "timeout"),
                ("tag", "http.route:/a:b"),
                ("lookback", "1h"),
                ("limit", "7"),
            ]),
            UnixNanos(10_000_000_000_000),
        )
        .unwrap();
        assert!(!by_trace);
        assert_eq!(q.min_severity, Some(13));
        assert_eq!(q.tags, vec![("http.route".to_owned(), "/a:b".to_owned())]);
        assert_eq!(q.limit, 7);
        assert_eq!(q.end, UnixNanos(10_000_000_000_000));
        assert_eq!(q.start, UnixNanos(10_000_000_000_000 - 3_600_000_000_000));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (bad, name) in [
            (("traceID", "xyz"), "traceID"),
            (("spanID", "zz"), "spanID"),
            (("severity", "loud"), "severity"),
            (("tag", "nocolon"), "tag"),
            (("start", "yesterday"), "start"),
            (("limit", "-1"), "limit"),
        ] {
            let err = log_query(&pairs(&[bad]), UnixNanos(1)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
