//! Span and batch generators for tests.

use std::sync::Arc;

use bytes::Bytes;
use faultline_model::{
    AttributeValue, KeyValue, Resource, Span, SpanId, SpanKind, TraceId, UnixNanos,
};
use prost::Message;

use crate::AppendBatch;

/// A span of trace `trace` (a small number made into an ID) with span ID `id`, starting at
/// `start` ns and lasting 1 µs.
pub(crate) fn span(trace: u64, id: u64, start: u64, service: &str, name: &str) -> Span {
    let mut t = [0u8; 16];
    t[8..].copy_from_slice(&trace.to_be_bytes());
    t[0] = 0xab;
    Span {
        trace_id: TraceId(t),
        span_id: SpanId(id.max(1).to_be_bytes()),
        flags: 1,
        name: name.into(),
        kind: SpanKind::Server,
        start: UnixNanos(start),
        end: UnixNanos(start + 1_000),
        attributes: vec![KeyValue::new("n", AttributeValue::Int(id as i64))],
        resource: Arc::new(Resource::for_service(service)),
        ..Default::default()
    }
}

/// Trace `t`, starting at `base` ns, for service dependencies: front (1) → back (2); back
/// calls a database nobody instruments (3, a client span named by `db.system.name`) and the
/// `auth` service (4, a client span naming `auth.internal`), which answers with span 5.
pub(crate) fn calling_trace(t: u64, base: u64) -> Vec<Span> {
    const S: u64 = 1_000_000_000;
    let front = span(t, 1, base, "front", "GET");
    let mut back = span(t, 2, base + S / 10, "back", "handle");
    back.parent_span_id = Some(front.span_id);
    let mut db = span(t, 3, base + S / 5, "back", "SELECT");
    db.parent_span_id = Some(back.span_id);
    db.kind = SpanKind::Client;
    db.attributes.push(KeyValue::new(
        "db.system.name",
        AttributeValue::String("postgresql".into()),
    ));
    let mut call = span(t, 4, base + S / 4, "back", "POST /auth");
    call.parent_span_id = Some(back.span_id);
    call.kind = SpanKind::Client;
    call.attributes.push(KeyValue::new(
        "server.address",
        AttributeValue::String("auth.internal".into()),
    ));
    let mut auth = span(t, 5, base + S / 3, "auth", "check");
    auth.parent_span_id = Some(call.span_id);
    vec![front, back, db, call, auth]
}

/// The trace ID `span(trace, ..)` uses.
pub(crate) fn trace_id(trace: u64) -> TraceId {
    span(trace, 1, 0, "", "").trace_id
}

/// An append batch whose OTLP bytes describe exactly `spans`.
pub(crate) fn batch(spans: Vec<Span>) -> AppendBatch {
    let data = faultline_model::otlp::TracesData {
        resource_spans: faultline_model::otlp::spans_to_otlp(&spans),
    };
    AppendBatch {
        spans,
        otlp: Bytes::from(data.encode_to_vec()),
    }
}

/// An in-memory object store whose writes can be made to fail, to model an unreachable or full
/// block store.
#[derive(Debug, Default)]
pub(crate) struct FlakyStore {
    pub(crate) inner: object_store::memory::InMemory,
    pub(crate) fail_writes: std::sync::atomic::AtomicBool,
    /// Fail only writes of `meta.json`, leaving data files behind as a crash would.
    pub(crate) fail_meta_writes: std::sync::atomic::AtomicBool,
    /// Fail deletes.
    pub(crate) fail_deletes: std::sync::atomic::AtomicBool,
    /// Writes wait while a test holds this lock for writing: a block write then stays in
    /// progress for as long as the test needs.
    pub(crate) hold_writes: tokio::sync::RwLock<()>,
    /// Writes failed so far by `fail_writes`.
    pub(crate) failed_writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlakyStore({})", self.inner)
    }
}

mod flaky {
    use super::FlakyStore;
    use futures::stream::BoxStream;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    };
    use std::sync::atomic::Ordering;

    impl FlakyStore {
        fn check(&self) -> Result<()> {
            if self.fail_writes.load(Ordering::SeqCst) {
                self.failed_writes.fetch_add(1, Ordering::SeqCst);
                return Err(object_store::Error::Generic {
                    store: "flaky",
                    source: "writes are failing".into(),
                });
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for FlakyStore {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> Result<PutResult> {
            let _held = self.hold_writes.read().await;
            self.check()?;
            if self.fail_meta_writes.load(Ordering::SeqCst)
                && location.filename() == Some(faultline_block::META_FILE)
            {
                return Err(object_store::Error::Generic {
                    store: "flaky",
                    source: "meta writes are failing".into(),
                });
            }
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            let _held = self.hold_writes.read().await;
            self.check()?;
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            if self.fail_deletes.load(Ordering::SeqCst) {
                use futures::StreamExt;
                return locations
                    .map(|_| {
                        Err(object_store::Error::Generic {
                            store: "flaky",
                            source: "deletes are failing".into(),
                        })
                    })
                    .boxed();
            }
            self.inner.delete_stream(locations)
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
            self.check()?;
            self.inner.copy_opts(from, to, options).await
        }
    }
}
