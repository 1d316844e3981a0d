//! Reading spans back: by trace ID, whole blocks, span search and service dependencies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::BooleanArray;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use faultline_model::query::{service_edges, SpanQuery, PEER_ATTRIBUTES};
use faultline_model::{
    AttributeValue, KeyValue, Resource, Span, SpanKind, StatusCode, TraceId, UnixNanos,
};
use object_store::path::Path;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, RowFilter};

use crate::blocks::data_path;
use crate::decode::{
    self, Cells, Interner, KeyCache, ParentRef, SpanColumns, TraceAssembler, TypedAttrs,
};
use crate::footer_cache::FooterCache;
use crate::read::DataFile;
use crate::schema::{self, AttrColumns, ValueType};
use crate::{codec, BlockError, BlockMeta};

/// The spans of the given traces. Only row groups and pages whose `trace_id` range can hold
/// one of `ids` are fetched; IDs the block's meta rules out cost no I/O at all.
pub async fn read_traces(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    ids: &[TraceId],
) -> Result<Vec<Span>, BlockError> {
    read_traces_in(store, root, meta, ids, None).await
}

/// [`read_traces`], taking the block's footer from `footers` (and keeping it there).
pub async fn read_traces_cached(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    ids: &[TraceId],
    footers: &FooterCache,
) -> Result<Vec<Span>, BlockError> {
    read_traces_in(store, root, meta, ids, Some(footers)).await
}

async fn read_traces_in(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    ids: &[TraceId],
    footers: Option<&FooterCache>,
) -> Result<Vec<Span>, BlockError> {
    let wanted: BTreeSet<TraceId> = ids
        .iter()
        .filter(|id| meta.may_contain_trace(id))
        .copied()
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let file = DataFile::open_cached(store, data_path(root, &meta.id), &meta.id, footers).await?;
    let (groups, selection) = file.select_traces(&wanted)?;
    let mut interner = Interner::default();
    let mut assembler = TraceAssembler::default();
    let filter = Some(file.trace_filter(wanted.clone())?);
    file.read_filtered(None, groups, Some(selection), filter, |batch| {
        let mut cols = SpanColumns::new(&batch, file.attr_columns())?;
        for row in 0..batch.num_rows() {
            // Selected pages also hold neighbouring traces; only wanted ones are decoded.
            if wanted.contains(&decode::trace_id_at(cols.trace_id, row)?) {
                let (span, parent) = cols.span(row, &mut interner)?;
                assembler.push(span, parent)?;
            }
        }
        Ok(())
    })
    .await?;
    assembler.finish()
}

/// Decodes a block's footer into `footers` now, so that the first query to read the block
/// does not pay for it (a cold footer is most of a trace lookup's time).
pub async fn load_footer(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    footers: &FooterCache,
) -> Result<(), BlockError> {
    DataFile::open_cached(store, data_path(root, &meta.id), &meta.id, Some(footers)).await?;
    Ok(())
}

/// Every span of the block (for compaction), resources and scopes shared per distinct value.
pub async fn read_all(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
) -> Result<Vec<Span>, BlockError> {
    let file = DataFile::open(store, data_path(root, &meta.id)).await?;
    let mut interner = Interner::default();
    let mut assembler = TraceAssembler::default();
    assembler
        .out
        .reserve(usize::try_from(meta.span_count).unwrap_or(0).min(1 << 20));
    file.read(None, file.all_row_groups(), None, |batch| {
        let mut cols = SpanColumns::new(&batch, file.attr_columns())?;
        for row in 0..batch.num_rows() {
            let (span, parent) = cols.span(row, &mut interner)?;
            assembler.push(span, parent)?;
        }
        Ok(())
    })
    .await?;
    assembler.finish()
}

