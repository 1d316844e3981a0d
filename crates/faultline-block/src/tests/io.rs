//! Lookups fetch only a fraction of the file.

use super::*;

/// Counts the bytes served by `get` requests.
#[derive(Debug, Default)]
struct CountingStore {
    inner: InMemory,
    bytes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

impl CountingStore {
    fn take(&self) -> u64 {
        self.bytes.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let got = self.inner.get_opts(location, options).await?;
        self.bytes.fetch_add(
            got.range.end - got.range.start,
            std::sync::atomic::Ordering::SeqCst,
        );
        Ok(got)
    }
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        // Counted as requested: the default implementation would coalesce nearby ranges,
        // which is a store's transfer policy, not what the reader asked for.
        let n: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        self.bytes.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[test]
fn trace_lookup_reads_a_fraction_of_the_file() {
    let rt = rt();
    let store = CountingStore::default();
    let spans = realistic_spans(11, 50_000, UnixNanos(1_700_000_000_000_000_000));
    let settings = BlockSettings {
        data_page_row_limit: 2_000,
        ..Default::default()
    };
    let meta = rt
        .block_on(write_block(
            &store,
            &root(),
            spans.clone(),
            BlockInfo::default(),
            &settings,
        ))
        .unwrap();
    let traces = by_trace(&spans);
    let id = *traces.keys().nth(traces.len() / 2).unwrap();
    store.take();
    let got = rt
        .block_on(read_traces(&store, &root(), &meta, &[id]))
        .unwrap();
    assert_eq!(sorted(got), sorted(traces[&id].clone()));
    let read = store.take();
    eprintln!("one trace: read {read} of {} bytes", meta.data_bytes);
    assert!(
        read * 5 < meta.data_bytes,
        "read {read} of {} bytes for one trace",
        meta.data_bytes
    );
    // IDs the bloom filter rules out cost no request at all.
    let absent = TraceId([0x5a; 16]);
    if !meta.may_contain_trace(&absent) {
        assert!(rt
            .block_on(read_traces(&store, &root(), &meta, &[absent]))
            .unwrap()
            .is_empty());
        assert_eq!(store.take(), 0);
    }
    // Search reads a subset of the columns.
    let q = SpanQuery {
        service: Some("svc-01".into()),
        start: meta.min_start,
        end: meta.max_start,
        limit: 10,
        ..Default::default()
    };
    let hits = rt.block_on(search(&store, &root(), &meta, &q)).unwrap();
    assert_eq!(hits, model_search(&spans, &q));
    let read = store.take();
    eprintln!("service search: read {read} of {} bytes", meta.data_bytes);
    assert!(
        read * 3 < meta.data_bytes,
        "search read {read} of {}",
        meta.data_bytes
    );
}

#[test]
fn cached_footers_skip_the_footer_fetch_and_stay_within_budget() {
    let rt = rt();
    let store = CountingStore::default();
    let spans = realistic_spans(13, 5_000, UnixNanos(1_700_000_000_000_000_000));
    let settings = BlockSettings {
        data_page_row_limit: 500,
        ..Default::default()
    };
    let mut metas = Vec::new();
    for part in spans.chunks(1_700) {
        let meta = rt.block_on(write_block(
            &store,
            &root(),
            part.to_vec(),
            BlockInfo::default(),
            &settings,
        ));
        metas.push(meta.unwrap());
    }
    let traces = by_trace(&spans);
    let id = *traces.keys().next().unwrap();
    let meta = metas.iter().find(|m| m.may_contain_trace(&id)).unwrap();
    let cache = FooterCache::new(64 << 20);

    store.take();
    let cold = rt.block_on(read_traces_cached(&store, &root(), meta, &[id], &cache));
    let cold_bytes = store.take();
    let warm = rt.block_on(read_traces_cached(&store, &root(), meta, &[id], &cache));
    let warm_bytes = store.take();
    let uncached = rt.block_on(read_traces(&store, &root(), meta, &[id]));
    assert_eq!(cold.unwrap(), uncached.unwrap());
    assert_eq!(sorted(warm.unwrap()), sorted(traces[&id].clone()));
    assert!(
        warm_bytes < cold_bytes,
        "warm read {warm_bytes} bytes, cold {cold_bytes}"
    );
    assert_eq!(cache.len(), 1);
    let one_footer = cache.bytes();
    assert!(one_footer > 0);

    // Search and dependencies use (and fill) the same cache.
    let q = SpanQuery {
        service: Some("svc-01".into()),
        end: UnixNanos(u64::MAX),
        limit: 10,
        ..Default::default()
    };
    for m in &metas {
        let got = rt.block_on(search_cached(&store, &root(), m, &q, &cache));
        assert_eq!(
            got.unwrap(),
            rt.block_on(search(&store, &root(), m, &q)).unwrap()
        );
    }
    assert_eq!(cache.len(), metas.len());
    let mut edges = BTreeMap::new();
    let all = (UnixNanos(0), UnixNanos(u64::MAX));
    rt.block_on(dependencies_cached(
        &store,
        &root(),
        &metas[0],
        all,
        &mut edges,
        &cache,
    ))
    .unwrap();
    cache.remove(&metas[0].id);
    assert_eq!(cache.len(), metas.len() - 1);

    // A budget of about one footer keeps only the most recently used one.
    let small = FooterCache::new(one_footer + one_footer / 2);
    for m in &metas {
        rt.block_on(search_cached(&store, &root(), m, &q, &small))
            .unwrap();
    }
    assert_eq!(small.len(), 1);
    assert!(small.bytes() <= one_footer + one_footer / 2);
    // A budget of zero caches nothing.
    let none = FooterCache::new(0);
    rt.block_on(search_cached(&store, &root(), &metas[0], &q, &none))
        .unwrap();
    assert!(none.is_empty());
}
