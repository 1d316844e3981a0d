//! A small client for the parts of Faultline's query API the experiment reads: incidents with
//! their ranked root causes, and the live service graph. Answers are parsed into this crate's
//! own structs, which tolerate fields they do not know.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::ExperimentError;

/// One suspected root cause of an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootCause {
    /// 1 is the most likely.
    #[serde(default)]
    pub rank: u32,
    /// `service`, `operation`, `dependency` or `attribute`.
    #[serde(default)]
    pub kind: String,
    /// The service blamed (or owning the blamed operation or dependency).
    #[serde(default)]
    pub service: Option<String>,
    /// The operation blamed, if any.
    #[serde(default)]
    pub operation: Option<String>,
    /// The dependency blamed, if any.
    #[serde(default)]
    pub dependency: Option<String>,
    /// The score the ranking used.
    #[serde(default)]
    pub score: f64,
    /// Why, in words.
    #[serde(default)]
    pub explanation: String,
}

/// One anomalous signal of an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Symptom {
    /// Where.
    #[serde(default)]
    pub service: Option<String>,
    /// Which operation, if any.
    #[serde(default)]
    pub operation: Option<String>,
    /// `latency`, `errors` or `throughput`.
    #[serde(default)]
    pub signal: String,
    /// When it was detected (µs since the epoch).
    #[serde(default)]
    pub detected_at: Option<u64>,
}

/// One incident as `/api/incidents` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    /// Its id (a string or a number in the API; kept as text).
    #[serde(deserialize_with = "id_as_text")]
    pub id: String,
    /// `open` or `resolved`.
    #[serde(default)]
    pub status: String,
    /// When it opened (µs since the epoch).
    pub opened_at: u64,
    /// When it resolved (µs since the epoch), if it has.
    #[serde(default)]
    pub resolved_at: Option<u64>,
    /// What is anomalous.
    #[serde(default)]
    pub symptoms: Vec<Symptom>,
    /// Suspects, best first.
    #[serde(default)]
    pub root_causes: Vec<RootCause>,
}

impl Incident {
    /// The root causes sorted by rank (the API should already answer in this order).
    pub fn ranked(&self) -> Vec<&RootCause> {
        let mut causes: Vec<&RootCause> = self.root_causes.iter().collect();
        causes.sort_by_key(|c| c.rank);
        causes
    }
}

fn id_as_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

/// One edge of the live service graph.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GraphEdge {
    /// Calling service.
    pub client: String,
    /// Called service or virtual node.
    pub server: String,
    /// `request`, `messaging` or `virtual`.
    #[serde(default)]
    pub kind: String,
}

#[derive(Deserialize)]
struct ServiceGraph {
    #[serde(default)]
    edges: Vec<GraphEdge>,
}

/// Parses a `/api/incidents` answer.
pub fn parse_incidents(body: &[u8]) -> Result<Vec<Incident>, ExperimentError> {
    parse::<Envelope<Option<Vec<Incident>>>>(body, "/api/incidents")
        .map(|e| e.data.unwrap_or_default())
}

/// Parses a `/api/incidents/{id}` answer.
pub fn parse_incident(body: &[u8]) -> Result<Incident, ExperimentError> {
    parse::<Envelope<Incident>>(body, "/api/incidents/{id}").map(|e| e.data)
}

/// Parses a `/api/analysis/service-graph` answer into its edges.
pub fn parse_service_graph(body: &[u8]) -> Result<Vec<GraphEdge>, ExperimentError> {
    parse::<Envelope<ServiceGraph>>(body, "/api/analysis/service-graph").map(|e| e.data.edges)
}

fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ExperimentError> {
    serde_json::from_slice(body).map_err(|source| ExperimentError::Json {
        what: format!("parsing the answer of {what}"),
        source,
    })
}