/// Row groups whose span start times can fall within `[start, end]`, from column statistics.
fn groups_in_time(
    file: &DataFile<'_>,
    start: UnixNanos,
    end: UnixNanos,
) -> Result<Vec<usize>, BlockError> {
    let leaf = file.leaf(schema::START)?;
    let as_u64 =
        |b: Option<&[u8]>| -> Option<u64> { Some(u64::from_le_bytes(b?.try_into().ok()?)) };
    Ok(file
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            let Some(stats) = rg.columns().get(leaf).and_then(|c| c.statistics()) else {
                return true;
            };
            match (as_u64(stats.min_bytes_opt()), as_u64(stats.max_bytes_opt())) {
                (Some(lo), Some(hi)) => lo <= end.0 && hi >= start.0,
                _ => true,
            }
        })
        .map(|(i, _)| i)
        .collect())
}

/// A span with only the fields a [`SpanQuery`] looks at; the rest keep their defaults.
fn partial_span(
    trace_id: TraceId,
    start: UnixNanos,
    end: UnixNanos,
    resource: Arc<Resource>,
) -> Span {
    Span {
        trace_id,
        start,
        end,
        resource,
        ..Default::default()
    }
}

/// The columns a query needs, and how to fill a partial span from them.
struct SearchPlan {
    columns: Vec<String>,
    tags: bool,
}

impl SearchPlan {
    fn new(q: &SpanQuery, attr_columns: &AttrColumns) -> Self {
        let mut columns: Vec<String> = vec![
            schema::TRACE_ID.into(),
            schema::START.into(),
            schema::DURATION.into(),
        ];
        let tags = !q.tags.is_empty();
        if tags {
            // Tags look at span, resource and event attributes, and `error=true` at the status.
            for c in [
                schema::RESOURCE,
                schema::ATTRS,
                schema::EVENTS,
                schema::STATUS_CODE,
            ] {
                columns.push(c.into());
            }
            columns.extend(TypedAttrs::columns_needed(
                attr_columns,
                &tag_columns(q, attr_columns),
            ));
        } else if q.service.is_some() {
            columns.push(schema::SERVICE.into());
        }
        if q.operation.is_some() {
            columns.push(schema::NAME.into());
        }
        if q.kind.is_some() {
            columns.push(schema::KIND.into());
        }
        columns.sort();
        columns.dedup();
        Self { columns, tags }
    }
}

/// Indexes of the attribute columns holding the query's tag keys.
fn tag_columns(q: &SpanQuery, attr_columns: &AttrColumns) -> Vec<usize> {
    (0..attr_columns.columns.len())
        .filter(|&i| {
            attr_columns
                .columns
                .get(i)
                .is_some_and(|c| q.tags.iter().any(|(k, _)| *k == c.key))
        })
        .collect()
}

/// A row filter with the query's cheap conditions (time, duration, service, operation, kind):
/// the decoder evaluates these small columns first and decodes resources, attributes and
/// events only for the rows that pass. It is only a pre-filter: every surviving row is still
/// checked with [`SpanQuery::matches`].
fn search_filter(file: &DataFile<'_>, q: &SpanQuery) -> Result<RowFilter, BlockError> {
    let mut columns = vec![schema::START, schema::DURATION];
    if q.service.is_some() {
        columns.push(schema::SERVICE);
    }
    if q.operation.is_some() {
        columns.push(schema::NAME);
    }
    if q.kind.is_some() {
        columns.push(schema::KIND);
    }
    let mask = file.mask(&columns)?;
    let q = SpanQuery {
        tags: Vec::new(),
        ..q.clone()
    };
    let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        cheap_conditions(&batch, &q).map_err(|e| ArrowError::ExternalError(Box::new(e)))
    });
    Ok(RowFilter::new(vec![Box::new(predicate)]))
}

