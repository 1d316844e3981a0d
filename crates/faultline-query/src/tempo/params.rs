//! Query-string parameters of the Tempo API: times in Unix seconds, Go durations, logfmt tags.

use faultline_model::UnixNanos;

use super::search::SearchRequest;
use crate::params::{first, parse_go_duration, DEFAULT_SEARCH_LOOKBACK_NANOS, MAX_SEARCH_LIMIT};
use crate::traceql::ast::{CmpOp, Field, FieldExpr, Query, Scope, SpansetExpr, Static};
use crate::traceql::{self, ParseError};
use crate::QueryError;

/// Traces returned without `limit` (Tempo's default).
pub const DEFAULT_LIMIT: usize = 20;
/// Spans shown per spanset without `spss` (Tempo's default).
pub const DEFAULT_SPSS: usize = 3;
/// Most spans shown per spanset.
pub const MAX_SPSS: usize = 1_000;
/// Tag values returned without `limit`.
pub const DEFAULT_TAG_VALUES: usize = 1_000;
/// Most tag values or names returned.
pub const MAX_TAG_VALUES: usize = 10_000;

const NANOS_PER_SEC: u64 = 1_000_000_000;

type Pairs = [(String, String)];

/// A whole number in `1..=max` (absent or `0`: `default`; larger: `max`).
fn count_param(pairs: &Pairs, name: &str, default: usize, max: usize) -> Result<usize, QueryError> {
    let Some(v) = first(pairs, name) else {
        return Ok(default);
    };
    let n: u64 = v.parse().map_err(|_| {
        QueryError::bad_param(
            name,
            format!("{v:?} is not a whole number; expected 1 to {max}"),
        )
    })?;
    Ok(match n {
        0 => default,
        n => usize::try_from(n).map_or(max, |n| n.min(max)),
    })
}

/// The `[start, end]` window in Unix seconds; `end` defaults to `now`, `start` to two days
/// before `end`.
pub fn window(pairs: &Pairs, now: UnixNanos) -> Result<(UnixNanos, UnixNanos), QueryError> {
    let secs = |name: &str| -> Result<Option<UnixNanos>, QueryError> {
        first(pairs, name)
            .map(|v| {
                v.parse::<u64>()
                    .ok()
                    .and_then(|s| s.checked_mul(NANOS_PER_SEC))
                    .map(UnixNanos)
                    .ok_or_else(|| {
                        QueryError::bad_param(
                            name,
                            format!("{v:?} is not a whole number of seconds since the Unix epoch"),
                        )
                    })
            })
            .transpose()
    };
    // Tempo's `end` is exclusive at one-second resolution: take the whole last second.
    let end = secs("end")?.map_or(now, |e| UnixNanos(e.0.saturating_add(NANOS_PER_SEC - 1)));
    let start = secs("start")?
        .unwrap_or_else(|| UnixNanos(end.0.saturating_sub(DEFAULT_SEARCH_LOOKBACK_NANOS)));
    if start > end {
        return Err(QueryError::bad_param("start", "must not be after end"));
    }
    Ok((start, end))
}

/// The most tag values or names to return.
pub fn tag_limit(pairs: &Pairs) -> Result<usize, QueryError> {
    count_param(pairs, "limit", DEFAULT_TAG_VALUES, MAX_TAG_VALUES)
}

/// A TraceQL query from parameter `name`, or a 400 naming the position of the error.
pub fn traceql_param(name: &str, q: &str) -> Result<Query, QueryError> {
    traceql::parse(q).map_err(|e: ParseError| QueryError::bad_param(name, e.to_string()))
}

