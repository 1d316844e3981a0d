//! The sampler [`SamplerConfig`](super::SamplerConfig) builds, shared by the SDK and the server
//! layer so that a request can be decided before any SDK span exists.
//!
//! The SDK can only ask a sampler from inside `Tracer::build_with_context`, which already costs
//! a span id, a tracer clone and a non-recording span even when the answer is "drop". The server
//! layer therefore asks [`ConfiguredSampler::decide`] itself, from the parent's span context
//! alone, and when the answer is "drop" never calls the SDK. When the answer is "record", the
//! SDK must reach the same decision without deciding again (a rate limiter would spend two
//! tokens, a root would be judged by a second trace id), so the layer hands its decision over
//! through [`Handoff`]: the provider's id generator returns the trace id the decision was made
//! for, and the provider's sampler returns the decision. Both are consumed within the one
//! `build_with_context` call on the same thread.

use std::cell::Cell;
use std::sync::Arc;

use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, SpanRef, TraceContextExt, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, SamplingResult, ShouldSample,
};

use super::{JaegerRemoteSampler, RateLimitingSampler};

/// The span about to start, as a sampler sees it.
pub(crate) struct Candidate<'a> {
    /// The parent.
    pub(crate) parent: Parent<'a>,
    /// The trace id the span will have.
    pub(crate) trace_id: TraceId,
    /// The span name.
    pub(crate) name: &'a str,
    /// The span kind.
    pub(crate) kind: &'a SpanKind,
    /// Attributes given at start.
    pub(crate) attributes: &'a [KeyValue],
    /// Links given at start.
    pub(crate) links: &'a [Link],
}

/// The parent of a span about to start: its span context, and the rest of its context.
pub(crate) struct Parent<'a> {
    span: ParentSpan<'a>,
    cx: Option<&'a Context>,
}

enum ParentSpan<'a> {
    None,
    /// The context's active span.
    InContext(SpanRef<'a>),
    /// A span context parsed beside `cx` and not (yet) put into it, which saves an allocation
    /// when the request is then dropped.
    Beside(&'a SpanContext),
}

impl<'a> Parent<'a> {
    /// The parent as the SDK passes it: a whole context, whose active span (if any) is the parent.
    pub(crate) fn context(cx: Option<&'a Context>) -> Self {
        let span = match cx {
            Some(cx) if cx.has_active_span() => ParentSpan::InContext(cx.span()),
            _ => ParentSpan::None,
        };
        Parent { span, cx }
    }

    /// `span_context` is the parent; `rest` holds everything else (baggage, ...).
    pub(crate) fn beside(span_context: &'a SpanContext, rest: &'a Context) -> Self {
        Parent {
            span: ParentSpan::Beside(span_context),
            cx: Some(rest),
        }
    }

    /// The parent's span context, valid or not; `None` when there is no span at all.
    pub(crate) fn span_context(&self) -> Option<&SpanContext> {
        match &self.span {
            ParentSpan::None => None,
            ParentSpan::InContext(span) => Some(span.span_context()),
            ParentSpan::Beside(sc) => Some(sc),
        }
    }

    /// The parent's span context if it is valid, i.e. if the span continues a trace.
    pub(crate) fn valid_span_context(&self) -> Option<&SpanContext> {
        self.span_context().filter(|sc| sc.is_valid())
    }

    /// What every SDK sampler returns as the new span's trace state: the parent's.
    pub(crate) fn trace_state(&self) -> TraceState {
        self.span_context()
            .map(|sc| sc.trace_state().clone())
            .unwrap_or_default()
    }

    /// Asks a sampler that needs a whole context; builds one only when the span context was
    /// kept beside it.
    pub(crate) fn ask(&self, sampler: &dyn ShouldSample, c: &Candidate<'_>) -> SamplingResult {
        let joined;
        let cx = match (&self.span, self.cx) {
            (ParentSpan::Beside(sc), Some(rest)) => {
                joined = rest.with_remote_span_context((*sc).clone());
                Some(&joined)
            }
            (_, cx) => cx,
        };
        sampler.should_sample(cx, c.trace_id, c.name, c.kind, c.attributes, c.links)
    }
}

/// One node of the configured sampler.
#[derive(Debug)]
pub(crate) enum Node {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    RateLimited(RateLimitingSampler),
    JaegerRemote(JaegerRemoteSampler),
    /// The specification's default parent-based sampler: a valid parent's sampled flag
    /// decides, `root` decides roots.
    ParentBased(Box<Node>),
}

impl Node {
    fn decide(&self, c: &Candidate<'_>) -> SamplingResult {
        let keep = match self {
            Node::AlwaysOn => true,
            Node::AlwaysOff => false,
            Node::TraceIdRatio(ratio) => ratio_keeps(*ratio, c.trace_id),
            Node::RateLimited(sampler) => sampler.admit(),
            Node::JaegerRemote(sampler) => return sampler.decide(c),
            Node::ParentBased(root) => match c.parent.valid_span_context() {
                Some(parent) => parent.is_sampled(),
                None => return root.decide(c),
            },
        };
        result(keep, &c.parent)
    }
}

/// A decision with the parent's trace state, as every sampler of this crate answers.
pub(crate) fn result(keep: bool, parent: &Parent<'_>) -> SamplingResult {
    SamplingResult {
        decision: if keep {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        },
        attributes: Vec::new(),
        trace_state: parent.trace_state(),
    }
}

/// The SDK's `TraceIdRatioBased` decision (asked directly: it reads only the trace id).
pub(crate) fn ratio_keeps(ratio: f64, trace_id: TraceId) -> bool {
    Sampler::TraceIdRatioBased(ratio)
        .should_sample(None, trace_id, "", &SpanKind::Internal, &[], &[])
        .decision
        == SamplingDecision::RecordAndSample
}

/// The sampler built from a [`SamplerConfig`](super::SamplerConfig); clones share state (token
/// buckets, remote strategies).
#[derive(Clone, Debug)]
pub(crate) struct ConfiguredSampler {
    root: Arc<Node>,
}

impl ConfiguredSampler {
    pub(crate) fn new(root: Node) -> Self {
        ConfiguredSampler {
            root: Arc::new(root),
        }
    }

    /// The decision for `candidate`, exactly as the SDK would get it from this sampler.
    pub(crate) fn decide(&self, candidate: &Candidate<'_>) -> SamplingResult {
        self.root.decide(candidate)
    }
}

impl ShouldSample for ConfiguredSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Some(decided) = Handoff::take(trace_id) {
            return decided;
        }
        self.decide(&Candidate {
            parent: Parent::context(parent_context),
            trace_id,
            name,
            kind: span_kind,
            attributes,
            links,
        })
    }
}