/// Per row, whether it passes `q`'s conditions other than tags.
fn cheap_conditions(batch: &RecordBatch, q: &SpanQuery) -> Result<BooleanArray, BlockError> {
    let starts = decode::u64s(batch, schema::START)?;
    let durations = decode::u64s(batch, schema::DURATION)?;
    let services = q
        .service
        .as_ref()
        .map(|_| Cells::new(batch, schema::SERVICE))
        .transpose()?;
    let names = q
        .operation
        .as_ref()
        .map(|_| Cells::new(batch, schema::NAME))
        .transpose()?;
    let kinds = q
        .kind
        .map(|_| decode::u8s(batch, schema::KIND))
        .transpose()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            let start = starts.value(row);
            // As `Span::duration_nanos`: zero when the stored end precedes the start.
            let duration = start
                .wrapping_add(durations.value(row))
                .saturating_sub(start);
            let keep = start >= q.start.0
                && start <= q.end.0
                && q.min_duration_nanos.is_none_or(|m| duration >= m)
                && q.max_duration_nanos.is_none_or(|m| duration <= m)
                && services
                    .as_ref()
                    .is_none_or(|c| c.get(row) == q.service.as_deref().map(str::as_bytes))
                && names
                    .as_ref()
                    .is_none_or(|c| c.get(row) == q.operation.as_deref().map(str::as_bytes))
                && kinds
                    .is_none_or(|k| Some(SpanKind::from_i32(i32::from(k.value(row)))) == q.kind);
            Some(keep)
        })
        .collect())
}

/// Per matching trace, its latest matching span start; at most `q.limit` traces, most recent
/// first. Reads only the columns the query needs, skips row groups outside the time range, and
/// evaluates with exactly [`SpanQuery::matches`] on spans rebuilt from those columns.
pub async fn search(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    q: &SpanQuery,
) -> Result<Vec<(UnixNanos, TraceId)>, BlockError> {
    search_in(store, root, meta, q, None).await
}

/// [`search`], taking the block's footer from `footers` (and keeping it there).
pub async fn search_cached(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    q: &SpanQuery,
    footers: &FooterCache,
) -> Result<Vec<(UnixNanos, TraceId)>, BlockError> {
    search_in(store, root, meta, q, Some(footers)).await
}

async fn search_in(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    q: &SpanQuery,
    footers: Option<&FooterCache>,
) -> Result<Vec<(UnixNanos, TraceId)>, BlockError> {
    if q.limit == 0 || !meta.may_match(q) {
        return Ok(Vec::new());
    }
    let file = DataFile::open_cached(store, data_path(root, &meta.id), &meta.id, footers).await?;
    let groups = groups_in_time(&file, q.start, q.end)?;
    let plan = SearchPlan::new(q, file.attr_columns());
    let attr_columns = file.attr_columns();
    let columns: Vec<&str> = plan.columns.iter().map(String::as_str).collect();
    let mut interner = Interner::default();
    let mut services: HashMap<String, Arc<Resource>> = HashMap::new();
    let mut latest: HashMap<TraceId, UnixNanos> = HashMap::new();
    let filter = Some(search_filter(&file, q)?);
    file.read_filtered(Some(&columns), groups, None, filter, |batch| {
        search_batch(
            &batch,
            q,
            &plan,
            attr_columns,
            &mut interner,
            &mut services,
            &mut latest,
        )
    })
    .await?;
    let mut hits: Vec<(UnixNanos, TraceId)> = latest.into_iter().map(|(id, t)| (t, id)).collect();
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits.truncate(q.limit);
    Ok(hits)
}

