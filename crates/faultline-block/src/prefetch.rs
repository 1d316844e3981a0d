//! Software prefetching for the encoder's passes over a block's spans.
//!
//! A flushed head holds its spans in the order requests brought them, and their attribute
//! lists and long strings wherever the allocator put them; the encoder reads them in trace-ID
//! order, which is random with respect to all of that. Each span is three dependent loads
//! deep (the span, then its attribute list, then the strings the list points to), so reading
//! a span that is not cached waits for three memory round trips, one after another, and the
//! encoder's passes spent more time waiting than working.
//!
//! [`Prefetcher`] walks the same order a few spans ahead, one level per stage: it asks for
//! the span structs of spans far ahead, for the lists of spans that are nearer (whose structs
//! have arrived by then), and for the strings of the next few (whose lists have arrived). A
//! prefetch does not wait for its line, so the round trips of many spans overlap, and they
//! overlap with the encoder's own work on the span at hand.

use std::borrow::Borrow;

use faultline_model::{AttributeValue, Span};

/// Spans between the stages: the strings of span `k + AHEAD`, the lists of span
/// `k + 2 * AHEAD` and the struct of span `k + 3 * AHEAD` are asked for when span `k` is
/// read. Enough that a memory round trip (~100 ns) is over before the next stage reads what
/// it brought, few enough that nothing is evicted before use (24 spans are ~30 KiB).
pub(crate) const AHEAD: usize = 8;

/// Most bytes of one list (attributes, events, links) that are asked for: longer lists are
/// rare, and the hardware prefetcher follows a sequential read once it has started.
const MAX_LIST_BYTES: usize = 1024;

/// Cache line size of the machines we run on (x86-64 and most 64-bit ARM cores).
const LINE: usize = 64;

/// Asks for the cache line holding `p`; never waits, never faults.
#[inline(always)]
fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint to the cache: it reads nothing into the program, and
    // it does not fault on any address, valid or not. SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks for the lines of `len` bytes from `p`, at most [`MAX_LIST_BYTES`] of them.
#[inline(always)]
fn lines(p: *const u8, len: usize) {
    for offset in (0..len.min(MAX_LIST_BYTES)).step_by(LINE) {
        line(p.wrapping_add(offset));
    }
}

/// Asks for the lines of a slice's elements.
#[inline(always)]
fn slice<T>(s: &[T]) {
    lines(s.as_ptr().cast(), std::mem::size_of_val(s));
}

/// Asks for the line of `s[i]`, if there is one.
#[inline(always)]
pub(crate) fn element<T>(s: &[T], i: usize) {
    if let Some(x) = s.get(i) {
        line(std::ptr::from_ref(x).cast());
    }
}

/// Asks for the lines of `s[from..from + n]` (as much of it as there is).
#[inline(always)]
pub(crate) fn elements<T>(s: &[T], from: usize, n: usize) {
    let end = from.saturating_add(n).min(s.len());
    if let Some(part) = s.get(from.min(end)..end) {
        slice(part);
    }
}

/// Stage one: the span struct itself.
fn structs(s: &Span) {
    lines(std::ptr::from_ref(s).cast(), std::mem::size_of::<Span>());
}

/// Stage two: the lists and strings the struct points to.
fn lists(s: &Span) {
    slice(&s.attributes);
    slice(&s.events);
    slice(&s.links);
    // Inline names point into the struct, which is cached by now: asking again is free.
    line(s.name.as_ptr());
    line(s.status.message.as_ptr());
}

/// Stage three: what the lists point to (string values kept on the heap; an event's
/// attribute list).
fn values(s: &Span) {
    for kv in &s.attributes {
        if let AttributeValue::String(v) = &kv.value {
            // An inline value's address is inside the list, which is cached by now.
            line(v.as_ptr());
        }
    }
    for e in &s.events {
        slice(&e.attributes);
    }
}

/// Prefetches the spans of a slice ahead of a pass that reads them in slice order.
#[derive(Default)]
pub(crate) struct Prefetcher {
    /// Spans whose struct, lists and values have been asked for: `spans[..structs]` and so on.
    structs: usize,
    lists: usize,
    values: usize,
}

impl Prefetcher {
    /// Call before reading `spans[..upto]` (in order): asks for what the next spans need,
    /// each stage where it left off, so every span is asked for once per stage.
    #[inline]
    pub(crate) fn before<S: Borrow<Span>>(&mut self, spans: &[S], upto: usize) {
        Self::stage(spans, &mut self.values, upto.saturating_add(AHEAD), values);
        Self::stage(
            spans,
            &mut self.lists,
            upto.saturating_add(2 * AHEAD),
            lists,
        );
        Self::stage(
            spans,
            &mut self.structs,
            upto.saturating_add(3 * AHEAD),
            structs,
        );
    }

    #[inline(always)]
    fn stage<S: Borrow<Span>>(spans: &[S], done: &mut usize, to: usize, ask: fn(&Span)) {
        let to = to.min(spans.len());
        if let Some(new) = spans.get(*done..to) {
            // Empty when `to` is behind: a stage never goes back.
            new.iter().for_each(|s| ask(s.borrow()));
            *done = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::realistic_spans;
    use faultline_model::UnixNanos;

    #[test]
    fn stages_keep_their_distance_never_go_back_and_stop_at_the_end() {
        let spans = realistic_spans(3, 100, UnixNanos(1_000));
        let refs: Vec<&Span> = spans.iter().collect();
        let mut p = Prefetcher::default();
        let mut furthest = 0;
        for upto in [0, 1, 1, 5, 4, 40, 99, 100, 200] {
            p.before(&refs, upto);
            furthest = furthest.max(upto);
            let ahead = |n: usize| (furthest + n * AHEAD).min(refs.len());
            assert_eq!(
                (p.values, p.lists, p.structs),
                (ahead(1), ahead(2), ahead(3))
            );
        }
        let n = refs.len();
        assert_eq!((p.values, p.lists, p.structs), (n, n, n));
        // Past the end, and on an empty slice, nothing is asked for and nothing panics.
        p.before(&refs, usize::MAX);
        Prefetcher::default().before::<&Span>(&[], 10);
    }
}
