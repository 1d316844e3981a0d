//! OTLP/JSON decoding.
//!
//! The `opentelemetry-proto` serde derives implement the OTLP/JSON rules that matter here:
//! lowerCamelCase keys, hex trace and span IDs, 64-bit integers as numbers or strings, enums as
//! integers, unknown keys ignored. The tests below pin each of those rules down, so that a
//! change in the dependency shows up here rather than as data refused in production. Where the
//! derives are stricter than protobuf's JSON mapping (`null` members, enum names, 32-bit
//! integers as strings), a failed parse is retried once with those forms rewritten.

use crate::IngestError;

/// Parses an OTLP/JSON `ExportTraceServiceRequest`.
///
/// `serde_json` refuses input nested deeper than 128 levels, so hostile nesting of array and
/// kvlist values ends in an error, not a stack overflow.
pub(crate) fn decode_request<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, IngestError> {
    // serde also reads a struct from a JSON array of its fields in order; OTLP/JSON is always
    // an object, so anything else is a client bug worth reporting rather than guessing at.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(IngestError::InvalidJson(serde::de::Error::custom(
            "an OTLP/JSON request must be a JSON object",
        )));
    }
    match serde_json::from_slice(body) {
        Ok(request) => Ok(request),
        // The strict parse covers what the spec asks of senders. Protobuf's JSON mapping also
        // lets them write `null` for "not set", enum names, and 32-bit integers as strings; the
        // derives refuse those, so retry once with them rewritten. Only failing requests pay.
        Err(strict) => lenient(body).ok_or(IngestError::InvalidJson(strict)),
    }
}

/// Parses `body` as a JSON tree, rewrites the tolerated forms, and decodes the result; `None`
/// when that fails too (the caller then reports the strict parser's error, which points at the
/// original text).
fn lenient<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    let mut tree: serde_json::Value = serde_json::from_slice(body).ok()?;
    normalise(&mut tree);
    serde_json::from_value(tree).ok()
}

