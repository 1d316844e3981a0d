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
