//! The circuit breaker in front of the payment provider: Closed → Open when the error ratio
//! over the last calls passes a threshold → Half-Open after a pause, where one probe decides.
//! Rejections and state changes are written on the current span as events, so a trace shows
//! why a payment failed fast.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};

/// When the breaker opens and for how long.
#[derive(Clone, Debug)]
pub struct BreakerSettings {
    /// Open when at least this fraction of the window failed...
    pub failure_ratio: f64,
    /// ...over this many most recent calls...
    pub window: usize,
    /// ...once at least this many calls are in the window.
    pub min_calls: usize,
    /// How long to stay open before letting a probe through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_ratio: 0.5,
            window: 20,
            min_calls: 10,
            open_for: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { outcomes: VecDeque<bool> },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

/// A circuit breaker; share it behind an `Arc`.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: &'static str,
    settings: BreakerSettings,
    state: Mutex<State>,
}

/// The breaker refused the call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("circuit breaker {0} is open")]
pub struct BreakerOpen(pub &'static str);

impl CircuitBreaker {
    /// A closed breaker guarding the dependency `name`.
    pub fn new(name: &'static str, settings: BreakerSettings) -> Self {
        CircuitBreaker {
            name,
            settings,
            state: Mutex::new(State::Closed {
                outcomes: VecDeque::new(),
            }),
        }
    }

    /// The state's name: `closed`, `open` or `half_open`.
    pub fn state(&self) -> &'static str {
        self.lock().name()
    }

    /// Asks to make a call now; a refusal is recorded on the current span.
    pub fn acquire(&self) -> Result<(), BreakerOpen> {
        self.acquire_at(Instant::now())
    }

    fn acquire_at(&self, now: Instant) -> Result<(), BreakerOpen> {
        let mut state = self.lock();
        let allowed = match &mut *state {
            State::Closed { .. } => true,
            State::Open { until } if now >= *until => {
                self.transition(&mut state, State::HalfOpen { probing: true });
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probing } if !*probing => {
                *probing = true;
                true
            }
            State::HalfOpen { .. } => false,
        };
        let span_cx = Context::current();
        let span = span_cx.span();
        span.set_attribute(KeyValue::new("circuit_breaker.name", self.name));
        span.set_attribute(KeyValue::new("circuit_breaker.state", state.name()));
        if allowed {
            Ok(())
        } else {
            span.add_event(
                "circuit_breaker.rejected",
                vec![KeyValue::new("circuit_breaker.name", self.name)],
            );
            Err(BreakerOpen(self.name))
        }
    }

    /// Reports how an allowed call went.
    pub fn record(&self, success: bool) {
        self.record_at(success, Instant::now());
    }

    fn record_at(&self, success: bool, now: Instant) {
        let mut state = self.lock();
        match &mut *state {
            State::Closed { outcomes } => {
                outcomes.push_back(success);
                while outcomes.len() > self.settings.window {
                    outcomes.pop_front();
                }
                let failures = outcomes.iter().filter(|ok| !**ok).count();
                if outcomes.len() >= self.settings.min_calls
                    && failures as f64 >= self.settings.failure_ratio * outcomes.len() as f64
                {
                    let until = now + self.settings.open_for;
                    self.transition(&mut state, State::Open { until });
                }
            }
            State::HalfOpen { .. } if success => {
                let closed = State::Closed {
                    outcomes: VecDeque::new(),
                };
                self.transition(&mut state, closed);
            }
            State::HalfOpen { .. } => {
                let until = now + self.settings.open_for;
                self.transition(&mut state, State::Open { until });
            }
            // A call allowed before the breaker opened finished late: the window is gone.
            State::Open { .. } => {}
        }
    }

    fn transition(&self, state: &mut State, next: State) {
        let from = state.name();
        let to = next.name();
        *state = next;
        tracing::warn!(
            breaker = self.name,
            from,
            to,
            "circuit breaker state change"
        );
        Context::current().span().add_event(
            "circuit_breaker.state_change",
            vec![
                KeyValue::new("circuit_breaker.name", self.name),
                KeyValue::new("circuit_breaker.from", from),
                KeyValue::new("circuit_breaker.to", to),
            ],
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "provider",
            BreakerSettings {
                failure_ratio: 0.5,
                window: 4,
                min_calls: 4,
                open_for: Duration::from_secs(5),
            },
        )
    }

    #[test]
    fn opens_at_the_ratio_and_probes_after_the_pause() {
        let b = breaker();
        let t0 = Instant::now();
        for ok in [true, true, false] {
            assert!(b.acquire_at(t0).is_ok());
            b.record_at(ok, t0);
        }
        assert_eq!(b.state(), "closed", "too few calls to judge");
        assert!(b.acquire_at(t0).is_ok());
        b.record_at(false, t0);
        assert_eq!(b.state(), "open");
        assert_eq!(
            b.acquire_at(t0 + Duration::from_secs(1)),
            Err(BreakerOpen("provider"))
        );
        let later = t0 + Duration::from_secs(6);
        assert!(b.acquire_at(later).is_ok(), "one probe");
        assert_eq!(b.state(), "half_open");
        assert!(b.acquire_at(later).is_err(), "only one probe at a time");
        b.record_at(false, later);
        assert_eq!(b.state(), "open");
        let much_later = later + Duration::from_secs(6);
        assert!(b.acquire_at(much_later).is_ok());
        b.record_at(true, much_later);
        assert_eq!(b.state(), "closed");
    }
}
