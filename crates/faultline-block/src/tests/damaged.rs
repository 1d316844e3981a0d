//! Damaged data files give errors, never panics.

use super::*;

async fn read_everything(
    store: &dyn ObjectStore,
    meta: &BlockMeta,
    spans: &[Span],
) -> Result<(), BlockError> {
    read_all(store, &root(), meta).await?;
    read_traces(store, &root(), meta, &[spans[0].trace_id]).await?;
    let q = SpanQuery {
        tags: vec![("http.route".into(), "x".into())],
        start: meta.min_start,
        end: meta.max_start,
        limit: 5,
        ..Default::default()
    };
    search(store, &root(), meta, &q).await?;
    dependencies(
        store,
        &root(),
        meta,
        meta.min_start,
        meta.max_start,
        &mut BTreeMap::new(),
    )
    .await
}

#[test]
fn corrupt_and_truncated_files_are_errors() {
    let rt = rt();
    let (store, spans, meta) = realistic_block(600, &small_settings());
    let path = data_path(&root(), &meta.id);
    let good = rt.block_on(async { store.get(&path).await.unwrap().bytes().await.unwrap() });
    rt.block_on(read_everything(&store, &meta, &spans)).unwrap();

    let mut rng = crate::testgen::Rng::new(3);
    let mut variants: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"PAR1".to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..good.len() - 1].to_vec(),
    ];
    for _ in 0..60 {
        let mut v = good.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(v.len() as u64) as usize;
            v[at] ^= 1 << rng.below(8);
        }
        variants.push(v);
    }
    // Flips in the footer region hit the metadata and page index rather than page data.
    for _ in 0..60 {
        let mut v = good.to_vec();
        let tail = v.len().min(4096);
        let at = v.len() - 1 - rng.below(tail as u64) as usize;
        v[at] = rng.next() as u8;
        variants.push(v);
    }
    let mut errors = 0;
    for v in variants {
        rt.block_on(store.put(&path, PutPayload::from(v))).unwrap();
        // Must not panic; most variants fail, some flips land in unread padding or values.
        if rt.block_on(read_everything(&store, &meta, &spans)).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 20, "only {errors} damaged files were noticed");
    rt.block_on(store.delete(&path)).unwrap();
    assert!(matches!(
        rt.block_on(read_all(&store, &root(), &meta)),
        Err(BlockError::ObjectStore(_))
    ));
}

#[test]
fn bad_settings_are_errors() {
    let store = InMemory::new();
    let spans = realistic_spans(1, 10, UnixNanos(1));
    for settings in [
        BlockSettings {
            zstd_level: 99,
            ..Default::default()
        },
        BlockSettings {
            row_group_rows: 0,
            ..Default::default()
        },
    ] {
        let r = rt().block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            BlockInfo::default(),
            &settings,
        ));
        assert!(matches!(r, Err(BlockError::Settings(_))));
    }
}
