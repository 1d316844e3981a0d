//! Differential tests: [`decode_traces`] against the reference path it replaces,
//! `ExportTraceServiceRequest::decode` followed by `spans_from_otlp`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use pc::any_value::Value as V;
use proptest::prelude::*;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

use super::*;
use crate::otlp::spans_from_otlp;
use crate::MAX_INTERNED_LEN;

/// The reference: prost's decode, then the conversion of the prost structs.
fn reference(
    bytes: &[u8],
    limits: &SpanLimits,
) -> std::result::Result<Converted, prost::DecodeError> {
    ExportTraceServiceRequest::decode(bytes).map(|r| spans_from_otlp(r.resource_spans, limits))
}

/// Both paths agree: both fail, or both give the same spans, rejections, errors and
/// `modified`. Spans are compared by their `Debug` form, which is exact but for NaN payloads
/// (random doubles include NaN, which is never equal to itself).
fn agree(bytes: &[u8], limits: &SpanLimits) -> std::result::Result<bool, TestCaseError> {
    let want = reference(bytes, limits);
    let got = decode_traces(bytes, limits);
    match (want, got) {
        (Ok(want), Ok(got)) => {
            prop_assert_eq!(format!("{:?}", got.spans), format!("{:?}", want.spans));
            prop_assert_eq!(got.rejected, want.rejected);
            prop_assert_eq!(&got.errors, &want.errors);
            prop_assert_eq!(got.modified, want.modified);
            Ok(true)
        }
        (Err(_), Err(_)) => Ok(false),
        (want, got) => {
            let want = want.map(|c| c.spans.len());
            let got = got.map(|c| c.spans.len());
            prop_assert!(false, "prost: {want:?}, direct: {got:?}");
            unreachable!()
        }
    }
}

fn check(bytes: &[u8], limits: &SpanLimits) -> bool {
    match agree(bytes, limits) {
        Ok(ok) => ok,
        Err(e) => panic!("{e}"),
    }
}

// ---- requests built from the prost types ----------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    // Multi-byte characters so that length limits cut inside them.
    "[a-zé€😀 ]{0,8}"
}

fn any_value() -> impl Strategy<Value = pc::AnyValue> {
    let leaf = prop_oneof![
        2 => Just(None),
        6 => text().prop_map(|s| Some(V::StringValue(s))),
        2 => any::<bool>().prop_map(|b| Some(V::BoolValue(b))),
        2 => any::<i64>().prop_map(|i| Some(V::IntValue(i))),
        2 => any::<f64>().prop_map(|d| Some(V::DoubleValue(d))),
        2 => proptest::collection::vec(any::<u8>(), 0..10).prop_map(|b| Some(V::BytesValue(b))),
        1 => any::<i32>().prop_map(|i| Some(V::StringValueStrindex(i))),
    ]
    .prop_map(|value| pc::AnyValue { value });
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| pc::AnyValue {
                value: Some(V::ArrayValue(pc::ArrayValue { values })),
            }),
            proptest::collection::vec((text(), proptest::option::of(inner)), 0..4).prop_map(
                |kvs| pc::AnyValue {
                    value: Some(V::KvlistValue(pc::KeyValueList {
                        values: kvs
                            .into_iter()
                            .map(|(key, value)| pc::KeyValue {
                                key,
                                value,
                                key_strindex: 0,
                            })
                            .collect(),
                    })),
                }
            ),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<pc::KeyValue>> {
    proptest::collection::vec((text(), proptest::option::of(any_value()), 0..3i32), 0..5).prop_map(
        |kvs| {
            kvs.into_iter()
                .map(|(key, value, key_strindex)| pc::KeyValue {
                    key,
                    value,
                    key_strindex,
                })
                .collect()
        },
    )
}

/// Mostly valid IDs of `len` bytes; sometimes empty, all-zero or of another length.
fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        12 => proptest::collection::vec(1..=255u8, len),
        1 => Just(Vec::new()),
        1 => Just(vec![0; len]),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

fn event() -> impl Strategy<Value = pt::span::Event> {
    (any::<u64>(), text(), attributes(), 0..3u32).prop_map(
        |(time_unix_nano, name, attributes, dropped_attributes_count)| pt::span::Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count,
        },
    )
}

fn link() -> impl Strategy<Value = pt::span::Link> {
    (id(16), id(8), text(), attributes(), 0..3u32, any::<u32>()).prop_map(
        |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
            pt::span::Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count,
                flags,
            }
        },
    )
}

fn span() -> impl Strategy<Value = pt::Span> {
    (
        (id(16), id(8), id(8), text(), any::<u32>(), text(), -1..7i32),
        (0..100u64, 0..100u64, attributes(), 0..3u32),
        (
            proptest::collection::vec(event(), 0..3),
            0..3u32,
            proptest::collection::vec(link(), 0..3),
            0..3u32,
        ),
        proptest::option::of((text(), -1..4i32)),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent_span_id, trace_state, flags, name, kind),
                (start, end, attributes, dropped_attributes_count),
                (events, dropped_events_count, links, dropped_links_count),
                status,
            )| pt::Span {
                trace_id,
                span_id,
                trace_state,
                parent_span_id,
                flags,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                dropped_attributes_count,
                events,
                dropped_events_count,
                links,
                dropped_links_count,
                status: status.map(|(message, code)| pt::Status { message, code }),
            },
        )
}

