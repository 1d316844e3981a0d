//! What the experiment measures, computed from what it observed: the incidents seen at each
//! poll (with their ranked root causes) and the ground truth of each fault. Pure functions, so
//! every definition is tested on handcrafted inputs.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::api::{Incident, RootCause};

/// The true culprit of a fault: the service it was injected into, plus other names the
/// analysis may rightly use for it (the third party behind `payment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Culprit {
    /// The injected service.
    pub service: String,
    /// Other names that count as the culprit (as a service or a dependency).
    pub aliases: Vec<String>,
}

impl Culprit {
    /// A culprit known by one name.
    pub fn service(name: &str) -> Self {
        Culprit {
            service: name.to_owned(),
            aliases: Vec::new(),
        }
    }

    fn is(&self, name: &str) -> bool {
        self.service == name || self.aliases.iter().any(|a| a == name)
    }

    /// Whether `cause` names this culprit: a cause whose `service` is the culprit (whatever
    /// its kind: the service, one of its operations, its dependency on a third party, one of
    /// its attributes), or a `dependency` cause whose dependency is the culprit (a caller
    /// blaming its call to it).
    pub fn named_by(&self, cause: &CauseKey) -> bool {
        cause.service.as_deref().is_some_and(|s| self.is(s))
            || (cause.kind == "dependency"
                && cause.dependency.as_deref().is_some_and(|d| self.is(d)))
    }
}

/// What a root cause names, without its score and evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CauseKey {
    /// `service`, `operation`, `dependency` or `attribute`.
    pub kind: String,
    /// Service.
    pub service: Option<String>,
    /// Operation.
    pub operation: Option<String>,
    /// Dependency.
    pub dependency: Option<String>,
}

impl From<&RootCause> for CauseKey {
    fn from(c: &RootCause) -> Self {
        CauseKey {
            kind: c.kind.clone(),
            service: c.service.clone(),
            operation: c.operation.clone(),
            dependency: c.dependency.clone(),
        }
    }
}

impl std::fmt::Display for CauseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.service.as_deref().unwrap_or("?"))?;
        if let Some(op) = &self.operation {
            write!(f, " {op}")?;
        }
        if let Some(dep) = &self.dependency {
            write!(f, " → {dep}")?;
        }
        write!(f, " ({})", self.kind)
    }
}

/// The ranking of an incident as seen at one poll.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the poll answered (µs since the epoch).
    pub poll_us: u64,
    /// Root causes, best first.
    pub causes: Vec<CauseKey>,
}

/// Everything seen of one incident across the polls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// Incident id.
    pub id: String,
    /// When it opened (µs).
    pub opened_us: u64,
    /// When it resolved (µs), once seen resolved.
    pub resolved_us: Option<u64>,
    /// The first poll that saw it (µs).
    pub first_seen_us: u64,
    /// Its ranking, one entry per change.
    pub history: Vec<Snapshot>,
}

impl Track {
    /// The ranking as last seen at or before `at_us`.
    pub fn ranking_at(&self, at_us: u64) -> Option<&Snapshot> {
        self.history.iter().rev().find(|s| s.poll_us <= at_us)
    }
}

/// Collects polls into one [`Track`] per incident.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tracker {
    tracks: BTreeMap<String, Track>,
}

impl Tracker {
    /// Records one poll's answer.
    pub fn observe(&mut self, poll_us: u64, incidents: &[Incident]) {
        for incident in incidents {
            let causes: Vec<CauseKey> = incident.ranked().into_iter().map(CauseKey::from).collect();
            let track = self
                .tracks
                .entry(incident.id.clone())
                .or_insert_with(|| Track {
                    id: incident.id.clone(),
                    opened_us: incident.opened_at,
                    resolved_us: None,
                    first_seen_us: poll_us,
                    history: Vec::new(),
                });
            track.opened_us = incident.opened_at;
            track.resolved_us = incident.resolved_at;
            if track.history.last().is_none_or(|s| s.causes != causes) {
                track.history.push(Snapshot { poll_us, causes });
            }
        }
    }

