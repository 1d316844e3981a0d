//! Evaluates a [`Query`] on the spans of one trace.
//!
//! Semantics follow Tempo's: a comparison with an absent attribute is false (whatever the
//! operator) except against `nil`; values of different types never compare equal, but
//! integers, floats and durations compare as numbers; an array attribute matches `=` and `=~`
//! when any element does, and `!=` and `!~` when none does.

use std::borrow::Cow;
use std::collections::HashMap;

use faultline_model::{AttributeValue, Span, SpanId, SpanKind, StatusCode};

use super::ast::{
    AggregateFn, CmpOp, Field, FieldExpr, Intrinsic, Query, Relation, Scope, SpansetExpr, Stage,
    Static,
};

/// A value in the answer: what a span's field held.
#[derive(Debug, Clone, PartialEq)]
pub enum OutValue {
    /// Text (also status and kind names).
    Str(String),
    /// Integer (also durations in nanoseconds).
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// One spanset of a trace's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSetOut {
    /// Indices into the trace's spans, earliest start first.
    pub spans: Vec<usize>,
    /// `by(...)` groups: the field label and the group's value.
    pub by: Vec<(String, OutValue)>,
}

/// A trace prepared for evaluation: parent links and trace-level fields.
pub struct TraceView<'a> {
    spans: &'a [Span],
    parent: Vec<Option<usize>>,
    children: Vec<u32>,
    /// Spans ordered so that every parent precedes its children.
    top_down: Vec<usize>,
    root: Option<usize>,
    /// Earliest start, in nanoseconds.
    pub start: u64,
    /// Latest end − earliest start, in nanoseconds.
    pub duration: u64,
}

