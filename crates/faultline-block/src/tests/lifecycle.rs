//! Writing, listing, orphans and deletion.

use super::*;

#[test]
fn list_orphans_and_delete() {
    let rt = rt();
    let store = InMemory::new();
    let spans = realistic_spans(1, 50, UnixNanos(1_000));
    let info = BlockInfo {
        wal_through: 9,
        sources: vec![BlockId("a".into())],
        level: 2,
        edges: None,
    };
    let a = rt
        .block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            info.clone(),
            &BlockSettings::default(),
        ))
        .unwrap();
    let b = rt
        .block_on(write_block(
            &store,
            &root(),
            spans,
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap();
    assert!(a.id < b.id, "UUID v7 IDs sort by creation");
    assert_eq!(
        (a.wal_through, a.sources.clone(), a.level),
        (9, info.sources, 2)
    );
    let listed = rt.block_on(list_blocks(&store, &root())).unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    assert!(rt
        .block_on(list_orphans(&store, &root()))
        .unwrap()
        .is_empty());

    // A crash between data and meta leaves an orphan that list_blocks ignores.
    let orphan = BlockId::new();
    rt.block_on(store.put(
        &data_path(&root(), &orphan),
        PutPayload::from_static(b"partial"),
    ))
    .unwrap();
    // A meta that does not parse does not make a block either.
    let broken = BlockId::new();
    rt.block_on(store.put(&meta_path(&root(), &broken), PutPayload::from_static(b"{")))
        .unwrap();
    assert_eq!(
        rt.block_on(list_blocks(&store, &root())).unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        rt.block_on(list_orphans(&store, &root())).unwrap(),
        vec![orphan.clone()]
    );

    rt.block_on(delete_block(&store, &root(), &a.id)).unwrap();
    rt.block_on(delete_block(&store, &root(), &a.id)).unwrap();
    rt.block_on(delete_block(&store, &root(), &orphan)).unwrap();
    assert_eq!(rt.block_on(list_blocks(&store, &root())).unwrap(), vec![b]);
    assert!(rt
        .block_on(list_orphans(&store, &root()))
        .unwrap()
        .is_empty());
}

/// Spans shared with the writer, as a flushed head shares them.
struct Shared(Vec<Span>);

impl SpanSource for Shared {
    fn spans(&self) -> Vec<&Span> {
        self.0.iter().collect()
    }
}

#[test]
fn spans_given_twice_are_written_once_and_near_copies_are_kept() {
    let rt = rt();
    let spans = realistic_spans(5, 300, UnixNanos(1_000));
    // Near-copies: one field of the identity differs, so each is a span of its own.
    let near: Vec<Span> = spans
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, s)| {
            let mut s = s.clone();
            match i {
                0 => {
                    s.kind = if s.kind == SpanKind::Client {
                        SpanKind::Server
                    } else {
                        SpanKind::Client
                    }
                }
                1 => s.end = UnixNanos(s.end.0 + 1),
                2 => s.name = format!("{}!", s.name).into(),
                _ => s.trace_id.0[0] ^= 1,
            }
            s
        })
        .collect();
    // A head as a retried batch leaves it: every span twice, the copies apart and in another
    // order, plus the near-copies in between.
    let mut given = spans.clone();
    given.extend(near.iter().cloned());
    given.extend(spans.iter().rev().cloned());
    let mut want = spans.clone();
    want.extend(near);
    let store = InMemory::new();
    let source = Arc::new(Shared(given.clone()));
    let from_head = rt
        .block_on(write_block_from(
            &store,
            &root(),
            source,
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap();
    let owned = rt
        .block_on(write_block(
            &store,
            &root(),
            given,
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap();
    let traces = by_trace(&want).len() as u64;
    for meta in [from_head, owned] {
        assert_eq!(meta.span_count, want.len() as u64);
        assert_eq!(meta.trace_count, traces);
        let back = rt.block_on(read_all(&store, &root(), &meta)).unwrap();
        assert_eq!(sorted(back), sorted(want.clone()));
    }
}

#[test]
fn empty_block_is_refused() {
    let store = InMemory::new();
    let err = rt()
        .block_on(write_block(
            &store,
            &root(),
            vec![],
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap_err();
    assert!(matches!(err, BlockError::Empty));
}

#[test]
fn works_on_the_local_filesystem() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    // A root that does not exist yet is simply empty.
    assert!(rt
        .block_on(list_blocks(&store, &root()))
        .unwrap()
        .is_empty());
    assert!(rt
        .block_on(list_orphans(&store, &root()))
        .unwrap()
        .is_empty());
    let spans = realistic_spans(5, 500, UnixNanos(1_000));
    let meta = rt
        .block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            BlockInfo::default(),
            &BlockSettings::default(),
        ))
        .unwrap();
    assert!(dir
        .path()
        .join("blocks")
        .join(&meta.id.0)
        .join(META_FILE)
        .is_file());
    assert_eq!(
        rt.block_on(list_blocks(&store, &root())).unwrap(),
        vec![meta.clone()]
    );
    let back = rt.block_on(read_all(&store, &root(), &meta)).unwrap();
    assert_eq!(sorted(back), sorted(spans.clone()));
    let id = spans[0].trace_id;
    let one = rt
        .block_on(read_traces(&store, &root(), &meta, &[id]))
        .unwrap();
    assert_eq!(one.len(), spans.iter().filter(|s| s.trace_id == id).count());
    rt.block_on(delete_block(&store, &root(), &meta.id))
        .unwrap();
    assert!(rt
        .block_on(list_blocks(&store, &root()))
        .unwrap()
        .is_empty());
    assert!(rt
        .block_on(list_orphans(&store, &root()))
        .unwrap()
        .is_empty());
}
