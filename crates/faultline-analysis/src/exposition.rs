//! Prometheus text format 0.0.4 and OpenMetrics 1.0 rendering of the graph and RED series.
//!
//! Names follow Tempo's metrics generator so that Grafana's service graph and RED panels work
//! unchanged. The snapshot is taken under the analyzer's locks by [`MetricsSnapshot`]'s
//! builder; rendering happens after the locks are released.

use std::fmt::Write;

use faultline_model::SpanKind;

use crate::graph::{EdgeKind, PairingStats};
use crate::histogram::{Exemplar, Histogram, BUCKETS, BUCKET_BOUNDS_NANOS};

/// Which text format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, no exemplars.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`, with exemplars carrying trace IDs.
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header: OpenMetrics only when asked for.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }

    /// The `Content-Type` of the rendered text.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Whether a [`SelfMetric`] only ever rises or moves both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Rises from zero at start; the name ends in `_total`.
    Counter,
    /// A current level (spans in memory, blocks on disk).
    Gauge,
}

/// One number the server reports about its own work (receivers, storage) on `/metrics`,
/// written after the analysis families.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfMetric {
    /// Metric name; a counter's ends in `_total`.
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Current value.
    pub value: u64,
}

impl SelfMetric {
    /// A counter.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Counter,
            value,
        }
    }

    /// A gauge.
    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Gauge,
            value,
        }
    }
}

/// Cumulative values of one service graph edge.
#[derive(Clone, Debug)]
pub struct EdgeExport {
    /// Client label.
    pub client: String,
    /// Server label.
    pub server: String,
    /// How the edge was found.
    pub kind: EdgeKind,
    /// Failed calls.
    pub failed: u64,
    /// Client-side latency.
    pub client_latency: Histogram,
    /// Client-side exemplars.
    pub client_exemplars: [Option<Exemplar>; BUCKETS],
    /// Server-side latency (empty for virtual edges).
    pub server_latency: Histogram,
}

/// Cumulative values of one RED series.
#[derive(Clone, Debug)]
pub struct SeriesExport {
    /// Service label.
    pub service: String,
    /// Span name label.
    pub span_name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Calls per status code (`Unset`, `Ok`, `Error`).
    pub status: [u64; 3],
    /// Latency.
    pub latency: Histogram,
    /// Exemplars per bucket.
    pub exemplars: [Option<Exemplar>; BUCKETS],
    /// Configured dimensions: (label name, value).
    pub dimensions: Vec<(String, String)>,
}

/// Everything `/metrics` shows, copied out of the analyzer.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// Edges.
    pub edges: Vec<EdgeExport>,
    /// RED series.
    pub series: Vec<SeriesExport>,
    /// Pairing store counters.
    pub pairing: PairingStats,
    /// Spans counted into the overflow RED series.
    pub series_overflow_spans: u64,
    /// Names beyond the service limit.
    pub names_overflowed: u64,
    /// Spans observed.
    pub spans_observed: u64,
    /// Distinct RED series held.
    pub series_held: u64,
    /// Incidents opened since start.
    pub incidents_opened: u64,
    /// Incidents dropped from the bounded log.
    pub incidents_dropped: u64,
}

const STATUS: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// Tempo's label value for a span kind.
pub fn kind_label(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

fn connection_type(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Request => "",
        EdgeKind::Messaging => "messaging_system",
        EdgeKind::Virtual(_) => "virtual_node",
    }
}

/// Escapes a label value as both formats require.
pub fn escape(value: &str, out: &mut String) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The Prometheus label name for an attribute key: every character outside `[A-Za-z0-9_]`
/// becomes `_`, and a leading digit gets a `_` before it (`http.response.status_code` →
/// `http_response_status_code`).
pub fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        escape(v, &mut s);
        s.push('"');
    }
    s
}

