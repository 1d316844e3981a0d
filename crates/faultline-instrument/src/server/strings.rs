//! Strings that every span of a route repeats (its template, its span names, the host it is
//! served as), made once per route and shared, so a kept request copies none of them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::extract::MatchedPath;
use opentelemetry::{StringValue, Value};

use crate::semconv;

/// The bytes `HeaderValue::to_str` accepts: visible ASCII, spaces and tabs.
fn is_visible_ascii(b: u8) -> bool {
    (32..127).contains(&b) || b == b'\t'
}

/// The strings of one wrapped service. axum's `Router::layer` wraps each route on its own, so
/// a service normally sees one route template; the first one seen is kept, and any other
/// (a layer around a whole router, say) is copied per span as before.
#[derive(Debug, Default)]
pub(crate) struct RouteStrings {
    route: OnceLock<Route>,
    authority: OnceLock<Authority>,
    user_agent: OnceLock<Arc<str>>,
}

/// The first valid authority seen, split: the next request naming the same bytes reuses the
/// split (and the validation, the search for the port and its parse).
#[derive(Debug)]
struct Authority {
    raw: Box<[u8]>,
    host: Arc<str>,
    port: Option<u16>,
}

/// `server.address` and `server.port`.
pub(crate) type HostPort = (Value, Option<u16>);

/// A route template as a request carries it: its text, and (from axum) the shared string that
/// holds it, whose address identifies it while someone keeps the string alive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Template<'a> {
    text: &'a str,
    shared: Option<&'a MatchedPath>,
}

impl<'a> Template<'a> {
    /// The template axum matched.
    pub(crate) fn matched(path: &'a MatchedPath) -> Self {
        Template {
            text: path.as_str(),
            shared: Some(path),
        }
    }

    /// A template known only by its text.
    #[cfg(test)]
    fn text(text: &'a str) -> Self {
        Template { text, shared: None }
    }
}

#[derive(Debug)]
struct Route {
    template: Arc<str>,
    /// The shared string the route was first seen with, kept alive here: axum hands every
    /// request of a route that same string, so a template at its address (`first_seen_at`,
    /// 0 when there is none) is this route without comparing bytes. While it is kept, no other
    /// string can live at that address.
    _first_seen: Option<MatchedPath>,
    first_seen_at: usize,
    /// `{METHOD} {template}`, by [`method_slot`].
    names: [OnceLock<&'static str>; METHOD_SLOTS],
}

impl RouteStrings {
    /// `http.route`.
    pub(crate) fn route_value(&self, template: Template<'_>) -> Value {
        match self.route(template) {
            Some(route) => StringValue::from(Arc::clone(&route.template)).into(),
            None => template.text.to_owned().into(),
        }
    }

    /// `GET /orders/{id}`: the method and the route template, so names stay few.
    pub(crate) fn span_name(
        &self,
        method: Option<&'static str>,
        template: Option<Template<'_>>,
    ) -> Cow<'static, str> {
        let method_name = method.unwrap_or("HTTP");
        let Some(template) = template else {
            return method_name.into();
        };
        match self.route(template) {
            Some(route) => Cow::Borrowed(
                route.names[method_slot(method)]
                    .get_or_init(|| intern(join(method_name, template.text))),
            ),
            None => join(method_name, template.text).into(),
        }
    }

    /// `server.address` and `server.port` from the raw authority (of the URI or the `Host`
    /// header, capped at `max` bytes): the first valid authority seen is kept split and shared,
    /// others are validated, split and copied on every request.
    pub(crate) fn host_port(&self, raw: &[u8], max: usize) -> Option<HostPort> {
        if let Some(first) = self.authority.get() {
            if *first.raw == *raw {
                return Some((
                    StringValue::from(Arc::clone(&first.host)).into(),
                    first.port,
                ));
            }
        }
        if !raw.iter().copied().all(is_visible_ascii) {
            return None;
        }
        let text = std::str::from_utf8(raw).ok()?;
        let (host, port) = semconv::split_host_port(semconv::truncate(text, max))?;
        let first = self.authority.get_or_init(|| Authority {
            raw: raw.into(),
            host: host.into(),
            port,
        });
        let host = if *first.host == *host {
            StringValue::from(Arc::clone(&first.host)).into()
        } else {
            host.to_owned().into()
        };
        Some((host, port))
    }

    /// `user_agent.original` from the raw header value (capped at `max` bytes): the first
    /// valid value seen is shared, as a service's callers are usually a few programs sending
    /// the same string every time; others are validated and copied.
    pub(crate) fn user_agent(&self, raw: &[u8], max: usize) -> Option<Value> {
        if let Some(first) = self.user_agent.get() {
            if first.as_bytes() == raw {
                return Some(StringValue::from(Arc::clone(first)).into());
            }
        }
        if !raw.iter().copied().all(is_visible_ascii) {
            return None;
        }
        let text = std::str::from_utf8(raw).ok()?;
        if text.len() <= max {
            let first = self.user_agent.get_or_init(|| text.into());
            if **first == *text {
                return Some(StringValue::from(Arc::clone(first)).into());
            }
        }
        Some(semconv::truncate(text, max).to_owned().into())
    }

