//! Blocks written by earlier builds stay readable. Each fixture, written by an earlier encoder
//! from the same deterministic generator, must read back as exactly the spans it was written
//! from, and answer searches and dependencies as a block written now does:
//!
//! * `format1-dictionary-strings`: the encoder at `eeecea1` (string attribute columns as Arrow
//!   dictionaries, no `hex` columns), from [`fixture_spans`];
//! * `format1-plain-strings`: the encoder at `bd0eb37`, the last of format 1 (plain `Utf8`
//!   string columns, a `hex` column), from [`hex_fixture_spans`] by `write_block` with the
//!   default settings;
//! * `format2`: the first encoder of format 2 (`ipv4`, shared-prefix and derived columns,
//!   with names listed in a derivation), from [`format2_fixture_spans`] the same way.

use super::*;
use object_store::local::LocalFileSystem;

/// The spans the fixture was written from (`realistic_spans(7, 600, …)`; the generator is
/// unchanged since).
fn fixture_spans() -> Vec<Span> {
    realistic_spans(7, 600, UnixNanos(1_700_000_000_000_000_000))
}

/// The spans of the `format1-plain-strings` fixture: the generator's, with a 32-digit hex
/// request ID on every third span, so that the file has a `hex` column.
fn hex_fixture_spans() -> Vec<Span> {
    let mut spans = fixture_spans();
    for (i, s) in spans.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        let id = (i as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C834);
        s.attributes.push(KeyValue::new(
            "request.id",
            AttributeValue::String(format!("{id:032x}").into()),
        ));
    }
    spans
}

/// The spans of the `format2` fixture: [`hex_fixture_spans`] and the derived-column test's
/// spans, whose span names are frequent enough to be listed in derivations.
fn format2_fixture_spans() -> Vec<Span> {
    let mut spans = hex_fixture_spans();
    spans.extend(super::derived::spans());
    spans
}

fn fixture_store(name: &str) -> LocalFileSystem {
    let dir = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    LocalFileSystem::new_with_prefix(dir).unwrap()
}

#[test]
fn a_block_from_the_dictionary_string_encoder_reads_back_exactly() {
    reads_back_exactly("format1-dictionary-strings", fixture_spans());
}

#[test]
fn a_block_from_the_last_format_1_encoder_reads_back_exactly() {
    reads_back_exactly("format1-plain-strings", hex_fixture_spans());
}

#[test]
fn a_block_from_the_first_format_2_encoder_reads_back_exactly() {
    reads_back_exactly("format2", format2_fixture_spans());
}

fn reads_back_exactly(fixture: &str, spans: Vec<Span>) {
    let store = fixture_store(fixture);
    let metas = rt().block_on(list_blocks(&store, &root())).unwrap();
    assert_eq!(metas.len(), 1);
    let meta = &metas[0];
    assert_eq!(meta.span_count, spans.len() as u64);
    let back = rt().block_on(read_all(&store, &root(), meta)).unwrap();
    assert_eq!(sorted(back), sorted(spans.clone()));

    // The same spans written now give the same answers to queries.
    let now_store = InMemory::new();
    let now_meta = rt()
        .block_on(write_block(
            &now_store,
            &root(),
            spans.clone(),
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap();
    let some = &spans[spans.len() / 2];
    let route = some
        .attributes
        .iter()
        .find(|kv| matches!(kv.value, AttributeValue::String(_)))
        .expect("a string attribute");
    let q = SpanQuery {
        service: Some(some.service_name().to_owned()),
        tags: vec![(route.key.to_string(), route.value.to_text())],
        start: meta.min_start,
        end: meta.max_start,
        limit: 1_000,
        ..SpanQuery::default()
    };
    let old_hits = rt().block_on(search(&store, &root(), meta, &q)).unwrap();
    let new_hits = rt()
        .block_on(search(&now_store, &root(), &now_meta, &q))
        .unwrap();
    assert!(!old_hits.is_empty());
    assert_eq!(old_hits, new_hits);

    let window = (UnixNanos(0), UnixNanos(u64::MAX));
    let mut old_edges = BTreeMap::new();
    rt().block_on(dependencies(
        &store,
        &root(),
        meta,
        window.0,
        window.1,
        &mut old_edges,
    ))
    .unwrap();
    let mut new_edges = BTreeMap::new();
    rt().block_on(dependencies(
        &now_store,
        &root(),
        &now_meta,
        window.0,
        window.1,
        &mut new_edges,
    ))
    .unwrap();
    assert!(!old_edges.is_empty());
    assert_eq!(old_edges, new_edges);
}