struct Writer {
    out: String,
    format: Format,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // OpenMetrics names a counter family without its `_total` suffix.
        let family = match (self.format, kind) {
            (Format::OpenMetrics, "counter") => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.out, "# HELP {family} {help}");
        let _ = writeln!(self.out, "# TYPE {family} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    fn histogram(
        &mut self,
        name: &str,
        labels: &str,
        h: &Histogram,
        exemplars: Option<&[Option<Exemplar>; BUCKETS]>,
    ) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, &c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = match BUCKET_BOUNDS_NANOS.get(i) {
                Some(&b) => format!("{}", b as f64 / 1e9),
                None => "+Inf".to_owned(),
            };
            let _ = write!(
                self.out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
            if let (Format::OpenMetrics, Some(Some(ex))) = (self.format, exemplars.map(|e| &e[i])) {
                let _ = write!(
                    self.out,
                    " # {{trace_id=\"{}\"}} {} {:.3}",
                    ex.trace_id.to_hex(),
                    ex.value_nanos as f64 / 1e9,
                    ex.at.0 as f64 / 1e9
                );
            }
            self.out.push('\n');
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_nanos as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// Renders `snap`, then the server's own metrics `own`, in `format`.
pub fn render(snap: &MetricsSnapshot, own: &[SelfMetric], format: Format) -> String {
    let mut w = Writer {
        out: String::with_capacity(256 + snap.series.len() * 2048 + snap.edges.len() * 4096),
        format,
    };
    let edge_labels: Vec<String> = snap
        .edges
        .iter()
        .map(|e| {
            labels(&[
                ("client", &e.client),
                ("server", &e.server),
                ("connection_type", connection_type(e.kind)),
            ])
        })
        .collect();

    w.family(
        "traces_service_graph_request_total",
        "counter",
        "Requests between two nodes of the service graph.",
    );
    for (e, l) in snap.edges.iter().zip(&edge_labels) {
        w.sample(
            "traces_service_graph_request_total",
            l,
            e.client_latency.count(),
        );
    }
    w.family(
        "traces_service_graph_request_failed_total",
        "counter",
        "Failed requests between two nodes (either side reported an error).",
    );
    for (e, l) in snap.edges.iter().zip(&edge_labels) {
        w.sample("traces_service_graph_request_failed_total", l, e.failed);
    }
    w.family(
        "traces_service_graph_request_server_seconds",
        "histogram",
        "Request latency measured by the server span.",
    );
    for (e, l) in snap.edges.iter().zip(&edge_labels) {
        if e.server_latency.count() > 0 {
            w.histogram(
                "traces_service_graph_request_server_seconds",
                l,
                &e.server_latency,
                None,
            );
        }
    }
    w.family(
        "traces_service_graph_request_client_seconds",
        "histogram",
        "Request latency measured by the client span.",
    );
    for (e, l) in snap.edges.iter().zip(&edge_labels) {
        w.histogram(
            "traces_service_graph_request_client_seconds",
            l,
            &e.client_latency,
            Some(&e.client_exemplars),
        );
    }
    w.family(
        "traces_service_graph_unpaired_spans_total",
        "counter",
        "Halves of a call that expired without their other half.",
    );
    let p = snap.pairing;
    w.sample(
        "traces_service_graph_unpaired_spans_total",
        "side=\"client\"",
        p.unpaired_client,
    );
    w.sample(
        "traces_service_graph_unpaired_spans_total",
        "side=\"server\"",
        p.unpaired_server,
    );
    w.family(
        "traces_service_graph_dropped_spans_total",
        "counter",
        "Halves expired early because the pairing store was full.",
    );
    w.sample("traces_service_graph_dropped_spans_total", "", p.evicted);

    w.family(
        "traces_spanmetrics_calls_total",
        "counter",
        "Spans per service, operation, kind and status.",
    );
    let series_labels: Vec<String> = snap
        .series
        .iter()
        .map(|s| {
            let mut pairs = vec![
                ("service", s.service.as_str()),
                ("span_name", s.span_name.as_str()),
                ("span_kind", kind_label(s.kind)),
            ];
            pairs.extend(s.dimensions.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            labels(&pairs)
        })
        .collect();
    for (s, l) in snap.series.iter().zip(&series_labels) {
        for (code, &n) in s.status.iter().enumerate() {
            if n > 0 {
                let l = format!("{l},status_code=\"{}\"", STATUS[code]);
                w.sample("traces_spanmetrics_calls_total", &l, n);
            }
        }
    }
    w.family(
        "traces_spanmetrics_latency",
        "histogram",
        "Span duration per service, operation and kind.",
    );
    for (s, l) in snap.series.iter().zip(&series_labels) {
        w.histogram(
            "traces_spanmetrics_latency",
            l,
            &s.latency,
            Some(&s.exemplars),
        );
    }

    for (name, help, value) in [
        (
            "faultline_analysis_spans_observed_total",
            "Spans fed to the analysis.",
            snap.spans_observed,
        ),
        (
            "faultline_analysis_series_overflow_spans_total",
            "Spans counted into the overflow RED series (series limit reached).",
            snap.series_overflow_spans,
        ),
        (
            "faultline_analysis_edge_overflow_total",
            "Calls counted into the overflow edge (edge limit reached).",
            p.edge_overflow,
        ),
        (
            "faultline_analysis_name_overflow_total",
            "Service names mapped to the overflow name (service limit reached).",
            snap.names_overflowed,
        ),
        (
            "faultline_analysis_incidents_opened_total",
            "Incidents opened by the anomaly detector.",
            snap.incidents_opened,
        ),
        (
            "faultline_analysis_incidents_dropped_total",
            "Resolved incidents dropped from the bounded incident log.",
            snap.incidents_dropped,
        ),
    ] {
        w.family(name, "counter", help);
        w.sample(name, "", value);
    }
    w.family(
        "faultline_analysis_pending_pairs",
        "gauge",
        "Call halves waiting for their other half.",
    );
    w.sample("faultline_analysis_pending_pairs", "", p.pending);
    w.family(
        "faultline_analysis_series",
        "gauge",
        "Distinct RED series held (bounded by the series limit).",
    );
    w.sample("faultline_analysis_series", "", snap.series_held);
    for m in own {
        let kind = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        };
        w.family(m.name, kind, m.help);
        w.sample(m.name, "", m.value);
    }
    if format == Format::OpenMetrics {
        w.out.push_str("# EOF\n");
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape("a\"b\\c\nd", &mut s);
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_accept_header_picks_the_format() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
    }
}
