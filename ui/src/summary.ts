// One-line summaries of search results, computed without building the whole tree.

import type { TempoTrace } from './api';
import { nanosToMicros } from './logs';
import { isError, type JaegerTrace } from './model';

export interface TraceSummary {
  traceID: string;
  rootService: string;
  rootOperation: string;
  /** null when the search answer does not say (TraceQL results). */
  spanCount: number | null;
  errorCount: number | null;
  /** Spans the TraceQL query matched (TraceQL results only). */
  matched?: number;
  /** µs */
  start: number;
  /** µs */
  duration: number;
  /** Span count per service, sorted by name. */
  services: [string, number][];
}

export function summarize(t: JaegerTrace): TraceSummary {
  const spans = t.spans ?? [];
  const ids = new Set(spans.map((s) => s.spanID));
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  let root: (typeof spans)[number] | undefined;
  const perService = new Map<string, number>();
  for (const s of spans) {
    start = Math.min(start, s.startTime);
    end = Math.max(end, s.startTime + s.duration);
    if (isError(s.tags)) errors++;
    const svc = t.processes?.[s.processID]?.serviceName ?? s.processID;
    perService.set(svc, (perService.get(svc) ?? 0) + 1);
    const isRoot = !(s.references ?? []).some((r) => ids.has(r.spanID));
    if (isRoot && (!root || s.startTime < root.startTime)) root = s;
  }
  root ??= spans[0];
  return {
    traceID: t.traceID,
    rootService: root ? (t.processes?.[root.processID]?.serviceName ?? root.processID) : '',
    rootOperation: root?.operationName ?? '',
    spanCount: spans.length,
    errorCount: errors,
    start: spans.length ? start : 0,
    duration: spans.length ? end - start : 0,
    services: [...perService.entries()].sort((a, b) => a[0].localeCompare(b[0])),
  };
}

/** A TraceQL (Tempo `/api/search`) result as a summary: root, time, duration, matched spans. */
export function summarizeTempo(t: TempoTrace): TraceSummary {
  const sets = t.spanSets ?? (t.spanSet ? [t.spanSet] : []);
  let matched = 0;
  const matchedErrors = new Set<string>();
  for (const set of sets) {
    matched += Number(set.matched) || set.spans?.length || 0;
    for (const sp of set.spans ?? []) {
      const status = sp.attributes?.find((a) => a.key === 'status')?.value as { stringValue?: string } | string | undefined;
      const v = typeof status === 'string' ? status : status?.stringValue;
      if (v === 'error') matchedErrors.add(sp.spanID);
    }
  }
  const start = nanosToMicros(t.startTimeUnixNano);
  return {
    traceID: t.traceID,
    rootService: t.rootServiceName ?? '',
    rootOperation: t.rootTraceName ?? '',
    spanCount: null,
    errorCount: matchedErrors.size ? matchedErrors.size : null,
    matched,
    start: Number.isFinite(start) ? start : 0,
    duration: (Number(t.durationMs) || 0) * 1000,
    services: [],
  };
}