/// Drops `null` members and turns enum names and numeric strings of 32-bit fields into
/// numbers. Recursion is bounded: the parser refuses trees deeper than 128 levels.
fn normalise(value: &mut serde_json::Value) {
    use serde_json::Value as J;
    match value {
        J::Object(members) => {
            members.retain(|_, v| !v.is_null());
            for (key, member) in members.iter_mut() {
                if let J::String(name) = member {
                    if let Some(number) = enum_number(key, name) {
                        *member = J::from(number);
                        continue;
                    }
                }
                normalise(member);
            }
        }
        J::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// The number held by a 32-bit field written as a string: an OTLP trace enum by name, or any
/// 32-bit integer field in decimal (protobuf's JSON mapping allows both).
fn enum_number(key: &str, text: &str) -> Option<i64> {
    use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
    use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
    let by_name = match key {
        "kind" => SpanKind::from_str_name(text).map(|k| k as i32),
        "code" => StatusCode::from_str_name(text).map(|c| c as i32),
        "severityNumber" => SeverityNumber::from_str_name(text).map(|c| c as i32),
        _ => None,
    };
    let numeric = matches!(
        key,
        "kind"
            | "code"
            | "severityNumber"
            | "flags"
            | "droppedAttributesCount"
            | "droppedEventsCount"
            | "droppedLinksCount"
    );
    by_name
        .map(i64::from)
        .or_else(|| numeric.then(|| text.trim().parse::<i64>().ok()).flatten())
}

#[cfg(test)]
mod tests {
    use faultline_model::otlp::{spans_from_otlp, SpanLimits};
    use faultline_model::{AttributeValue, SpanKind, StatusCode};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use proptest::prelude::*;

    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    fn decode(text: &str) -> ExportTraceServiceRequest {
        decode_request::<ExportTraceServiceRequest>(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn one_span(span: &str) -> String {
        format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},"scopeSpans":[{{"scope":{{"name":"lib"}},"spans":[{span}]}}]}}]}}"#
        )
    }

    const IDS: &str = r#""traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174""#;

    #[test]
    fn ids_are_hex_in_either_case() {
        let request = decode(&one_span(&format!(
            r#"{{{IDS},"parentSpanId":"eee19b7ec3c1b173","name":"x"}}"#
        )));
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.parent_span_id[7], 0x73);
    }

    #[test]
    fn sixty_four_bit_integers_may_be_strings_or_numbers() {
        let request = decode(&one_span(&format!(
            r#"{{{IDS},"startTimeUnixNano":"1700000000000000001","endTimeUnixNano":1700000000000000002,
               "attributes":[{{"key":"a","value":{{"intValue":"-9007199254740993"}}}},
                             {{"key":"b","value":{{"intValue":42}}}}],
               "events":[{{"timeUnixNano":"1700000000000000003","name":"e"}}]}}"#
        )));
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(span.end_time_unix_nano, 1_700_000_000_000_000_002);
        assert_eq!(span.events[0].time_unix_nano, 1_700_000_000_000_000_003);
        let ints: Vec<_> = span
            .attributes
            .iter()
            .map(|kv| kv.value.as_ref().and_then(|v| v.value.clone()))
            .collect();
        assert_eq!(
            ints,
            [
                Some(Value::IntValue(-9_007_199_254_740_993)),
                Some(Value::IntValue(42))
            ]
        );
    }

    #[test]
    fn enums_are_integers_and_keys_are_camel_case() {
        let request = decode(&one_span(&format!(
            r#"{{{IDS},"kind":3,"status":{{"code":2,"message":"bad"}},"droppedAttributesCount":4,
               "flags":257,"traceState":"a=b"}}"#
        )));
        let converted = spans_from_otlp(request.resource_spans, &SpanLimits::default());
        let span = &converted.spans[0];
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(span.status.code, StatusCode::Error);
        assert_eq!(span.status.message, "bad");
        assert_eq!(span.dropped_attributes_count, 4);
        assert_eq!(span.flags, 257);
        assert_eq!(span.trace_state, "a=b");
        assert_eq!(span.service_name(), "svc");
    }

    #[test]
    fn unknown_fields_are_ignored_at_every_level() {
        let text = format!(
            r#"{{"resourceSpans":[{{"futureField":1,"resource":{{"x":[1,2],"attributes":[]}},
                "scopeSpans":[{{"scope":{{"name":"lib","y":{{}}}},"z":null,
                "spans":[{{{IDS},"name":"x","newThing":{{"deep":[{{}}]}},
                "attributes":[{{"key":"k","value":{{"stringValue":"v","futureValue":3}},"extra":true}}],
                "status":{{"code":1,"detail":"?"}}}}]}}]}}],"topLevelExtra":"ok"}}"#
        );
        let request = decode(&text);
        let converted = spans_from_otlp(request.resource_spans, &SpanLimits::default());
        assert_eq!(converted.spans.len(), 1);
        assert_eq!(
            converted.spans[0].attribute("k"),
            Some(&AttributeValue::String("v".into()))
        );
    }

    #[test]
    fn every_value_type_decodes() {
        let request = decode(&one_span(&format!(
            r#"{{{IDS},"attributes":[
                {{"key":"s","value":{{"stringValue":"text"}}}},
                {{"key":"b","value":{{"boolValue":true}}}},
                {{"key":"d","value":{{"doubleValue":1.5}}}},
                {{"key":"raw","value":{{"bytesValue":"AQID"}}}},
                {{"key":"arr","value":{{"arrayValue":{{"values":[{{"intValue":"1"}},{{"stringValue":"x"}}]}}}}}},
                {{"key":"kv","value":{{"kvlistValue":{{"values":[{{"key":"in","value":{{"boolValue":false}}}}]}}}}}},
                {{"key":"empty","value":{{}}}}
            ]}}"#
        )));
        let converted = spans_from_otlp(request.resource_spans, &SpanLimits::default());
        let span = &converted.spans[0];
        assert_eq!(
            span.attribute("raw"),
            Some(&AttributeValue::Bytes(vec![1, 2, 3]))
        );
        assert_eq!(span.attribute("d"), Some(&AttributeValue::Double(1.5)));
        assert_eq!(
            span.attribute("arr"),
            Some(&AttributeValue::Array(vec![
                AttributeValue::Int(1),
                AttributeValue::String("x".into())
            ]))
        );
        assert!(
            matches!(span.attribute("kv"), Some(AttributeValue::KvList(kvs)) if kvs.len() == 1)
        );
        assert_eq!(span.attribute("empty"), Some(&AttributeValue::Empty));
    }

    #[test]
    fn ids_of_the_wrong_length_reject_only_their_span() {
        let text = one_span(
            r#"{"traceId":"5b8efff798038103d269b633813fc6","spanId":"eee19b7ec3c1b174"},
               {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b1"},
               {"traceId":"","spanId":"eee19b7ec3c1b174"},
               {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}"#,
        );
        let converted = spans_from_otlp(decode(&text).resource_spans, &SpanLimits::default());
        assert_eq!(converted.spans.len(), 1);
        assert_eq!(converted.rejected, 3);
    }

    #[test]
    fn nulls_and_enum_names_are_tolerated() {
        let request = decode(&one_span(&format!(
            r#"{{{IDS},"parentSpanId":null,"name":"x","kind":"SPAN_KIND_CONSUMER",
               "attributes":null,"events":[{{"name":"e","attributes":null}}],
               "status":{{"code":"STATUS_CODE_ERROR","message":null}},
               "flags":"257","droppedAttributesCount":"2"}}"#
        )));
        let converted = spans_from_otlp(request.resource_spans, &SpanLimits::default());
        let span = &converted.spans[0];
        assert_eq!(span.kind, SpanKind::Consumer);
        assert_eq!(span.status.code, StatusCode::Error);
        assert_eq!(span.parent_span_id, None);
        assert!(span.attributes.is_empty());
        assert_eq!(span.events[0].name, "e");
        assert_eq!(span.flags, 257);
        assert_eq!(span.dropped_attributes_count, 2);
    }

    #[test]
    fn errors_point_at_the_original_text() {
        let text = one_span(r#"{"traceId":"zz","kind":"SPAN_KIND_SERVER"}"#);
        let err =
            decode_request::<ExportTraceServiceRequest>(text.as_bytes()).expect_err("bad hex");
        assert!(err.to_string().contains("column"), "{err}");
        let text = one_span(r#"{"kind":"SPAN_KIND_SIDEWAYS"}"#);
        let err = decode_request::<ExportTraceServiceRequest>(text.as_bytes())
            .expect_err("unknown enum name");
        assert!(err.to_string().contains("column"), "{err}");
    }

    #[test]
    fn malformed_json_is_an_error_that_says_where() {
        for text in [
            "",
            "[]",
            "{\"resourceSpans\":{}}",
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"intValue":"1.5"}}]}]}]}]}"#,
        ] {
            let err = decode_request::<ExportTraceServiceRequest>(text.as_bytes()).expect_err(text);
            assert!(matches!(err, IngestError::InvalidJson(_)), "{text}: {err}");
        }
    }

    /// JSON trees built from OTLP's own keys and plausible values: far likelier than random
    /// bytes to reach the derives' and the fallback's corner cases.
    fn otlp_shaped_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value as J;
        let leaf = prop_oneof![
            Just(J::Null),
            any::<bool>().prop_map(J::from),
            any::<i64>().prop_map(J::from),
            any::<f64>().prop_map(J::from),
            prop::sample::select(vec![
                "",
                "0102030405060708",
                "5b8efff798038103d269b633813fc60c",
                "zz",
                "abc",
                "SPAN_KIND_SERVER",
                "STATUS_CODE_ERROR",
                "18446744073709551616",
                "-1",
                "AQID",
            ])
            .prop_map(J::from),
        ];
        let keys = prop::sample::select(vec![
            "resourceSpans",
            "resource",
            "attributes",
            "scopeSpans",
            "scope",
            "spans",
            "traceId",
            "spanId",
            "parentSpanId",
            "name",
            "kind",
            "startTimeUnixNano",
            "events",
            "links",
            "status",
            "code",
            "flags",
            "droppedAttributesCount",
            "key",
            "value",
            "stringValue",
            "intValue",
            "doubleValue",
            "boolValue",
            "bytesValue",
            "arrayValue",
            "kvlistValue",
            "values",
            "unknown",
        ]);
        leaf.prop_recursive(6, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(J::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| J::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn otlp_shaped_json_never_panics(tree in otlp_shaped_json(), at in 0..4usize) {
            use serde_json::json;
            // Plant the tree at one of the levels where real data lives.
            let span = json!({ "traceId": "5b8efff798038103d269b633813fc60c",
                               "spanId": "0102030405060708", "attributes": [tree.clone()] });
            let wrapped = match at {
                0 => json!({ "resourceSpans": [tree] }),
                1 => json!({ "resourceSpans": [{ "scopeSpans": [tree] }] }),
                2 => json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": [tree] }] }] }),
                _ => json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": [span] }] }] }),
            };
            let body = serde_json::to_vec(&wrapped).expect("serialize");
            if let Ok(request) = decode_request::<ExportTraceServiceRequest>(&body) {
                let _ = spans_from_otlp(request.resource_spans, &SpanLimits::default());
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let depth = 10_000;
        let mut value = String::from(r#"{"stringValue":"leaf"}"#);
        for _ in 0..depth {
            value = format!(r#"{{"kvlistValue":{{"values":[{{"key":"k","value":{value}}}]}}}}"#);
        }
        let text = one_span(&format!(
            r#"{{{IDS},"attributes":[{{"key":"deep","value":{value}}}]}}"#
        ));
        let err =
            decode_request::<ExportTraceServiceRequest>(text.as_bytes()).expect_err("too deep");
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    #[test]
    fn moderate_nesting_is_cut_by_the_depth_limit() {
        let mut value = String::from(r#"{"stringValue":"leaf"}"#);
        for _ in 0..20 {
            value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
        }
        let text = one_span(&format!(
            r#"{{{IDS},"attributes":[{{"key":"deep","value":{value}}}]}}"#
        ));
        let converted = spans_from_otlp(decode(&text).resource_spans, &SpanLimits::default());
        assert!(converted.modified, "nesting past max_value_depth is cut");
        assert_eq!(converted.spans.len(), 1);
    }
}
