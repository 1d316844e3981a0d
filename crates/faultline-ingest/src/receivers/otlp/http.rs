//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs` with a protobuf or JSON body, optionally
//! gzip-compressed.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;

use super::body::{gunzip, read_body_within};
use crate::pipeline::{run_blocking, ExportOutcome, Payload, INLINE_PAYLOAD_BYTES};
use crate::wire::HttpEncoding;
use crate::{IngestError, IngestState};

/// The path OTLP/HTTP exporters send traces to.
pub const TRACES_PATH: &str = "/v1/traces";

/// The path OTLP/HTTP exporters send logs to.
pub const LOGS_PATH: &str = "/v1/logs";

/// A router answering `POST /v1/traces` and `POST /v1/logs`; merge it into the server's
/// OTLP/HTTP listener.
pub fn http_router(state: IngestState) -> Router {
    Router::new()
        .route(TRACES_PATH, post(export_traces))
        .route(LOGS_PATH, post(export_logs))
        .with_state(state)
}

/// Which signal an export carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    Traces,
    Logs,
}

async fn export_traces(State(state): State<IngestState>, request: Request) -> Response {
    export(state, request, Signal::Traces).await
}

async fn export_logs(State(state): State<IngestState>, request: Request) -> Response {
    export(state, request, Signal::Logs).await
}

async fn export(state: IngestState, request: Request, signal: Signal) -> Response {
    // Until the content type is known, errors are written as JSON: readable by people and
    // by any client.
    let mut encoding = HttpEncoding::Json;
    let result = handle(&state, request, &mut encoding, signal).await;
    match result {
        Ok(outcome) => success_response(&outcome, encoding, signal),
        Err(err) => {
            state.record_failure(&err);
            tracing::debug!(error = %err, "OTLP/HTTP export refused");
            err.to_http_response(encoding)
        }
    }
}

async fn handle(
    state: &IngestState,
    request: Request,
    encoding: &mut HttpEncoding,
    signal: Signal,
) -> Result<ExportOutcome, IngestError> {
    state.count_request();
    let (parts, body) = request.into_parts();
    *encoding = payload_encoding_of(&parts.headers)?;
    let _permit = state.admit()?;
    let gzip = is_gzip(&parts.headers)?;
    let limit = state.config().max_request_bytes;
    let timeout = state.config().body_timeout_secs;
    let body = read_body_within(body, &parts.headers, limit, timeout).await?;
    let body = match gzip {
        false => body,
        true if body.len() <= INLINE_PAYLOAD_BYTES / 8 => gunzip(&body, limit)?,
        // Decompressing megabytes would stall the async worker; see `run_blocking`.
        true => run_blocking(move || gunzip(&body, limit)).await??,
    };
    let payload = match encoding {
        HttpEncoding::Protobuf => Payload::Protobuf(body),
        HttpEncoding::Json => Payload::Json(body),
    };
    match signal {
        Signal::Traces => state.export(payload).await,
        Signal::Logs => state.export_logs(payload).await,
    }
}

/// The body encoding named by `Content-Type`, ignoring parameters such as `charset`.
fn payload_encoding_of(headers: &HeaderMap) -> Result<HttpEncoding, IngestError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let media_type = raw.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/x-protobuf")
        || media_type.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(HttpEncoding::Protobuf)
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Ok(HttpEncoding::Json)
    } else {
        Err(IngestError::UnsupportedContentType(quoted(&raw)))
    }
}

/// Whether `Content-Encoding` asks for gzip; `identity` and no header mean no compression.
fn is_gzip(headers: &HeaderMap) -> Result<bool, IngestError> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let Some(value) = values.next() else {
        return Ok(false);
    };
    if values.next().is_some() {
        // Several codings were applied in turn; gzip alone is supported.
        return Err(IngestError::UnsupportedContentEncoding(
            "several Content-Encoding headers".to_owned(),
        ));
    }
    let raw = String::from_utf8_lossy(value.as_bytes());
    let coding = raw.trim();
    if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
        Ok(true)
    } else if coding.is_empty() || coding.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else {
        Err(IngestError::UnsupportedContentEncoding(quoted(&raw)))
    }
}

