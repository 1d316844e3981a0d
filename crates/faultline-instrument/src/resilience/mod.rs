//! Resilience layers whose decisions show up in traces: a token-bucket rate limiter and a
//! circuit breaker. Rejections and state changes are recorded as events and attributes on the
//! current span (the SERVER span when these layers sit inside
//! [`ServerLayer`](crate::server::ServerLayer)).

pub mod circuit_breaker;
pub mod rate_limit;

pub use circuit_breaker::{
    BreakerState, CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer,
};
pub use rate_limit::{RateLimitLayer, RateLimitService};
