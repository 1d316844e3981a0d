import { describe, expect, it } from 'vitest';
import { formFrom, toParams, toQuery, toTraceQLParams } from '../../src/searchform';

const NOW = Date.UTC(2026, 0, 2, 12, 0, 0);

describe('search form', () => {
  it('round-trips through the URL, leaving defaults out', () => {
    const f = formFrom(new URLSearchParams('service=cart&minDuration=10ms&tags=error%3Dtrue'));
    expect(f).toMatchObject({ service: 'cart', minDuration: '10ms', tags: 'error=true', lookback: '1h', limit: '20', sort: 'recent' });
    const q = new URLSearchParams(toQuery(f));
    expect(formFrom(q)).toEqual(f);
    expect(q.has('sort')).toBe(false);
    expect(q.has('start')).toBe(false);
  });

  it('turns a lookback into an absolute window ending now', () => {
    const p = toParams(formFrom(new URLSearchParams('service=cart&lookback=2h&limit=50')), NOW);
    expect(p).toMatchObject({ service: 'cart', lookback: '2h', limit: 50, end: NOW * 1000, start: (NOW - 2 * 3600e3) * 1000 });
  });

  it('passes tags as an object and durations through', () => {
    const p = toParams(formFrom(new URLSearchParams('service=a&tags=http.route%3D%2Fx%20error%3Dtrue&maxDuration=2s')), NOW);
    expect(p).toMatchObject({ tags: { 'http.route': '/x', error: 'true' }, maxDuration: '2s' });
  });

  it('uses a custom range and rejects an inverted one', () => {
    const ok = toParams(formFrom(new URLSearchParams('service=a&lookback=custom&start=2026-01-01T10:00&end=2026-01-01T11:00')), NOW);
    expect(typeof ok).toBe('object');
    if (typeof ok === 'object') expect(ok.end - ok.start).toBe(3600e6);
    const bad = toParams(formFrom(new URLSearchParams('service=a&lookback=custom&start=2026-01-01T11:00&end=2026-01-01T10:00')), NOW);
    expect(bad).toMatch(/after its start/);
  });

  it('says what is wrong with invalid input', () => {
    expect(toParams(formFrom(new URLSearchParams('')), NOW)).toMatch(/Pick a service/);
    expect(toParams(formFrom(new URLSearchParams('service=a&minDuration=fast')), NOW)).toMatch(/Min duration "fast"/);
    expect(toParams(formFrom(new URLSearchParams('service=a&limit=0')), NOW)).toMatch(/Limit/);
    expect(toParams(formFrom(new URLSearchParams('service=a&tags=oops')), NOW)).toMatch(/key=value/);
  });
});

describe('TraceQL search state', () => {
  it('keeps the query in the URL and leaves the service form out', () => {
    const f = formFrom(new URLSearchParams('q=%7B%20status%20%3D%20error%20%7D&lookback=15m&service=cart'));
    expect(f.mode).toBe('traceql');
    expect(f.q).toBe('{ status = error }');
    const q = new URLSearchParams(toQuery(f));
    expect(q.get('q')).toBe('{ status = error }');
    expect(q.get('lookback')).toBe('15m');
    expect(q.has('service')).toBe(false);
    expect(formFrom(q)).toMatchObject({ mode: 'traceql', q: '{ status = error }', lookback: '15m' });
  });

  it('opens an empty TraceQL box from mode=traceql and returns to the form without q', () => {
    const empty = formFrom(new URLSearchParams('mode=traceql'));
    expect(empty).toMatchObject({ mode: 'traceql', q: '' });
    expect(new URLSearchParams(toQuery(empty)).get('mode')).toBe('traceql');
    expect(new URLSearchParams(toQuery(empty)).has('q')).toBe(false);
    const back = { ...formFrom(new URLSearchParams('q=%7B%7D')), mode: 'form' as const, service: 'cart' };
    const q = new URLSearchParams(toQuery(back));
    expect(q.has('q')).toBe(false);
    expect(q.get('service')).toBe('cart');
  });

  it('turns the query into API parameters in seconds, or says what is missing', () => {
    const p = toTraceQLParams(formFrom(new URLSearchParams('q=%7B%20duration%20%3E%201s%20%7D&lookback=1h&limit=50')), NOW);
    expect(p).toEqual({ q: '{ duration > 1s }', limit: 50, start: NOW / 1000 - 3600, end: NOW / 1000 });
    expect(toTraceQLParams(formFrom(new URLSearchParams('mode=traceql')), NOW)).toMatch(/Write a TraceQL query/);
    expect(toTraceQLParams(formFrom(new URLSearchParams('q=%7B%7D&limit=x')), NOW)).toMatch(/Limit/);
  });
});