/// Parses `/api/search`: `q=<TraceQL>` or `tags=<logfmt>`, with `minDuration`, `maxDuration`,
/// `limit`, `spss`, `start` and `end`.
pub fn search(pairs: &Pairs, now: UnixNanos) -> Result<SearchRequest, QueryError> {
    let query = match (first(pairs, "q"), first(pairs, "tags")) {
        (Some(q), _) => traceql_param("q", q)?,
        (None, Some(tags)) => tags_query(tags)?,
        (None, None) => Query {
            spansets: SpansetExpr::Filter(FieldExpr::Static(Static::Bool(true))),
            stages: Vec::new(),
        },
    };
    let duration = |name: &str| {
        first(pairs, name)
            .map(|v| parse_go_duration(v).map_err(|e| QueryError::bad_param(name, e)))
            .transpose()
    };
    let (start, end) = window(pairs, now)?;
    Ok(SearchRequest {
        query,
        min_trace_nanos: duration("minDuration")?,
        max_trace_nanos: duration("maxDuration")?,
        start,
        end,
        limit: count_param(pairs, "limit", DEFAULT_LIMIT, MAX_SEARCH_LIMIT)?,
        spss: count_param(pairs, "spss", DEFAULT_SPSS, MAX_SPSS)?,
    })
}

/// A tag search as TraceQL: every `key=value` must hold on one span (span attribute, else
/// resource attribute), compared as exact text.
fn tags_query(tags: &str) -> Result<Query, QueryError> {
    let pairs = logfmt(tags).map_err(|e| QueryError::bad_param("tags", e))?;
    let mut expr = FieldExpr::Static(Static::Bool(true));
    for (key, value) in pairs.into_iter().rev() {
        let cond = FieldExpr::Compare(
            CmpOp::Eq,
            Box::new(FieldExpr::Field(Field::Attribute {
                scope: Scope::Unscoped,
                name: key,
            })),
            Box::new(FieldExpr::Static(Static::Str(value))),
        );
        expr = match expr {
            FieldExpr::Static(Static::Bool(true)) => cond,
            rest => FieldExpr::And(Box::new(cond), Box::new(rest)),
        };
    }
    Ok(Query {
        spansets: SpansetExpr::Filter(expr),
        stages: Vec::new(),
    })
}

/// Splits logfmt (`a=1 b="x y"`) into pairs.
pub fn logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "expected key=value pairs separated by spaces (logfmt), found '{key}' without a value"
            ));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some(e) = chars.next() {
                            value.push(e);
                        }
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for '{key}'"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn logfmt_pairs() {
        assert_eq!(
            logfmt(r#"service.name=cart  http.url="/a b" x="q\"t""#).expect("parses"),
            vec![
                ("service.name".to_owned(), "cart".to_owned()),
                ("http.url".to_owned(), "/a b".to_owned()),
                ("x".to_owned(), "q\"t".to_owned()),
            ]
        );
        assert!(logfmt("lonely").is_err());
        assert!(logfmt("a=\"open").is_err());
        assert_eq!(logfmt("  ").expect("empty"), vec![]);
    }

    #[test]
    fn search_defaults_and_limits() {
        let now = UnixNanos(1_700_000_000 * NANOS_PER_SEC);
        let r = search(&pairs(&[]), now).expect("defaults");
        assert_eq!((r.limit, r.spss), (DEFAULT_LIMIT, DEFAULT_SPSS));
        assert_eq!(r.end, now);
        assert_eq!(r.start.0, now.0 - DEFAULT_SEARCH_LOOKBACK_NANOS);
        let r = search(
            &pairs(&[
                ("limit", "99999"),
                ("spss", "5"),
                ("start", "100"),
                ("end", "200"),
                ("minDuration", "1s"),
            ]),
            now,
        )
        .expect("parses");
        assert_eq!((r.limit, r.spss), (MAX_SEARCH_LIMIT, 5));
        assert_eq!(r.start, UnixNanos(100 * NANOS_PER_SEC));
        assert_eq!(r.end, UnixNanos(201 * NANOS_PER_SEC - 1));
        assert_eq!(r.min_trace_nanos, Some(NANOS_PER_SEC));
        for bad in [
            ("limit", "-1"),
            ("spss", "x"),
            ("start", "soon"),
            ("minDuration", "fast"),
            ("tags", "a"),
            ("q", "{ .a = }"),
        ] {
            let e = search(&pairs(&[bad]), now).expect_err(bad.0);
            assert!(e.to_string().contains(bad.0), "{e}");
        }
        let e = search(&pairs(&[("start", "300"), ("end", "200")]), now).expect_err("order");
        assert!(e.to_string().contains("after end"), "{e}");
    }
}
