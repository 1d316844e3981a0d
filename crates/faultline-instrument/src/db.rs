//! A database helper recording CLIENT spans for queries: `db.system.name`,
//! `db.operation.name`, a sanitised `db.query.text` and the time spent waiting for a pooled
//! connection, so an exhausted pool is visible in the trace rather than blamed on the database.

use std::future::Future;
use std::time::Instant;

use opentelemetry::trace::{FutureExt as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;

use crate::semconv;

/// Records query spans for one database system (`postgresql`, `mysql`, `sqlite`, ...).
///
/// ```
/// use faultline_instrument::Telemetry;
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let telemetry = Telemetry::builder("orders")
///     .install_global(false)
///     .install_with_exporter(InMemorySpanExporter::default())?;
/// let db = telemetry.database("postgresql");
/// let rows: Result<u64, std::io::Error> = db
///     .query(
///         "SELECT * FROM orders WHERE id = 42",
///         async { Ok("connection") },                 // e.g. pool.acquire()
///         |_conn| async { Ok(1) },                    // e.g. sqlx::query(..).execute(conn)
///     )
///     .await;
/// assert_eq!(rows?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Database {
    tracer: SdkTracer,
    system: String,
    attributes: Vec<KeyValue>,
}

impl Database {
    /// Helpers for `system` (the `db.system.name` attribute).
    pub fn new(tracer: SdkTracer, system: impl Into<String>) -> Self {
        Database {
            tracer,
            system: system.into(),
            attributes: Vec::new(),
        }
    }

    /// An attribute added to every span, e.g. `server.address` or `db.namespace`.
    pub fn with_attribute(mut self, attribute: KeyValue) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Times `acquire` (the pool wait) and `run` (the query) under one CLIENT span.
    pub async fn query<C, T, E, A, R, F>(&self, query: &str, acquire: A, run: R) -> Result<T, E>
    where
        A: Future<Output = Result<C, E>>,
        R: FnOnce(C) -> F,
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let operation = operation_name(query);
        let collection = collection_name(query, operation.as_deref());
        let mut attributes = self.attributes.clone();
        attributes.push(KeyValue::new("db.system.name", self.system.clone()));
        attributes.push(KeyValue::new("db.query.text", sanitize(query)));
        if let Some(op) = &operation {
            attributes.push(KeyValue::new("db.operation.name", op.clone()));
        }
        if let Some(collection) = &collection {
            attributes.push(KeyValue::new("db.collection.name", collection.clone()));
        }
        let name = match (&operation, &collection) {
            (Some(op), Some(target)) => format!("{op} {target}"),
            (Some(op), None) => op.clone(),
            _ => self.system.clone(),
        };
        let parent = Context::current();
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        let waited = Instant::now();
        let connection = acquire.with_context(cx.clone()).await;
        cx.span().set_attribute(KeyValue::new(
            "db.client.connection.wait_time",
            waited.elapsed().as_secs_f64(),
        ));
        let connection = match connection {
            Ok(c) => c,
            Err(err) => {
                fail(&cx, "pool.acquire", &err);
                return Err(err);
            }
        };
        let result = run(connection).with_context(cx.clone()).await;
        match &result {
            Ok(_) => cx.span().end(),
            Err(err) => fail(&cx, "_OTHER", err),
        }
        result
    }
}

fn fail(cx: &Context, error_type: &'static str, err: &dyn std::fmt::Display) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("error.type", error_type));
    span.set_status(Status::error(
        semconv::truncate(&err.to_string(), 512).to_owned(),
    ));
    span.end();
}

/// The first keyword, upper-cased (`SELECT`, `INSERT`, ...), if the query starts with a word.
pub fn operation_name(query: &str) -> Option<String> {
    let word: String = strip_leading_comments(query)
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    (!word.is_empty() && word.len() <= 32).then(|| word.to_ascii_uppercase())
}

fn strip_leading_comments(mut query: &str) -> &str {
    loop {
        query = query.trim_start();
        if let Some(rest) = query.strip_prefix("--") {
            query = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = query.strip_prefix("/*") {
            query = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return query;
        }
    }
}

/// The table a simple statement targets: after `FROM` for SELECT/DELETE, `INTO` for INSERT,
/// and the word after `UPDATE`. Joins and subqueries yield the first table only.
fn collection_name(query: &str, operation: Option<&str>) -> Option<String> {
    let keyword = match operation? {
        "SELECT" | "DELETE" => "FROM",
        "INSERT" => "INTO",
        "UPDATE" => "UPDATE",
        _ => return None,
    };
    let mut words = query.split_whitespace();
    words.find(|w| w.eq_ignore_ascii_case(keyword))?;
    let table: String = words
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '"' | '`'))
        .collect();
    (!table.is_empty() && table.len() <= 128).then_some(table)
}

/// Replaces literals with `?` and drops comments, so values (emails, tokens) never reach the
/// trace backend. Quoted identifiers ("table") are kept.
pub fn sanitize(query: &str) -> String {
    let mut out = String::with_capacity(query.len().min(4096));
    let mut chars = query.chars().peekable();
    let mut prev_is_word = false;
    while let Some(c) = chars.next() {
        if out.len() >= 4096 {
            out.push_str("...");
            break;
        }
        match c {
            '\'' => {
                // '' inside a string is an escaped quote, not its end.
                loop {
                    match chars.next() {
                        None => break,
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                        }
                        Some('\'') => break,
                        Some(_) => {}
                    }
                }
                out.push('?');
                prev_is_word = false;
            }
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                out.push(' ');
                prev_is_word = false;
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
                prev_is_word = false;
            }
            c if c.is_ascii_digit() && !prev_is_word => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
                {
                    chars.next();
                }
                out.push('?');
                prev_is_word = false;
            }
            c => {
                prev_is_word = c.is_alphanumeric() || c == '_' || c == '$';
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_literals_and_comments() {
        assert_eq!(
            sanitize("SELECT * FROM users WHERE email = 'a@b.c' AND id = 42 -- by support"),
            "SELECT * FROM users WHERE email = ? AND id = ?  "
        );
        assert_eq!(
            sanitize("SELECT 'it''s', 3.14, 0x1F FROM t2"),
            "SELECT ?, ?, ? FROM t2"
        );
        assert_eq!(
            sanitize("SELECT /* secret 99 */ a1 FROM \"Tab\""),
            "SELECT   a1 FROM \"Tab\""
        );
        assert_eq!(sanitize("SELECT $1, col_2"), "SELECT $1, col_2");
        assert_eq!(sanitize("SELECT 'unterminated"), "SELECT ?");
    }

    #[test]
    fn names_operation_and_table() {
        let q = "/* app */ select id from orders o join items i on o.id = i.order_id";
        assert_eq!(operation_name(q).as_deref(), Some("SELECT"));
        assert_eq!(
            collection_name(q, Some("SELECT")).as_deref(),
            Some("orders")
        );
        assert_eq!(
            collection_name("INSERT INTO items (a) VALUES (1)", Some("INSERT")).as_deref(),
            Some("items")
        );
        assert_eq!(
            collection_name("UPDATE stock SET n = 1", Some("UPDATE")).as_deref(),
            Some("stock")
        );
        assert_eq!(operation_name("  -- only a comment"), None);
    }
}
