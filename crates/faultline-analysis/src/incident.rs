//! Incidents, their symptoms and ranked root causes, in the shapes the JSON API serves, and the
//! bounded log that keeps them.

use std::collections::VecDeque;

use serde::Serialize;

/// Which signal of a series deviated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Mean latency rose.
    Latency,
    /// Error ratio rose.
    Errors,
    /// Throughput fell.
    Throughput,
}

impl Signal {
    /// The unit `baseline` and `observed` are in.
    pub fn unit(self) -> &'static str {
        match self {
            Signal::Latency => "us",
            Signal::Errors => "ratio",
            Signal::Throughput => "per_s",
        }
    }
}

/// One series that deviates from its baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Symptom {
    /// Service name.
    pub service: String,
    /// Operation (span name); empty for an edge.
    pub operation: String,
    /// For an edge of the service graph: the called service or virtual node, with `service`
    /// the caller. The edge's series is the caller's view of the calls (client-side latency,
    /// and failures on either side). Absent for a service's own operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// What deviated.
    pub signal: Signal,
    /// Baseline value: latency in µs, errors as a ratio, throughput per second.
    pub baseline: f64,
    /// Latest deviating value, in the same unit.
    pub observed: f64,
    /// `us`, `ratio` or `per_s`.
    pub unit: &'static str,
    /// When the deviation was first confirmed, µs since the epoch.
    pub detected_at: u64,
}

/// A service, operation, dependency or attribute value the evidence points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CauseKind {
    /// The service as a whole (its time or failures spread over several operations).
    Service,
    /// One operation of the service.
    Operation,
    /// An uninstrumented dependency the service calls (database, third-party API).
    Dependency,
    /// An attribute value that separates slow or failed calls from normal ones.
    Attribute,
}

/// A span cited as evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpanRef {
    /// Trace ID (hex).
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Span ID (hex).
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Service name.
    pub service: String,
    /// Span name.
    pub operation: String,
}

/// An edge of the service graph cited as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EdgeRef {
    /// Calling service.
    pub client: String,
    /// Called service or virtual node.
    pub server: String,
}

/// An attribute value and how often it appears on slow or failed spans versus normal ones.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeEvidence {
    /// Attribute key.
    pub key: String,
    /// The value, or `> threshold` for numbers.
    pub value: String,
    /// Share of slow or failed spans with it.
    pub slow_or_failed_share: f64,
    /// Share of normal spans with it.
    pub normal_share: f64,
}

/// An attribute named as a root cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttributeRef {
    /// Attribute key.
    pub key: String,
    /// The value, or `> threshold` for numbers.
    pub value: String,
}

/// What a root cause is concluded from.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Traces that show it.
    #[serde(rename = "traceIDs")]
    pub trace_ids: Vec<String>,
    /// Spans that show it (error origins, the slowest critical-path spans).
    pub spans: Vec<SpanRef>,
    /// Edges into the cause, in the order they degraded.
    pub edges: Vec<EdgeRef>,
    /// Attribute values that separate slow or failed spans from normal ones.
    pub attributes: Vec<AttributeEvidence>,
    /// The evidence in words, one fact a line.
    pub facts: Vec<String>,
}

/// One ranked candidate root cause.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootCause {
    /// 1 for the most likely.
    pub rank: usize,
    /// What kind of thing it is.
    pub kind: CauseKind,
    /// The service at fault (for a dependency: the service calling it).
    pub service: String,
    /// Its operation that explains most of the deviation.
    pub operation: Option<String>,
    /// The uninstrumented dependency, for `kind: dependency` (and when the operation calls one).
    pub dependency: Option<String>,
    /// The attribute value, for `kind: attribute`.
    pub attribute: Option<AttributeRef>,
    /// Share of the deviation it explains, 0..1.
    pub score: f64,
    /// One sentence for people.
    pub explanation: String,
    /// What it is concluded from.
    pub evidence: Evidence,
}

/// Whether an incident is still going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    /// Symptoms still deviate (or did within the hold time).
    Open,
    /// Every symptom is back to its baseline.
    Resolved,
}

