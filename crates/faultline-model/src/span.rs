//! The span, its attributes, events, links, resource and scope.

use std::sync::Arc;

use crate::{Key, SpanId, TraceId, UnixNanos};

/// Service name used when a resource carries no `service.name`, as the OpenTelemetry SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The role of a span in a call, as OpenTelemetry defines it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
#[repr(u8)]
pub enum SpanKind {
    /// Not given by the producer.
    #[default]
    Unspecified = 0,
    /// Work inside one process.
    Internal = 1,
    /// Handling of a remote request.
    Server = 2,
    /// An outgoing remote request.
    Client = 3,
    /// Sending a message to a broker.
    Producer = 4,
    /// Receiving a message from a broker.
    Consumer = 5,
}

impl SpanKind {
    /// The kind for an OTLP enum value; unknown values become `Unspecified`.
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// Lower-case name as Jaeger writes it in the `span.kind` tag (`""` when unspecified).
    pub fn as_jaeger_str(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    /// Parses the lower-case Jaeger name (`server`, `client`, ...); `None` for anything else.
    pub fn from_jaeger_str(s: &str) -> Option<Self> {
        Some(match s {
            "unspecified" | "" => Self::Unspecified,
            "internal" => Self::Internal,
            "server" => Self::Server,
            "client" => Self::Client,
            "producer" => Self::Producer,
            "consumer" => Self::Consumer,
            _ => return None,
        })
    }
}

/// The outcome of a span's operation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[repr(u8)]
pub enum StatusCode {
    /// Not set by the instrumentation.
    #[default]
    Unset = 0,
    /// Explicitly successful.
    Ok = 1,
    /// Failed.
    Error = 2,
}

impl StatusCode {
    /// The code for an OTLP enum value; unknown values become `Unset`.
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    /// Upper-case name as OpenTelemetry writes it in `otel.status_code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "UNSET",
            Self::Ok => "OK",
            Self::Error => "ERROR",
        }
    }
}

/// A span's status: its code and an optional message for errors.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Status {
    /// The status code.
    pub code: StatusCode,
    /// Human-readable description, usually only set with `Error`.
    pub message: String,
}

/// A typed attribute value, mirroring OTLP's `AnyValue`.
#[derive(Clone, PartialEq, Debug)]
pub enum AttributeValue {
    /// UTF-8 string, inline when short (see [`CompactString`](crate::CompactString)).
    String(compact_str::CompactString),
    /// Boolean.
    Bool(bool),
    /// Signed 64-bit integer.
    Int(i64),
    /// 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Homogeneous or mixed list of values.
    Array(Vec<AttributeValue>),
    /// Nested key/value list.
    KvList(Vec<KeyValue>),
    /// OTLP allows an empty `AnyValue`; kept so that round trips are exact.
    Empty,
}

impl AttributeValue {
    /// The value as a string, the form Jaeger tag search compares against: strings as-is,
    /// numbers and booleans in their usual text form, bytes as base64, and nested values as JSON.
    pub fn to_text(&self) -> String {
        match self {
            Self::String(s) => s.to_string(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Double(d) => d.to_string(),
            Self::Bytes(b) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b)
            }
            Self::Array(_) | Self::KvList(_) => self.to_json().to_string(),
            Self::Empty => String::new(),
        }
    }

    /// The value as plain JSON (arrays as arrays, kv-lists as objects).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::String(s) => Value::String(s.to_string()),
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::Double(d) => serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(d.to_string())),
            Self::Bytes(_) => Value::String(self.to_text()),
            Self::Array(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Self::KvList(kvs) => Value::Object(
                kvs.iter()
                    .map(|kv| (kv.key.to_string(), kv.value.to_json()))
                    .collect(),
            ),
            Self::Empty => Value::Null,
        }
    }

    /// Approximate heap size in bytes, used for memory accounting: none for a string short
    /// enough to be kept inline.
    pub fn heap_size(&self) -> usize {
        match self {
            Self::String(s) if s.is_heap_allocated() => s.len(),
            Self::String(_) => 0,
            Self::Bytes(b) => b.len(),
            Self::Array(items) => items.iter().map(|v| v.heap_size() + 32).sum(),
            Self::KvList(kvs) => kvs.iter().map(KeyValue::heap_size).sum(),
            _ => 0,
        }
    }

    /// Whether the value holds an allocation of its own (for memory accounting).
    pub fn allocates(&self) -> bool {
        match self {
            Self::String(s) => s.is_heap_allocated(),
            Self::Bytes(b) => b.capacity() > 0,
            Self::Array(items) => items.capacity() > 0,
            Self::KvList(kvs) => kvs.capacity() > 0,
            Self::Bool(_) | Self::Int(_) | Self::Double(_) | Self::Empty => false,
        }
    }
}

