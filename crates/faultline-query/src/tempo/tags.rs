//! Tag names and tag values for Grafana's TraceQL autocomplete.
//!
//! Service names and span names come from the store's metadata (head and block operation
//! indexes), complete for the whole store. Other attributes have no index: their names and
//! values come from a bounded scan of the most recent traces in the window (at most
//! [`SCAN_TRACES`] traces and [`SCAN_SPANS`] spans), so a rare attribute seen only in older
//! traces may be missing from the suggestions, never from search results.

use std::collections::BTreeSet;

use faultline_model::{AttributeValue, Span, StatusCode, UnixNanos};
use faultline_storage::{StorageError, Store};

use super::model::TypedValue;
use crate::traceql::ast::{Field, Intrinsic, Query, Scope};
use crate::traceql::eval::{kind_name, status_name, TraceView};
use crate::traceql::plan::plan;

/// Most recent traces scanned for tag names and values.
pub(crate) const SCAN_TRACES: usize = 200;
/// Most spans scanned for tag names and values.
pub(crate) const SCAN_SPANS: usize = 200_000;
const FETCH_CHUNK: usize = 20;

/// Span and resource attribute keys seen in the scan, sorted, each set capped at `limit`.
pub(crate) struct TagNames {
    pub span: BTreeSet<String>,
    pub resource: BTreeSet<String>,
}

/// Visits the spans of the most recent traces in `[start, end]` (those a `filter` query
/// selects, when given) until the scan budget is used.
async fn scan(
    store: &Store,
    (start, end): (UnixNanos, UnixNanos),
    filter: Option<&Query>,
    mut visit: impl FnMut(&Span),
) -> Result<(), StorageError> {
    // The filter's first pushdown alternative narrows the scan when it is the only one.
    let pushdown = filter
        .map(plan)
        .filter(|alts| alts.len() == 1)
        .and_then(|mut alts| alts.pop())
        .unwrap_or_default();
    let ids = store
        .search(&pushdown.to_span_query(start, end, SCAN_TRACES))
        .await?;
    let mut spans_seen = 0usize;
    for chunk in ids.chunks(FETCH_CHUNK) {
        for (_, data) in store.traces(chunk).await? {
            spans_seen += data.spans.len();
            match filter {
                Some(q) => {
                    let view = TraceView::new(&data.spans);
                    for set in view.evaluate(q) {
                        for i in set.spans {
                            visit(&data.spans[i]);
                        }
                    }
                }
                None => data.spans.iter().for_each(&mut visit),
            }
            if spans_seen >= SCAN_SPANS {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Attribute keys of recent spans.
pub(crate) async fn tag_names(
    store: &Store,
    window: (UnixNanos, UnixNanos),
    limit: usize,
) -> Result<TagNames, StorageError> {
    let mut names = TagNames {
        span: BTreeSet::new(),
        resource: BTreeSet::new(),
    };
    scan(store, window, None, |s| {
        for kv in &s.attributes {
            if names.span.len() < limit && !names.span.contains(kv.key.as_str()) {
                names.span.insert(kv.key.to_string());
            }
        }
        for kv in &s.resource.attributes {
            if names.resource.len() < limit && !names.resource.contains(kv.key.as_str()) {
                names.resource.insert(kv.key.to_string());
            }
        }
    })
    .await?;
    Ok(names)
}

/// Distinct values of `field`, typed as TraceQL types them, sorted, at most `limit`.
pub(crate) async fn tag_values(
    store: &Store,
    field: &Field,
    window: (UnixNanos, UnixNanos),
    filter: Option<&Query>,
    limit: usize,
) -> Result<Vec<TypedValue>, StorageError> {
    let mut out = BTreeSet::new();
    let keyword = |v: &str| TypedValue {
        value_type: "keyword",
        value: v.to_owned(),
    };
    match field {
        Field::Intrinsic(Intrinsic::Status) => {
            for s in [StatusCode::Error, StatusCode::Ok, StatusCode::Unset] {
                out.insert(keyword(status_name(s)));
            }
        }
        Field::Intrinsic(Intrinsic::Kind) => {
            for k in [
                "client",
                "consumer",
                "internal",
                "producer",
                "server",
                "unspecified",
            ] {
                out.insert(keyword(k));
            }
        }
        Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => {}
        // Metadata answers these for the whole store when nothing filters them.
        Field::Intrinsic(Intrinsic::Name) if filter.is_none() => {
            for (name, _) in store.operations(None).await? {
                if out.len() >= limit {
                    break;
                }
                out.insert(string(name));
            }
        }
        f if filter.is_none() && super::search::is_service_name(f) => {
            for s in store.services().await?.into_iter().take(limit) {
                out.insert(string(s));
            }
        }
        _ => {
            scan(store, window, filter, |s| {
                if out.len() < limit {
                    if let Some(v) = value_of(field, s) {
                        out.insert(v);
                    }
                }
            })
            .await?;
        }
    }
    Ok(out.into_iter().take(limit).collect())
}

fn string(value: String) -> TypedValue {
    TypedValue {
        value_type: "string",
        value,
    }
}

/// The typed value of `field` on one span (trace-level intrinsics are not suggested).
fn value_of(field: &Field, span: &Span) -> Option<TypedValue> {
    match field {
        Field::Attribute { scope, name } => {
            let find = |kvs: &[faultline_model::KeyValue]| {
                kvs.iter()
                    .find(|kv| kv.key == *name)
                    .map(|kv| kv.value.clone())
            };
            let value = match scope {
                Scope::Span => find(&span.attributes),
                Scope::Resource => find(&span.resource.attributes),
                Scope::Unscoped => {
                    find(&span.attributes).or_else(|| find(&span.resource.attributes))
                }
            }?;
            Some(match value {
                AttributeValue::String(s) => string(s.into()),
                AttributeValue::Int(i) => TypedValue {
                    value_type: "int",
                    value: i.to_string(),
                },
                AttributeValue::Double(d) => TypedValue {
                    value_type: "float",
                    value: d.to_string(),
                },
                AttributeValue::Bool(b) => TypedValue {
                    value_type: "bool",
                    value: b.to_string(),
                },
                AttributeValue::Empty => return None,
                other => string(other.to_text()),
            })
        }
        Field::Intrinsic(i) => match i {
            Intrinsic::Name => Some(string(span.name.to_string())),
            Intrinsic::StatusMessage if !span.status.message.is_empty() => {
                Some(string(span.status.message.clone()))
            }
            Intrinsic::ScopeName if !span.scope.name.is_empty() => {
                Some(string(span.scope.name.clone()))
            }
            Intrinsic::ScopeVersion if !span.scope.version.is_empty() => {
                Some(string(span.scope.version.clone()))
            }
            Intrinsic::Status => Some(TypedValue {
                value_type: "keyword",
                value: status_name(span.status.code).to_owned(),
            }),
            Intrinsic::Kind => Some(TypedValue {
                value_type: "keyword",
                value: kind_name(span.kind).to_owned(),
            }),
            _ => None,
        },
    }
}