/// Deviations grouped from their first confirmation until they return to baseline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Stable identifier.
    pub id: String,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// µs since the epoch.
    pub opened_at: u64,
    /// µs since the epoch; `null` while open.
    pub resolved_at: Option<u64>,
    /// Deviating series, first detected first.
    pub symptoms: Vec<Symptom>,
    /// Symptoms beyond the per-incident limit.
    pub symptoms_dropped: u64,
    /// Ranked candidate causes, most likely first; re-ranked while open.
    pub root_causes: Vec<RootCause>,
}

/// The incidents kept: bounded, the oldest resolved dropped first.
#[derive(Debug, Default)]
pub struct IncidentLog {
    incidents: VecDeque<Incident>,
    dropped: u64,
    opened: u64,
}

impl IncidentLog {
    /// The open incident, if any.
    pub fn open_mut(&mut self) -> Option<&mut Incident> {
        self.incidents
            .iter_mut()
            .rev()
            .find(|i| i.status == IncidentStatus::Open)
    }

    /// Adds a new incident, dropping the oldest resolved ones beyond `max`.
    pub fn push(&mut self, incident: Incident, max: usize) {
        self.opened += 1;
        self.incidents.push_back(incident);
        while self.incidents.len() > max.max(1) {
            match self
                .incidents
                .iter()
                .position(|i| i.status == IncidentStatus::Resolved)
            {
                Some(p) => {
                    self.incidents.remove(p);
                }
                None => {
                    self.incidents.pop_front();
                }
            }
            self.dropped += 1;
        }
    }

    /// The incident with `id`.
    pub fn get(&self, id: &str) -> Option<&Incident> {
        self.incidents.iter().find(|i| i.id == id)
    }

    /// The incident with `id`, to update.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Incident> {
        self.incidents.iter_mut().find(|i| i.id == id)
    }

    /// Up to `limit` incidents with `status` (any when `None`), newest first.
    pub fn list(&self, status: Option<IncidentStatus>, limit: usize) -> Vec<Incident> {
        self.incidents
            .iter()
            .rev()
            .filter(|i| status.is_none_or(|s| s == i.status))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Incidents opened since start, and dropped from the log.
    pub fn counts(&self) -> (u64, u64) {
        (self.opened, self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: &str, status: IncidentStatus) -> Incident {
        Incident {
            id: id.into(),
            status,
            opened_at: 1,
            resolved_at: None,
            symptoms: Vec::new(),
            symptoms_dropped: 0,
            root_causes: Vec::new(),
        }
    }

    #[test]
    fn the_log_is_bounded_and_drops_resolved_incidents_first() {
        let mut log = IncidentLog::default();
        log.push(incident("a", IncidentStatus::Resolved), 2);
        log.push(incident("b", IncidentStatus::Resolved), 2);
        log.push(incident("c", IncidentStatus::Open), 2);
        assert!(log.get("a").is_none());
        assert_eq!(log.counts(), (3, 1));
        let open = log.list(Some(IncidentStatus::Open), 10);
        assert_eq!(open.len(), 1);
        assert_eq!(log.list(None, 1)[0].id, "c");
        assert_eq!(log.open_mut().map(|i| i.id.clone()), Some("c".into()));
    }

    #[test]
    fn incidents_serialize_in_the_api_shape() {
        let mut i = incident("x", IncidentStatus::Open);
        i.symptoms.push(Symptom {
            service: "s".into(),
            operation: "o".into(),
            peer: None,
            signal: Signal::Errors,
            baseline: 0.0,
            observed: 0.5,
            unit: Signal::Errors.unit(),
            detected_at: 7,
        });
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(v["openedAt"], 1);
        assert!(v["resolvedAt"].is_null());
        assert_eq!(v["symptoms"][0]["signal"], "errors");
        assert_eq!(v["symptoms"][0]["unit"], "ratio");
        assert_eq!(v["symptoms"][0]["detectedAt"], 7);
        assert!(v["symptoms"][0].get("peer").is_none());
        assert_eq!(v["status"], "open");
    }
}
