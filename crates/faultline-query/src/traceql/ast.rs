//! The parsed form of a TraceQL query.

use faultline_model::{SpanKind, StatusCode};
use regex::Regex;

/// A whole query: a spanset expression, then pipeline stages applied in order.
#[derive(Debug, Clone)]
pub struct Query {
    /// Selects the first spansets of each trace.
    pub spansets: SpansetExpr,
    /// Filters, aggregates, groupings and selections applied after it.
    pub stages: Vec<Stage>,
}

/// An expression over spansets.
#[derive(Debug, Clone)]
pub enum SpansetExpr {
    /// `{ condition }`: the spans for which the condition holds (`{ }` is every span).
    Filter(FieldExpr),
    /// `A && B`: both match in the trace; the spans of both.
    And(Box<SpansetExpr>, Box<SpansetExpr>),
    /// `A || B`: the spans of either.
    Or(Box<SpansetExpr>, Box<SpansetExpr>),
    /// A structural relation; the spans of the right-hand side that stand in it.
    Structural(Relation, Box<SpansetExpr>, Box<SpansetExpr>),
}

/// Structural operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// `A > B`: B's spans whose parent is in A.
    Child,
    /// `A >> B`: B's spans with an ancestor in A.
    Descendant,
    /// `A < B`: B's spans with a child in A.
    Parent,
    /// `A << B`: B's spans with a descendant in A.
    Ancestor,
    /// `A ~ B`: B's spans with a sibling (another span with the same parent) in A.
    Sibling,
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// `| { condition }`: keeps the spans for which it holds; drops emptied spansets.
    Filter(FieldExpr),
    /// `| count() > 2`, `| avg(duration) > 1s`: keeps the spansets whose aggregate compares true.
    Aggregate {
        /// The function.
        func: AggregateFn,
        /// Its argument (`None` for `count()`).
        field: Option<Field>,
        /// The comparison.
        op: CmpOp,
        /// The value compared against.
        value: Static,
    },
    /// `| by(field, ...)`: splits each spanset into one per distinct value.
    By(Vec<Field>),
    /// `| select(field, ...)`: adds these fields to the spans in the answer.
    Select(Vec<Field>),
}

/// Aggregate functions of a pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFn {
    /// Number of spans.
    Count,
    /// Mean of a numeric field.
    Avg,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sum.
    Sum,
}

impl AggregateFn {
    /// The function's TraceQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
        }
    }
}

/// A condition or value inside `{ }`.
#[derive(Debug, Clone)]
pub enum FieldExpr {
    /// `a && b`
    And(Box<FieldExpr>, Box<FieldExpr>),
    /// `a || b`
    Or(Box<FieldExpr>, Box<FieldExpr>),
    /// `!a`
    Not(Box<FieldExpr>),
    /// `a <op> b`
    Compare(CmpOp, Box<FieldExpr>, Box<FieldExpr>),
    /// `a =~ "re"`, `a !~ "re"` (the pattern is fully anchored, as in Tempo).
    Regex {
        /// The field or value matched.
        operand: Box<FieldExpr>,
        /// The compiled pattern.
        regex: Regex,
        /// `true` for `!~`.
        negated: bool,
    },
    /// A span, resource or intrinsic field.
    Field(Field),
    /// A literal.
    Static(Static),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `span.x`
    Span,
    /// `resource.x`
    Resource,
    /// `.x`: the span's attribute, else the resource's.
    Unscoped,
}

/// A field of a span.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// An attribute.
    Attribute {
        /// Where to look.
        scope: Scope,
        /// The attribute key.
        name: String,
    },
    /// A built-in field.
    Intrinsic(Intrinsic),
}

impl Field {
    /// The field as the answer names it (`span.http.method`, `name`, `trace:rootService`).
    pub fn label(&self) -> String {
        match self {
            Field::Attribute { scope, name } => match scope {
                Scope::Span => format!("span.{name}"),
                Scope::Resource => format!("resource.{name}"),
                Scope::Unscoped => format!(".{name}"),
            },
            Field::Intrinsic(i) => i.name().to_owned(),
        }
    }
}

/// Built-in span and trace fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// Span name.
    Name,
    /// Span status code.
    Status,
    /// Span status message.
    StatusMessage,
    /// Span kind.
    Kind,
    /// Span duration.
    Duration,
    /// Span ID, hex.
    SpanId,
    /// Parent span ID, hex (absent on roots).
    ParentId,
    /// Number of direct children.
    ChildCount,
    /// Instrumentation scope name.
    ScopeName,
    /// Instrumentation scope version.
    ScopeVersion,
    /// Name of the trace's root span.
    RootName,
    /// Service of the trace's root span.
    RootService,
    /// The trace's duration (latest end − earliest start).
    TraceDuration,
    /// Trace ID, hex.
    TraceId,
}

impl Intrinsic {
    /// The intrinsic for an identifier, if it is one.
    pub fn from_word(w: &str) -> Option<Self> {
        Some(match w {
            "name" | "span:name" => Self::Name,
            "status" | "span:status" => Self::Status,
            "statusMessage" | "span:statusMessage" => Self::StatusMessage,
            "kind" | "span:kind" => Self::Kind,
            "duration" | "span:duration" => Self::Duration,
            "span:id" => Self::SpanId,
            "span:parentID" => Self::ParentId,
            "span:childCount" | "childCount" => Self::ChildCount,
            "instrumentation:name" => Self::ScopeName,
            "instrumentation:version" => Self::ScopeVersion,
            "rootName" | "trace:rootName" => Self::RootName,
            "rootServiceName" | "trace:rootService" => Self::RootService,
            "traceDuration" | "trace:duration" => Self::TraceDuration,
            "trace:id" => Self::TraceId,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Status => "status",
            Self::StatusMessage => "statusMessage",
            Self::Kind => "kind",
            Self::Duration => "duration",
            Self::SpanId => "span:id",
            Self::ParentId => "span:parentID",
            Self::ChildCount => "span:childCount",
            Self::ScopeName => "instrumentation:name",
            Self::ScopeVersion => "instrumentation:version",
            Self::RootName => "rootName",
            Self::RootService => "rootServiceName",
            Self::TraceDuration => "traceDuration",
            Self::TraceId => "trace:id",
        }
    }

    /// Every intrinsic name Grafana's autocomplete may offer.
    pub const ALL_NAMES: [&'static str; 20] = [
        "duration",
        "instrumentation:name",
        "instrumentation:version",
        "kind",
        "name",
        "rootName",
        "rootServiceName",
        "span:childCount",
        "span:duration",
        "span:id",
        "span:kind",
        "span:name",
        "span:parentID",
        "span:status",
        "span:statusMessage",
        "status",
        "statusMessage",
        "trace:duration",
        "trace:rootName",
        "trace:rootService",
    ];
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A duration in nanoseconds.
    Duration(u64),
    /// `error`, `ok`, `unset`.
    Status(StatusCode),
    /// `server`, `client`, ...
    Kind(SpanKind),
    /// `nil`: compares equal to an absent attribute.
    Nil,
}
