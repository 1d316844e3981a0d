//! Splits a TraceQL query into tokens, each with the byte offset where it starts.

use super::ParseError;

/// One token of a query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `|`
    Pipe,
    /// `&&`
    AndAnd,
    /// `||`
    OrOr,
    /// `!`
    Not,
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
    /// `=~`
    Re,
    /// `!~`
    NotRe,
    /// `>>`
    Descendant,
    /// `<<`
    Ancestor,
    /// `~`
    Sibling,
    /// An operator TraceQL has and Faultline does not evaluate (`+`, `!>`, `&>`, ...).
    Unsupported(&'static str),
    /// A quoted string, unescaped.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A duration, in nanoseconds.
    Duration(u64),
    /// A word: keyword, intrinsic or attribute path (`span.http.method`, `.foo`, `span:name`).
    Word(String),
    /// End of input.
    End,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Duration(_) => "a duration".to_owned(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::End => "the end of the query".to_owned(),
            Tok::Unsupported(op) => format!("'{op}'"),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Pipe => "|",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Not => "!",
            Tok::Eq => "=",
            Tok::Ne => "!=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Re => "=~",
            Tok::NotRe => "!~",
            Tok::Descendant => ">>",
            Tok::Ancestor => "<<",
            Tok::Sibling => "~",
            _ => "",
        }
    }
}

/// A token and the byte offset of its first character.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// Characters an attribute path or keyword may hold after its first character.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Tokenizes `src`, ending with [`Tok::End`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = match src[i..].chars().next() {
            Some(c) => c,
            None => break,
        };
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let two = src.get(i..i + 2).unwrap_or("");
        let (tok, len) = match two {
            "&&" => (Tok::AndAnd, 2),
            "||" => (Tok::OrOr, 2),
            "!=" => (Tok::Ne, 2),
            "!~" => (Tok::NotRe, 2),
            ">=" => (Tok::Ge, 2),
            "<=" => (Tok::Le, 2),
            "=~" => (Tok::Re, 2),
            ">>" => (Tok::Descendant, 2),
            "<<" => (Tok::Ancestor, 2),
            "!>" | "!<" | "&>" | "&<" | "&~" => (Tok::Unsupported(static_op(two)), 2),
            _ => match c {
                '{' => (Tok::LBrace, 1),
                '}' => (Tok::RBrace, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                ',' => (Tok::Comma, 1),
                '|' => (Tok::Pipe, 1),
                '!' => (Tok::Not, 1),
                '=' => (Tok::Eq, 1),
                '>' => (Tok::Gt, 1),
                '<' => (Tok::Lt, 1),
                '~' => (Tok::Sibling, 1),
                '+' => (Tok::Unsupported("+"), 1),
                '*' => (Tok::Unsupported("*"), 1),
                '/' => (Tok::Unsupported("/"), 1),
                '%' => (Tok::Unsupported("%"), 1),
                '^' => (Tok::Unsupported("^"), 1),
                '&' => (Tok::Unsupported("&"), 1),
                '"' | '`' => {
                    let (s, len) = string(src, i)?;
                    (Tok::Str(s), len)
                }
                '-' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                    let (tok, len) = number(src, i + 1)?;
                    let tok = match tok {
                        Tok::Int(n) => Tok::Int(-n),
                        Tok::Float(f) => Tok::Float(-f),
                        // A negative duration has no meaning: report it where it is.
                        _ => {
                            return Err(ParseError::new(
                                src,
                                i,
                                "a duration cannot be negative".to_owned(),
                            ))
                        }
                    };
                    (tok, len + 1)
                }
                '-' => (Tok::Unsupported("-"), 1),
                d if d.is_ascii_digit() => number(src, i)?,
                w if w.is_alphabetic() || w == '.' || w == '_' => word(src, i)?,
                other => {
                    return Err(ParseError::new(
                        src,
                        i,
                        format!("unexpected character '{other}'"),
                    ))
                }
            },
        };
        out.push(Token { tok, pos: start });
        i += len;
    }
    out.push(Token {
        tok: Tok::End,
        pos: src.len(),
    });
    Ok(out)
}

fn static_op(op: &str) -> &'static str {
    match op {
        "!>" => "!>",
        "!<" => "!<",
        "&>" => "&>",
        "&<" => "&<",
        _ => "&~",
    }
}

/// A quoted string starting at `start` (a `"` with escapes, or a raw `` ` `` string); returns
/// the text and the length consumed.
fn string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let quote = src[start..].chars().next().unwrap_or('"');
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        if c == quote {
            return Ok((out, off + 2));
        }
        if c == '\\' && quote == '"' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, e @ ('\\' | '"' | '\''))) => out.push(e),
                // Regexes keep their own escapes (`\d`, `\.`).
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(ParseError::new(
        src,
        start,
        format!("unterminated string: expected a closing {quote}"),
    ))
}

/// Nanoseconds per duration unit, longest unit names first so `ms` wins over `m`.
const UNITS: [(&str, f64); 7] = [
    ("ns", 1.0),
    ("us", 1e3),
    ("µs", 1e3),
    ("ms", 1e6),
    ("s", 1e9),
    ("m", 60e9),
    ("h", 3600e9),
];

