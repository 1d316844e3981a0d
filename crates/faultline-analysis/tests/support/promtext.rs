//! A small, strict parser of the Prometheus text format 0.0.4 and OpenMetrics 1.0, enough to
//! check what `/metrics` writes: families declared before their samples, valid names and
//! escapes, cumulative histogram buckets ending in `+Inf == _count`, exemplars only where
//! OpenMetrics allows them and within their bucket, `# EOF` last.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
    /// Exemplar labels and value, if any.
    pub exemplar: Option<(BTreeMap<String, String>, f64)>,
}

/// The parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type.
    pub types: HashMap<String, String>,
    /// Samples in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Samples named `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The single value of `name` with `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{k="v",...}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected '{'")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let key = &rest[..eq];
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.insert(key.to_owned(), value).is_some() {
            return Err(format!("duplicate label {key}"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(
    name: &'a str,
    types: &HashMap<String, String>,
    open_metrics: bool,
) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count", "_total"] {
        if let Some(base) = name.strip_suffix(suffix) {
            let ok = match (types.get(base).map(String::as_str), suffix) {
                (Some("histogram"), "_bucket" | "_sum" | "_count") => true,
                (Some("counter"), "_total") => open_metrics,
                _ => false,
            };
            if ok {
                return Some(base);
            }
        }
    }
    None
}

/// Parses and checks `text`; `open_metrics` selects the OpenMetrics rules.
pub fn parse(text: &str, open_metrics: bool) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut current: Option<String> = None;
    let mut seen_families: Vec<String> = Vec::new();
    let mut eof = false;
    for (n, line) in text.lines().enumerate() {
        let ctx = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if eof {
            return Err(ctx("content after # EOF".into()));
        }
        if line == "# EOF" {
            if !open_metrics {
                return Err(ctx("# EOF in the Prometheus format".into()));
            }
            eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, arg) = (parts.next(), parts.next(), parts.next());
            let name = name.ok_or_else(|| ctx("comment without a name".into()))?;
            if !valid_name(name) {
                return Err(ctx("bad family name".into()));
            }
            match kw {
                Some("HELP") => {}
                Some("TYPE") => {
                    let ty = arg.ok_or_else(|| ctx("TYPE without a type".into()))?;
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "untyped",
                        "unknown",
                    ]
                    .contains(&ty)
                    {
                        return Err(ctx(format!("unknown type {ty}")));
                    }
                    if open_metrics && ty == "counter" && name.ends_with("_total") {
                        return Err(ctx("OpenMetrics counter families have no _total".into()));
                    }
                    if seen_families.iter().any(|f| f == name) {
                        return Err(ctx("family declared twice".into()));
                    }
                    seen_families.push(name.to_owned());
                    out.types.insert(name.to_owned(), ty.to_owned());
                    current = Some(name.to_owned());
                }
                _ => return Err(ctx("unknown comment".into())),
            }
            continue;
        }
        if line.is_empty() {
            return Err(ctx("empty line".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| ctx("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(ctx("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(ctx)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| ctx("expected a space before the value".into()))?;
        let (value_text, exemplar_text) = match rest.split_once(" # ") {
            Some((v, e)) => (v, Some(e)),
            None => (rest, None),
        };
        let value = parse_value(value_text.trim_end()).map_err(ctx)?;
        let family = family_of(name, &out.types, open_metrics)
            .ok_or_else(|| ctx("sample of an undeclared family".into()))?;
        if current.as_deref() != Some(family) {
            return Err(ctx(format!("sample of {family} outside its family block")));
        }
        let exemplar = match exemplar_text {
            None => None,
            Some(e) => {
                if !open_metrics {
                    return Err(ctx("exemplar in the Prometheus format".into()));
                }
                if !(name.ends_with("_bucket") || name.ends_with("_total")) {
                    return Err(ctx("exemplar on a sample that cannot have one".into()));
                }
                let (ex_labels, rest) = parse_labels(e).map_err(ctx)?;
                let mut parts = rest.trim_start().split(' ');
                let v = parse_value(parts.next().unwrap_or("")).map_err(ctx)?;
                if let Some(ts) = parts.next() {
                    parse_value(ts).map_err(ctx)?;
                }
                if let Some(le) = labels.get("le") {
                    if v > parse_value(le).map_err(ctx)? {
                        return Err(ctx("exemplar value above its bucket".into()));
                    }
                }
                Some((ex_labels, v))
            }
        };
        out.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            exemplar,
        });
    }
    if open_metrics && !eof {
        return Err("OpenMetrics text must end with # EOF".into());
    }
    check_histograms(&out)?;
    Ok(out)
}

/// A histogram series: its base name and its labels other than `le`.
type SeriesKey = (String, Vec<(String, String)>);

/// Buckets cumulative, `le` increasing, `+Inf` present and equal to `_count`.
fn check_histograms(e: &Exposition) -> Result<(), String> {
    let mut buckets: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
    for s in &e.samples {
        if let Some(base) = s.name.strip_suffix("_bucket") {
            let le = s.labels.get("le").ok_or(format!("{} without le", s.name))?;
            let mut key: Vec<(String, String)> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.sort();
            buckets
                .entry((base.to_owned(), key))
                .or_default()
                .push((parse_value(le)?, s.value));
        }
    }
    for ((base, key), series) in &buckets {
        for w in series.windows(2) {
            if w[1].0 <= w[0].0 || w[1].1 < w[0].1 {
                return Err(format!(
                    "{base} {key:?}: buckets not increasing: {series:?}"
                ));
            }
        }
        let Some(&(inf, total)) = series.last() else {
            continue;
        };
        if inf != f64::INFINITY {
            return Err(format!("{base} {key:?}: no +Inf bucket"));
        }
        let labels: Vec<(&str, &str)> = key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let count = e.value(&format!("{base}_count"), &labels);
        if count != total {
            return Err(format!("{base} {key:?}: +Inf {total} != _count {count}"));
        }
    }
    Ok(())
}
