//! Strings that every span of a route repeats (its template, its span names, the host it is
//! served as), made once per route and shared, so a kept request copies none of them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use opentelemetry::{StringValue, Value};

/// The strings of one wrapped service. axum's `Router::layer` wraps each route on its own, so
/// a service normally sees one route template; the first one seen is kept, and any other
/// (a layer around a whole router, say) is copied per span as before.
#[derive(Debug, Default)]
pub(crate) struct RouteStrings {
    route: OnceLock<Route>,
    host: OnceLock<Arc<str>>,
}

#[derive(Debug)]
struct Route {
    template: Arc<str>,
    /// `{METHOD} {template}`, by [`method_slot`].
    names: [OnceLock<&'static str>; METHOD_SLOTS],
}

impl RouteStrings {
    /// `http.route`.
    pub(crate) fn route_value(&self, template: &str) -> Value {
        match self.route(template) {
            Some(route) => StringValue::from(Arc::clone(&route.template)).into(),
            None => template.to_owned().into(),
        }
    }

    /// `GET /orders/{id}`: the method and the route template, so names stay few.
    pub(crate) fn span_name(
        &self,
        method: Option<&'static str>,
        template: Option<&str>,
    ) -> Cow<'static, str> {
        let method_name = method.unwrap_or("HTTP");
        let Some(template) = template else {
            return method_name.into();
        };
        match self.route(template) {
            Some(route) => Cow::Borrowed(
                route.names[method_slot(method)]
                    .get_or_init(|| intern(join(method_name, template))),
            ),
            None => join(method_name, template).into(),
        }
    }

    /// `server.address`: the first host seen is shared, others are copied.
    pub(crate) fn host_value(&self, host: &str) -> Value {
        let first = self.host.get_or_init(|| host.into());
        if **first == *host {
            StringValue::from(Arc::clone(first)).into()
        } else {
            host.to_owned().into()
        }
    }

    fn route(&self, template: &str) -> Option<&Route> {
        let route = self.route.get_or_init(|| Route {
            template: template.into(),
            names: Default::default(),
        });
        (*route.template == *template).then_some(route)
    }
}

/// The nine methods the conventions know, and `HTTP` for the rest.
const METHOD_SLOTS: usize = 10;

fn method_slot(method: Option<&'static str>) -> usize {
    match method {
        Some("GET") => 0,
        Some("POST") => 1,
        Some("PUT") => 2,
        Some("DELETE") => 3,
        Some("PATCH") => 4,
        Some("HEAD") => 5,
        Some("OPTIONS") => 6,
        Some("CONNECT") => 7,
        Some("TRACE") => 8,
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
    fn shares_the_first_route_and_copies_others() {
        let strings = RouteStrings::default();
        let first = strings.span_name(Some("GET"), Some("/orders/{id}"));
        assert_eq!(first, "GET /orders/{id}");
        assert!(matches!(first, Cow::Borrowed(_)));
        let again = strings.span_name(Some("GET"), Some("/orders/{id}"));
        assert!(std::ptr::eq(first.as_ref(), again.as_ref()));
        assert_eq!(
            strings.span_name(None, Some("/orders/{id}")),
            "HTTP /orders/{id}"
        );
        let other = strings.span_name(Some("POST"), Some("/carts"));
        assert_eq!(other, "POST /carts");
        assert!(matches!(other, Cow::Owned(_)));
        assert_eq!(strings.span_name(Some("GET"), None), "GET");
        assert_eq!(strings.route_value("/orders/{id}").as_str(), "/orders/{id}");
        assert_eq!(strings.route_value("/carts").as_str(), "/carts");
        assert_eq!(strings.host_value("shop").as_str(), "shop");
        assert_eq!(strings.host_value("other").as_str(), "other");
        assert_eq!(strings.host_value("shop").as_str(), "shop");
        // Another service with the same route gets the same interned name.
        let elsewhere = RouteStrings::default().span_name(Some("GET"), Some("/orders/{id}"));
        assert!(std::ptr::eq(first.as_ref(), elsewhere.as_ref()));
    }
}
