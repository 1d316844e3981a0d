// Log lines correlated with a trace: attached to their spans, graded by severity, filtered.
// Pure so it can be unit tested; the trace view renders what this returns.

import type { LogLine } from './api';
import type { Trace } from './model';

/** OpenTelemetry severity ranges (SeverityNumber 1-24), coarsest name of each. */
export const SEVERITIES = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** One line ready to show. */
export interface LogRow {
  /** Position in the time-ordered list. */
  index: number;
  /** µs since the epoch. */
  time: number;
  severity: Severity | '';
  /** The line's own severity text when it has one (e.g. "warning"), else the graded name. */
  severityLabel: string;
  body: string;
  service: string;
  spanID: string;
  /** The span in the trace model, or -1 when the line names no span or one not in the trace. */
  span: number;
  line: LogLine;
}

/** The trace's lines with the per-span index the span detail reads. */
export interface TraceLogs {
  rows: LogRow[];
  /** Row indices per span index. */
  bySpan: Map<number, number[]>;
  /** Lines that name a span this trace does not hold. */
  orphans: number;
}

/** Grades a line: by SeverityNumber when set, else by its text (so "warning" and "ERR" count). */
export function severityOf(number: number | null | undefined, text: string | null | undefined): Severity | '' {
  const n = Number(number);
  if (Number.isFinite(n) && n >= 1 && n <= 24) return SEVERITIES[Math.floor((n - 1) / 4)];
  const t = (text ?? '').trim().toUpperCase();
  if (!t) return '';
  if (t.startsWith('TRACE')) return 'TRACE';
  if (t.startsWith('DEBUG')) return 'DEBUG';
  if (t.startsWith('INFO') || t === 'NOTICE') return 'INFO';
  if (t.startsWith('WARN')) return 'WARN';
  if (t.startsWith('ERR') || t === 'CRITICAL' || t === 'ALERT') return 'ERROR';
  if (t.startsWith('FATAL') || t === 'EMERGENCY' || t === 'PANIC') return 'FATAL';
  return '';
}

/** Nanoseconds as a decimal string → µs, exact to the µs even past 2^53 ns. */
export function nanosToMicros(ns: string | number): number {
  if (typeof ns === 'number') return ns / 1000;
  const s = String(ns).trim();
  if (!/^\d+$/.test(s)) return NaN;
  if (s.length <= 3) return Number(s) / 1000;
  return Number(s.slice(0, -3)) + Number(s.slice(-3)) / 1000;
}

/** A log body (string, number, map, list in OTLP) as one line of text. */
export function bodyText(body: unknown): string {
  if (typeof body === 'string') return body;
  if (body === null || body === undefined) return '';
  return JSON.stringify(body) ?? String(body);
}

/** Attaches each line to its span (by span ID) in the given trace; lines keep their order. */
export function attachLogs(trace: Trace, lines: LogLine[]): TraceLogs {
  const bySpanId = new Map<string, number>();
  for (const s of trace.spans) if (!bySpanId.has(s.spanID)) bySpanId.set(s.spanID, s.index);
  const bySpan = new Map<number, number[]>();
  let orphans = 0;
  const rows = lines.map((line, index) => {
    const spanID = String(line.spanID ?? '');
    const span = spanID ? (bySpanId.get(spanID) ?? -1) : -1;
    if (spanID && span < 0) orphans++;
    if (span >= 0) {
      const l = bySpan.get(span);
      if (l) l.push(index);
      else bySpan.set(span, [index]);
    }
    const severity = severityOf(line.severityNumber, line.severityText);
    return {
      index,
      time: nanosToMicros(line.timeUnixNano),
      severity,
      severityLabel: line.severityText || severity,
      body: bodyText(line.body),
      service: String(line.serviceName ?? ''),
      spanID,
      span,
      line,
    } satisfies LogRow;
  });
  return { rows, bySpan, orphans };
}

/** What the logs panel shows: at least `minSeverity` (when set) and containing `text`. */
export interface LogFilter {
  minSeverity: Severity | '';
  text: string;
}

/** The rows the filter keeps. Lines without a severity are kept only when no minimum is set. */
export function filterLogs(rows: LogRow[], f: LogFilter): LogRow[] {
  const min = f.minSeverity ? SEVERITIES.indexOf(f.minSeverity) : -1;
  const needle = f.text.trim().toLowerCase();
  return rows.filter((r) => {
    if (min >= 0 && (r.severity === '' || SEVERITIES.indexOf(r.severity) < min)) return false;
    if (!needle) return true;
    if (r.body.toLowerCase().includes(needle) || r.service.toLowerCase().includes(needle) || r.severityLabel.toLowerCase().includes(needle))
      return true;
    for (const [k, v] of Object.entries(r.line.attributes ?? {})) {
      if (k.toLowerCase().includes(needle) || bodyText(v).toLowerCase().includes(needle)) return true;
    }
    return false;
  });
}

/** Counts per severity, for the filter's labels. */
export function severityCounts(rows: LogRow[]): Map<Severity | '', number> {
  const m = new Map<Severity | '', number>();
  for (const r of rows) m.set(r.severity, (m.get(r.severity) ?? 0) + 1);
  return m;
}
