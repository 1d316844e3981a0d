// The search form's state, its URL encoding and its validation (pure, unit tested).

import type { SearchParams, TraceQLParams } from './api';
import { parseDuration, parseTags } from './format';

export const LOOKBACKS: [string, string, number][] = [
  ['5m', 'Last 5 minutes', 5 * 60e3],
  ['15m', 'Last 15 minutes', 15 * 60e3],
  ['1h', 'Last hour', 3600e3],
  ['2h', 'Last 2 hours', 7200e3],
  ['6h', 'Last 6 hours', 6 * 3600e3],
  ['12h', 'Last 12 hours', 12 * 3600e3],
  ['24h', 'Last 24 hours', 24 * 3600e3],
  ['48h', 'Last 2 days', 48 * 3600e3],
  ['168h', 'Last 7 days', 168 * 3600e3],
  ['custom', 'Custom range', 0],
];

/** The search form's state; exactly what the URL holds. */
export interface Form {
  service: string;
  operation: string;
  tags: string;
  minDuration: string;
  maxDuration: string;
  lookback: string;
  /** datetime-local strings for a custom range */
  start: string;
  end: string;
  limit: string;
  sort: string;
  /** `form` (service, operation, tags) or `traceql` (the query in `q`). */
  mode: 'form' | 'traceql';
  /** The TraceQL query. */
  q: string;
}

/** The fields only the service form uses; the TraceQL mode leaves them out of the URL. */
const FORM_ONLY = new Set(['service', 'operation', 'tags', 'minDuration', 'maxDuration']);

export function formFrom(q: URLSearchParams): Form {
  return {
    service: q.get('service') ?? '',
    operation: q.get('operation') ?? '',
    tags: q.get('tags') ?? '',
    minDuration: q.get('minDuration') ?? '',
    maxDuration: q.get('maxDuration') ?? '',
    lookback: q.get('lookback') ?? '1h',
    start: q.get('start') ?? '',
    end: q.get('end') ?? '',
    limit: q.get('limit') ?? '20',
    sort: q.get('sort') ?? 'recent',
    // A URL with a query is a TraceQL search; `mode=traceql` alone opens the empty box.
    mode: q.has('q') || q.get('mode') === 'traceql' ? 'traceql' : 'form',
    q: q.get('q') ?? '',
  };
}

export function toQuery(f: Form): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    if (k === 'mode' || k === 'q') continue;
    if (f.mode === 'traceql' && FORM_ONLY.has(k)) continue;
    if (v === '' || (k === 'sort' && v === 'recent')) continue;
    if ((k === 'start' || k === 'end') && f.lookback !== 'custom') continue;
    q.set(k, v);
  }
  if (f.mode === 'traceql') {
    if (f.q.trim()) q.set('q', f.q);
    else q.set('mode', 'traceql');
  }
  return q.toString();
}

/** The time range of the form in µs, or what is wrong with it. */
function timeRange(f: Form, nowMs: number): { start: number; end: number; lookback?: string } | string {
  if (f.lookback === 'custom') {
    const start = Date.parse(f.start) * 1000;
    const end = f.end ? Date.parse(f.end) * 1000 : nowMs * 1000;
    if (!isFinite(start) || !isFinite(end)) return 'Set the start (and optionally the end) of the custom range.';
    if (end <= start) return 'The end of the range must be after its start.';
    return { start, end };
  }
  const lb = LOOKBACKS.find((l) => l[0] === f.lookback) ?? LOOKBACKS[2];
  const end = nowMs * 1000;
  return { start: end - lb[2] * 1000, end, lookback: lb[0] };
}

function parseLimit(f: Form): number | string {
  const limit = Number(f.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1500) return 'Limit must be a whole number from 1 to 1500.';
  return limit;
}

/** Validates a TraceQL search and turns it into API parameters (times in seconds), or says what is wrong. */
export function toTraceQLParams(f: Form, nowMs: number): TraceQLParams | string {
  const q = f.q.trim();
  if (!q) return 'Write a TraceQL query, e.g. { resource.service.name = "cart" && status = error }.';
  const limit = parseLimit(f);
  if (typeof limit === 'string') return limit;
  const r = timeRange(f, nowMs);
  if (typeof r === 'string') return r;
  return { q, limit, start: Math.floor(r.start / 1e6), end: Math.ceil(r.end / 1e6) };
}

/** Validates the form and turns it into API parameters, or says what is wrong. */
export function toParams(f: Form, nowMs: number): SearchParams | string {
  if (!f.service) return 'Pick a service.';
  for (const [name, v] of [
    ['Min duration', f.minDuration],
    ['Max duration', f.maxDuration],
  ] as const) {
    if (v && parseDuration(v) === null) return `${name} "${v}" is not a duration; write e.g. 250ms, 1.5s or 2m.`;
  }
  const tags = parseTags(f.tags);
  if (typeof tags === 'string') return tags;
  const limit = parseLimit(f);
  if (typeof limit === 'string') return limit;
  const r = timeRange(f, nowMs);
  if (typeof r === 'string') return r;
  const { start, end, lookback } = r;
  return {
    service: f.service,
    operation: f.operation || undefined,
    tags,
    minDuration: f.minDuration || undefined,
    maxDuration: f.maxDuration || undefined,
    start,
    end,
    lookback,
    limit,
  };
}