/// A number or a duration (`12`, `1.5`, `250ms`, `1h30m`) starting at `start`.
fn number(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let mut i = start;
    let mut total_nanos = 0f64;
    let mut saw_unit = false;
    loop {
        let digits_start = i;
        while src[i..].starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            i += 1;
        }
        let text = &src[digits_start..i];
        let unit = UNITS.iter().find(|(u, _)| src[i..].starts_with(u));
        let Some((unit, factor)) = unit else {
            if saw_unit {
                return Err(ParseError::new(
                    src,
                    digits_start,
                    "expected a unit (ns, us, ms, s, m, h) after the number in a duration"
                        .to_owned(),
                ));
            }
            if src[i..].starts_with(|c: char| c.is_alphabetic() || c == '_') {
                return Err(ParseError::new(
                    src,
                    i,
                    format!(
                        "unknown unit after {text}: expected ns, us, ms, s, m or h, or a space"
                    ),
                ));
            }
            return plain_number(src, start, text).map(|t| (t, i - start));
        };
        let value: f64 = text
            .parse()
            .map_err(|_| ParseError::new(src, digits_start, format!("'{text}' is not a number")))?;
        total_nanos += value * factor;
        saw_unit = true;
        i += unit.len();
        if src[i..].starts_with(|c: char| c.is_alphabetic() || c == '_') {
            return Err(ParseError::new(
                src,
                i,
                "unknown unit in duration: expected ns, us, ms, s, m or h".to_owned(),
            ));
        }
        if !src[i..].starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(ParseError::new(
            src,
            start,
            "duration is too large".to_owned(),
        ));
    }
    Ok((Tok::Duration(total_nanos.round() as u64), i - start))
}

fn plain_number(src: &str, start: usize, text: &str) -> Result<Tok, ParseError> {
    if text.contains('.') {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Tok::Float)
            .ok_or_else(|| ParseError::new(src, start, format!("'{text}' is not a number")))
    } else {
        text.parse::<i64>().map(Tok::Int).map_err(|_| {
            ParseError::new(
                src,
                start,
                format!("'{text}' does not fit in a 64-bit integer"),
            )
        })
    }
}

/// A keyword or attribute path; a scope ending in `.` may be followed by a quoted name
/// (`span."foo bar"`).
fn word(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let mut end = start;
    for (off, c) in src[start..].char_indices() {
        if off == 0 || is_word_char(c) {
            end = start + off + c.len_utf8();
        } else {
            break;
        }
    }
    let mut text = src[start..end].to_owned();
    if text.ends_with('.') && src[end..].starts_with('"') {
        let (quoted, len) = string(src, end)?;
        text.push_str(&quoted);
        end += len;
    }
    Ok((Tok::Word(text), end - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn operators_and_punctuation() {
        assert_eq!(
            toks("{ } ( ) , | && || ! = != > >= < <= =~ !~ >> << ~"),
            vec![
                Tok::LBrace,
                Tok::RBrace,
                Tok::LParen,
                Tok::RParen,
                Tok::Comma,
                Tok::Pipe,
                Tok::AndAnd,
                Tok::OrOr,
                Tok::Not,
                Tok::Eq,
                Tok::Ne,
                Tok::Gt,
                Tok::Ge,
                Tok::Lt,
                Tok::Le,
                Tok::Re,
                Tok::NotRe,
                Tok::Descendant,
                Tok::Ancestor,
                Tok::Sibling,
                Tok::End
            ]
        );
    }

    #[test]
    fn values() {
        assert_eq!(
            toks(r#"42 -7 1.5 "a\"b" `c\d` 100ms 1.5s 1h30m 2us 3ns"#),
            vec![
                Tok::Int(42),
                Tok::Int(-7),
                Tok::Float(1.5),
                Tok::Str("a\"b".into()),
                Tok::Str("c\\d".into()),
                Tok::Duration(100_000_000),
                Tok::Duration(1_500_000_000),
                Tok::Duration(5_400_000_000_000),
                Tok::Duration(2_000),
                Tok::Duration(3),
                Tok::End
            ]
        );
    }

    #[test]
    fn words_and_positions() {
        let t = lex(r#"{span.http.method="GET" && .x-y && span."a b" = 1}"#).expect("lexes");
        assert_eq!(t[1].tok, Tok::Word("span.http.method".into()));
        assert_eq!(t[1].pos, 1);
        assert_eq!(t[2].tok, Tok::Eq);
        assert_eq!(t[2].pos, 17);
        assert_eq!(t[5].tok, Tok::Word(".x-y".into()));
        assert_eq!(t[7].tok, Tok::Word("span.a b".into()));
    }

    #[test]
    fn errors_name_the_position() {
        let e = lex("{ .a = \"open }").expect_err("unterminated");
        assert_eq!(e.column, 8);
        assert!(e.message.contains("unterminated string"), "{e}");
        let e = lex("{ duration > 5xs }").expect_err("unit");
        assert!(e.message.contains("unknown unit"), "{e}");
        let e = lex("{ .a = 99999999999999999999 }").expect_err("overflow");
        assert!(e.message.contains("64-bit"), "{e}");
        let e = lex("{ .a = ? }").expect_err("char");
        assert_eq!((e.line, e.column), (1, 8));
    }
}
