//! Adapters that let OpenTelemetry propagators read and write HTTP headers, gRPC metadata
//! and message-header maps.

use std::collections::HashMap;
use std::hash::BuildHasher;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};

/// Reads propagation fields from an [`http::HeaderMap`]; values that are not visible ASCII are ignored.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes propagation fields into an [`http::HeaderMap`], skipping fields that are not valid headers.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A propagator never produces invalid names or values, but a custom one might; dropping
        // a field is better than failing the request it rides on.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Reads propagation fields from a string map such as Kafka or NATS message headers.
///
/// Keys are matched case-insensitively, as HTTP-derived header names are.
#[derive(Debug)]
pub struct MapExtractor<'a, S>(pub &'a HashMap<String, String, S>);

impl<S: BuildHasher> Extractor for MapExtractor<'_, S> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        })
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Writes propagation fields into a string map such as Kafka or NATS message headers.
#[derive(Debug)]
pub struct MapInjector<'a, S>(pub &'a mut HashMap<String, String, S>);

impl<S: BuildHasher> Injector for MapInjector<'_, S> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_extractor_matches_keys_case_insensitively() {
        let mut map = HashMap::new();
        map.insert("TraceParent".to_owned(), "x".to_owned());
        assert_eq!(MapExtractor(&map).get("traceparent"), Some("x"));
        assert_eq!(MapExtractor(&map).get("baggage"), None);
    }

    #[test]
    fn header_extractor_ignores_non_ascii_values() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are a valid header value"),
        );
        assert_eq!(HeaderExtractor(&headers).get("traceparent"), None);
    }
}