#[allow(clippy::too_many_arguments)]
fn search_batch(
    batch: &RecordBatch,
    q: &SpanQuery,
    plan: &SearchPlan,
    attr_columns: &AttrColumns,
    interner: &mut Interner,
    services: &mut HashMap<String, Arc<Resource>>,
    latest: &mut HashMap<TraceId, UnixNanos>,
) -> Result<(), BlockError> {
    let trace_ids = decode::fixed(batch, schema::TRACE_ID, 16)?;
    let starts = decode::u64s(batch, schema::START)?;
    let durations = decode::u64s(batch, schema::DURATION)?;
    let names = q
        .operation
        .as_ref()
        .map(|_| Cells::new(batch, schema::NAME))
        .transpose()?;
    let kinds = q
        .kind
        .map(|_| decode::u8s(batch, schema::KIND))
        .transpose()?;
    let service_col = (!plan.tags && q.service.is_some())
        .then(|| Cells::new(batch, schema::SERVICE))
        .transpose()?;
    struct TagCols<'a> {
        resource: Cells<'a>,
        attrs: Cells<'a>,
        events: Cells<'a>,
        status: &'a arrow::array::UInt8Array,
        /// Indexes of the tag keys' columns, and their cells.
        wanted: Vec<usize>,
        typed: TypedAttrs<'a>,
    }
    let tag_cols = if plan.tags {
        let wanted = tag_columns(q, attr_columns);
        let typed = TypedAttrs::new(batch, attr_columns, &wanted)?;
        Some(TagCols {
            resource: Cells::new(batch, schema::RESOURCE)?,
            attrs: Cells::new(batch, schema::ATTRS)?,
            events: Cells::new(batch, schema::EVENTS)?,
            status: decode::u8s(batch, schema::STATUS_CODE)?,
            wanted,
            typed,
        })
    } else {
        None
    };
    // The query minus its tags, for a cheap first check before attributes are decoded.
    let without_tags = SpanQuery {
        tags: Vec::new(),
        ..q.clone()
    };
    let mut resource_keys: KeyCache<Arc<Resource>> = KeyCache::default();
    let default_resource = Arc::new(Resource::default());

    for row in 0..batch.num_rows() {
        let start = UnixNanos(starts.value(row));
        // Cheap conditions first; `matches` below re-checks them all exactly.
        if start < q.start || start > q.end {
            continue;
        }
        let end = UnixNanos(start.0.wrapping_add(durations.value(row)));
        let resource = if let Some(t) = &tag_cols {
            let bytes = t
                .resource
                .get(row)
                .ok_or_else(|| BlockError::corrupt("column resource", "unexpected null"))?;
            resource_keys.get_or(t.resource.key(row), || interner.resource(bytes))?
        } else if let Some(c) = &service_col {
            let svc = c.str(row, schema::SERVICE)?;
            match services.get(svc) {
                Some(r) => r.clone(),
                None => {
                    // Service filters and the dependency graph read only `service.name`.
                    let r = Arc::new(Resource::for_service(svc));
                    services.insert(svc.to_owned(), r.clone());
                    r
                }
            }
        } else {
            default_resource.clone()
        };
        let mut span = partial_span(decode::trace_id_at(trace_ids, row)?, start, end, resource);
        if let Some(n) = &names {
            span.name = n.str(row, schema::NAME)?.into();
        }
        if let Some(k) = kinds {
            span.kind = SpanKind::from_i32(i32::from(k.value(row)));
        }
        // The quick checks need no attributes; only survivors pay for decoding them.
        if let Some(t) = &tag_cols {
            if !without_tags.matches(&span) {
                continue;
            }
            span.status.code = StatusCode::from_i32(i32::from(t.status.value(row)));
            if let Some(b) = t.attrs.get(row) {
                span.attributes = codec::decode_attrs(b, "attrs column")?;
            }
            // Order does not matter to tag matching, so typed values are simply appended.
            for &i in &t.wanted {
                if let (Some(v), Some(col)) = (t.typed.value(i, row)?, attr_columns.columns.get(i))
                {
                    span.attributes.push(KeyValue::new(col.key.clone(), v));
                }
            }
            if let Some(b) = t.events.get(row) {
                span.events = codec::decode_events(b, start)?;
            }
        }
        if q.matches(&span) {
            let e = latest.entry(span.trace_id).or_insert(start);
            *e = (*e).max(start);
        }
    }
    Ok(())
}

