//! A circuit breaker: Closed → Open when the error ratio over the last calls crosses a
//! threshold (with a minimum number of calls), Open → Half-Open after a cool-down, and
//! Half-Open → Closed after enough successful probes (or back to Open on a failed one).
//!
//! Failures are errors of the inner service and 5xx answers. While Open, requests are answered
//! `503 Service Unavailable` without reaching the inner service. Every state change and every
//! rejection is recorded on the current span.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// The state of a [`CircuitBreaker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the cool-down ends.
    Open,
    /// A few probe calls are let through to test recovery.
    HalfOpen,
}

impl BreakerState {
    fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Thresholds of a [`CircuitBreaker`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerConfig {
    /// The breaker opens when failures / calls in the window reach this ratio (0.0–1.0).
    pub failure_ratio: f64,
    /// Outcomes remembered (a count-based sliding window).
    pub window: usize,
    /// No decision before this many calls are in the window.
    pub min_calls: usize,
    /// How long the breaker stays open before probing.
    pub open_for: Duration,
    /// Successful probes needed to close again; also the most probes in flight at once.
    pub half_open_probes: usize,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_ratio: 0.5,
            window: 100,
            min_calls: 20,
            open_for: Duration::from_secs(30),
            half_open_probes: 3,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    outcomes: VecDeque<bool>,
    failures: usize,
    opened_at: Instant,
    probes_in_flight: usize,
    probe_successes: usize,
}

/// The shared state machine; clone the [`CircuitBreakerLayer`] or share this to guard one
/// dependency from several places.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: CircuitBreakerConfig,
    inner: Mutex<Inner>,
}

/// What `acquire` allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Permit {
    Call,
    Probe,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: CircuitBreakerConfig) -> Self {
        let config = CircuitBreakerConfig {
            failure_ratio: config.failure_ratio.clamp(0.0, 1.0),
            window: config.window.max(1),
            min_calls: config.min_calls.max(1),
            half_open_probes: config.half_open_probes.max(1),
            ..config
        };
        CircuitBreaker {
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                outcomes: VecDeque::with_capacity(config.window),
                failures: 0,
                opened_at: Instant::now(),
                probes_in_flight: 0,
                probe_successes: 0,
            }),
            config,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.inner
            .lock()
            .map(|inner| inner.state)
            .unwrap_or(BreakerState::Open)
    }

    fn acquire(&self, now: Instant) -> Option<Permit> {
        let mut inner = self.inner.lock().ok()?;
        if inner.state == BreakerState::Open
            && now.saturating_duration_since(inner.opened_at) >= self.config.open_for
        {
            transition(&mut inner, BreakerState::HalfOpen, now);
        }
        match inner.state {
            BreakerState::Closed => Some(Permit::Call),
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                if inner.probes_in_flight < self.config.half_open_probes {
                    inner.probes_in_flight += 1;
                    Some(Permit::Probe)
                } else {
                    None
                }
            }
        }
    }

    fn record(&self, permit: Permit, success: bool, now: Instant) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        match (permit, inner.state) {
            (Permit::Probe, BreakerState::HalfOpen) => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                if !success {
                    transition(&mut inner, BreakerState::Open, now);
                } else {
                    inner.probe_successes += 1;
                    if inner.probe_successes >= self.config.half_open_probes {
                        transition(&mut inner, BreakerState::Closed, now);
                    }
                }
            }
            (Permit::Call, BreakerState::Closed) => {
                inner.outcomes.push_back(success);
                if !success {
                    inner.failures += 1;
                }
                if inner.outcomes.len() > self.config.window
                    && inner.outcomes.pop_front() == Some(false)
                {
                    inner.failures -= 1;
                }
                let calls = inner.outcomes.len();
                if calls >= self.config.min_calls
                    && inner.failures as f64 >= self.config.failure_ratio * calls as f64
                {
                    transition(&mut inner, BreakerState::Open, now);
                }
            }
            // An outcome from an earlier state no longer says anything about the current one.
            _ => {}
        }
    }

    /// A probe that never finished (its future was dropped) frees its slot without a verdict.
    fn abandon(&self, permit: Permit) {
        if permit == Permit::Probe {
            if let Ok(mut inner) = self.inner.lock() {
                if inner.state == BreakerState::HalfOpen {
                    inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                }
            }
        }
    }
}

fn transition(inner: &mut Inner, to: BreakerState, now: Instant) {
    let from = inner.state;
    if from == to {
        return;
    }
    inner.state = to;
    inner.outcomes.clear();
    inner.failures = 0;
    inner.probes_in_flight = 0;
    inner.probe_successes = 0;
    if to == BreakerState::Open {
        inner.opened_at = now;
    }
    let cx = Context::current();
    cx.span().add_event(
        "circuit_breaker.state_change",
        vec![
            KeyValue::new("circuit_breaker.from", from.as_str()),
            KeyValue::new("circuit_breaker.to", to.as_str()),
        ],
    );
}