/// A decision made before the SDK was asked, waiting to be picked up by the SDK on this thread.
struct Pending {
    trace_id: TraceId,
    /// Whether the span is a root, whose trace id the id generator must hand out.
    root: bool,
    result: SamplingResult,
}

thread_local! {
    static PENDING: Cell<Option<Pending>> = const { Cell::new(None) };
}

/// Hands a decision already made to the SDK's sampler and id generator for one span start.
pub(crate) struct Handoff(());

impl Handoff {
    /// Runs `start` (which must start exactly one span with the provider this crate built) with
    /// `result` as the sampler's answer for `trace_id`; a root gets `trace_id` as its id.
    // Inlined, so a large `T` (an SDK span) is not copied on its way out.
    #[inline(always)]
    pub(crate) fn run<T>(
        trace_id: TraceId,
        root: bool,
        result: SamplingResult,
        start: impl FnOnce() -> T,
    ) -> T {
        PENDING.with(|p| {
            p.set(Some(Pending {
                trace_id,
                root,
                result,
            }))
        });
        let started = start();
        // Not picked up (the provider was shut down): it must not leak into the next span.
        PENDING.with(|p| p.set(None));
        started
    }

    fn take(trace_id: TraceId) -> Option<SamplingResult> {
        PENDING
            .with(Cell::take)
            .filter(|p| p.trace_id == trace_id)
            .map(|p| p.result)
    }

    fn root_trace_id() -> Option<TraceId> {
        PENDING.with(|p| {
            let pending = p.take();
            let id = pending.as_ref().filter(|p| p.root).map(|p| p.trace_id);
            p.set(pending);
            id
        })
    }
}

/// The SDK's random ids, except that a root started through [`Handoff::run`] gets the trace id
/// its sampling decision was made for.
#[derive(Debug, Default)]
pub(crate) struct HandoffIdGenerator {
    random: RandomIdGenerator,
}

