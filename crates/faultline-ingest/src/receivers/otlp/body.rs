//! Reading OTLP/HTTP request bodies within the size limit, before and after decompression.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use flate2::read::MultiGzDecoder;
use futures::StreamExt;

use crate::IngestError;

/// [`read_body`], giving up after `timeout_secs` so that a stalled client frees its slot.
pub(crate) async fn read_body_within(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout_secs: u64,
) -> Result<Bytes, IngestError> {
    tokio::time::timeout(
        Duration::from_secs(timeout_secs),
        read_body(body, headers, limit),
    )
    .await
    .map_err(|_| IngestError::BodyTimeout { secs: timeout_secs })?
}

/// Reads the whole body, refusing it as soon as it is known to be over `limit` bytes: up front
/// from `Content-Length`, or while streaming for chunked bodies.
pub(crate) async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, IngestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(IngestError::BodyTooLarge { limit });
    }
    let mut stream = body.into_data_stream();
    // Most bodies arrive in one frame (an HTTP/2 client often ends the stream with a second,
    // empty one): hand that frame on without copying, and copy only when there are several.
    let mut first = Bytes::new();
    let mut buf: Option<BytesMut> = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| IngestError::BodyRead(e.to_string()))?;
        if chunk.is_empty() {
            continue;
        }
        let len = buf.as_ref().map_or(first.len(), BytesMut::len);
        if len + chunk.len() > limit {
            return Err(IngestError::BodyTooLarge { limit });
        }
        if let Some(buf) = &mut buf {
            buf.extend_from_slice(&chunk);
        } else if first.is_empty() {
            first = chunk;
        } else {
            let capacity = declared
                .map_or((len + chunk.len()) * 2, |declared| declared as usize)
                .min(limit);
            let mut joined = BytesMut::with_capacity(capacity);
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&chunk);
            buf = Some(joined);
        }
    }
    Ok(buf.map_or(first, BytesMut::freeze))
}

/// Decompresses a gzip body (several concatenated members allowed), stopping as soon as the
/// output passes `limit` so that a small "bomb" costs at most `limit` bytes of memory.
pub(crate) fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, IngestError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    MultiGzDecoder::new(body)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(IngestError::InvalidGzip)?;
    if out.len() > limit {
        return Err(IngestError::DecompressedTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).expect("compress");
        encoder.finish().expect("compress")
    }

    #[test]
    fn gunzip_is_bounded_at_exactly_the_limit() {
        let data = vec![7u8; 1000];
        assert_eq!(gunzip(&gzip(&data), 1000).expect("fits").len(), 1000);
        let err = gunzip(&gzip(&data), 999).expect_err("one byte over");
        assert!(
            matches!(err, IngestError::DecompressedTooLarge { limit: 999 }),
            "{err}"
        );
    }

    #[test]
    fn gunzip_reads_concatenated_members_and_refuses_junk() {
        let mut two = gzip(b"hello ");
        two.extend(gzip(b"world"));
        assert_eq!(&gunzip(&two, 100).expect("two members")[..], b"hello world");
        let mut truncated = gzip(b"hello world");
        truncated.truncate(truncated.len() - 4);
        assert!(matches!(
            gunzip(&truncated, 100),
            Err(IngestError::InvalidGzip(_))
        ));
        assert!(matches!(
            gunzip(b"plain text", 100),
            Err(IngestError::InvalidGzip(_))
        ));
    }

    #[tokio::test]
    async fn bodies_are_bounded_with_or_without_a_length() {
        let mut headers = HeaderMap::new();
        let body = read_body(Body::from(vec![1u8; 10]), &headers, 10)
            .await
            .expect("fits");
        assert_eq!(body.len(), 10);
        assert!(matches!(
            read_body(Body::from(vec![1u8; 11]), &headers, 10).await,
            Err(IngestError::BodyTooLarge { limit: 10 })
        ));
        let streamed = || {
            let chunks = (0..5).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"abc")));
            Body::from_stream(futures::stream::iter(chunks))
        };
        let body = read_body(streamed(), &headers, 15).await.expect("fits");
        assert_eq!(&body[..], b"abcabcabcabcabc");
        assert!(matches!(
            read_body(streamed(), &headers, 14).await,
            Err(IngestError::BodyTooLarge { limit: 14 })
        ));
        // Empty frames, such as the one an HTTP/2 client may end the stream with, cost no copy.
        let one = Bytes::from(vec![5u8; 10]);
        let frames = [Bytes::new(), one.clone(), Bytes::new()];
        let body = Body::from_stream(futures::stream::iter(frames.map(Ok::<_, std::io::Error>)));
        let body = read_body(body, &headers, 10).await.expect("fits");
        assert_eq!(body.as_ptr(), one.as_ptr(), "the frame itself, not a copy");
        assert_eq!(body, one);
        // A declared length over the limit is refused before anything is read.
        headers.insert(header::CONTENT_LENGTH, 1_000_000.into());
        assert!(matches!(
            read_body(Body::empty(), &headers, 10).await,
            Err(IngestError::BodyTooLarge { .. })
        ));
    }
}
