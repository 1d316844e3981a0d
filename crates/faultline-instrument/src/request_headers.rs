//! The request headers that tracing reads, found in one pass over the header map.

use http::header::{CONTENT_LENGTH, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue};

use crate::propagation::Format;

/// Which propagation fields a request carries and the headers its span records, found in one
/// pass: cheaper than a hashed lookup per name when, as usual, there are few headers and the
/// custom names (`x-forwarded-*`, `traceparent`) would each be hashed byte by byte. The first
/// value of each wins, as with `HeaderMap::get`.
#[derive(Default)]
pub(crate) struct RequestHeaders<'a> {
    pub(crate) traceparent: Option<&'a HeaderValue>,
    pub(crate) tracestate: Option<&'a HeaderValue>,
    pub(crate) baggage: bool,
    pub(crate) b3: bool,
    pub(crate) jaeger: bool,
    pub(crate) host: Option<&'a HeaderValue>,
    pub(crate) user_agent: Option<&'a HeaderValue>,
    pub(crate) content_length: Option<&'a HeaderValue>,
    pub(crate) x_forwarded_for: Option<&'a HeaderValue>,
    pub(crate) x_forwarded_proto: Option<&'a HeaderValue>,
}

impl<'a> RequestHeaders<'a> {
    pub(crate) fn scan(headers: &'a HeaderMap) -> Self {
        let mut found = RequestHeaders::default();
        for (name, value) in headers {
            // Standard names first, compared as the enum `http` keeps them as (a byte compare
            // each); then the custom ones by their text.
            let slot = if *name == HOST {
                &mut found.host
            } else if *name == USER_AGENT {
                &mut found.user_agent
            } else if *name == CONTENT_LENGTH {
                &mut found.content_length
            } else {
                match name.as_str() {
                    "traceparent" => &mut found.traceparent,
                    "tracestate" => &mut found.tracestate,
                    "x-forwarded-for" => &mut found.x_forwarded_for,
                    "x-forwarded-proto" => &mut found.x_forwarded_proto,
                    "baggage" => {
                        found.baggage = true;
                        continue;
                    }
                    "b3" | "x-b3-traceid" => {
                        found.b3 = true;
                        continue;
                    }
                    "uber-trace-id" => {
                        found.jaeger = true;
                        continue;
                    }
                    _ => continue,
                }
            };
            slot.get_or_insert(value);
        }
        found
    }

    /// Whether any propagation field is there.
    pub(crate) fn any(&self) -> bool {
        self.traceparent.is_some() || self.baggage || self.b3 || self.jaeger
    }

    /// Whether any propagation field other than `traceparent` is there.
    pub(crate) fn others(&self) -> bool {
        self.baggage || self.b3 || self.jaeger
    }

    /// Whether anything `format` would read is there.
    pub(crate) fn has(&self, format: Format) -> bool {
        match format {
            Format::TraceContext => self.traceparent.is_some(),
            Format::Baggage => self.baggage,
            Format::B3Single | Format::B3Multi => self.b3,
            Format::Jaeger => self.jaeger,
        }
    }
}