/// One attribute.
#[derive(Clone, PartialEq, Debug)]
pub struct KeyValue {
    /// Attribute key, e.g. `http.route`.
    pub key: Key,
    /// Attribute value.
    pub value: AttributeValue,
}

impl KeyValue {
    /// Builds an attribute.
    pub fn new(key: impl Into<Key>, value: AttributeValue) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }

    /// Approximate heap size in bytes, used for memory accounting.
    pub fn heap_size(&self) -> usize {
        self.key.heap_size() + self.value.heap_size() + 48
    }
}

/// Finds the first attribute with `key`.
pub(crate) fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AttributeValue> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// A timestamped event within a span (an exception, a log line).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Event {
    /// When it happened.
    pub time: UnixNanos,
    /// Event name, e.g. `exception`.
    pub name: String,
    /// Event attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
}

/// A link from a span to another span, possibly in another trace.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Link {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// W3C tracestate of the linked context.
    pub trace_state: String,
    /// Link attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags of the linked context.
    pub flags: u32,
}

/// The entity that produced spans: usually one process of one service.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Resource {
    /// Resource attributes (`service.name`, `host.name`, ...).
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// Schema URL of the `ResourceSpans` this came from.
    pub schema_url: String,
}

impl Resource {
    /// A resource whose only attribute is `service.name`: what a reader has when it knows a
    /// span's service and nothing else of its resource.
    pub fn for_service(name: impl Into<compact_str::CompactString>) -> Self {
        Self {
            attributes: vec![KeyValue::new(
                "service.name",
                AttributeValue::String(name.into()),
            )],
            ..Self::default()
        }
    }

    /// The `service.name` attribute, or [`UNKNOWN_SERVICE`].
    pub fn service_name(&self) -> &str {
        match find(&self.attributes, "service.name") {
            Some(AttributeValue::String(s)) if !s.is_empty() => s,
            _ => UNKNOWN_SERVICE,
        }
    }
}

/// The instrumentation library that created spans.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct InstrumentationScope {
    /// Library name.
    pub name: String,
    /// Library version.
    pub version: String,
    /// Scope attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// Schema URL of the `ScopeSpans` this came from.
    pub schema_url: String,
}

/// One span as Faultline stores and serves it.
///
/// `Span::default()` is an empty span (all-zero IDs, no attributes, an empty resource): a base
/// for building one field by field with `..Default::default()`, not a valid span by itself.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Span {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span's ID.
    pub span_id: SpanId,
    /// Parent span, `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// W3C tracestate.
    pub trace_state: String,
    /// W3C trace flags (bit 0: sampled) plus OTLP's remote-parent bits.
    pub flags: u32,
    /// Operation name, inline when up to 24 bytes (most are: `GET /api/orders/{id}`).
    pub name: compact_str::CompactString,
    /// Span kind.
    pub kind: SpanKind,
    /// Start time.
    pub start: UnixNanos,
    /// End time; never before `start` once ingested.
    pub end: UnixNanos,
    /// Span attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer (or our limits) dropped.
    pub dropped_attributes_count: u32,
    /// Span events.
    pub events: Vec<Event>,
    /// Events the producer dropped.
    pub dropped_events_count: u32,
    /// Span links.
    pub links: Vec<Link>,
    /// Links the producer dropped.
    pub dropped_links_count: u32,
    /// Outcome.
    pub status: Status,
    /// The producing entity, shared by all spans of one `ResourceSpans`.
    pub resource: Arc<Resource>,
    /// The instrumentation scope, shared by all spans of one `ScopeSpans`.
    pub scope: Arc<InstrumentationScope>,
}

impl Span {
    /// Duration in nanoseconds (zero if the end precedes the start).
    pub fn duration_nanos(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// The service that produced this span.
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }

    /// The first span attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        find(&self.attributes, key)
    }

    /// Approximate heap size in bytes excluding the shared resource and scope; used to account
    /// the memory held by the in-memory head.
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.trace_state.len()
            + if self.name.is_heap_allocated() {
                self.name.len()
            } else {
                0
            }
            + self.status.message.len()
            + self
                .attributes
                .iter()
                .map(KeyValue::heap_size)
                .sum::<usize>()
            + self
                .events
                .iter()
                .map(|e| {
                    64 + e.name.len() + e.attributes.iter().map(KeyValue::heap_size).sum::<usize>()
                })
                .sum::<usize>()
            + self
                .links
                .iter()
                .map(|l| {
                    80 + l.trace_state.len()
                        + l.attributes.iter().map(KeyValue::heap_size).sum::<usize>()
                })
                .sum::<usize>()
    }
}