    /// Every incident seen, by opening time.
    pub fn tracks(&self) -> Vec<Track> {
        let mut tracks: Vec<Track> = self.tracks.values().cloned().collect();
        tracks.sort_by(|a, b| a.opened_us.cmp(&b.opened_us).then(a.id.cmp(&b.id)));
        tracks
    }
}

/// How one fault went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultOutcome {
    /// The first incident opened while the fault was active.
    pub incident: Option<String>,
    /// Fault start → that incident opened, in seconds.
    pub detect_s: Option<f64>,
    /// Fault start → first poll at which an incident opened during the fault ranked the
    /// culprit first, in seconds.
    pub localize_s: Option<f64>,
    /// The culprit's rank in the detecting incident at the end of the fault (1 = first).
    pub final_rank: Option<u32>,
    /// What that incident ranked first at the end of the fault.
    pub final_top: Option<CauseKey>,
}

impl FaultOutcome {
    /// Culprit ranked first at the end of the fault.
    pub fn top1(&self) -> bool {
        self.final_rank == Some(1)
    }

    /// Culprit within the first three at the end of the fault.
    pub fn top3(&self) -> bool {
        self.final_rank.is_some_and(|r| r <= 3)
    }
}

fn secs(from_us: u64, to_us: u64) -> f64 {
    to_us.saturating_sub(from_us) as f64 / 1e6
}

/// Scores one fault active over `[start_us, end_us]` against the incidents seen.
///
/// * detected: an incident opened within the fault's window (the first such);
/// * localized: the first poll within the window at which any incident opened within the
///   window had the culprit at rank 1;
/// * rank: the culprit's position in the detecting incident's ranking as last seen before the
///   fault ended (`None` when not in the list or nothing was detected).
pub fn evaluate(start_us: u64, end_us: u64, culprit: &Culprit, tracks: &[Track]) -> FaultOutcome {
    let during: Vec<&Track> = tracks
        .iter()
        .filter(|t| t.opened_us >= start_us && t.opened_us <= end_us)
        .collect();
    let Some(first) = during.iter().min_by_key(|t| (t.opened_us, &t.id)) else {
        return FaultOutcome::default();
    };
    let localized_at = during
        .iter()
        .flat_map(|t| t.history.iter())
        .filter(|s| s.poll_us >= start_us && s.poll_us <= end_us)
        .filter(|s| s.causes.first().is_some_and(|c| culprit.named_by(c)))
        .map(|s| s.poll_us)
        .min();
    let ranking = first.ranking_at(end_us);
    let final_rank = ranking.and_then(|s| {
        s.causes
            .iter()
            .position(|c| culprit.named_by(c))
            .and_then(|i| u32::try_from(i + 1).ok())
    });
    FaultOutcome {
        incident: Some(first.id.clone()),
        detect_s: Some(secs(start_us, first.opened_us)),
        localize_s: localized_at.map(|at| secs(start_us, at)),
        final_rank,
        final_top: ranking.and_then(|s| s.causes.first().cloned()),
    }
}

/// Incidents opened within any of the quiet windows (`[start, end]` in µs): false alarms.
pub fn false_alarms<'a>(quiet: &[(u64, u64)], tracks: &'a [Track]) -> Vec<&'a Track> {
    tracks
        .iter()
        .filter(|t| {
            quiet
                .iter()
                .any(|&(s, e)| t.opened_us >= s && t.opened_us <= e)
        })
        .collect()
}

/// Total length of the windows, in hours.
pub fn hours(windows: &[(u64, u64)]) -> f64 {
    windows
        .iter()
        .map(|&(s, e)| e.saturating_sub(s) as f64)
        .sum::<f64>()
        / 3.6e9
}

/// Median of the values (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Mean of the values; `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Precision, recall, F1 and Jaccard of a retrieved set against the true set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// Retrieved lines that are true / retrieved lines (0 when nothing was retrieved).
    pub precision: f64,
    /// True lines retrieved / true lines.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// |true ∩ retrieved| / |true ∪ retrieved|.
    pub jaccard: f64,
}

