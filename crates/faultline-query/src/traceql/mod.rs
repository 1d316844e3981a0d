//! TraceQL, the query language of Grafana Tempo: lexer, parser, pushdown planner and
//! evaluator.
//!
//! A query is parsed once ([`parse`]) into an AST ([`ast`]); [`plan::plan`] extracts the
//! conditions the store can pre-filter candidate traces with; [`eval::TraceView::evaluate`]
//! then runs the whole query on each candidate trace's spans in memory. Queries are untrusted:
//! their length and nesting are bounded at parse time, and evaluation is linear in the spans
//! of a trace times the size of the query.

pub mod ast;
pub mod eval;
mod lexer;
mod parser;
pub mod plan;
#[cfg(test)]
mod tests;

use std::fmt;

pub use parser::{parse, parse_field, MAX_DEPTH, MAX_OPERANDS, MAX_QUERY_BYTES, MAX_SPANSETS};

use ast::{Field, FieldExpr, Query, SpansetExpr, Stage};

/// A query that cannot be parsed, or uses what Faultline does not evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {column}: {message}")]
pub struct ParseError {
    /// 1-based line of the offending token.
    pub line: usize,
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(src: &str, offset: usize, message: String) -> Self {
        let offset = offset.min(src.len());
        // Offsets always come from token starts, which are character boundaries; fall back to
        // the whole text if not.
        let before = src.get(..offset).unwrap_or(src);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            line,
            column,
            message,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// The fields a query's conditions and `select` name, each once, in order of appearance:
/// the attributes the answer shows for each matched span.
pub fn shown_fields(query: &Query) -> Vec<Field> {
    let mut out = Vec::new();
    spanset_fields(&query.spansets, &mut out);
    for stage in &query.stages {
        match stage {
            Stage::Filter(f) => field_expr_fields(f, &mut out),
            Stage::Select(fields) => {
                for f in fields {
                    push_unique(&mut out, f);
                }
            }
            Stage::Aggregate { .. } | Stage::By(_) => {}
        }
    }
    out
}

fn push_unique(out: &mut Vec<Field>, f: &Field) {
    if !out.contains(f) {
        out.push(f.clone());
    }
}

fn spanset_fields(e: &SpansetExpr, out: &mut Vec<Field>) {
    match e {
        SpansetExpr::Filter(f) => field_expr_fields(f, out),
        SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) | SpansetExpr::Structural(_, a, b) => {
            spanset_fields(a, out);
            spanset_fields(b, out);
        }
    }
}

fn field_expr_fields(e: &FieldExpr, out: &mut Vec<Field>) {
    match e {
        FieldExpr::And(a, b) | FieldExpr::Or(a, b) | FieldExpr::Compare(_, a, b) => {
            field_expr_fields(a, out);
            field_expr_fields(b, out);
        }
        FieldExpr::Not(a) => field_expr_fields(a, out),
        FieldExpr::Regex { operand, .. } => field_expr_fields(operand, out),
        FieldExpr::Field(f) => push_unique(out, f),
        FieldExpr::Static(_) => {}
    }
}
