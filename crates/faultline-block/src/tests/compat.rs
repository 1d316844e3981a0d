//! Blocks written by earlier builds stay readable: a fixture written by the encoder as it was
//! at `eeecea1` (string attribute columns as Arrow dictionaries, no `hex` columns), from the
//! same deterministic generator, must read back as exactly the spans it was written from, and
//! answer searches and dependencies as a block written now does.

use super::*;
use object_store::local::LocalFileSystem;

/// The spans the fixture was written from (`realistic_spans(7, 600, …)`; the generator is
/// unchanged since).
fn fixture_spans() -> Vec<Span> {
    realistic_spans(7, 600, UnixNanos(1_700_000_000_000_000_000))
}

fn fixture_store() -> LocalFileSystem {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/format1-dictionary-strings"
    );
    LocalFileSystem::new_with_prefix(dir).unwrap()
}

#[test]
fn a_block_from_the_previous_encoder_reads_back_exactly() {
    let store = fixture_store();
    let metas = rt().block_on(list_blocks(&store, &root())).unwrap();
    assert_eq!(metas.len(), 1);
    let meta = &metas[0];
    let spans = fixture_spans();
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
        tags: vec![(route.key.clone(), route.value.to_text())],
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