/// A header value to quote in an error message, cut so that a client cannot make the answer
/// echo kilobytes back.
fn quoted(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", value.get(..cut).unwrap_or_default()),
        None => value.to_owned(),
    }
}

fn success_response(outcome: &ExportOutcome, encoding: HttpEncoding, signal: Signal) -> Response {
    let body = match (encoding, signal) {
        // A fully successful export answers `{}` rather than `{"partialSuccess":null}`.
        (HttpEncoding::Json, _) if outcome.rejected == 0 => b"{}".to_vec(),
        (HttpEncoding::Protobuf, Signal::Traces) => outcome.to_response().encode_to_vec(),
        (HttpEncoding::Protobuf, Signal::Logs) => outcome.to_logs_response().encode_to_vec(),
        (HttpEncoding::Json, Signal::Traces) => {
            serde_json::to_vec(&outcome.to_response()).unwrap_or_else(|_| b"{}".to_vec())
        }
        (HttpEncoding::Json, Signal::Logs) => {
            serde_json::to_vec(&outcome.to_logs_response()).unwrap_or_else(|_| b"{}".to_vec())
        }
    };
    ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use reqwest::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::test_support::*;
    use crate::wire::RpcStatus;
    use crate::IngestConfig;

    const PROTOBUF: &str = "application/x-protobuf";
    const JSON: &str = "application/json";

    struct Answer {
        status: StatusCode,
        content_type: String,
        retry_after: Option<String>,
        body: Bytes,
    }

    impl Answer {
        fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("JSON body")
        }

        fn rpc_status(&self) -> RpcStatus {
            assert_eq!(self.content_type, PROTOBUF);
            RpcStatus::decode(self.body.clone()).expect("google.rpc.Status body")
        }

        fn response(&self) -> ExportTraceServiceResponse {
            assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
            assert_eq!(self.content_type, PROTOBUF);
            ExportTraceServiceResponse::decode(self.body.clone()).expect("response decodes")
        }
    }

    async fn post(
        addr: SocketAddr,
        content_type: &str,
        encoding: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut request = reqwest::Client::new()
            .post(format!("http://{addr}{TRACES_PATH}"))
            .header("content-type", content_type);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.body(body).send().await.expect("request sent");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().expect("ascii header").to_owned())
        };
        Answer {
            status: response.status(),
            content_type: header("content-type").unwrap_or_default(),
            retry_after: header("retry-after"),
            body: response.bytes().await.expect("body"),
        }
    }

    /// Posts `body` with chunked transfer encoding (no Content-Length) over a raw connection
    /// and returns the status code.
    async fn post_chunked(addr: SocketAddr, body: &[u8]) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {TRACES_PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {PROTOBUF}\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        for chunk in body.chunks(4096) {
            let frame = format!("{:x}\r\n", chunk.len());
            // The server may answer and close before the whole body is sent.
            if stream.write_all(frame.as_bytes()).await.is_err()
                || stream.write_all(chunk).await.is_err()
                || stream.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        text.split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"))
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("compress");
        encoder.finish().expect("compress")
    }

    async fn server(config: IngestConfig) -> (TestStore, IngestState, SocketAddr) {
        let store = test_store(usize::MAX).await;
        let state = state(&store, config);
        let addr = serve_http(state.clone()).await;
        (store, state, addr)
    }

    #[tokio::test]
    async fn protobuf_and_gzip_exports_are_stored() {
        let (store, state, addr) = server(IngestConfig::default()).await;
        let sent = trace_request(1);
        let answer = post(addr, PROTOBUF, None, sent.encode_to_vec()).await;
        assert_eq!(answer.response().partial_success, None);
        assert_stored(&store.store, 1, &sent).await;

        let sent = trace_request(2);
        let answer = post(addr, PROTOBUF, Some("gzip"), gzip(&sent.encode_to_vec())).await;
        assert_eq!(answer.response().partial_success, None);
        assert_stored(&store.store, 2, &sent).await;

        let sent = trace_request(3);
        let answer = post(addr, PROTOBUF, Some("identity"), sent.encode_to_vec()).await;
        assert_eq!(answer.response().partial_success, None);
        assert_stored(&store.store, 3, &sent).await;

        let stats = state.stats().snapshot();
        assert_eq!((stats.requests, stats.spans_accepted), (3, 9));
    }

    #[tokio::test]
    async fn json_exports_are_stored_and_answered_in_json() {
        let (store, _state, addr) = server(IngestConfig::default()).await;
        let sent = trace_request(1);
        let body = otlp_json(&sent).to_string();
        let answer = post(addr, "application/json; charset=utf-8", None, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.content_type, JSON);
        assert_eq!(answer.json(), json!({}));
        assert_stored(&store.store, 1, &sent).await;

        let sent = trace_request(2);
        let body = gzip(otlp_json(&sent).to_string().as_bytes());
        let answer = post(addr, JSON, Some("gzip"), body).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_stored(&store.store, 2, &sent).await;
    }

    #[tokio::test]
    async fn partial_success_in_both_encodings() {
        let (store, _state, addr) = server(IngestConfig::default()).await;
        let good = span(4, 1, None);
        let mut bad = span(4, 2, None);
        bad.span_id = vec![1, 2, 3];
        let sent = request(vec![good.clone(), bad]);

        let answer = post(addr, PROTOBUF, None, sent.encode_to_vec()).await;
        let partial = answer.response().partial_success.expect("partial success");
        assert_eq!(partial.rejected_spans, 1);
        assert!(partial.error_message.contains("span_id"), "{partial:?}");

        let answer = post(addr, JSON, None, otlp_json(&sent).to_string()).await;
        assert_eq!(answer.status, StatusCode::OK);
        let body = answer.json();
        assert_eq!(body["partialSuccess"]["rejectedSpans"], json!(1), "{body}");
        let message = body["partialSuccess"]["errorMessage"]
            .as_str()
            .expect("message");
        assert!(message.contains("span_id"), "{message}");

        // The valid span was stored (twice sent, so twice stored: OTLP has no deduplication).
        let id = faultline_model::TraceId::from_bytes(&trace_id(4)).expect("id");
        let trace = store.store.trace(id).await.expect("query").expect("stored");
        assert!(trace
            .spans
            .iter()
            .all(|s| s.span_id.0.as_slice() == good.span_id));
    }

    #[tokio::test]
    async fn empty_requests_succeed() {
        let (_store, _state, addr) = server(IngestConfig::default()).await;
        let answer = post(addr, PROTOBUF, None, Vec::new()).await;
        assert_eq!(answer.response().partial_success, None);
        let answer = post(addr, JSON, None, "{}").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json(), json!({}));
        let answer = post(addr, JSON, None, r#"{"resourceSpans":[]}"#).await;
        assert_eq!(answer.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn unsupported_types_and_encodings_are_415() {
        let (store, state, addr) = server(IngestConfig::default()).await;
        let body = trace_request(5).encode_to_vec();
        for content_type in [
            "text/plain",
            "application/xml",
            "",
            "application/x-protobufx",
        ] {
            let answer = post(addr, content_type, None, body.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{content_type:?}"
            );
            let message = answer.json()["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(message.contains("application/x-protobuf"), "{message}");
        }
        let long_type = format!("application/{}", "x".repeat(10_000));
        let answer = post(addr, &long_type, None, body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(answer.body.len() < 500, "the header is not echoed whole");
        for encoding in ["br", "deflate", "gzip, br"] {
            let answer = post(addr, PROTOBUF, Some(encoding), body.clone()).await;
            assert_eq!(
                answer.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{encoding}"
            );
            assert!(answer.rpc_status().message.contains("gzip"));
        }
        let answer = post(addr, PROTOBUF, None, body.clone()).await;
        assert_eq!(answer.status, StatusCode::OK, "still serving");
        assert_stored(&store.store, 5, &trace_request(5)).await;
        assert_eq!(state.stats().snapshot().malformed_requests, 8);
    }

    #[test]
    fn stacked_content_encodings_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONTENT_ENCODING, "gzip".parse().expect("header"));
        assert!(matches!(is_gzip(&headers), Ok(true)));
        headers.append(header::CONTENT_ENCODING, "br".parse().expect("header"));
        assert!(matches!(
            is_gzip(&headers),
            Err(IngestError::UnsupportedContentEncoding(_))
        ));
    }

    #[tokio::test]
    async fn malformed_payloads_are_400_with_a_status_body() {
        let (store, _state, addr) = server(IngestConfig::default()).await;
        let valid = trace_request(6).encode_to_vec();
        let cases: [(&str, &str, Vec<u8>); 6] = [
            ("truncated protobuf", PROTOBUF, valid[..valid.len() - 7].to_vec()),
            ("garbage protobuf", PROTOBUF, vec![0xff; 100]),
            ("invalid JSON", JSON, b"{\"resourceSpans\": [".to_vec()),
            ("JSON of the wrong shape", JSON, b"{\"resourceSpans\": 5}".to_vec()),
            ("non-hex trace ID", JSON, br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0102030405060708"}]}]}]}"#.to_vec()),
            ("odd-length hex ID", JSON, br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abc","spanId":"0102030405060708"}]}]}]}"#.to_vec()),
        ];
        for (what, content_type, body) in cases {
            let answer = post(addr, content_type, None, body).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{what}");
            assert!(answer.retry_after.is_none(), "{what} is not retryable");
            let message = if content_type == JSON {
                assert_eq!(answer.content_type, JSON);
                let body = answer.json();
                assert_eq!(body["code"], json!(3), "{what}: INVALID_ARGUMENT");
                body["message"].as_str().unwrap_or_default().to_owned()
            } else {
                answer.rpc_status().message
            };
            assert!(message.contains("OTLP"), "{what}: {message}");
        }
        let answer = post(addr, PROTOBUF, Some("gzip"), b"not gzip at all".to_vec()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.rpc_status().message.contains("gzip"));

        let answer = post(addr, PROTOBUF, None, valid).await;
        assert_eq!(answer.status, StatusCode::OK, "still serving");
        assert_stored(&store.store, 6, &trace_request(6)).await;
    }

    #[tokio::test]
    async fn oversized_bodies_and_gzip_bombs_are_413() {
        let config = IngestConfig {
            max_request_bytes: 64 * 1024,
            ..IngestConfig::default()
        };
        let (store, _state, addr) = server(config).await;
        let mut big = span(7, 1, None);
        big.attributes
            .push(kv("payload", Value::StringValue("x".repeat(100 * 1024))));
        let big = request(vec![big]).encode_to_vec();

        let answer = post(addr, PROTOBUF, None, big.clone()).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(answer.rpc_status().message.contains("65536"));

        // A stream has no Content-Length, so the limit must hold while reading.
        assert_eq!(post_chunked(addr, &big).await, 413);

        // 32 MiB of zeroes compress to about 32 kB, under the limit as sent; only bounded
        // decompression stops it.
        let bomb = {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
            let zeroes = vec![0u8; 1024 * 1024];
            for _ in 0..32 {
                encoder.write_all(&zeroes).expect("compress");
            }
            encoder.finish().expect("compress")
        };
        assert!(bomb.len() < 64 * 1024);
        let answer = post(addr, PROTOBUF, Some("gzip"), bomb).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(answer.rpc_status().message.contains("decompresses"));

        let answer = post(addr, PROTOBUF, Some("gzip"), gzip(&big)).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

        let answer = post(addr, PROTOBUF, None, trace_request(8).encode_to_vec()).await;
        assert_eq!(answer.status, StatusCode::OK, "still serving");
        assert_stored(&store.store, 8, &trace_request(8)).await;
    }

    #[tokio::test]
    async fn hostile_values_are_cut_or_refused_and_server_keeps_serving() {
        let (store, _state, addr) = server(IngestConfig::default()).await;

        // A 4 MiB attribute is accepted, cut to the configured length.
        let mut huge = span(9, 1, None);
        huge.attributes
            .push(kv("blob", Value::StringValue("y".repeat(4 * 1024 * 1024))));
        let answer = post(addr, PROTOBUF, None, request(vec![huge]).encode_to_vec()).await;
        assert_eq!(answer.response().partial_success, None);
        let id = faultline_model::TraceId::from_bytes(&trace_id(9)).expect("id");
        let trace = store.store.trace(id).await.expect("query").expect("stored");
        match trace.spans[0].attribute("blob") {
            Some(faultline_model::AttributeValue::String(v)) => assert_eq!(
                v.len(),
                IngestConfig::default().limits.max_attribute_value_len
            ),
            other => panic!("unexpected {other:?}"),
        }

        // kvlist values nested 1000 deep, in both encodings.
        let mut json_value = String::from(r#"{"stringValue":"leaf"}"#);
        let mut proto_value = opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(Value::StringValue("leaf".into())),
        };
        for _ in 0..1000 {
            json_value =
                format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{json_value}}}]}}}}"#);
            proto_value = opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(Value::KvlistValue(
                    opentelemetry_proto::tonic::common::v1::KeyValueList {
                        values: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                            key: "k".into(),
                            value: Some(proto_value),
                            ..Default::default()
                        }],
                    },
                )),
            };
        }
        let json_body = format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{{"key":"deep","value":{json_value}}}]}}]}}]}}]}}"#
        );
        let answer = post(addr, JSON, None, json_body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("recursion limit")));
        let mut deep = span(10, 1, None);
        deep.attributes
            .push(opentelemetry_proto::tonic::common::v1::KeyValue {
                key: "deep".into(),
                value: Some(proto_value),
                ..Default::default()
            });
        let answer = post(addr, PROTOBUF, None, request(vec![deep]).encode_to_vec()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.rpc_status().message.contains("recursion"));

        let answer = post(addr, PROTOBUF, None, trace_request(11).encode_to_vec()).await;
        assert_eq!(answer.status, StatusCode::OK, "still serving");
    }

    #[tokio::test]
    async fn stalled_bodies_time_out_and_free_their_slot() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (_store, state, addr) = server(IngestConfig {
            max_concurrent_requests: 1,
            body_timeout_secs: 1,
            ..IngestConfig::default()
        })
        .await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {TRACES_PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {PROTOBUF}\r\n\
             content-length: 1000\r\n\r\n0123456789"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        // The rest of the body never comes; the server must answer on its own.
        let mut response = vec![0u8; 12];
        stream.read_exact(&mut response).await.expect("answer");
        assert_eq!(&response, b"HTTP/1.1 408");
        let answer = post(addr, JSON, None, "{}").await;
        assert_eq!(answer.status, StatusCode::OK, "slot was freed");
        assert_eq!(state.stats().snapshot().malformed_requests, 1);
    }

    #[tokio::test]
    async fn overloaded_store_answers_429_with_retry_after() {
        let store = test_store(1).await;
        let state = state(&store, IngestConfig::default());
        let addr = serve_http(state.clone()).await;
        let mut refused = None;
        for seed in 0..100 {
            let answer = post(addr, PROTOBUF, None, trace_request(seed).encode_to_vec()).await;
            if answer.status != StatusCode::OK {
                refused = Some(answer);
                break;
            }
        }
        let answer = refused.expect("a one-byte budget must refuse appends");
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        let secs: u64 = answer
            .retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!(secs >= 1);
        assert_eq!(
            answer.rpc_status().code,
            tonic::Code::ResourceExhausted as i32
        );
        assert_eq!(state.stats().snapshot().overload_rejections, 1);
    }

    #[tokio::test]
    async fn stopped_store_answers_503_with_retry_after() {
        let (store, _state, addr) = server(IngestConfig::default()).await;
        store.store.shutdown().await.expect("shutdown");
        let answer = post(addr, JSON, None, otlp_json(&trace_request(1)).to_string()).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.retry_after.is_some());
        assert_eq!(
            answer.json()["code"],
            json!(tonic::Code::Unavailable as i32)
        );
    }

    #[tokio::test]
    async fn busy_receivers_answer_429() {
        let (_store, state, addr) = server(IngestConfig {
            max_concurrent_requests: 1,
            ..IngestConfig::default()
        })
        .await;
        // Hold the only slot, as a slow request would.
        let permit = state.admit().expect("free slot");
        let answer = post(addr, JSON, None, "{}").await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.retry_after.as_deref(), Some("1"));
        drop(permit);
        let answer = post(addr, JSON, None, "{}").await;
        assert_eq!(answer.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn only_post_is_allowed() {
        let (_store, _state, addr) = server(IngestConfig::default()).await;
        let response = reqwest::get(format!("http://{addr}{TRACES_PATH}"))
            .await
            .expect("request sent");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