    fn route(&self, template: Template<'_>) -> Option<&Route> {
        let route = self.route.get_or_init(|| Route {
            template: template.text.into(),
            _first_seen: template.shared.cloned(),
            first_seen_at: template
                .shared
                .map_or(0, |shared| shared.as_str().as_ptr() as usize),
            names: Default::default(),
        });
        let same_string = route.first_seen_at == template.text.as_ptr() as usize
            && route.template.len() == template.text.len();
        (same_string || *route.template == *template.text).then_some(route)
    }
}

/// The nine methods the conventions know, and `HTTP` for the rest.
const METHOD_SLOTS: usize = 10;

fn method_slot(method: Option<&'static str>) -> usize {
    // Only the nine names of `semconv::known_method` arrive here, and their lengths and first
    // letters tell them apart: cheaper than comparing strings one after another.
    match method.map(|m| (m.len(), m.as_bytes()[0])) {
        Some((3, b'G')) => 0,
        Some((4, b'P')) => 1,
        Some((3, b'P')) => 2,
        Some((6, b'D')) => 3,
        Some((5, b'P')) => 4,
        Some((4, b'H')) => 5,
        Some((7, b'O')) => 6,
        Some((7, b'C')) => 7,
        Some((5, b'T')) => 8,
        _ => 9,
    }
}

fn join(method: &str, template: &str) -> String {
    let mut name = String::with_capacity(method.len() + 1 + template.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(template);
    name
}

/// A span name that lives as long as the process, so spans can borrow it (`Cow::Borrowed`)
/// instead of owning a copy. Each distinct name is kept once; names are route templates from
/// the application's code joined with one of ten method names, never request data, so the set
/// stays as small as the application's routes.
fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_method_has_its_own_slot() {
        let slots: HashSet<usize> = [
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
        ]
        .into_iter()
        .map(|m| method_slot(Some(m)))
        .chain([method_slot(None)])
        .collect();
        assert_eq!(slots.len(), METHOD_SLOTS);
    }

    #[test]
    fn shares_the_first_route_and_copies_others() {
        let strings = RouteStrings::default();
        let first = strings.span_name(Some("GET"), Some(Template::text("/orders/{id}")));
        assert_eq!(first, "GET /orders/{id}");
        assert!(matches!(first, Cow::Borrowed(_)));
        let again = strings.span_name(Some("GET"), Some(Template::text("/orders/{id}")));
        assert!(std::ptr::eq(first.as_ref(), again.as_ref()));
        assert_eq!(
            strings.span_name(None, Some(Template::text("/orders/{id}"))),
            "HTTP /orders/{id}"
        );
        let other = strings.span_name(Some("POST"), Some(Template::text("/carts")));
        assert_eq!(other, "POST /carts");
        assert!(matches!(other, Cow::Owned(_)));
        assert_eq!(strings.span_name(Some("GET"), None), "GET");
        assert_eq!(
            strings.route_value(Template::text("/orders/{id}")).as_str(),
            "/orders/{id}"
        );
        assert_eq!(
            strings.route_value(Template::text("/carts")).as_str(),
            "/carts"
        );
        let host = |raw: &str| {
            strings
                .host_port(raw.as_bytes(), 256)
                .map(|(host, port)| (host.as_str().into_owned(), port))
        };
        assert_eq!(host("shop:8080"), Some(("shop".into(), Some(8080))));
        assert_eq!(host("other"), Some(("other".into(), None)));
        assert_eq!(host("shop:8080"), Some(("shop".into(), Some(8080))));
        assert_eq!(host("shop:99999"), None);
        assert_eq!(host("sh\u{7f}op"), None);
        assert_eq!(host("[::1]:443"), Some(("::1".into(), Some(443))));
        let agent = |raw: &[u8]| strings.user_agent(raw, 8).map(|v| v.as_str().into_owned());
        assert_eq!(agent(b"curl/8"), Some("curl/8".into()));
        assert_eq!(agent(b"curl/8"), Some("curl/8".into()));
        assert_eq!(agent(b"wget/1.21.4"), Some("wget/1.2".into()));
        assert_eq!(agent(b"bad\xff"), None);
        assert_eq!(agent(b"bad\x01"), None);
        // Another service with the same route gets the same interned name.
        let elsewhere =
            RouteStrings::default().span_name(Some("GET"), Some(Template::text("/orders/{id}")));
        assert!(std::ptr::eq(first.as_ref(), elsewhere.as_ref()));
    }
}
