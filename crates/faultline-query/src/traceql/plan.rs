//! What of a query the store can pre-filter on: the conditions [`SpanQuery`] understands.
//!
//! The plan only ever widens: every trace the query matches also matches one of the
//! plan's alternatives, so using it to pick candidate traces loses nothing. Conditions
//! `SpanQuery` cannot express (regexes, `!=`, ranges on attributes, `||` inside braces,
//! trace-level intrinsics) are simply left to the evaluator.

use faultline_model::query::SpanQuery;
use faultline_model::{AttributeValue, StatusCode};

use super::ast::{CmpOp, Field, FieldExpr, Intrinsic, Query, Scope, SpansetExpr, Static};

/// Conditions one span must meet together, as `SpanQuery` states them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pushdown {
    /// `resource.service.name = "x"`.
    pub service: Option<String>,
    /// `name = "x"`.
    pub operation: Option<String>,
    /// `kind = server`.
    pub kind: Option<faultline_model::SpanKind>,
    /// Attribute equalities (compared as text) and `status = error` (as `error=true`).
    pub tags: Vec<(String, String)>,
    /// `duration > / >=`.
    pub min_duration_nanos: Option<u64>,
    /// `duration < / <=`.
    pub max_duration_nanos: Option<u64>,
}

impl Pushdown {
    /// Whether this restricts nothing.
    pub fn is_trivial(&self) -> bool {
        *self == Self::default()
    }

    /// A rough guess of how few spans these conditions leave: names, services and attribute
    /// values narrow a search far more than a kind or a duration bound.
    fn selectivity(&self) -> usize {
        3 * usize::from(self.operation.is_some())
            + 2 * usize::from(self.service.is_some())
            + 3 * self.tags.len()
            + usize::from(self.kind.is_some())
            + usize::from(self.min_duration_nanos.is_some())
            + usize::from(self.max_duration_nanos.is_some())
    }

    /// These conditions as a search over `[start, end]` for at most `limit` traces.
    pub fn to_span_query(
        &self,
        start: faultline_model::UnixNanos,
        end: faultline_model::UnixNanos,
        limit: usize,
    ) -> SpanQuery {
        SpanQuery {
            service: self.service.clone(),
            operation: self.operation.clone(),
            kind: self.kind,
            tags: self.tags.clone(),
            min_duration_nanos: self.min_duration_nanos,
            max_duration_nanos: self.max_duration_nanos,
            start,
            end,
            limit,
        }
    }
}

/// The alternatives a matching trace meets at least one of. A single trivial alternative
/// means the query gives the store nothing to filter on.
pub fn plan(query: &Query) -> Vec<Pushdown> {
    alternatives(&query.spansets)
}

fn alternatives(expr: &SpansetExpr) -> Vec<Pushdown> {
    match expr {
        SpansetExpr::Filter(f) => {
            let mut p = Pushdown::default();
            conjuncts(f, &mut p);
            vec![p]
        }
        SpansetExpr::Or(a, b) => {
            let mut all = alternatives(a);
            all.extend(alternatives(b));
            if all.iter().any(Pushdown::is_trivial) {
                vec![Pushdown::default()]
            } else {
                all
            }
        }
        // Both sides must match in the trace: either side's plan alone is a valid filter, so
        // take the more selective-looking one (the weakest of its alternatives counts).
        SpansetExpr::And(a, b) | SpansetExpr::Structural(_, a, b) => {
            let (pa, pb) = (alternatives(a), alternatives(b));
            let score = |p: &[Pushdown]| {
                let weakest = p.iter().map(Pushdown::selectivity).min().unwrap_or(0);
                (weakest, std::cmp::Reverse(p.len()))
            };
            if score(&pb) > score(&pa) {
                pb
            } else {
                pa
            }
        }
    }
}

/// Adds the top-level `&&`-joined conditions of `f` that `SpanQuery` can express.
fn conjuncts(f: &FieldExpr, p: &mut Pushdown) {
    match f {
        FieldExpr::And(a, b) => {
            conjuncts(a, p);
            conjuncts(b, p);
        }
        FieldExpr::Compare(op, l, r) => match (l.as_ref(), r.as_ref()) {
            (FieldExpr::Field(field), FieldExpr::Static(v)) => condition(field, *op, v, p),
            (FieldExpr::Static(v), FieldExpr::Field(field)) => condition(field, flip(*op), v, p),
            _ => {}
        },
        _ => {}
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        other => other,
    }
}

fn condition(field: &Field, op: CmpOp, v: &Static, p: &mut Pushdown) {
    match (field, op, v) {
        (Field::Intrinsic(Intrinsic::Name), CmpOp::Eq, Static::Str(s)) => {
            p.operation.get_or_insert_with(|| s.clone());
        }
        (Field::Intrinsic(Intrinsic::Kind), CmpOp::Eq, Static::Kind(k)) => {
            p.kind.get_or_insert(*k);
        }
        (Field::Intrinsic(Intrinsic::Status), CmpOp::Eq, Static::Status(StatusCode::Error)) => {
            // `SpanQuery` matches `error=true` on spans with status Error (and on spans with
            // an attribute error=true: a wider net, which is fine for a pre-filter).
            p.tags.push(("error".to_owned(), "true".to_owned()));
        }
        (Field::Intrinsic(Intrinsic::Duration), _, Static::Duration(d)) => {
            let d = *d;
            match op {
                CmpOp::Gt => lower(p, d.saturating_add(1)),
                CmpOp::Ge => lower(p, d),
                CmpOp::Lt => upper(p, d.saturating_sub(1)),
                CmpOp::Le => upper(p, d),
                CmpOp::Eq => {
                    lower(p, d);
                    upper(p, d);
                }
                CmpOp::Ne => {}
            }
        }
        (
            Field::Attribute {
                scope: Scope::Resource,
                name,
            },
            CmpOp::Eq,
            Static::Str(s),
        ) if name == "service.name" => {
            p.service.get_or_insert_with(|| s.clone());
        }
        (Field::Attribute { name, .. }, CmpOp::Eq, v) => {
            // `SpanQuery` compares tags as text over span, resource and event attributes: a
            // superset of any one scope. Only types whose text form is exact are pushed.
            let text = match v {
                Static::Str(s) => AttributeValue::String(s.as_str().into()).to_text(),
                Static::Int(i) => AttributeValue::Int(*i).to_text(),
                Static::Bool(b) => AttributeValue::Bool(*b).to_text(),
                _ => return,
            };
            p.tags.push((name.clone(), text));
        }
        _ => {}
    }
}

fn lower(p: &mut Pushdown, d: u64) {
    p.min_duration_nanos = Some(p.min_duration_nanos.map_or(d, |m| m.max(d)));
}

fn upper(p: &mut Pushdown, d: u64) {
    p.max_duration_nanos = Some(p.max_duration_nanos.map_or(d, |m| m.min(d)));
}