/// Adds the block's cross-service parent→child edges among spans started in `[start, end]`,
/// exactly as [`service_edges`] counts them trace by trace, reading only IDs, parents, start
/// times and service names of the row groups that overlap the time range (a trace never spans
/// two row groups, so skipping a group never splits one). Spans are seen in block order
/// (trace, start, span ID), which decides the parent when a trace repeats a span ID, as input
/// order does for `service_edges`.
pub async fn dependencies(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    start: UnixNanos,
    end: UnixNanos,
    edges: &mut BTreeMap<(String, String), u64>,
) -> Result<(), BlockError> {
    dependencies_in(store, root, meta, (start, end), edges, None).await
}

/// [`dependencies`], taking the block's footer from `footers` (and keeping it there).
pub async fn dependencies_cached(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    (start, end): (UnixNanos, UnixNanos),
    edges: &mut BTreeMap<(String, String), u64>,
    footers: &FooterCache,
) -> Result<(), BlockError> {
    dependencies_in(store, root, meta, (start, end), edges, Some(footers)).await
}

async fn dependencies_in(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    (start, end): (UnixNanos, UnixNanos),
    edges: &mut BTreeMap<(String, String), u64>,
    footers: Option<&FooterCache>,
) -> Result<(), BlockError> {
    if !meta.overlaps(start, end) {
        return Ok(());
    }
    edge_spans_in(store, root, meta, (start, end), footers, |trace| {
        service_edges(&trace, start, end, edges);
    })
    .await
}

/// Every span of the block, with only what service dependencies need: trace and span ID,
/// parent span ID, start (also as end), kind, a resource holding only `service.name`, and for
/// CLIENT and PRODUCER spans the peer attribute that names their callee
/// ([`faultline_model::query::peer_of`] gives the same answer as on the full span). Reads only
/// those columns, so it costs a fraction of [`read_all`]; a writer uses it to rebuild what it
/// knew about recent spans.
pub async fn read_edge_spans(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    footers: &FooterCache,
) -> Result<Vec<Span>, BlockError> {
    let mut out = Vec::with_capacity(usize::try_from(meta.span_count).unwrap_or(0));
    edge_spans_in(
        store,
        root,
        meta,
        (UnixNanos(0), UnixNanos(u64::MAX)),
        Some(footers),
        |trace| out.extend(trace),
    )
    .await?;
    Ok(out)
}

/// Reads the dependency columns of the row groups overlapping `[start, end]` and hands each
/// trace's partial spans (see [`read_edge_spans`]), parents resolved, to `on_trace`.
async fn edge_spans_in(
    store: &dyn ObjectStore,
    root: &Path,
    meta: &BlockMeta,
    (start, end): (UnixNanos, UnixNanos),
    footers: Option<&FooterCache>,
    mut on_trace: impl FnMut(Vec<Span>),
) -> Result<(), BlockError> {
    let file = DataFile::open_cached(store, data_path(root, &meta.id), &meta.id, footers).await?;
    let groups = groups_in_time(&file, start, end)?;
    // The callee of a client span nobody instruments is named by its peer attributes: the
    // first string value of each key, which is always in one of the key's typed columns (the
    // fixed `str` one, or a packed one such as `ipv4`), `attr_layout` telling which comes first.
    let attr_columns = file.attr_columns();
    let peer_columns = peer_columns(attr_columns);
    let mut columns = vec![
        schema::TRACE_ID,
        schema::SPAN_ID,
        schema::PARENT_INDEX,
        schema::PARENT_SPAN_ID,
        schema::START,
        schema::SERVICE,
        schema::KIND,
    ];
    let typed_columns = TypedAttrs::columns_needed(attr_columns, &peer_columns);
    columns.push(schema::ATTR_LAYOUT);
    columns.extend(typed_columns.iter().map(String::as_str));
    columns.sort_unstable();
    columns.dedup();
    let mut services: HashMap<String, Arc<Resource>> = HashMap::new();
    let mut trace: Vec<(Span, ParentRef)> = Vec::new();
    file.read(Some(&columns), groups, None, |batch| {
        let trace_ids = decode::fixed(&batch, schema::TRACE_ID, 16)?;
        let span_ids = decode::fixed(&batch, schema::SPAN_ID, 8)?;
        let parent_index = decode::u32s(&batch, schema::PARENT_INDEX)?;
        let parent_ids = decode::fixed(&batch, schema::PARENT_SPAN_ID, 8)?;
        let starts = decode::u64s(&batch, schema::START)?;
        let service = Cells::new(&batch, schema::SERVICE)?;
        let kinds = decode::u8s(&batch, schema::KIND)?;
        let layouts = Cells::new(&batch, schema::ATTR_LAYOUT)?;
        let peers = TypedAttrs::new(&batch, attr_columns, &peer_columns)?;
        for row in 0..batch.num_rows() {
            let trace_id = decode::trace_id_at(trace_ids, row)?;
            if trace.first().is_some_and(|(s, _)| s.trace_id != trace_id) {
                finish_trace(&mut trace, &mut on_trace)?;
            }
            let svc = service.str(row, schema::SERVICE)?;
            let resource = match services.get(svc) {
                Some(r) => r.clone(),
                None => {
                    let r = Arc::new(Resource::for_service(svc));
                    services.insert(svc.to_owned(), r.clone());
                    r
                }
            };
            let at = UnixNanos(starts.value(row));
            let mut span = partial_span(trace_id, at, at, resource);
            span.span_id = decode::span_id_at(span_ids, row);
            span.kind = SpanKind::from_i32(i32::from(kinds.value(row)));
            if matches!(span.kind, SpanKind::Client | SpanKind::Producer) {
                let layout = layouts.get(row).unwrap_or_default();
                if let Some((key, value)) = peer_at(row, layout, attr_columns, &peers)? {
                    span.attributes
                        .push(KeyValue::new(key, AttributeValue::String(value)));
                }
            }
            trace.push((span, decode::parent_at(parent_index, parent_ids, row)));
        }
        Ok(())
    })
    .await?;
    finish_trace(&mut trace, &mut on_trace)
}