impl<'a> TraceView<'a> {
    /// Indexes `spans` (one trace's).
    pub fn new(spans: &'a [Span]) -> Self {
        let by_id: HashMap<SpanId, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parent_span_id
                    .and_then(|p| by_id.get(&p).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        let mut children_of: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children_of[*p].push(i);
            }
        }
        let children = children_of.iter().map(|c| c.len() as u32).collect();
        // Breadth-first from the spans without a known parent; spans caught in a parent cycle
        // are never reached and are appended last, where they see no ancestors.
        let mut top_down: Vec<usize> = (0..spans.len()).filter(|&i| parent[i].is_none()).collect();
        let mut seen = vec![false; spans.len()];
        for &i in &top_down {
            seen[i] = true;
        }
        let mut k = 0;
        while k < top_down.len() {
            let i = top_down[k];
            for &c in &children_of[i] {
                if !seen[c] {
                    seen[c] = true;
                    top_down.push(c);
                }
            }
            k += 1;
        }
        top_down.extend((0..spans.len()).filter(|&i| !seen[i]));
        let root = spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.parent_span_id.is_none())
            .min_by_key(|(_, s)| (s.start, s.span_id))
            .map(|(i, _)| i);
        let start = spans.iter().map(|s| s.start.0).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end.0).max().unwrap_or(0);
        Self {
            spans,
            parent,
            children,
            top_down,
            root,
            start,
            duration: end.saturating_sub(start),
        }
    }

    /// The root span (no parent, earliest), if the trace has one.
    pub fn root(&self) -> Option<&'a Span> {
        self.root.map(|i| &self.spans[i])
    }

    /// The spans.
    pub fn spans(&self) -> &'a [Span] {
        self.spans
    }

    /// The spansets `query` selects from this trace; empty when the trace does not match.
    pub fn evaluate(&self, query: &Query) -> Vec<SpanSetOut> {
        let mask = self.spanset(&query.spansets);
        let first: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
        if first.is_empty() {
            return Vec::new();
        }
        let mut sets = vec![SpanSetOut {
            spans: first,
            by: Vec::new(),
        }];
        for stage in &query.stages {
            sets = self.stage(stage, sets);
            if sets.is_empty() {
                break;
            }
        }
        let key = |i: usize| (self.spans[i].start, self.spans[i].span_id);
        for set in &mut sets {
            set.spans.sort_by_key(|&i| key(i));
        }
        // Spansets (from `by`) in order of their earliest span, whatever the storage order.
        sets.sort_by_key(|set| set.spans.first().map(|&i| key(i)));
        sets
    }

    fn stage(&self, stage: &Stage, sets: Vec<SpanSetOut>) -> Vec<SpanSetOut> {
        match stage {
            Stage::Filter(expr) => sets
                .into_iter()
                .filter_map(|mut s| {
                    s.spans.retain(|&i| self.truthy(expr, i));
                    (!s.spans.is_empty()).then_some(s)
                })
                .collect(),
            Stage::Aggregate {
                func,
                field,
                op,
                value,
            } => sets
                .into_iter()
                .filter(|s| {
                    self.aggregate(*func, field.as_ref(), &s.spans)
                        .is_some_and(|v| compare_numbers(*op, v, static_number(value)))
                })
                .collect(),
            Stage::By(fields) => {
                let mut out = Vec::new();
                for set in sets {
                    // Groups in order of first appearance, found by a text key (values hold
                    // floats, which do not hash) so that grouping stays linear.
                    let mut groups: Vec<(Vec<Option<OutValue>>, Vec<usize>)> = Vec::new();
                    let mut index: HashMap<String, usize> = HashMap::new();
                    for &i in &set.spans {
                        let key: Vec<Option<OutValue>> =
                            fields.iter().map(|f| self.out_value(f, i)).collect();
                        let text = format!("{key:?}");
                        match index.get(&text) {
                            Some(&g) => groups[g].1.push(i),
                            None => {
                                index.insert(text, groups.len());
                                groups.push((key, vec![i]));
                            }
                        }
                    }
                    for (key, spans) in groups {
                        let mut by = set.by.clone();
                        for (f, v) in fields.iter().zip(key) {
                            if let Some(v) = v {
                                by.push((format!("by({})", f.label()), v));
                            }
                        }
                        out.push(SpanSetOut { spans, by });
                    }
                }
                out
            }
            // Selection only changes what the answer shows of each span.
            Stage::Select(_) => sets,
        }
    }

    fn aggregate(&self, func: AggregateFn, field: Option<&Field>, spans: &[usize]) -> Option<f64> {
        let Some(field) = field else {
            return Some(spans.len() as f64);
        };
        let values = spans
            .iter()
            .filter_map(|&i| number_of(&self.value(field, i)));
        let (mut n, mut sum, mut min, mut max) = (0usize, 0f64, f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        if n == 0 {
            return None;
        }
        Some(match func {
            AggregateFn::Count => n as f64,
            AggregateFn::Avg => sum / n as f64,
            AggregateFn::Min => min,
            AggregateFn::Max => max,
            AggregateFn::Sum => sum,
        })
    }

    fn spanset(&self, expr: &SpansetExpr) -> Vec<bool> {
        match expr {
            SpansetExpr::Filter(f) => (0..self.spans.len()).map(|i| self.truthy(f, i)).collect(),
            SpansetExpr::And(a, b) => {
                let (a, b) = (self.spanset(a), self.spanset(b));
                if a.iter().any(|&x| x) && b.iter().any(|&x| x) {
                    a.iter().zip(&b).map(|(x, y)| *x || *y).collect()
                } else {
                    vec![false; self.spans.len()]
                }
            }
            SpansetExpr::Or(a, b) => {
                let (a, b) = (self.spanset(a), self.spanset(b));
                a.iter().zip(&b).map(|(x, y)| *x || *y).collect()
            }
            SpansetExpr::Structural(rel, a, b) => {
                let (a, b) = (self.spanset(a), self.spanset(b));
                let related = self.related(*rel, &a);
                b.iter().zip(related).map(|(x, y)| *x && y).collect()
            }
        }
    }

    /// For each span, whether it stands in `rel` to some span of `a`.
    fn related(&self, rel: Relation, a: &[bool]) -> Vec<bool> {
        let n = self.spans.len();
        match rel {
            Relation::Child => (0..n)
                .map(|i| self.parent[i].is_some_and(|p| a[p]))
                .collect(),
            Relation::Descendant => {
                let mut below = vec![false; n];
                for &i in &self.top_down {
                    if let Some(p) = self.parent[i] {
                        below[i] = a[p] || below[p];
                    }
                }
                below
            }
            Relation::Parent => {
                let mut out = vec![false; n];
                for i in (0..n).filter(|&i| a[i]) {
                    if let Some(p) = self.parent[i] {
                        out[p] = true;
                    }
                }
                out
            }
            Relation::Ancestor => {
                let mut above = vec![false; n];
                for &i in self.top_down.iter().rev() {
                    if let Some(p) = self.parent[i] {
                        if a[i] || above[i] {
                            above[p] = true;
                        }
                    }
                }
                above
            }
            Relation::Sibling => {
                let mut in_a_under = vec![0u32; n];
                for i in (0..n).filter(|&i| a[i]) {
                    if let Some(p) = self.parent[i] {
                        in_a_under[p] += 1;
                    }
                }
                (0..n)
                    .map(|i| self.parent[i].is_some_and(|p| in_a_under[p] > u32::from(a[i])))
                    .collect()
            }
        }
    }

    /// Whether `expr` holds for span `i`.
    fn truthy(&self, expr: &FieldExpr, i: usize) -> bool {
        match expr {
            FieldExpr::And(a, b) => self.truthy(a, i) && self.truthy(b, i),
            FieldExpr::Or(a, b) => self.truthy(a, i) || self.truthy(b, i),
            FieldExpr::Not(a) => !self.truthy(a, i),
            FieldExpr::Compare(op, l, r) => self.compare(*op, l, r, i),
            FieldExpr::Regex {
                operand,
                regex,
                negated,
            } => {
                let v = self.operand(operand, i);
                let hit = |v: &Val| match v {
                    Val::Str(s) => regex.is_match(s),
                    _ => false,
                };
                match v {
                    Val::Array(items) => items.iter().any(|a| hit(&attr_val(a))) != *negated,
                    Val::Str(_) => hit(&v) != *negated,
                    _ => false,
                }
            }
            FieldExpr::Field(f) => matches!(self.value(f, i), Val::Bool(true)),
            FieldExpr::Static(s) => matches!(s, Static::Bool(true)),
        }
    }

    fn compare(&self, op: CmpOp, l: &FieldExpr, r: &FieldExpr, i: usize) -> bool {
        let is_nil = |e: &FieldExpr| matches!(e, FieldExpr::Static(Static::Nil));
        if is_nil(l) || is_nil(r) {
            let other = if is_nil(l) { r } else { l };
            let absent = matches!(self.operand(other, i), Val::Nil);
            return match op {
                CmpOp::Eq => absent,
                CmpOp::Ne => !absent,
                _ => false,
            };
        }
        let (a, b) = (self.operand(l, i), self.operand(r, i));
        match (&a, &b) {
            (Val::Array(items), other) | (other, Val::Array(items)) => {
                let flipped = matches!(b, Val::Array(_)) && !matches!(a, Val::Array(_));
                let hit = |item: &AttributeValue| {
                    let v = attr_val(item);
                    if flipped {
                        compare_vals(CmpOp::Eq, other, &v)
                    } else {
                        compare_vals(CmpOp::Eq, &v, other)
                    }
                };
                match op {
                    CmpOp::Eq => items.iter().any(hit),
                    CmpOp::Ne => !items.iter().any(hit),
                    _ => items.iter().any(|item| {
                        let v = attr_val(item);
                        if flipped {
                            compare_vals(op, other, &v)
                        } else {
                            compare_vals(op, &v, other)
                        }
                    }),
                }
            }
            _ => compare_vals(op, &a, &b),
        }
    }

    /// The value of an operand for span `i`.
    fn operand<'s>(&'s self, expr: &'s FieldExpr, i: usize) -> Val<'s> {
        match expr {
            FieldExpr::Field(f) => self.value(f, i),
            FieldExpr::Static(s) => static_val(s),
            other => Val::Bool(self.truthy(other, i)),
        }
    }

    /// A field of span `i`.
    fn value(&self, field: &Field, i: usize) -> Val<'a> {
        let span = &self.spans[i];
        match field {
            Field::Attribute { scope, name } => {
                let find = |kvs: &'a [faultline_model::KeyValue]| {
                    kvs.iter().find(|kv| kv.key == *name).map(|kv| &kv.value)
                };
                let found = match scope {
                    Scope::Span => find(&span.attributes),
                    Scope::Resource => find(&span.resource.attributes),
                    Scope::Unscoped => {
                        find(&span.attributes).or_else(|| find(&span.resource.attributes))
                    }
                };
                found.map_or(Val::Nil, attr_val)
            }
            Field::Intrinsic(intrinsic) => match intrinsic {
                Intrinsic::Name => Val::Str(Cow::Borrowed(&span.name)),
                Intrinsic::Status => Val::Status(span.status.code),
                Intrinsic::StatusMessage => Val::Str(Cow::Borrowed(&span.status.message)),
                Intrinsic::Kind => Val::Kind(span.kind),
                Intrinsic::Duration => Val::Duration(span.duration_nanos()),
                Intrinsic::SpanId => Val::Str(Cow::Owned(span.span_id.to_hex())),
                Intrinsic::ParentId => span
                    .parent_span_id
                    .map_or(Val::Nil, |p| Val::Str(Cow::Owned(p.to_hex()))),
                Intrinsic::ChildCount => Val::Int(i64::from(self.children[i])),
                Intrinsic::ScopeName => Val::Str(Cow::Borrowed(&span.scope.name)),
                Intrinsic::ScopeVersion => Val::Str(Cow::Borrowed(&span.scope.version)),
                Intrinsic::RootName => self
                    .root()
                    .map_or(Val::Nil, |r| Val::Str(Cow::Borrowed(&r.name))),
                Intrinsic::RootService => self
                    .root()
                    .map_or(Val::Nil, |r| Val::Str(Cow::Borrowed(r.service_name()))),
                Intrinsic::TraceDuration => Val::Duration(self.duration),
                Intrinsic::TraceId => Val::Str(Cow::Owned(span.trace_id.to_hex())),
            },
        }
    }

    /// A field of span `i` as the answer shows it; `None` when absent.
    pub fn out_value(&self, field: &Field, i: usize) -> Option<OutValue> {
        Some(match self.value(field, i) {
            Val::Nil => return None,
            Val::Str(s) => OutValue::Str(s.into_owned()),
            Val::Int(n) => OutValue::Int(n),
            Val::Float(f) => OutValue::Float(f),
            Val::Bool(b) => OutValue::Bool(b),
            Val::Duration(d) => OutValue::Int(i64::try_from(d).unwrap_or(i64::MAX)),
            Val::Status(s) => OutValue::Str(status_name(s).to_owned()),
            Val::Kind(k) => OutValue::Str(kind_name(k).to_owned()),
            Val::Array(_) => {
                let (_, value) = self.attribute_raw(field, i)?;
                OutValue::Str(value.to_text())
            }
        })
    }

    fn attribute_raw(&self, field: &Field, i: usize) -> Option<(&'a str, &'a AttributeValue)> {
        let span = &self.spans[i];
        let Field::Attribute { scope, name } = field else {
            return None;
        };
        let find = |kvs: &'a [faultline_model::KeyValue]| {
            kvs.iter()
                .find(|kv| kv.key == *name)
                .map(|kv| (kv.key.as_str(), &kv.value))
        };
        match scope {
            Scope::Span => find(&span.attributes),
            Scope::Resource => find(&span.resource.attributes),
            Scope::Unscoped => find(&span.attributes).or_else(|| find(&span.resource.attributes)),
        }
    }
}