/// Faultline's query API at one base URL.
#[derive(Clone, Debug)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// A client for `base` (e.g. `http://127.0.0.1:16686`).
    pub fn new(base: impl Into<String>) -> Result<Self, ExperimentError> {
        let base = base.into().trim_end_matches('/').to_owned();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| ExperimentError::Http {
                url: base.clone(),
                source,
            })?;
        Ok(Api { base, client })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path_and_query: &str) -> Result<Vec<u8>, ExperimentError> {
        let url = format!("{}{path_and_query}", self.base);
        let http = |source| ExperimentError::Http {
            url: url.clone(),
            source,
        };
        let response = self.client.get(&url).send().await.map_err(http)?;
        let status = response.status();
        let body = response.bytes().await.map_err(http)?;
        if !status.is_success() {
            return Err(ExperimentError::Api {
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            });
        }
        Ok(body.to_vec())
    }

    /// Open and resolved incidents (up to `limit` of each).
    pub async fn incidents(&self, limit: usize) -> Result<Vec<Incident>, ExperimentError> {
        let mut all = Vec::new();
        for status in ["open", "resolved"] {
            let body = self
                .get(&format!("/api/incidents?status={status}&limit={limit}"))
                .await?;
            all.extend(parse_incidents(&body)?);
        }
        Ok(all)
    }

    /// One incident.
    pub async fn incident(&self, id: &str) -> Result<Incident, ExperimentError> {
        let body = self.get(&format!("/api/incidents/{id}")).await?;
        parse_incident(&body)
    }

    /// Edges of the live service graph over the last `window`.
    pub async fn service_graph(&self, window: Duration) -> Result<Vec<GraphEdge>, ExperimentError> {
        let body = self
            .get(&format!(
                "/api/analysis/service-graph?window={}s",
                window.as_secs().max(1)
            ))
            .await?;
        parse_service_graph(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_parse_with_unknown_fields_and_either_id_type() {
        let body = br#"{"data": [
            {"id": "inc-1", "status": "open", "openedAt": 1000, "resolvedAt": null,
             "symptoms": [{"service": "gateway", "operation": "GET /api/products", "signal": "latency",
                           "baseline": 12.0, "observed": 480.5, "unit": "ms", "detectedAt": 990}],
             "rootCauses": [
                {"rank": 2, "kind": "service", "service": "gateway", "score": 0.3, "explanation": "x",
                 "evidence": {"traceIDs": ["ab"], "spans": [], "edges": [], "attributes": [], "facts": []}},
                {"rank": 1, "kind": "dependency", "service": "payment", "dependency": "payment-provider",
                 "score": 0.9, "explanation": "timeouts", "attribute": null, "novel": true}
             ],
             "extra": {"anything": [1, 2]}},
            {"id": 7, "status": "resolved", "openedAt": 5, "resolvedAt": 9}
        ], "errors": null}"#;
        let incidents = parse_incidents(body).expect("parses");
        assert_eq!(incidents.len(), 2);
        assert_eq!(incidents[0].id, "inc-1");
        assert_eq!(incidents[1].id, "7");
        assert_eq!(incidents[1].resolved_at, Some(9));
        let ranked = incidents[0].ranked();
        assert_eq!(ranked[0].dependency.as_deref(), Some("payment-provider"));
        assert_eq!(ranked[1].service.as_deref(), Some("gateway"));
        assert_eq!(incidents[0].symptoms[0].detected_at, Some(990));
        assert!(parse_incidents(br#"{"data": null, "errors": null}"#)
            .expect("null data")
            .is_empty());
        assert!(parse_incidents(b"<html>").is_err());
        let one =
            parse_incident(br#"{"data": {"id": 3, "openedAt": 1}, "errors": null}"#).expect("one");
        assert_eq!(one.id, "3");
        assert!(one.root_causes.is_empty());
    }

    #[test]
    fn service_graph_edges_parse() {
        let body = br#"{"data": {"windowSeconds": 300, "nodes": [], "edges": [
            {"client": "order", "server": "payment", "kind": "request", "clientSide": {}},
            {"client": "inventory", "server": "sqlite", "kind": "virtual", "virtualNodeFrom": "db.system.name"}
        ]}, "errors": null}"#;
        let edges = parse_service_graph(body).expect("parses");
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[1].server, "sqlite");
    }
}