fn holds_strings(c: &schema::AttrColumn) -> bool {
    c.ty == ValueType::Str || c.ty.packs_strings()
}

/// The attribute columns that can hold a peer attribute's first string value
/// ([`PEER_ATTRIBUTES`]): the keys' string and packed-string columns.
fn peer_columns(cols: &AttrColumns) -> Vec<usize> {
    (0..cols.columns.len())
        .filter(|&i| {
            cols.columns
                .get(i)
                .is_some_and(|c| PEER_ATTRIBUTES.contains(&c.key.as_str()) && holds_strings(c))
        })
        .collect()
}

/// The callee a row's peer attributes name, exactly as [`faultline_model::query::peer_of`]
/// names it from the whole span: the first key whose first string value (the first of the
/// key's string columns in the row's `attr_layout`) is not empty.
fn peer_at(
    row: usize,
    layout: &[u8],
    cols: &AttrColumns,
    typed: &TypedAttrs<'_>,
) -> Result<Option<(&'static str, faultline_model::CompactString)>, BlockError> {
    for key in PEER_ATTRIBUTES {
        let first = layout
            .iter()
            .filter_map(|&b| usize::from(b).checked_sub(1))
            .find(|&i| {
                cols.columns
                    .get(i)
                    .is_some_and(|c| c.key == key && holds_strings(c))
            });
        let Some(i) = first else {
            continue;
        };
        if let Some(AttributeValue::String(v)) = typed.value(i, row)? {
            if !v.is_empty() {
                return Ok(Some((key, v)));
            }
        }
    }
    Ok(None)
}

/// Resolves one trace's parents and hands its spans to `on_trace`, leaving `trace` empty.
fn finish_trace(
    trace: &mut Vec<(Span, ParentRef)>,
    on_trace: &mut impl FnMut(Vec<Span>),
) -> Result<(), BlockError> {
    if trace.is_empty() {
        return Ok(());
    }
    let mut assembler = TraceAssembler::default();
    for (span, parent) in trace.drain(..) {
        assembler.push(span, parent)?;
    }
    on_trace(assembler.finish()?);
    Ok(())
}