impl IdGenerator for HandoffIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        Handoff::root_trace_id().unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.random.new_span_id()
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use opentelemetry::trace::TraceFlags;

    use super::*;
    use crate::sampling::SamplerConfig;

    fn parents() -> Vec<Option<Context>> {
        let state = TraceState::from_str("k=v").expect("trace state");
        let mut parents = vec![None, Some(Context::new())];
        for remote in [true, false] {
            for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
                parents.push(Some(Context::new().with_remote_span_context(
                    SpanContext::new(
                        TraceId::from(0x77_u128),
                        SpanId::from(9_u64),
                        flags,
                        remote,
                        state.clone(),
                    ),
                )));
            }
        }
        // An active but invalid parent: a root for the parent-based sampler.
        parents.push(Some(Context::new().with_remote_span_context(
            SpanContext::new(
                TraceId::INVALID,
                SpanId::INVALID,
                TraceFlags::SAMPLED,
                true,
                state,
            ),
        )));
        parents
    }

    /// Every stateless configuration decides as the SDK's own samplers do, asked through the
    /// SDK's interface or through `decide` with the span context kept beside the context.
    #[test]
    fn decides_like_the_sdk_samplers() {
        let configs = [
            (SamplerConfig::AlwaysOn, Sampler::AlwaysOn),
            (SamplerConfig::AlwaysOff, Sampler::AlwaysOff),
            (
                SamplerConfig::TraceIdRatio(0.5),
                Sampler::TraceIdRatioBased(0.5),
            ),
        ];
        let mut pairs: Vec<(SamplerConfig, Box<dyn ShouldSample>)> = Vec::new();
        for (config, sdk) in configs {
            pairs.push((
                SamplerConfig::ParentBased(Box::new(config.clone())),
                Box::new(Sampler::parent_based(sdk.clone())),
            ));
            pairs.push((config, Box::new(sdk)));
        }
        let trace_ids = [1_u128, u128::from(u64::MAX), 0x77, 0x4000_0000_0000_0000];
        for (config, sdk) in &pairs {
            let ours = config.build_configured("svc").expect("sampler");
            for parent in parents() {
                for trace_id in trace_ids {
                    let trace_id = TraceId::from(trace_id);
                    let ask = |s: &dyn ShouldSample| {
                        s.should_sample(
                            parent.as_ref(),
                            trace_id,
                            "GET /x",
                            &SpanKind::Server,
                            &[],
                            &[],
                        )
                    };
                    let expected = ask(sdk.as_ref());
                    let got = ask(&ours);
                    assert_eq!(got.decision, expected.decision, "{config:?} {parent:?}");
                    assert_eq!(got.trace_state, expected.trace_state);
                    // The server layer's way: the parent's span context kept beside.
                    if let Some(cx) = &parent {
                        if cx.has_active_span() {
                            let span = cx.span();
                            let rest = Context::new();
                            let beside = ours.decide(&Candidate {
                                parent: Parent::beside(span.span_context(), &rest),
                                trace_id,
                                name: "GET /x",
                                kind: &SpanKind::Server,
                                attributes: &[],
                                links: &[],
                            });
                            assert_eq!(beside.decision, expected.decision);
                            assert_eq!(beside.trace_state, expected.trace_state);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn handoff_is_taken_once_and_only_for_its_trace() {
        let sampler = SamplerConfig::AlwaysOff
            .build_configured("svc")
            .expect("sampler");
        let ids = HandoffIdGenerator::default();
        let trace_id = TraceId::from(0x1234_u128);
        let ask = |id: TraceId| {
            sampler
                .should_sample(None, id, "op", &SpanKind::Server, &[], &[])
                .decision
        };
        let kept = SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        };
        let (root_id, first, second) = Handoff::run(trace_id, true, kept, || {
            let root_id = ids.new_trace_id();
            (root_id, ask(root_id), ask(root_id))
        });
        assert_eq!(root_id, trace_id);
        assert_eq!(first, SamplingDecision::RecordAndSample);
        assert_eq!(second, SamplingDecision::Drop, "taken once");
        // A decision for another trace is not used, and none outlives `run`.
        let kept = SamplingResult {
            decision: SamplingDecision::RecordAndSample,
            attributes: Vec::new(),
            trace_state: TraceState::default(),
        };
        Handoff::run(trace_id, false, kept, || {
            assert_ne!(ids.new_trace_id(), trace_id, "not a root: random id");
        });
        assert_eq!(ask(trace_id), SamplingDecision::Drop);
        assert_ne!(ids.new_trace_id(), trace_id);
    }
}
