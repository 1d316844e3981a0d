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
