// RED over time from the analysis API, and the scales and colours its charts and the service
// map use. The API answers one window at a time (the newest N slots); nested windows of 1..N
// buckets are requested together and differenced, which gives exact calls, errors and mean
// latency per bucket. Quantiles cannot be differenced, so p50/p90/p99 are those of the whole
// window. Pure and unit tested.

import type { Red, RedAnswer, RedSeries } from './api';

/** The windows the service page offers: its length, and the bucket width of its charts. */
export const RED_WINDOWS: { id: string; label: string; seconds: number; bucket: number }[] = [
  { id: '1m', label: 'Last minute', seconds: 60, bucket: 10 },
  { id: '5m', label: 'Last 5 minutes', seconds: 300, bucket: 30 },
  { id: '10m', label: 'Last 10 minutes', seconds: 600, bucket: 60 },
];

/** The nested windows to request for a chart window: bucket, 2·bucket, ... up to the window. */
export function nestedWindows(seconds: number, bucket: number): string[] {
  const out: string[] = [];
  for (let s = bucket; s <= seconds; s += bucket) out.push(`${s}s`);
  return out;
}

/** One bucket of one operation. Times are seconds before the answers were taken. */
export interface RedPoint {
  fromAgo: number;
  toAgo: number;
  calls: number;
  errors: number;
  rate: number;
  /** null without calls */
  errorRatio: number | null;
  meanMs: number | null;
}

/** One operation's chart data. */
export interface OperationRed {
  key: string;
  service: string;
  operation: string;
  spanKind: string;
  /** The whole window (exact quantiles). */
  total: RedSeries;
  /** Oldest bucket first. */
  points: RedPoint[];
}

export function seriesKey(s: { service: string; operation: string; spanKind: string }): string {
  return JSON.stringify([s.service, s.operation, s.spanKind]);
}

/**
 * Per-bucket RED from answers for nested windows (any order). Counts that go down between two
 * windows (a slot boundary passed between the requests) are clamped to zero.
 */
export function differenceWindows(answers: RedAnswer[]): OperationRed[] {
  const sorted = [...answers].sort((a, b) => a.windowSeconds - b.windowSeconds);
  if (!sorted.length) return [];
  const largest = sorted[sorted.length - 1];
  const maps = sorted.map((a) => new Map(a.series.map((s) => [seriesKey(s), s])));
  const out: OperationRed[] = [];
  for (const total of largest.series) {
    const key = seriesKey(total);
    const points: RedPoint[] = [];
    let prevCalls = 0;
    let prevErrors = 0;
    let prevSum = 0;
    let prevSecs = 0;
    sorted.forEach((a, k) => {
      const s = maps[k].get(key);
      const calls = s?.calls ?? 0;
      const errors = s?.errors ?? 0;
      const sum = s && s.meanMs !== null ? s.meanMs * s.calls : 0;
      const dc = Math.max(0, calls - prevCalls);
      const de = Math.min(dc, Math.max(0, errors - prevErrors));
      const ds = Math.max(0, sum - prevSum);
      const dt = a.windowSeconds - prevSecs;
      if (dt > 0)
        points.push({
          fromAgo: a.windowSeconds,
          toAgo: prevSecs,
          calls: dc,
          errors: de,
          rate: dc / dt,
          errorRatio: dc > 0 ? de / dc : null,
          meanMs: dc > 0 ? ds / dc : null,
        });
      prevCalls = Math.max(prevCalls, calls);
      prevErrors = Math.max(prevErrors, errors);
      prevSum = Math.max(prevSum, sum);
      prevSecs = a.windowSeconds;
    });
    points.reverse();
    out.push({ key, service: total.service, operation: total.operation, spanKind: total.spanKind, total, points });
  }
  // Busiest first: the operations that matter most lead the small multiples.
  return out.sort((a, b) => b.total.calls - a.total.calls || a.operation.localeCompare(b.operation));
}

/** A "nice" axis top and tick step for values up to `max` (1, 2, 2.5 or 5 × 10^n steps). */
export function niceScale(max: number, ticks = 3): { top: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { top: 1, step: 1 / ticks };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step - 1e-9) * step, step };
}

/** A linear map from [d0, d1] to [r0, r1] (a zero-width domain maps to the middle). */
export function linear(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

/** How a node or edge is doing: by error ratio, and by latency against its baseline. */
export type Health = 'idle' | 'ok' | 'warn' | 'bad';

export const ERROR_WARN = 0.01;
export const ERROR_BAD = 0.05;
export const LATENCY_WARN = 1.5;
export const LATENCY_BAD = 3;

/**
 * Health of `now` against `baseline` (a longer window of the same node or edge): errors above
 * 1% warn and above 5% are bad; p90 latency 1.5× the baseline warns, 3× is bad.
 */
export function healthOf(now: Red | null | undefined, baseline?: Red | null): { level: Health; reasons: string[] } {
  if (!now || now.calls === 0) return { level: 'idle', reasons: ['no calls in the window'] };
  const reasons: string[] = [];
  let level: Health = 'ok';
  const raise = (l: Health) => {
    if (rankOf(l) > rankOf(level)) level = l;
  };
  if (now.errorRatio >= ERROR_BAD) raise('bad');
  else if (now.errorRatio >= ERROR_WARN) raise('warn');
  if (now.errorRatio >= ERROR_WARN) reasons.push(`${(now.errorRatio * 100).toFixed(1)}% errors`);
  const ratio = latencyRatio(now, baseline);
  if (ratio !== null) {
    if (ratio >= LATENCY_BAD) raise('bad');
    else if (ratio >= LATENCY_WARN) raise('warn');
    if (ratio >= LATENCY_WARN) reasons.push(`p90 ${ratio.toFixed(1)}× its baseline`);
  }
  return { level, reasons };
}

/** p90 now / p90 of the baseline, or null when either is unknown. */
export function latencyRatio(now: Red, baseline?: Red | null): number | null {
  if (!baseline || now.p90Ms === null || baseline.p90Ms === null || !(baseline.p90Ms > 0)) return null;
  return now.p90Ms / baseline.p90Ms;
}

function rankOf(h: Health): number {
  return h === 'idle' ? 0 : h === 'ok' ? 1 : h === 'warn' ? 2 : 3;
}
