//! Recursive-descent parser from tokens to [`Query`].
//!
//! Precedence, loosest first: spanset `||`, spanset `&&`, structural operators (`>`, `>>`, `<`,
//! `<<`, `~`, left-associative); inside `{ }`: `||`, `&&`, `!`, comparisons. Every error names
//! the position of the token where parsing stopped and what was expected there.

use faultline_model::{SpanKind, StatusCode};
use regex::Regex;

use super::ast::{
    AggregateFn, CmpOp, Field, FieldExpr, Intrinsic, Query, Relation, Scope, SpansetExpr, Stage,
    Static,
};
use super::lexer::{lex, Tok, Token};
use super::ParseError;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Deepest nesting of parentheses, braces and `!` accepted.
pub const MAX_DEPTH: usize = 48;
/// Most pipeline stages accepted.
const MAX_STAGES: usize = 16;
/// Most `{ }` filters in one query: each is a pass over the trace's spans.
pub const MAX_SPANSETS: usize = 64;
/// Most operands (fields and values) in one query.
pub const MAX_OPERANDS: usize = 1_024;

/// Metrics functions of TraceQL, which Faultline's search does not evaluate.
const METRICS_FUNCTIONS: [&str; 12] = [
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
    "with",
];

/// Parses a whole query.
pub fn parse(src: &str) -> Result<Query, ParseError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(ParseError::new(
            src,
            MAX_QUERY_BYTES,
            format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let tokens = lex(src)?;
    let mut p = Parser {
        src,
        tokens,
        at: 0,
        depth: 0,
        spansets: 0,
        operands: 0,
    };
    let query = p.query()?;
    p.expect_end()?;
    Ok(query)
}

/// Parses a lone field reference (`span.http.method`, `.service.name`, `name`), as the tag
/// values endpoint names its tag.
pub fn parse_field(src: &str) -> Result<Field, ParseError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(ParseError::new(
            src,
            MAX_QUERY_BYTES,
            format!("the field is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let mut p = Parser {
        src,
        tokens: lex(src)?,
        at: 0,
        depth: 0,
        spansets: 0,
        operands: 0,
    };
    let field = p.field_ref()?;
    p.expect_end()?;
    Ok(field)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    spansets: usize,
    operands: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.at).map_or(&Tok::End, |t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens.get(self.at).map_or(self.src.len(), |t| t.pos)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.at < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn error(&self, message: String) -> ParseError {
        ParseError::new(self.src, self.pos(), message)
    }

    /// "expected X, found Y" at the current token.
    fn expected(&self, what: &str) -> ParseError {
        let found = self.peek();
        if let Tok::Unsupported(op) = found {
            return self.error(format!(
                "operator '{op}' is not supported by Faultline's TraceQL (arithmetic and negated or union structural operators are not implemented); expected {what}"
            ));
        }
        self.error(format!("expected {what}, found {}", found.describe()))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ParseError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    fn expect_end(&mut self) -> Result<(), ParseError> {
        if *self.peek() == Tok::End {
            Ok(())
        } else {
            Err(self.expected("'|', '&&', '||', a structural operator or the end of the query"))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("the query nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        if let Tok::Word(w) = self.peek() {
            if let Some(e) = self.unsupported_function(w) {
                return Err(e);
            }
        }
        let spansets = self.spanset_or()?;
        let mut stages = Vec::new();
        while *self.peek() == Tok::Pipe {
            self.bump();
            if stages.len() == MAX_STAGES {
                return Err(self.error(format!(
                    "the query has more than {MAX_STAGES} pipeline stages"
                )));
            }
            stages.push(self.stage()?);
        }
        Ok(Query { spansets, stages })
    }

    fn spanset_or(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut left = self.spanset_and()?;
        while *self.peek() == Tok::OrOr {
            self.bump();
            let right = self.spanset_and()?;
            left = SpansetExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn spanset_and(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut left = self.structural()?;
        while *self.peek() == Tok::AndAnd {
            self.bump();
            let right = self.structural()?;
            left = SpansetExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn structural(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut left = self.spanset_primary()?;
        loop {
            let relation = match self.peek() {
                Tok::Gt => Relation::Child,
                Tok::Descendant => Relation::Descendant,
                Tok::Lt => Relation::Parent,
                Tok::Ancestor => Relation::Ancestor,
                Tok::Sibling => Relation::Sibling,
                Tok::Unsupported(op) => {
                    return Err(self.error(format!(
                        "structural operator '{op}' is not supported by Faultline's TraceQL; use >, >>, <, << or ~"
                    )))
                }
                Tok::NotRe => {
                    return Err(self.error(
                        "structural operator '!~' (not sibling) is not supported by Faultline's TraceQL; use >, >>, <, << or ~".to_owned(),
                    ))
                }
                _ => return Ok(left),
            };
            self.bump();
            let right = self.spanset_primary()?;
            left = SpansetExpr::Structural(relation, Box::new(left), Box::new(right));
        }
    }

    fn spanset_primary(&mut self) -> Result<SpansetExpr, ParseError> {
        match self.peek() {
            Tok::LBrace => {
                self.enter()?;
                let filter = self.filter_body()?;
                self.leave();
                Ok(SpansetExpr::Filter(filter))
            }
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let inner = self.spanset_or()?;
                if *self.peek() == Tok::Pipe {
                    return Err(self.error(
                        "a pipeline inside parentheses is not supported by Faultline's TraceQL; put pipeline stages after the whole spanset expression".to_owned(),
                    ));
                }
                self.expect(Tok::RParen, "')'")?;
                self.leave();
                Ok(inner)
            }
            Tok::Word(w) => Err(self
                .unsupported_function(w)
                .unwrap_or_else(|| self.expected("'{' to start a spanset filter"))),
            _ => Err(self.expected("'{' to start a spanset filter")),
        }
    }

    /// `{ }` or `{ expr }`, starting at `{`.
    fn filter_body(&mut self) -> Result<FieldExpr, ParseError> {
        self.spansets += 1;
        if self.spansets > MAX_SPANSETS {
            return Err(self.error(format!(
                "the query has more than {MAX_SPANSETS} spanset filters"
            )));
        }
        self.expect(Tok::LBrace, "'{'")?;
        if *self.peek() == Tok::RBrace {
            self.bump();
            return Ok(FieldExpr::Static(Static::Bool(true)));
        }
        let start = self.pos();
        let expr = self.field_or()?;
        if let FieldExpr::Static(s) = &expr {
            if !matches!(s, Static::Bool(_)) {
                return Err(ParseError::new(
                    self.src,
                    start,
                    "expected a condition inside '{ }' (such as .attr = value), found a lone value"
                        .to_owned(),
                ));
            }
        }
        self.expect(
            Tok::RBrace,
            "'}' or an operator (&&, ||, =, !=, >, <, =~, ...)",
        )?;
        Ok(expr)
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        if *self.peek() == Tok::LBrace {
            self.enter()?;
            let f = self.filter_body()?;
            self.leave();
            return Ok(Stage::Filter(f));
        }
        let Tok::Word(w) = self.peek().clone() else {
            return Err(self.expected(
                "a pipeline stage: { filter }, count(), avg(...), min(...), max(...), sum(...), by(...) or select(...)",
            ));
        };
        if let Some(e) = self.unsupported_function(&w) {
            return Err(e);
        }
        let func = match w.as_str() {
            "count" => AggregateFn::Count,
            "avg" => AggregateFn::Avg,
            "min" => AggregateFn::Min,
            "max" => AggregateFn::Max,
            "sum" => AggregateFn::Sum,
            "by" | "select" => {
                self.bump();
                self.expect(Tok::LParen, &format!("'(' after {w}"))?;
                let mut fields = vec![self.field_ref()?];
                while *self.peek() == Tok::Comma {
                    self.bump();
                    fields.push(self.field_ref()?);
                }
                self.expect(Tok::RParen, "',' or ')'")?;
                return Ok(if w == "by" {
                    Stage::By(fields)
                } else {
                    Stage::Select(fields)
                });
            }
            "coalesce" => {
                return Err(self.error(
                    "coalesce() is not supported by Faultline's TraceQL".to_owned(),
                ))
            }
            _ => {
                return Err(self.expected(
                    "a pipeline stage: { filter }, count(), avg(...), min(...), max(...), sum(...), by(...) or select(...)",
                ))
            }
        };
        self.bump();
        self.expect(Tok::LParen, &format!("'(' after {}", func.name()))?;
        let field = if func == AggregateFn::Count {
            None
        } else {
            Some(self.field_ref()?)
        };
        self.expect(Tok::RParen, "')'")?;
        let op = self.cmp_op().ok_or_else(|| {
            self.expected(&format!(
                "a comparison (=, !=, >, >=, <, <=) after {}()",
                func.name()
            ))
        })?;
        self.bump();
        let value = match self.bump() {
            Tok::Int(i) => Static::Int(i),
            Tok::Float(f) => Static::Float(f),
            Tok::Duration(d) => Static::Duration(d),
            _ => {
                self.at -= 1;
                return Err(self.expected("a number or duration to compare the aggregate with"));
            }
        };
        Ok(Stage::Aggregate {
            func,
            field,
            op,
            value,
        })
    }

    /// An error for metrics and other functions Faultline does not evaluate.
    fn unsupported_function(&self, w: &str) -> Option<ParseError> {
        METRICS_FUNCTIONS.contains(&w).then(|| {
            self.error(format!(
                "'{w}' is a TraceQL metrics function, which Faultline does not support: only search queries (spanset filters and pipelines with count, avg, min, max, sum, by, select) are evaluated"
            ))
        })
    }

    fn cmp_op(&self) -> Option<CmpOp> {
        Some(match self.peek() {
            Tok::Eq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            _ => return None,
        })
    }

    fn field_or(&mut self) -> Result<FieldExpr, ParseError> {
        let mut left = self.field_and()?;
        while *self.peek() == Tok::OrOr {
            self.bump();
            let right = self.field_and()?;
            left = FieldExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn field_and(&mut self) -> Result<FieldExpr, ParseError> {
        let mut left = self.field_not()?;
        while *self.peek() == Tok::AndAnd {
            self.bump();
            let right = self.field_not()?;
            left = FieldExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn field_not(&mut self) -> Result<FieldExpr, ParseError> {
        if *self.peek() == Tok::Not {
            self.bump();
            self.enter()?;
            let inner = self.field_not()?;
            self.leave();
            return Ok(FieldExpr::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<FieldExpr, ParseError> {
        let left = self.operand()?;
        if let Some(op) = self.cmp_op() {
            self.bump();
            let right = self.operand()?;
            return Ok(FieldExpr::Compare(op, Box::new(left), Box::new(right)));
        }
        if matches!(self.peek(), Tok::Re | Tok::NotRe) {
            let negated = self.bump() == Tok::NotRe;
            let at = self.pos();
            let Tok::Str(pattern) = self.bump() else {
                self.at -= 1;
                return Err(self.expected("a quoted regular expression after =~ or !~"));
            };
            // Tempo anchors regular expressions at both ends.
            let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                ParseError::new(
                    self.src,
                    at,
                    format!("invalid regular expression \"{pattern}\": {e}"),
                )
            })?;
            return Ok(FieldExpr::Regex {
                operand: Box::new(left),
                regex,
                negated,
            });
        }
        Ok(left)
    }

    fn operand(&mut self) -> Result<FieldExpr, ParseError> {
        self.operands += 1;
        if self.operands > MAX_OPERANDS {
            return Err(self.error(format!(
                "the query has more than {MAX_OPERANDS} fields and values"
            )));
        }
        match self.peek().clone() {
            Tok::LParen => {
                self.bump();
                self.enter()?;
                let inner = self.field_or()?;
                self.expect(Tok::RParen, "')' or an operator")?;
                self.leave();
                Ok(inner)
            }
            Tok::Str(s) => {
                self.bump();
                Ok(FieldExpr::Static(Static::Str(s)))
            }
            Tok::Int(i) => {
                self.bump();
                Ok(FieldExpr::Static(Static::Int(i)))
            }
            Tok::Float(f) => {
                self.bump();
                Ok(FieldExpr::Static(Static::Float(f)))
            }
            Tok::Duration(d) => {
                self.bump();
                Ok(FieldExpr::Static(Static::Duration(d)))
            }
            Tok::Word(w) => {
                if let Some(s) = keyword_static(&w) {
                    self.bump();
                    return Ok(FieldExpr::Static(s));
                }
                if let Some(e) = self.unsupported_function(&w) {
                    return Err(e);
                }
                Ok(FieldExpr::Field(self.field_ref()?))
            }
            _ => Err(self.expected(
                "a field (span.x, resource.x, .x, name, status, kind, duration, ...) or a value",
            )),
        }
    }

    /// An attribute or intrinsic reference.
    fn field_ref(&mut self) -> Result<Field, ParseError> {
        let Tok::Word(w) = self.peek().clone() else {
            return Err(self
                .expected("a field (span.x, resource.x, .x, name, status, kind, duration, ...)"));
        };
        let field = self.classify(&w)?;
        self.bump();
        Ok(field)
    }

    fn classify(&self, w: &str) -> Result<Field, ParseError> {
        if let Some(i) = Intrinsic::from_word(w) {
            return Ok(Field::Intrinsic(i));
        }
        let attr = |scope, name: &str| {
            if name.is_empty() {
                Err(self.error(format!("expected an attribute name after '{w}'")))
            } else {
                Ok(Field::Attribute {
                    scope,
                    name: name.to_owned(),
                })
            }
        };
        if let Some(name) = w.strip_prefix("span.") {
            return attr(Scope::Span, name);
        }
        if let Some(name) = w.strip_prefix("resource.") {
            return attr(Scope::Resource, name);
        }
        if let Some(name) = w.strip_prefix('.') {
            return attr(Scope::Unscoped, name);
        }
        for scope in [
            "event",
            "link",
            "instrumentation",
            "parent",
            "trace",
            "span",
        ] {
            if w.starts_with(&format!("{scope}.")) || w.starts_with(&format!("{scope}:")) {
                return Err(self.error(format!(
                    "'{w}' is not supported by Faultline's TraceQL: the supported fields are span.<attr>, resource.<attr>, .<attr> and the intrinsics {}",
                    Intrinsic::ALL_NAMES.join(", ")
                )));
            }
        }
        Err(self.error(format!(
            "unknown identifier '{w}': attributes need a scope (span.{w}, resource.{w} or .{w}), or use an intrinsic such as name, status, kind or duration"
        )))
    }
}

/// The literal a keyword stands for.
fn keyword_static(w: &str) -> Option<Static> {
    Some(match w {
        "true" => Static::Bool(true),
        "false" => Static::Bool(false),
        "nil" => Static::Nil,
        "error" => Static::Status(StatusCode::Error),
        "ok" => Static::Status(StatusCode::Ok),
        "unset" => Static::Status(StatusCode::Unset),
        "server" => Static::Kind(SpanKind::Server),
        "client" => Static::Kind(SpanKind::Client),
        "producer" => Static::Kind(SpanKind::Producer),
        "consumer" => Static::Kind(SpanKind::Consumer),
        "internal" => Static::Kind(SpanKind::Internal),
        "unspecified" => Static::Kind(SpanKind::Unspecified),
        _ => return None,
    })
}