/// Scores `found` against `truth` (which must not be empty: such requests are skipped).
pub fn score<T: Ord>(truth: &BTreeSet<T>, found: &BTreeSet<T>) -> Option<Retrieval> {
    if truth.is_empty() {
        return None;
    }
    let hit = truth.intersection(found).count() as f64;
    let precision = if found.is_empty() {
        0.0
    } else {
        hit / found.len() as f64
    };
    let recall = hit / truth.len() as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let union = truth.union(found).count() as f64;
    Some(Retrieval {
        precision,
        recall,
        f1,
        jaccard: hit / union,
    })
}

/// The average of per-request scores (macro average).
pub fn average(scores: &[Retrieval]) -> Option<Retrieval> {
    if scores.is_empty() {
        return None;
    }
    let n = scores.len() as f64;
    let sum = |f: fn(&Retrieval) -> f64| scores.iter().map(f).sum::<f64>() / n;
    Some(Retrieval {
        precision: sum(|r| r.precision),
        recall: sum(|r| r.recall),
        f1: sum(|r| r.f1),
        jaccard: sum(|r| r.jaccard),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(kind: &str, service: &str, dependency: Option<&str>) -> CauseKey {
        CauseKey {
            kind: kind.into(),
            service: Some(service.into()),
            operation: None,
            dependency: dependency.map(Into::into),
        }
    }

    fn track(id: &str, opened: u64, history: Vec<(u64, Vec<CauseKey>)>) -> Track {
        Track {
            id: id.into(),
            opened_us: opened,
            resolved_us: None,
            first_seen_us: history.first().map_or(opened, |h| h.0),
            history: history
                .into_iter()
                .map(|(poll_us, causes)| Snapshot { poll_us, causes })
                .collect(),
        }
    }

    const S: u64 = 1_000_000;

    #[test]
    fn detection_localisation_and_rank_follow_their_definitions() {
        let inventory = Culprit::service("inventory");
        let tracks = vec![
            // Opened before the fault: not a detection even though it overlaps.
            track(
                "old",
                50 * S,
                vec![(51 * S, vec![cause("service", "inventory", None)])],
            ),
            // Detects at +12 s, first blames the gateway, then inventory from +20 s, and at the
            // end has inventory second.
            track(
                "a",
                112 * S,
                vec![
                    (113 * S, vec![cause("service", "gateway", None)]),
                    (
                        120 * S,
                        vec![
                            cause("service", "inventory", None),
                            cause("service", "gateway", None),
                        ],
                    ),
                    (
                        150 * S,
                        vec![
                            cause("operation", "gateway", None),
                            cause("service", "inventory", None),
                        ],
                    ),
                    // After the fault ended: ignored for the final rank.
                    (170 * S, vec![cause("service", "inventory", None)]),
                ],
            ),
            // Opened later in the window, blames inventory at +18 s: localisation counts it.
            track(
                "b",
                115 * S,
                vec![(118 * S, vec![cause("service", "inventory", None)])],
            ),
            // After the fault: ignored.
            track(
                "late",
                200 * S,
                vec![(201 * S, vec![cause("service", "inventory", None)])],
            ),
        ];
        let outcome = evaluate(100 * S, 160 * S, &inventory, &tracks);
        assert_eq!(outcome.incident.as_deref(), Some("a"));
        assert_eq!(outcome.detect_s, Some(12.0));
        assert_eq!(outcome.localize_s, Some(18.0));
        assert_eq!(outcome.final_rank, Some(2));
        assert!(!outcome.top1());
        assert!(outcome.top3());
        assert_eq!(
            outcome.final_top.map(|c| c.kind),
            Some("operation".to_owned())
        );

        let missed = evaluate(300 * S, 360 * S, &inventory, &tracks);
        assert_eq!(missed, FaultOutcome::default());
        assert!(!missed.top1() && !missed.top3());
    }

    #[test]
    fn culprit_absent_from_the_ranking_has_no_rank() {
        let tracks = vec![track(
            "a",
            10 * S,
            vec![(11 * S, vec![cause("service", "gateway", None); 4])],
        )];
        let outcome = evaluate(0, 60 * S, &Culprit::service("user"), &tracks);
        assert_eq!(outcome.detect_s, Some(10.0));
        assert_eq!(outcome.localize_s, None);
        assert_eq!(outcome.final_rank, None);
    }

    #[test]
    fn dependencies_and_aliases_name_the_culprit() {
        let payment = Culprit {
            service: "payment".into(),
            aliases: vec!["payment-provider".into()],
        };
        assert!(payment.named_by(&cause("dependency", "payment", Some("payment-provider"))));
        assert!(payment.named_by(&cause("dependency", "order", Some("payment"))));
        assert!(payment.named_by(&cause("service", "payment-provider", None)));
        assert!(!payment.named_by(&cause("service", "order", None)));
        // A caller's operation that merely mentions the culprit as a non-dependency is not it.
        assert!(!payment.named_by(&cause("attribute", "order", Some("payment"))));
    }

    #[test]
    fn false_alarms_are_incidents_opened_in_quiet_windows() {
        let tracks = vec![
            track("q1", 10 * S, vec![]),
            track("fault", 100 * S, vec![]),
            track("q2", 250 * S, vec![]),
            track("settling", 170 * S, vec![]),
        ];
        let quiet = [(0, 90 * S), (180 * S, 300 * S)];
        let ids: Vec<&str> = false_alarms(&quiet, &tracks)
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(ids, ["q1", "q2"]);
        assert!((hours(&quiet) - 210.0 / 3600.0).abs() < 1e-12);
    }

    #[test]
    fn tracker_keeps_one_snapshot_per_ranking_change() {
        let incident = |rank_services: &[&str], resolved: Option<u64>| Incident {
            id: "x".into(),
            status: String::new(),
            opened_at: 5,
            resolved_at: resolved,
            symptoms: vec![],
            root_causes: rank_services
                .iter()
                .enumerate()
                .map(|(i, s)| RootCause {
                    rank: u32::try_from(rank_services.len() - i).unwrap_or(0),
                    kind: "service".into(),
                    service: Some((*s).into()),
                    operation: None,
                    dependency: None,
                    score: 0.0,
                    explanation: String::new(),
                })
                .collect(),
        };
        let mut tracker = Tracker::default();
        tracker.observe(10, &[incident(&["a", "b"], None)]);
        tracker.observe(11, &[incident(&["a", "b"], None)]);
        tracker.observe(12, &[incident(&["b", "a"], Some(12))]);
        let tracks = tracker.tracks();
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].first_seen_us, 10);
        assert_eq!(tracks[0].resolved_us, Some(12));
        assert_eq!(tracks[0].history.len(), 2);
        // Ranks 2, 1 given in that order: sorted by rank.
        assert_eq!(tracks[0].history[0].causes[0].service.as_deref(), Some("b"));
        assert_eq!(tracks[0].ranking_at(11).map(|s| s.poll_us), Some(10));
    }

    #[test]
    fn statistics_and_retrieval_scores() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));

        let truth: BTreeSet<u32> = [1, 2, 3, 4].into();
        let found: BTreeSet<u32> = [3, 4, 5].into();
        let r = score(&truth, &found).expect("truth not empty");
        assert!((r.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.recall - 0.5).abs() < 1e-12);
        assert!((r.f1 - 4.0 / 7.0).abs() < 1e-12);
        assert!((r.jaccard - 0.4).abs() < 1e-12);
        let nothing = score(&truth, &BTreeSet::new()).expect("truth not empty");
        assert_eq!(nothing, Retrieval::default());
        assert_eq!(score(&BTreeSet::<u32>::new(), &found), None);
        let perfect = score(&truth, &truth).expect("truth");
        assert_eq!(perfect.f1, 1.0);
        let avg = average(&[perfect, nothing]).expect("two");
        assert_eq!(avg.recall, 0.5);
        assert_eq!(average(&[]), None);
    }
}