/// A value during evaluation, borrowed from the span where possible.
#[derive(Debug, Clone)]
enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Duration(u64),
    Status(StatusCode),
    Kind(SpanKind),
    Array(&'a [AttributeValue]),
    Nil,
}

fn attr_val(v: &AttributeValue) -> Val<'_> {
    match v {
        AttributeValue::String(s) => Val::Str(Cow::Borrowed(s)),
        AttributeValue::Int(i) => Val::Int(*i),
        AttributeValue::Double(d) => Val::Float(*d),
        AttributeValue::Bool(b) => Val::Bool(*b),
        AttributeValue::Array(items) => Val::Array(items),
        AttributeValue::Empty => Val::Nil,
        AttributeValue::Bytes(_) | AttributeValue::KvList(_) => Val::Str(Cow::Owned(v.to_text())),
    }
}

fn static_val(s: &Static) -> Val<'_> {
    match s {
        Static::Str(s) => Val::Str(Cow::Borrowed(s)),
        Static::Int(i) => Val::Int(*i),
        Static::Float(f) => Val::Float(*f),
        Static::Bool(b) => Val::Bool(*b),
        Static::Duration(d) => Val::Duration(*d),
        Static::Status(s) => Val::Status(*s),
        Static::Kind(k) => Val::Kind(*k),
        Static::Nil => Val::Nil,
    }
}

