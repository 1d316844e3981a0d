//! Ranking on synthetic shop traces, one test per demo fault signature.

use super::*;
use crate::test_spans::{shop_trace, Shop};

fn known() -> HashSet<String> {
    ["gateway", "order", "inventory", "payment", "notification"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn edges() -> Vec<EdgeRef> {
    [
        ("gateway", "order"),
        ("order", "inventory"),
        ("order", "payment"),
        ("order", "notification"),
        ("inventory", "sqlite"),
        ("payment", "pay-provider"),
    ]
    .into_iter()
    .map(|(c, s)| EdgeRef {
        client: c.into(),
        server: s.into(),
    })
    .collect()
}

fn symptom(service: &str, operation: &str, signal: Signal, detected_at: u64) -> Symptom {
    Symptom {
        service: service.into(),
        operation: operation.into(),
        peer: None,
        signal,
        baseline: 10_000.0,
        observed: 100_000.0,
        unit: signal.unit(),
        detected_at,
    }
}

/// `n` traces from `first`, each with a little noise on every self time.
fn traces(first: u64, n: u64, shop: &Shop) -> Vec<Vec<Span>> {
    (first..first + n)
        .map(|i| {
            let mut s = shop.clone();
            let noise = i % 5 * 200;
            s.gateway_self += noise;
            s.order_self += noise;
            s.inventory_self += noise / 2;
            s.payment_self += noise / 2;
            shop_trace(i, 1_000_000 + i * 50_000, &s)
        })
        .collect()
}

fn ranked(symptoms: &[Symptom], fault: &Shop) -> Vec<RootCause> {
    let normal = traces(1, 30, &Shop::default());
    let anomalous = traces(100, 30, fault);
    let (known, edges) = (known(), edges());
    rank(&RankInput {
        symptoms,
        anomalous: &anomalous,
        normal: &normal,
        known_services: &known,
        edges: &edges,
    })
}

/// The usual victims: every caller up the chain shows the same signal, detected later.
fn chain(leaf: (&str, &str), signal: Signal) -> Vec<Symptom> {
    vec![
        symptom("gateway", "GET /checkout", signal, 20),
        symptom("order", "POST /orders", signal, 15),
        symptom(leaf.0, leaf.1, signal, 10),
    ]
}

#[test]
fn latency_in_a_leaf_blames_the_leaf_not_its_callers() {
    let fault = Shop {
        inventory_self: 200_000,
        ..Shop::default()
    };
    let causes = ranked(&chain(("inventory", "GetProduct"), Signal::Latency), &fault);
    assert_eq!(causes[0].service, "inventory", "{causes:#?}");
    assert_eq!(causes[0].rank, 1);
    assert_eq!(causes[0].operation.as_deref(), Some("GetProduct"));
    assert_eq!(causes[0].kind, CauseKind::Operation);
    assert!(causes[0].score > 0.9, "{causes:#?}");
    assert!(causes[0].explanation.contains("critical-path self time"));
    assert!(!causes[0].evidence.trace_ids.is_empty());
    assert!(causes[0]
        .evidence
        .facts
        .iter()
        .any(|f| f.contains("deviated first")));
    assert!(causes[0]
        .evidence
        .edges
        .iter()
        .any(|e| e.client == "order" && e.server == "inventory"));
    // The victims' own time did not change: they are not candidates at all.
    assert!(causes.iter().all(|c| c.service != "gateway"), "{causes:#?}");
}

#[test]
fn errors_originating_in_a_leaf_blame_the_leaf() {
    let fault = Shop {
        inventory_error: true,
        ..Shop::default()
    };
    let causes = ranked(&chain(("inventory", "GetProduct"), Signal::Errors), &fault);
    assert_eq!(causes[0].service, "inventory", "{causes:#?}");
    assert!(
        causes[0].explanation.contains("error origin"),
        "{causes:#?}"
    );
    assert!(causes[0]
        .evidence
        .spans
        .iter()
        .all(|s| s.service == "inventory"));
}

#[test]
fn an_exhausted_pool_is_named_by_its_wait_attribute() {
    let fault = Shop {
        db: 150_000,
        pool_wait_secs: 0.148,
        ..Shop::default()
    };
    let causes = ranked(&chain(("inventory", "GetProduct"), Signal::Latency), &fault);
    let top = &causes[0];
    assert_eq!(top.service, "inventory", "{causes:#?}");
    assert_eq!(top.kind, CauseKind::Attribute, "{top:#?}");
    let attr = top.attribute.as_ref().unwrap();
    assert_eq!(attr.key, "db.client.connection.wait_time");
    assert!(attr.value.starts_with("> "), "{attr:?}");
    assert_eq!(top.dependency.as_deref(), Some("sqlite"));
    let ev = &top.evidence.attributes[0];
    assert_eq!((ev.slow_or_failed_share, ev.normal_share), (1.0, 0.0));
}

#[test]
fn a_slow_query_points_at_the_database_dependency() {
    // Same slowness, no pool wait: the dependency is what changed.
    let fault = Shop {
        db: 150_000,
        ..Shop::default()
    };
    let causes = ranked(&chain(("inventory", "GetProduct"), Signal::Latency), &fault);
    assert_eq!(causes[0].service, "inventory", "{causes:#?}");
    assert_eq!(causes[0].kind, CauseKind::Dependency);
    assert_eq!(causes[0].dependency.as_deref(), Some("sqlite"));
}

#[test]
fn a_third_party_timeout_is_the_callers_dependency() {
    let fault = Shop {
        provider: 2_000_000,
        provider_error: true,
        ..Shop::default()
    };
    let mut symptoms = chain(("payment", "POST /charges"), Signal::Latency);
    symptoms.extend(chain(("payment", "POST /charges"), Signal::Errors));
    let causes = ranked(&symptoms, &fault);
    assert_eq!(causes[0].service, "payment", "{causes:#?}");
    assert_eq!(causes[0].kind, CauseKind::Dependency);
    assert_eq!(causes[0].dependency.as_deref(), Some("pay-provider"));
    assert!(causes[0]
        .evidence
        .edges
        .iter()
        .any(|e| e.server == "pay-provider"));
}

#[test]
fn a_service_that_is_down_is_blamed_not_the_caller_that_cannot_reach_it() {
    let fault = Shop {
        inventory_down: true,
        ..Shop::default()
    };
    let symptoms = vec![
        symptom("gateway", "GET /checkout", Signal::Errors, 10),
        symptom("order", "POST /orders", Signal::Errors, 10),
        symptom("inventory", "GetProduct", Signal::Throughput, 15),
    ];
    let causes = ranked(&symptoms, &fault);
    assert_eq!(causes[0].service, "inventory", "{causes:#?}");
    // None of its operations ran: the service, not an operation or a dependency of it.
    assert_eq!(causes[0].kind, CauseKind::Service);
    assert_eq!(causes[0].operation, None);
    assert_eq!(causes[0].dependency, None);
    assert!(causes[0]
        .evidence
        .facts
        .iter()
        .any(|f| f.contains("never reached")));
}

#[test]
fn a_caller_that_gives_up_on_a_slow_callee_blames_the_callee() {
    let fault = Shop {
        db: 400_000,
        order_gives_up: true,
        ..Shop::default()
    };
    let mut symptoms = chain(("inventory", "GetProduct"), Signal::Latency);
    symptoms.push(symptom("order", "POST /orders", Signal::Errors, 12));
    symptoms.push(symptom("gateway", "GET /checkout", Signal::Errors, 12));
    let causes = ranked(&symptoms, &fault);
    assert_eq!(causes[0].service, "inventory", "{causes:#?}");
}

#[test]
fn cpu_saturation_shows_as_self_time_in_the_saturated_service() {
    let fault = Shop {
        payment_self: 120_000,
        ..Shop::default()
    };
    let causes = ranked(
        &chain(("payment", "POST /charges"), Signal::Latency),
        &fault,
    );
    assert_eq!(causes[0].service, "payment", "{causes:#?}");
    assert_eq!(causes[0].kind, CauseKind::Operation);
}

#[test]
fn a_stalled_consumer_is_the_series_whose_rate_fell_while_its_callers_did_not() {
    let symptoms = vec![symptom(
        "notification",
        "orders process",
        Signal::Throughput,
        10,
    )];
    let causes = ranked(&symptoms, &Shop::default());
    assert_eq!(causes[0].service, "notification", "{causes:#?}");
    assert!(causes[0].evidence.facts[0].contains("throughput fell"));
    // The producer's edge to the stalled consumer drops too (fewer pairs complete): that is
    // the consumer's symptom seen from the producer, not the producer's own drop.
    let mut edge = symptom("order", "", Signal::Throughput, 12);
    edge.peer = Some("notification".into());
    let with_edge = vec![symptoms[0].clone(), edge];
    let causes = ranked(&with_edge, &Shop::default());
    assert_eq!(causes[0].service, "notification", "{causes:#?}");
    assert_eq!(causes.len(), 1, "{causes:#?}");
    assert!(causes[0]
        .evidence
        .facts
        .iter()
        .any(|f| f.starts_with("calls order → notification: calls")));
    // A drop that its caller shares is inherited, not caused.
    let both = vec![
        symptoms[0].clone(),
        symptom("order", "POST /orders", Signal::Throughput, 5),
        symptom("gateway", "GET /checkout", Signal::Throughput, 5),
    ];
    let causes = ranked(&both, &Shop::default());
    assert_eq!(causes[0].service, "gateway", "{causes:#?}");
    assert_eq!(causes.len(), 1);
}

#[test]
fn latency_in_an_asynchronous_consumer_blames_the_consumer() {
    // The consumer runs after the checkout answered: it is on no critical path, so its own
    // time is what shifts.
    let fault = Shop {
        notification_self: 150_000,
        ..Shop::default()
    };
    let symptoms = vec![symptom(
        "notification",
        "process order.created",
        Signal::Latency,
        10,
    )];
    let causes = ranked(&symptoms, &fault);
    assert_eq!(causes[0].service, "notification", "{causes:#?}");
    assert!(
        causes[0].explanation.contains("asynchronous"),
        "{causes:#?}"
    );
}

#[test]
fn no_change_means_no_cause() {
    let causes = ranked(
        &chain(("inventory", "GetProduct"), Signal::Latency),
        &Shop::default(),
    );
    assert!(causes.is_empty(), "{causes:#?}");
}

#[test]
fn outcomes_identifiers_and_ports_are_not_causes() {
    for key in [
        "network.peer.port",
        "http.response.body.size",
        "http.response.status_code",
        "error.type",
        "messaging.message.id",
        "rpc.grpc.status_code",
    ] {
        assert!(uninformative(key), "{key}");
    }
    for key in ["db.client.connection.wait_time", "http.route", "host.name"] {
        assert!(!uninformative(key), "{key}");
    }
}

#[test]
fn numbers_are_rounded_for_people() {
    assert_eq!(round_sig(0.000_412_3), "0.000412");
    assert_eq!(round_sig(1234.5), "1230");
    assert_eq!(round_sig(0.0), "0");
}

#[test]
fn a_slow_network_is_cited_from_the_edge_that_degraded_first() {
    // inventory answers as fast as ever; the time is lost between order and inventory.
    let fault = Shop {
        inventory_network: 150_000,
        ..Shop::default()
    };
    let mut symptoms = vec![
        symptom("gateway", "GET /checkout", Signal::Latency, 20),
        symptom("order", "POST /orders", Signal::Latency, 15),
    ];
    let mut edge = symptom("order", "", Signal::Latency, 10);
    edge.peer = Some("inventory".into());
    edge.baseline = 3_200.0;
    edge.observed = 153_200.0;
    symptoms.push(edge);
    let causes = ranked(&symptoms, &fault);
    let top = &causes[0];
    // The lost time is the self time of order's client span: order's side of the call.
    assert_eq!(top.service, "order", "{causes:#?}");
    assert_eq!(top.operation.as_deref(), Some("GetProduct"), "{causes:#?}");
    assert!(
        top.evidence.facts.iter().any(|f| f
            == "calls order → inventory: latency 3.2 ms → 153.2 ms against the edge's baseline, the first edge to degrade"),
        "{:#?}",
        top.evidence.facts
    );
    assert_eq!(
        (
            top.evidence.edges[0].client.as_str(),
            top.evidence.edges[0].server.as_str()
        ),
        ("order", "inventory"),
        "the degraded edge is cited first: {:#?}",
        top.evidence.edges
    );
    // inventory's own series never moved, so it is not said to have deviated first.
    assert!(causes
        .iter()
        .flat_map(|c| &c.evidence.facts)
        .all(|f| !f.contains("inventory deviated first")));
}