fn entity_ref() -> impl Strategy<Value = pc::EntityRef> {
    (text(), text(), proptest::collection::vec(text(), 0..2)).prop_map(
        |(schema_url, r#type, id_keys)| pc::EntityRef {
            schema_url,
            r#type,
            id_keys,
            description_keys: vec!["d".into()],
        },
    )
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let resource = (
        attributes(),
        0..3u32,
        proptest::collection::vec(entity_ref(), 0..2),
    )
        .prop_map(
            |(attributes, dropped_attributes_count, entity_refs)| pr::Resource {
                attributes,
                dropped_attributes_count,
                entity_refs,
            },
        );
    let scope = (text(), text(), attributes(), 0..3u32).prop_map(
        |(name, version, attributes, dropped_attributes_count)| pc::InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count,
        },
    );
    let scope_spans = (
        proptest::option::of(scope),
        proptest::collection::vec(span(), 0..4),
        text(),
    )
        .prop_map(|(scope, spans, schema_url)| pt::ScopeSpans {
            scope,
            spans,
            schema_url,
        });
    let resource_spans = (
        proptest::option::of(resource),
        proptest::collection::vec(scope_spans, 0..3),
        text(),
    )
        .prop_map(|(resource, scope_spans, schema_url)| pt::ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        });
    proptest::collection::vec(resource_spans, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// Default, unlimited, or limits small enough to cut every kind of thing.
fn limits() -> impl Strategy<Value = SpanLimits> {
    prop_oneof![
        Just(SpanLimits::default()),
        Just(SpanLimits::unlimited()),
        (0..12usize, 0..4usize, 0..3usize, 0..3usize, 0..4usize).prop_map(
            |(len, attrs, events, links, depth)| SpanLimits {
                max_attribute_value_len: len,
                max_attributes_per_span: attrs,
                max_events_per_span: events,
                max_links_per_span: links,
                max_value_depth: depth,
            }
        ),
    ]
}

// ---- messages built at the wire level from the schema ---------------------------------------

/// A small deterministic generator (xorshift64*), seeded by proptest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

fn put_len(out: &mut Vec<u8>, tag: u32, body: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn gen_id(rng: &mut Rng, len: usize) -> Vec<u8> {
    match rng.below(12) {
        0 => Vec::new(),
        1 => vec![0; len],
        2 => (0..rng.below(20)).map(|_| rng.next() as u8).collect(),
        _ => (0..len).map(|_| (rng.next() as u8) | 1).collect(),
    }
}

fn gen_text(rng: &mut Rng) -> Vec<u8> {
    const PIECES: [&str; 5] = ["a", "bc", "é", "€", "😀"];
    let mut s: Vec<u8> = (0..rng.below(6))
        .flat_map(|_| PIECES[rng.below(5) as usize].bytes())
        .collect();
    if rng.percent(2) {
        s.push(0xff); // invalid UTF-8
    }
    s
}

/// An unknown field of a random wire type, groups nested up to `depth`.
fn gen_unknown(rng: &mut Rng, out: &mut Vec<u8>, depth: u32) {
    let tag = [17, 99, 1000, (1 << 29) - 1][rng.below(4) as usize];
    match rng.below(if depth < 3 { 5 } else { 4 }) {
        0 => {
            encode_key(tag, WireType::Varint, out);
            encode_varint(rng.next() >> rng.below(64), out);
        }
        1 => {
            encode_key(tag, WireType::SixtyFourBit, out);
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
        2 => {
            encode_key(tag, WireType::ThirtyTwoBit, out);
            out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        }
        3 => put_len(out, tag, &gen_text(rng)),
        _ => {
            encode_key(tag, WireType::StartGroup, out);
            for _ in 0..rng.below(3) {
                gen_unknown(rng, out, depth + 1);
            }
            let end = if rng.percent(95) { tag } else { tag - 1 };
            encode_key(end, WireType::EndGroup, out);
        }
    }
}

/// A random body of `msg`: known fields in any order and number (so repeated non-repeated
/// fields, which prost merges or overwrites), unknown fields, now and then a wrong wire type.
fn gen_message(rng: &mut Rng, msg: Msg, depth: u32, out: &mut Vec<u8>) {
    let known: Vec<(u32, Kind)> = (1..=16)
        .filter_map(|tag| msg.field(tag).map(|k| (tag, k)))
        .collect();
    if matches!(msg, Msg::Span | Msg::Link) && rng.percent(90) {
        put_len(out, 1, &gen_id(rng, 16));
        put_len(out, 2, &gen_id(rng, 8));
    }
    let fields = match msg {
        Msg::Request | Msg::ResourceSpans | Msg::ScopeSpans => 1 + rng.below(4),
        _ if depth > 7 => rng.below(2),
        _ => rng.below(6),
    };
    for _ in 0..fields {
        if rng.percent(8) {
            gen_unknown(rng, out, 0);
            continue;
        }
        let (tag, kind) = known[rng.below(known.len() as u64) as usize];
        if rng.percent(2) {
            // The wrong wire type for this field (or an end group out of nowhere).
            match rng.below(3) {
                0 => {
                    encode_key(tag, WireType::EndGroup, out);
                }
                1 if !matches!(kind, Kind::Varint) => {
                    encode_key(tag, WireType::Varint, out);
                    encode_varint(1, out);
                }
                _ => put_len(out, tag, b""),
            }
            if !matches!(kind, Kind::Bytes | Kind::Str | Kind::Message(_)) {
                continue;
            }
        }
        match kind {
            Kind::Varint => {
                encode_key(tag, WireType::Varint, out);
                let v = match rng.below(4) {
                    0 => rng.below(4),
                    1 => u64::MAX - rng.below(3),
                    _ => rng.next() >> rng.below(64),
                };
                encode_varint(v, out);
            }
            Kind::Fixed32 => {
                encode_key(tag, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
            }
            Kind::Fixed64 => {
                encode_key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&rng.below(200).to_le_bytes());
            }
            Kind::Bytes => {
                let len = match (msg, tag) {
                    (Msg::Span | Msg::Link, 1) => 16,
                    _ => 8,
                };
                put_len(out, tag, &gen_id(rng, len));
            }
            Kind::Str => put_len(out, tag, &gen_text(rng)),
            Kind::Message(m) => {
                let mut body = Vec::new();
                gen_message(rng, m, depth + 1, &mut body);
                put_len(out, tag, &body);
            }
        }
    }
}

fn wire_request(seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    gen_message(&mut rng, Msg::Request, 0, &mut out);
    out
}

// ---- the properties -------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Valid requests of every shape: both paths give the same result.
    #[test]
    fn same_as_prost_on_valid_requests(request in request(), limits in limits()) {
        let bytes = request.encode_to_vec();
        prop_assert!(agree(&bytes, &limits)?, "a valid request failed to decode");
        // The WAL stores the same bytes as `TracesData`, which decodes alike.
        let data = pt::TracesData { resource_spans: request.resource_spans };
        prop_assert_eq!(data.encode_to_vec(), bytes);
    }

    /// Bodies built field by field from the schema: repeated non-repeated fields (merged or
    /// overwritten), any field order, unknown fields and groups, wrong wire types, invalid
    /// UTF-8, invalid IDs.
    #[test]
    fn same_as_prost_on_wire_level_messages(seed in any::<u64>(), limits in limits()) {
        agree(&wire_request(seed), &limits)?;
    }

    /// Valid encodings changed at random: bytes overwritten, inserted or removed, the end cut
    /// off, a stretch repeated.
    #[test]
    fn same_as_prost_on_mutated_requests(
        request in request(),
        wire in any::<Option<u64>>(),
        limits in limits(),
        edits in proptest::collection::vec(
            (0..4u8, any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()),
            1..5,
        ),
    ) {
        let mut bytes = match wire {
            Some(seed) => wire_request(seed),
            None => request.encode_to_vec(),
        };
        for (op, at, to, byte) in edits {
            let len = bytes.len();
            let i = at.index(len + 1);
            match op {
                0 if i < len => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 if i < len => {
                    let j = (i + to.index(8) + 1).min(len);
                    bytes.drain(i..j);
                }
                3 => {
                    let j = i + to.index(len - i + 1);
                    let copy = bytes[i..j].to_vec();
                    bytes.splice(j..j, copy);
                }
                _ => bytes.truncate(i),
            }
        }
        agree(&bytes, &limits)?;
    }
}

// ---- the cases prost handles in its own way, one by one -------------------------------------

fn kv(key: &str, value: V) -> pc::KeyValue {
    pc::KeyValue {
        key: key.into(),
        value: Some(pc::AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn valid_span() -> pt::Span {
    pt::Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "op".into(),
        start_time_unix_nano: 5,
        end_time_unix_nano: 9,
        attributes: vec![kv("a", V::IntValue(1))],
        ..Default::default()
    }
}

/// A request around one span body given as bytes.
fn wrap_span(span: &[u8]) -> Vec<u8> {
    let mut ss = Vec::new();
    put_len(&mut ss, 2, span);
    let mut rs = Vec::new();
    put_len(&mut rs, 2, &ss);
    let mut req = Vec::new();
    put_len(&mut req, 1, &rs);
    req
}

/// Checks both paths on `span_body` (wrapped in a request) with a few limits; returns whether
/// they accepted it.
fn check_span(span_body: &[u8]) -> bool {
    let bytes = wrap_span(span_body);
    let ok = check(&bytes, &SpanLimits::default());
    for limits in [
        SpanLimits::unlimited(),
        SpanLimits {
            max_attribute_value_len: 1,
            max_attributes_per_span: 0,
            max_events_per_span: 0,
            max_links_per_span: 0,
            max_value_depth: 0,
        },
    ] {
        assert_eq!(check(&bytes, &limits), ok);
    }
    ok
}

#[test]
fn repeated_embedded_messages_merge() {
    let status = |message: &str, code| {
        pt::Span {
            status: Some(pt::Status {
                message: message.into(),
                code,
            }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    // Status twice: code from the second, message from the first (the second's is empty and
    // so not encoded).
    let mut body = valid_span().encode_to_vec();
    body.extend(status("first", 1));
    body.extend(status("", 2));
    assert!(check_span(&body));
    let c = decode_traces(&wrap_span(&body), &SpanLimits::default()).expect("decodes");
    assert_eq!(c.spans[0].status.code, StatusCode::Error);
    assert_eq!(c.spans[0].status.message, "first");

    // A KeyValue's value twice: arrays concatenate, anything else replaces.
    let value = |v: V| {
        pc::KeyValue {
            key: "k".into(),
            value: Some(pc::AnyValue { value: Some(v) }),
            key_strindex: 0,
        }
        .encode_to_vec()
    };
    let array = |items: &[i64]| {
        V::ArrayValue(pc::ArrayValue {
            values: items
                .iter()
                .map(|i| pc::AnyValue {
                    value: Some(V::IntValue(*i)),
                })
                .collect(),
        })
    };
    let kvlist = |key: &str| {
        V::KvlistValue(pc::KeyValueList {
            values: vec![kv(key, V::BoolValue(true))],
        })
    };
    for parts in [
        vec![value(array(&[1, 2])), value(array(&[3]))],
        vec![
            value(array(&[1])),
            value(V::StringValue("s".into())),
            value(array(&[2])),
        ],
        vec![
            value(V::StringValue("s".into())),
            value(array(&[2])),
            value(array(&[3])),
        ],
        vec![value(kvlist("a")), value(kvlist("b"))],
        vec![value(kvlist("a")), value(array(&[1])), value(kvlist("b"))],
        vec![value(V::IntValue(1)), value(V::StringValueStrindex(3))],
        vec![value(V::StringValueStrindex(3)), value(V::IntValue(1))],
        vec![
            value(V::BytesValue(vec![1, 2, 3])),
            value(V::DoubleValue(0.5)),
        ],
    ] {
        let kv_body = parts.concat();
        let mut span = valid_span().encode_to_vec();
        put_len(&mut span, 9, &kv_body);
        assert!(check_span(&span));
    }
    let mut span = valid_span().encode_to_vec();
    put_len(
        &mut span,
        9,
        &[value(array(&[1, 2])), value(array(&[3]))].concat(),
    );
    let c = decode_traces(&wrap_span(&span), &SpanLimits::default()).expect("decodes");
    assert_eq!(
        c.spans[0].attribute("k"),
        Some(&AttributeValue::Array(vec![
            AttributeValue::Int(1),
            AttributeValue::Int(2),
            AttributeValue::Int(3)
        ]))
    );

    // Resource and scope twice, around the scope spans and the spans.
    let resource = |attrs: Vec<pc::KeyValue>, dropped| pt::ResourceSpans {
        resource: Some(pr::Resource {
            attributes: attrs,
            dropped_attributes_count: dropped,
            entity_refs: vec![],
        }),
        ..Default::default()
    };
    let scope = |name: &str, version: &str| pt::ScopeSpans {
        scope: Some(pc::InstrumentationScope {
            name: name.into(),
            version: version.into(),
            attributes: vec![kv("s", V::IntValue(1))],
            dropped_attributes_count: 0,
        }),
        ..Default::default()
    };
    let mut ss = scope("first", "1").encode_to_vec();
    put_len(&mut ss, 2, &valid_span().encode_to_vec());
    ss.extend(scope("second", "").encode_to_vec());
    let mut rs = resource(vec![kv("service.name", V::StringValue("a".into()))], 2).encode_to_vec();
    put_len(&mut rs, 2, &ss);
    rs.extend(resource(vec![kv("x", V::IntValue(1))], 0).encode_to_vec());
    rs.extend(resource(vec![], 1).encode_to_vec());
    let mut req = Vec::new();
    put_len(&mut req, 1, &rs);
    assert!(check(&req, &SpanLimits::default()));
    let c = decode_traces(&req, &SpanLimits::default()).expect("decodes");
    assert_eq!(c.spans[0].resource.attributes.len(), 2);
    assert_eq!(c.spans[0].resource.dropped_attributes_count, 1);
    assert_eq!(c.spans[0].scope.name, "second");
    assert_eq!(c.spans[0].scope.version, "1");
    assert_eq!(c.spans[0].scope.attributes.len(), 2);
}

#[test]
fn last_scalar_and_string_wins() {
    let mut body = valid_span().encode_to_vec();
    body.extend(
        pt::Span {
            trace_id: vec![7; 16],
            name: "second".into(),
            kind: 3,
            flags: 9,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    assert!(check_span(&body));
    let c = decode_traces(&wrap_span(&body), &SpanLimits::default()).expect("decodes");
    assert_eq!(c.spans[0].trace_id, TraceId([7; 16]));
    assert_eq!(c.spans[0].name, "second");
    assert_eq!(c.spans[0].kind, SpanKind::Client);

    // An ID replaced by an invalid one rejects the span; an invalid one replaced by a valid
    // one does not.
    let mut body = valid_span().encode_to_vec();
    put_len(&mut body, 2, &[1, 2, 3]);
    assert!(check_span(&body));
    assert_eq!(
        decode_traces(&wrap_span(&body), &SpanLimits::default())
            .expect("decodes")
            .rejected,
        1
    );
    let mut body = Vec::new();
    put_len(&mut body, 2, &[0; 8]);
    body.extend(valid_span().encode_to_vec());
    assert!(check_span(&body));
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let base = valid_span().encode_to_vec();
    let mut unknown: Vec<Vec<u8>> = Vec::new();
    let mut b = Vec::new();
    encode_key(100, WireType::Varint, &mut b);
    encode_varint(u64::MAX, &mut b);
    unknown.push(b);
    let mut b = Vec::new();
    encode_key(101, WireType::SixtyFourBit, &mut b);
    b.extend([1; 8]);
    unknown.push(b);
    let mut b = Vec::new();
    encode_key(102, WireType::ThirtyTwoBit, &mut b);
    b.extend([1; 4]);
    unknown.push(b);
    let mut b = Vec::new();
    put_len(&mut b, 103, &[0xff, 0xfe]); // not UTF-8, but unknown: fine
    unknown.push(b);
    let mut b = Vec::new();
    encode_key(104, WireType::StartGroup, &mut b);
    encode_key(1, WireType::Varint, &mut b);
    encode_varint(5, &mut b);
    encode_key(2, WireType::StartGroup, &mut b);
    encode_key(2, WireType::EndGroup, &mut b);
    encode_key(104, WireType::EndGroup, &mut b);
    unknown.push(b);
    for u in &unknown {
        let mut body = u.clone();
        body.extend(&base);
        body.extend(u);
        assert!(check_span(&body), "{u:?}");
        // And inside every nested message: in an attribute, its value and an event.
        let mut value = u.clone();
        value.extend(
            pc::AnyValue {
                value: Some(V::IntValue(3)),
            }
            .encode_to_vec(),
        );
        let mut kv_body = u.clone();
        put_len(&mut kv_body, 1, b"key");
        put_len(&mut kv_body, 2, &value);
        let mut body = base.clone();
        put_len(&mut body, 9, &kv_body);
        put_len(&mut body, 11, u);
        put_len(&mut body, 15, u);
        assert!(check_span(&body), "{u:?}");
        // At the top of the request and in the resource and scope spans.
        let mut req = u.clone();
        req.extend(wrap_span(&base));
        let mut rs = u.clone();
        put_len(&mut rs, 1, u);
        let mut ss = u.clone();
        put_len(&mut ss, 1, u);
        put_len(&mut ss, 2, &base);
        put_len(&mut rs, 2, &ss);
        put_len(&mut req, 1, &rs);
        assert!(check(&req, &SpanLimits::default()), "{u:?}");
    }
}

#[test]
fn malformed_wire_is_refused_by_both() {
    let base = valid_span().encode_to_vec();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    // A group with a known tag, a lone end group, a group closed by another tag, a group
    // never closed.
    for (open, close) in [
        (Some(5), Some(5)),
        (None, Some(100)),
        (Some(100), Some(101)),
        (Some(100), None),
    ] {
        let mut b = base.clone();
        if let Some(t) = open {
            encode_key(t, WireType::StartGroup, &mut b);
        }
        if let Some(t) = close {
            encode_key(t, WireType::EndGroup, &mut b);
        }
        cases.push(b);
    }
    // Known fields with the wrong wire type.
    for (tag, wire) in [
        (5, WireType::Varint),
        (7, WireType::LengthDelimited),
        (16, WireType::Varint),
        (9, WireType::ThirtyTwoBit),
        (1, WireType::SixtyFourBit),
    ] {
        let mut b = base.clone();
        encode_key(tag, wire, &mut b);
        match wire {
            WireType::Varint => encode_varint(1, &mut b),
            WireType::LengthDelimited => encode_varint(0, &mut b),
            WireType::ThirtyTwoBit => b.extend([0; 4]),
            _ => b.extend([0; 8]),
        }
        cases.push(b);
    }
    // Varint overflow: eleven bytes, and ten with a last byte over 1.
    let mut b = base.clone();
    encode_key(6, WireType::Varint, &mut b);
    b.extend([0xff; 10]);
    b.push(0);
    cases.push(b);
    let mut b = base.clone();
    encode_key(6, WireType::Varint, &mut b);
    b.extend([0xff; 9]);
    b.push(2);
    cases.push(b);
    // Tag 0, wire types 6 and 7, a key over 32 bits.
    for key in [0u64, 6, 7, 1 << 35] {
        let mut b = base.clone();
        encode_varint(key, &mut b);
        encode_varint(0, &mut b);
        cases.push(b);
    }
    // A length past the end; a fixed64 cut short.
    let mut b = base.clone();
    encode_key(5, WireType::LengthDelimited, &mut b);
    encode_varint(100, &mut b);
    b.extend(b"short");
    cases.push(b);
    let mut b = base.clone();
    encode_key(7, WireType::SixtyFourBit, &mut b);
    b.extend([1; 5]);
    cases.push(b);
    // Invalid UTF-8 in strings the model drops or never builds: a replaced name, a key past
    // the attribute limit, an entity ref, a rejected span's name, a value replaced by another.
    let mut b = base.clone();
    put_len(&mut b, 5, &[0xc3]);
    put_len(&mut b, 5, b"fine");
    cases.push(b);
    let mut b = base.clone();
    let mut kv_body = Vec::new();
    put_len(&mut kv_body, 1, &[0xe2, 0x82]);
    put_len(&mut b, 9, &kv_body);
    cases.push(b);
    let mut b = Vec::new();
    put_len(&mut b, 5, &[0xff]);
    cases.push(b);
    let mut b = base.clone();
    let mut value = Vec::new();
    put_len(&mut value, 1, &[0xff]);
    encode_key(3, WireType::Varint, &mut value);
    encode_varint(1, &mut value);
    let mut kv_body = Vec::new();
    put_len(&mut kv_body, 2, &value);
    put_len(&mut b, 9, &kv_body);
    cases.push(b);
    for (i, case) in cases.iter().enumerate() {
        let ok = check_span(case);
        assert!(!ok, "case {i} should fail");
    }
    // The entity ref, which only a resource carries.
    let mut entity = Vec::new();
    put_len(&mut entity, 3, &[0xff]);
    let mut resource = Vec::new();
    put_len(&mut resource, 3, &entity);
    let mut rs = Vec::new();
    put_len(&mut rs, 1, &resource);
    let mut req = Vec::new();
    put_len(&mut req, 1, &rs);
    assert!(!check(&req, &SpanLimits::default()));
    // Truncations of a valid request at every length.
    let valid = wrap_span(&base);
    for cut in 0..valid.len() {
        check(&valid[..cut], &SpanLimits::default());
    }
}

/// Nested values around prost's recursion limit of 100: both paths switch from success to
/// failure at the same depth, for kv-lists and arrays, with and without an unknown field, a
/// group or an (empty) nested message at the innermost level (skipping also needs a level),
/// starting from resource, span and event attributes so that every remaining budget occurs.
#[test]
fn recursion_limit_is_prost_s() {
    for kind in 0..2 {
        for innermost in 0..4 {
            for holder in [Msg::Resource, Msg::Span, Msg::Event] {
                let mut last = None;
                let mut switched = 0;
                for levels in 25..55 {
                    let mut leaf = Vec::new();
                    put_len(&mut leaf, 1, b"leaf");
                    match innermost {
                        1 => {
                            encode_key(50, WireType::Varint, &mut leaf);
                            encode_varint(1, &mut leaf);
                        }
                        2 => {
                            encode_key(50, WireType::StartGroup, &mut leaf);
                            encode_key(50, WireType::EndGroup, &mut leaf);
                        }
                        3 => put_len(&mut leaf, 5, b""),
                        _ => {}
                    }
                    let mut value = leaf;
                    for _ in 0..levels {
                        let mut outer = Vec::new();
                        if kind == 0 {
                            let mut kv_body = Vec::new();
                            put_len(&mut kv_body, 1, b"k");
                            put_len(&mut kv_body, 2, &value);
                            let mut list = Vec::new();
                            put_len(&mut list, 1, &kv_body);
                            put_len(&mut outer, 6, &list);
                        } else {
                            let mut array = Vec::new();
                            put_len(&mut array, 1, &value);
                            put_len(&mut outer, 5, &array);
                        }
                        value = outer;
                    }
                    let mut kv_body = Vec::new();
                    put_len(&mut kv_body, 1, b"deep");
                    put_len(&mut kv_body, 2, &value);
                    let attributes_tag = if holder == Msg::Event { 3 } else { 1 };
                    let mut holder_body = Vec::new();
                    put_len(&mut holder_body, attributes_tag, &kv_body);
                    let bytes = if holder == Msg::Span {
                        let mut span = valid_span().encode_to_vec();
                        put_len(&mut span, 9, &kv_body);
                        wrap_span(&span)
                    } else {
                        embed(holder, &holder_body, true)
                    };
                    let ok = check(&bytes, &SpanLimits::default());
                    assert_eq!(check(&bytes, &SpanLimits::unlimited()), ok);
                    if last.is_some_and(|l| l != ok) {
                        switched += 1;
                    }
                    last = Some(ok);
                }
                assert_eq!(
                    switched, 1,
                    "kind {kind}, innermost {innermost}, {holder:?}"
                );
            }
        }
    }
}

/// A request holding `body` as a message of kind `msg`, by the shortest path; spans and links
/// on the way get valid IDs first when `valid_ids` (the body can still replace them).
fn embed(msg: Msg, body: &[u8], valid_ids: bool) -> Vec<u8> {
    let wrap = |tag: u32, inner: &[u8]| {
        let mut out = Vec::new();
        put_len(&mut out, tag, inner);
        out
    };
    let with_ids = |body: &[u8]| {
        let mut out = Vec::new();
        if valid_ids {
            put_len(&mut out, 1, &[1; 16]);
            put_len(&mut out, 2, &[2; 8]);
        } else {
            put_len(&mut out, 1, &[1; 3]);
        }
        out.extend_from_slice(body);
        out
    };
    match msg {
        Msg::Request => body.to_vec(),
        Msg::ResourceSpans => wrap(1, body),
        Msg::Resource => embed(Msg::ResourceSpans, &wrap(1, body), valid_ids),
        Msg::EntityRef => embed(Msg::Resource, &wrap(3, body), valid_ids),
        Msg::ScopeSpans => embed(Msg::ResourceSpans, &wrap(2, body), valid_ids),
        Msg::Scope => embed(Msg::ScopeSpans, &wrap(1, body), valid_ids),
        Msg::Span => embed(Msg::ScopeSpans, &wrap(2, &with_ids(body)), valid_ids),
        Msg::Event => embed(Msg::Span, &wrap(11, body), true),
        Msg::Link => embed(Msg::Span, &wrap(13, &with_ids(body)), true),
        Msg::Status => embed(Msg::Span, &wrap(15, body), true),
        Msg::KeyValue => embed(Msg::Span, &wrap(9, body), true),
        Msg::AnyValue => embed(Msg::KeyValue, &wrap(2, body), true),
        Msg::ArrayValue => embed(Msg::AnyValue, &wrap(5, body), true),
        Msg::KvList => embed(Msg::AnyValue, &wrap(6, body), true),
    }
}

/// Every field number from 1 to 17 of every message, with every wire type and with payloads
/// that are valid as one type and not another (invalid UTF-8, a byte that is no message):
/// both paths agree. This does not rely on the decoder's own schema table, so a field it
/// misses or mistypes shows up here.
#[test]
fn every_field_number_of_every_message_agrees() {
    const ALL: [Msg; 14] = [
        Msg::Request,
        Msg::ResourceSpans,
        Msg::Resource,
        Msg::EntityRef,
        Msg::ScopeSpans,
        Msg::Scope,
        Msg::Span,
        Msg::Event,
        Msg::Link,
        Msg::Status,
        Msg::KeyValue,
        Msg::AnyValue,
        Msg::ArrayValue,
        Msg::KvList,
    ];
    let tiny = SpanLimits {
        max_attribute_value_len: 1,
        max_attributes_per_span: 0,
        max_events_per_span: 0,
        max_links_per_span: 0,
        max_value_depth: 0,
    };
    let (mut ok, mut failed) = (0, 0);
    for msg in ALL {
        for tag in 1..=17 {
            let mut fields: Vec<Vec<u8>> = Vec::new();
            for payload in [&b""[..], b"ab", b"\xff", b"\x08\x01", &[0xc3, 0xa9]] {
                let mut f = Vec::new();
                put_len(&mut f, tag, payload);
                fields.push(f);
            }
            for v in [0, 1, u64::MAX] {
                let mut f = Vec::new();
                encode_key(tag, WireType::Varint, &mut f);
                encode_varint(v, &mut f);
                fields.push(f);
            }
            let mut f = Vec::new();
            encode_key(tag, WireType::SixtyFourBit, &mut f);
            f.extend(7u64.to_le_bytes());
            fields.push(f);
            let mut f = Vec::new();
            encode_key(tag, WireType::ThirtyTwoBit, &mut f);
            f.extend(7u32.to_le_bytes());
            fields.push(f);
            let mut f = Vec::new();
            encode_key(tag, WireType::StartGroup, &mut f);
            encode_key(tag, WireType::EndGroup, &mut f);
            fields.push(f);
            for field in &fields {
                for valid_ids in [true, false] {
                    // Alone, and twice (merged or replaced).
                    for body in [field.clone(), field.repeat(2)] {
                        let bytes = embed(msg, &body, valid_ids);
                        for limits in [SpanLimits::default(), tiny] {
                            if check(&bytes, &limits) {
                                ok += 1;
                            } else {
                                failed += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(ok > 1_000 && failed > 1_000, "ok {ok}, failed {failed}");
}

#[test]
fn limits_are_applied_as_the_limiter_does() {
    let mut span = valid_span();
    span.attributes = ["k0é", "k1xé", "k2", "k3", "k4"]
        .into_iter()
        .map(|k| kv(k, V::StringValue("€€€€".into())))
        .collect();
    span.events = vec![pt::span::Event::default(); 3];
    span.links = vec![
        pt::span::Link {
            trace_id: vec![1; 16],
            span_id: vec![0; 8],
            ..Default::default()
        },
        pt::span::Link {
            trace_id: vec![1; 16],
            span_id: vec![1; 8],
            ..Default::default()
        },
        pt::span::Link::default(),
    ];
    span.end_time_unix_nano = 1;
    span.dropped_links_count = 4;
    let bytes = wrap_span(&span.encode_to_vec());
    let limits = SpanLimits {
        max_attribute_value_len: 4,
        max_attributes_per_span: 2,
        max_events_per_span: 1,
        max_links_per_span: 2,
        max_value_depth: 1,
    };
    assert!(check(&bytes, &limits));
    let c = decode_traces(&bytes, &limits).expect("decodes");
    let s = &c.spans[0];
    assert!(c.modified);
    assert_eq!(s.attributes.len(), 2);
    assert_eq!(s.attributes[0].key, "k0é");
    assert_eq!(
        s.attributes[1].key, "k1x",
        "cut before the character that crosses the limit"
    );
    assert_eq!(s.attributes[0].value, AttributeValue::String("€".into()));
    assert_eq!(s.dropped_attributes_count, 3);
    assert_eq!((s.events.len(), s.dropped_events_count), (1, 2));
    // One link past the limit, one invalid: both counted on top of the producer's four.
    assert_eq!((s.links.len(), s.dropped_links_count), (1, 6));
    assert_eq!(s.end, s.start);
    assert_eq!(
        s.attributes.capacity(),
        2,
        "allocated once at its final size"
    );
}

/// The wire-level generator is only worth something if it reaches every outcome: accepted
/// spans, rejected spans, limits that cut, and failures.
#[test]
fn wire_level_generator_reaches_every_outcome() {
    let limits = SpanLimits {
        max_attribute_value_len: 3,
        max_attributes_per_span: 2,
        max_events_per_span: 1,
        max_links_per_span: 1,
        max_value_depth: 2,
    };
    let (mut ok, mut failed, mut spans, mut rejected, mut modified) = (0, 0, 0, 0, 0);
    for seed in 0..2_000 {
        let bytes = wire_request(seed);
        match agree(&bytes, &limits) {
            Ok(true) => {
                ok += 1;
                let c = decode_traces(&bytes, &limits).expect("agreed on success");
                spans += c.spans.len();
                rejected += c.rejected;
                modified += usize::from(c.modified);
            }
            Ok(false) => failed += 1,
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    assert!(ok > 300 && failed > 300, "ok {ok}, failed {failed}");
    assert!(
        spans > 200 && rejected > 100 && modified > 100,
        "{spans} {rejected} {modified}"
    );
}

/// A resource decoded before is shared, not decoded again, and says whether the limits
/// changed it on every later request, not only the first.
#[test]
fn repeated_resources_are_shared_and_keep_their_modified_flag() {
    let request = |service: &str| {
        ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(pr::Resource {
                    attributes: vec![kv("service.name", V::StringValue(service.into()))],
                    ..Default::default()
                }),
                scope_spans: vec![pt::ScopeSpans {
                    spans: vec![valid_span()],
                    ..Default::default()
                }],
                schema_url: "url".into(),
            }],
        }
        .encode_to_vec()
    };
    let long = "a-service-name-longer-than-the-limit";
    let short = SpanLimits {
        // "service.name" is 12 bytes: the key is kept, the value cut.
        max_attribute_value_len: 12,
        ..SpanLimits::default()
    };
    for limits in [SpanLimits::default(), short] {
        let first = decode_traces(&request(long), &limits).expect("decodes");
        let again = decode_traces(&request(long), &limits).expect("decodes");
        assert!(Arc::ptr_eq(
            &first.spans[0].resource,
            &again.spans[0].resource
        ));
        assert_eq!(again.modified, limits == short);
        assert_eq!(first.modified, again.modified);
        assert!(check(&request(long), &limits));
    }
    // Other limits, schema URL or bytes: another resource.
    let a = decode_traces(&request(long), &SpanLimits::default()).expect("decodes");
    let b = decode_traces(&request(long), &short).expect("decodes");
    let c = decode_traces(&request("other"), &SpanLimits::default()).expect("decodes");
    assert_eq!(b.spans[0].resource.service_name(), &long[..12]);
    assert!(!Arc::ptr_eq(&a.spans[0].resource, &b.spans[0].resource));
    assert_eq!(c.spans[0].resource.service_name(), "other");
}

/// A collector sends the resources of hundreds of pods: the per-thread cache is bounded in
/// bytes, not in a count that such traffic would overflow on every round; a resource whose
/// schema URL alone is large is not kept at all.
#[test]
fn the_resource_cache_holds_hundreds_of_pods_and_no_oversized_entry() {
    let request = |pod: usize, schema_url: String| {
        let attributes = (0..25)
            .map(|i| {
                kv(
                    &format!("attribute.{i}"),
                    V::StringValue(format!("pod-{pod}-{i}")),
                )
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(pr::Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: vec![pt::ScopeSpans {
                    spans: vec![valid_span()],
                    ..Default::default()
                }],
                schema_url,
            }],
        }
        .encode_to_vec()
    };
    let limits = SpanLimits::default();
    let decode = |bytes: &[u8]| decode_traces(bytes, &limits).expect("decodes");
    let pods: Vec<Vec<u8>> = (0..300).map(|p| request(p, String::new())).collect();
    let first: Vec<_> = pods.iter().map(|r| decode(r)).collect();
    for (again, first) in pods.iter().map(|r| decode(r)).zip(&first) {
        assert!(Arc::ptr_eq(
            &again.spans[0].resource,
            &first.spans[0].resource
        ));
    }
    let huge = request(0, "u".repeat(MAX_CACHED_RESOURCE_BYTES));
    assert!(!Arc::ptr_eq(
        &decode(&huge).spans[0].resource,
        &decode(&huge).spans[0].resource
    ));
}

/// Spans are counted before they are decoded, but the output is never sized for more spans
/// than the bytes could hold with valid IDs, so empty spans cannot make it reserve gigabytes.
#[test]
fn output_is_sized_for_the_spans_that_can_be_accepted() {
    let mut ss = Vec::new();
    for _ in 0..10_000 {
        put_len(&mut ss, 2, b"");
    }
    let mut rs = Vec::new();
    put_len(&mut rs, 2, &ss);
    let mut req = Vec::new();
    put_len(&mut req, 1, &rs);
    let c = decode_traces(&req, &SpanLimits::default()).expect("decodes");
    assert_eq!(c.rejected, 10_000);
    assert!(
        c.spans.capacity() <= req.len() / 28,
        "{}",
        c.spans.capacity()
    );
    assert!(check(&req, &SpanLimits::default()));
    // A real request is sized exactly.
    let mut span = valid_span().encode_to_vec();
    span.extend(valid_span().encode_to_vec());
    let mut ss = Vec::new();
    for _ in 0..3 {
        put_len(&mut ss, 2, &span);
    }
    let mut rs = Vec::new();
    put_len(&mut rs, 2, &ss);
    let mut req = Vec::new();
    put_len(&mut req, 1, &rs);
    let c = decode_traces(&req, &SpanLimits::default()).expect("decodes");
    assert_eq!((c.spans.len(), c.spans.capacity()), (3, 3));
}

/// The inlined `key` and `varint` read exactly what prost's `decode_key` and `decode_varint`
/// read, fail where they fail with the same error, and leave the same bytes: every input of up
/// to two bytes (with a trailing byte, and alone), then longer ones including non-canonical
/// (`0x80 0x00`), eleven-byte and overflowing varints.
#[test]
fn fast_varint_and_key_paths_are_prost_s() {
    fn same(input: &[u8]) {
        let (mut ours, mut theirs) = (input, input);
        let got = key(&mut ours).map_err(|e| e.to_string());
        let want =
            prost::encoding::decode_key(&mut theirs).map_err(|e| DecodeError::from(e).to_string());
        assert_eq!(got, want, "key of {input:02x?}");
        if want.is_ok() {
            assert_eq!(ours, theirs, "rest after key of {input:02x?}");
        }
        let (mut ours, mut theirs) = (input, input);
        let got = varint(&mut ours).map_err(|e| e.to_string());
        let want = prost::encoding::decode_varint(&mut theirs)
            .map_err(|e| DecodeError::from(e).to_string());
        assert_eq!(got, want, "varint of {input:02x?}");
        if want.is_ok() {
            assert_eq!(ours, theirs, "rest after varint of {input:02x?}");
        }
    }
    same(&[]);
    for a in 0..=255u8 {
        same(&[a]);
        same(&[a, 0x01]);
        for b in 0..=255u8 {
            same(&[a, b]);
            same(&[a, b, 0x7f]);
            same(&[a, b, 0x80]);
        }
    }
    let mut rng = Rng(7);
    for _ in 0..20_000 {
        let len = 1 + rng.below(12) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| {
                // Mostly continuation bytes, so that long and overlong varints are common.
                let b = rng.below(256) as u8;
                if i + 1 < len && rng.percent(80) {
                    b | 0x80
                } else {
                    b
                }
            })
            .collect();
        same(&bytes);
    }
    same(&[0xff; 10]);
    same(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    same(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
    same(&[
        0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
    ]);
    same(&[0x8a, 0x80, 0x80, 0x80, 0x10]);
}

/// The decoder's key cache ([`KeyCache`]) changes nothing: spans whose keys repeat, change
/// position, differ from each other only in their last or first byte or by one byte of length,
/// are cut by the value-length limit (the cut key is remembered by the text it was cut to,
/// which is another key of the request: `http.route` cut to `http.rout`), are too long to be interned (owned every time), or are not UTF-8 (refused even when
/// a key of the same length and slot was remembered) decode as prost and the limiter have them.
#[test]
fn the_key_cache_gives_the_keys_prost_gives() {
    let long = "long.key.".repeat(MAX_INTERNED_LEN / 9 + 1);
    let keys = [
        "http.route",
        "http.routf",
        "http.rout",
        "http.route.",
        "xttp.route",
        "db.system",
        "é.key",
        "",
        &long,
    ];
    let mut rng = Rng(11);
    let spans: Vec<pt::Span> = (0..60u8)
        .map(|i| {
            // Every key in a different order each span, some twice.
            let mut order: Vec<usize> = (0..keys.len()).collect();
            for j in (1..order.len()).rev() {
                order.swap(j, rng.below(j as u64 + 1) as usize);
            }
            order.push(order[0]);
            pt::Span {
                span_id: vec![i + 1; 8],
                attributes: order
                    .iter()
                    .map(|&k| kv(keys[k], V::IntValue(k as i64)))
                    .collect(),
                ..valid_span()
            }
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            scope_spans: vec![pt::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let cut = SpanLimits {
        max_attribute_value_len: 9,
        ..SpanLimits::unlimited()
    };
    for limits in [SpanLimits::unlimited(), SpanLimits::default(), cut] {
        assert!(check(&request, &limits), "{limits:?}");
    }
    let decoded = decode_traces(&request, &SpanLimits::unlimited()).expect("valid");
    for span in &decoded.spans {
        for kv in &span.attributes {
            assert_eq!(
                kv.key.is_interned(),
                kv.key.len() <= MAX_INTERNED_LEN,
                "{}",
                kv.key
            );
        }
    }
    // A key that is not UTF-8 after keys of its length were remembered is still an error.
    for bad in [
        b"http.rout\xff".as_slice(),
        b"\xfettp.route",
        b"db.syste\xc3",
    ] {
        let mut span = valid_span();
        span.attributes = keys.iter().map(|k| kv(k, V::BoolValue(true))).collect();
        let mut body = span.encode_to_vec();
        let mut key_value = Vec::new();
        put_len(&mut key_value, 1, bad);
        put_len(&mut body, 9, &key_value);
        let bytes = wrap_span(&body);
        assert!(!check(&bytes, &SpanLimits::unlimited()), "{bad:02x?}");
        assert!(matches!(
            decode_traces(&bytes, &SpanLimits::unlimited()),
            Err(DecodeError::InvalidUtf8 {
                message: "KeyValue",
                tag: 1
            })
        ));
    }
}

/// `plain_key_value` takes only the layouts it reads exactly as the field-by-field loop does:
/// each of these `KeyValue` bodies, near the plain layout or in it, decodes as prost has it
/// (as an attribute of a span, with a few limits; valid or refused).
#[test]
fn plain_key_values_and_their_near_misses_agree() {
    let long = vec![b'k'; 200];
    let mut rng = Rng(5);
    let value_bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"\x0a\x03abc".to_vec(),
        b"\x0a\x00".to_vec(),
        b"\x0a\x83\x00abc".to_vec(),
        b"\x0a\x04abc".to_vec(),
        b"\x0a\x02\xc3\x28".to_vec(),
        b"\x0a\x03abc\x10\x01".to_vec(),
        b"\x0a\x03abc\x0a\x01d".to_vec(),
        b"\x10\x01".to_vec(),
        b"\x10\x02".to_vec(),
        b"\x10\x80\x01".to_vec(),
        b"\x18\x7f".to_vec(),
        b"\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec(),
        b"\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec(),
        b"\x18\x01\x18\x02".to_vec(),
        b"\x18".to_vec(),
        b"\x21\x00\x00\x00\x00\x00\x00\xf0\x3f".to_vec(),
        b"\x21\x00\x00\x00\x00\x00\x00\xf0".to_vec(),
        b"\x21\x00\x00\x00\x00\x00\x00\xf0\x3f\x00".to_vec(),
        b"\x2a\x00".to_vec(),
        b"\x3a\x02\xff\xfe".to_vec(),
        b"\x40\x03".to_vec(),
        b"\x78\x01".to_vec(),
        b"\x0b\x0c".to_vec(),
        [b"\x0a\x81\x01".as_slice(), &[b'v'; 129]].concat(),
    ];
    let keys: [&[u8]; 5] = [b"http.route", b"", b"\xe9t\xe9", b"k\xc3", &long];
    let mut bodies = Vec::new();
    for key in keys {
        for value in &value_bodies {
            let mut body = Vec::new();
            put_len(&mut body, 1, key);
            put_len(&mut body, 2, value);
            bodies.push(body.clone());
            // Then the same fields in other layouts: value first, each field repeated, an
            // unknown field after, a length of two bytes for one byte, nothing after the key.
            let mut swapped = Vec::new();
            put_len(&mut swapped, 2, value);
            put_len(&mut swapped, 1, key);
            bodies.push(swapped);
            let mut twice = body.clone();
            put_len(&mut twice, 2, b"\x18\x05");
            bodies.push(twice);
            let mut key_twice = body.clone();
            put_len(&mut key_twice, 1, b"other");
            bodies.push(key_twice);
            let mut unknown = body.clone();
            unknown.extend_from_slice(b"\x20\x01");
            bodies.push(unknown);
            let mut wide = vec![0x0a];
            wide.push(0x80 | (key.len() as u8 & 0x7f));
            wide.push((key.len() >> 7) as u8);
            wide.extend_from_slice(key);
            put_len(&mut wide, 2, value);
            bodies.push(wide);
            let mut key_only = Vec::new();
            put_len(&mut key_only, 1, key);
            bodies.push(key_only);
            // And cut short at a random point.
            let cut = rng.below(body.len() as u64) as usize;
            bodies.push(body[..cut].to_vec());
        }
    }
    let (mut valid, mut invalid) = (0, 0);
    for body in &bodies {
        let mut span = valid_span().encode_to_vec();
        put_len(&mut span, 9, body);
        put_len(&mut span, 9, body);
        if check_span(&span) {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 200 && invalid > 200,
        "{valid} valid, {invalid} invalid"
    );
}