/// TraceQL's name of a status code.
pub fn status_name(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

/// TraceQL's name of a span kind.
pub fn kind_name(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "unspecified",
        other => other.as_jaeger_str(),
    }
}

fn number_of(v: &Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(f) => Some(*f),
        Val::Duration(d) => Some(*d as f64),
        _ => None,
    }
}

fn static_number(s: &Static) -> f64 {
    match s {
        Static::Int(i) => *i as f64,
        Static::Float(f) => *f,
        Static::Duration(d) => *d as f64,
        _ => f64::NAN,
    }
}

fn compare_numbers(op: CmpOp, a: f64, b: f64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
    }
}

fn compare_ord<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
    }
}

fn compare_vals(op: CmpOp, a: &Val, b: &Val) -> bool {
    let equality = matches!(op, CmpOp::Eq | CmpOp::Ne);
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => compare_ord(op, x.as_ref(), y.as_ref()),
        (Val::Int(x), Val::Int(y)) => compare_ord(op, x, y),
        (Val::Duration(x), Val::Duration(y)) => compare_ord(op, x, y),
        (Val::Bool(x), Val::Bool(y)) if equality => compare_ord(op, x, y),
        (Val::Status(x), Val::Status(y)) if equality => (x == y) == (op == CmpOp::Eq),
        (Val::Kind(x), Val::Kind(y)) if equality => (x == y) == (op == CmpOp::Eq),
        (Val::Status(s), Val::Str(t)) | (Val::Str(t), Val::Status(s)) if equality => {
            (status_name(*s) == t.as_ref()) == (op == CmpOp::Eq)
        }
        (Val::Kind(k), Val::Str(t)) | (Val::Str(t), Val::Kind(k)) if equality => {
            (kind_name(*k) == t.as_ref()) == (op == CmpOp::Eq)
        }
        _ => match (number_of(a), number_of(b)) {
            (Some(x), Some(y)) => compare_numbers(op, x, y),
            _ => false,
        },
    }
}