/// Wraps a service in a [`CircuitBreaker`].
///
/// ```
/// use faultline_instrument::resilience::{CircuitBreakerConfig, CircuitBreakerLayer};
/// use axum::{routing::get, Router};
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(CircuitBreakerLayer::new(CircuitBreakerConfig::default()));
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breaker: Arc<CircuitBreaker>,
}

impl CircuitBreakerLayer {
    /// A layer with its own breaker.
    pub fn new(config: CircuitBreakerConfig) -> Self {
        CircuitBreakerLayer {
            breaker: Arc::new(CircuitBreaker::new(config)),
        }
    }

    /// A layer sharing `breaker`.
    pub fn with_breaker(breaker: Arc<CircuitBreaker>) -> Self {
        CircuitBreakerLayer { breaker }
    }

    /// The breaker, to read its state.
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        Arc::clone(&self.breaker)
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
        }
    }
}

/// The service built by [`CircuitBreakerLayer`].
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CircuitBreakerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CircuitBreakerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let cx = Context::current();
        let span = cx.span();
        match self.breaker.acquire(Instant::now()) {
            Some(permit) => {
                span.set_attribute(KeyValue::new(
                    "circuit_breaker.state",
                    if permit == Permit::Probe {
                        "half_open"
                    } else {
                        "closed"
                    },
                ));
                CircuitBreakerFuture {
                    inner: Some(self.inner.call(request)),
                    permit: Some((permit, Arc::clone(&self.breaker))),
                }
            }
            None => {
                span.set_attribute(KeyValue::new("circuit_breaker.state", "open"));
                span.add_event("circuit_breaker.rejected", Vec::new());
                CircuitBreakerFuture {
                    inner: None,
                    permit: None,
                }
            }
        }
    }
}

pin_project! {
    /// Records the outcome of a call let through by the breaker.
    pub struct CircuitBreakerFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<(Permit, Arc<CircuitBreaker>)>,
    }

    impl<F> PinnedDrop for CircuitBreakerFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((permit, breaker)) = this.project().permit.take() {
                breaker.abandon(permit);
            }
        }
    }
}

impl<F, ResBody, E> Future for CircuitBreakerFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            let mut response = Response::new(ResBody::default());
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Poll::Ready(Ok(response));
        };
        let output = match inner.poll(task) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(output) => output,
        };
        this.inner.set(None);
        let success = matches!(&output, Ok(response) if !response.status().is_server_error());
        if let Some((permit, breaker)) = this.permit.take() {
            breaker.record(permit, success, Instant::now());
        }
        Poll::Ready(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(open_for: Duration) -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_ratio: 0.5,
            window: 10,
            min_calls: 4,
            open_for,
            half_open_probes: 2,
        }
    }

    #[test]
    fn opens_at_the_ratio_only_after_min_calls() {
        let breaker = CircuitBreaker::new(config(Duration::from_secs(3600)));
        let now = Instant::now();
        for success in [false, false, false] {
            let permit = breaker.acquire(now).expect("closed");
            breaker.record(permit, success, now);
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "below min_calls");
        let permit = breaker.acquire(now).expect("closed");
        breaker.record(permit, true, now);
        assert_eq!(breaker.state(), BreakerState::Open, "3 of 4 failed");
        assert_eq!(breaker.acquire(now), None);
    }

    #[test]
    fn half_open_probes_close_or_reopen() {
        let breaker = CircuitBreaker::new(config(Duration::from_secs(10)));
        let start = Instant::now();
        for _ in 0..4 {
            let permit = breaker.acquire(start).expect("closed");
            breaker.record(permit, false, start);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.acquire(start + Duration::from_secs(9)), None);
        let later = start + Duration::from_secs(10);
        let first = breaker.acquire(later).expect("probe");
        let second = breaker.acquire(later).expect("probe");
        assert_eq!((first, second), (Permit::Probe, Permit::Probe));
        assert_eq!(breaker.acquire(later), None, "only two probes at once");
        breaker.record(first, true, later);
        breaker.record(second, false, later);
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "a failed probe reopens"
        );

        let recovered = later + Duration::from_secs(10);
        for _ in 0..2 {
            let probe = breaker.acquire(recovered).expect("probe");
            breaker.record(probe, true, recovered);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let breaker = CircuitBreaker::new(CircuitBreakerConfig {
            window: 4,
            min_calls: 4,
            ..config(Duration::from_secs(3600))
        });
        let now = Instant::now();
        for success in [false, true, true, true, true, true, false] {
            let permit = breaker.acquire(now).expect("closed");
            breaker.record(permit, success, now);
        }
        // The window holds [true, true, true, false]: 25% < 50%.
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
