// The Jaeger-compatible query API, as served by `faultline serve` on --http (docs/api.md).

import type { JaegerTrace } from './model';
import { parseStreaming } from './streamjson';

/** Why a request failed, so views can say what to do about it. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'notfound' | 'badrequest' | 'server',
    readonly status = 0,
  ) {
    super(message);
  }
}

interface Envelope<T> {
  data: T;
  errors?: { code: number; msg: string }[] | null;
}

/** Fetches a JSON answer; any non-2xx becomes an ApiError with the server's own message. */
async function getRaw<B>(path: string, signal?: AbortSignal, parse: (res: Response) => Promise<unknown> = (r) => r.json()): Promise<B> {
  let res: Response;
  try {
    res = await fetch(path, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(
      `Cannot reach the Faultline server at ${location.origin}. Is \`faultline serve\` running? Start it (or \`faultline demo\`) and retry.`,
      'unreachable',
    );
  }
  if (res.ok) {
    // Response.json() parses the bytes as they are; going through text() first would build a
    // second copy of a large trace as a string.
    try {
      return (await parse(res)) as B;
    } catch (e) {
      if ((e as Error).name === 'AbortError') throw e;
      throw new ApiError(`The server's answer to ${path} is not valid JSON.`, 'server', res.status);
    }
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  const msg = errorMessage(body, text) || `${res.status} ${res.statusText}`;
  const kind = res.status === 404 ? 'notfound' : res.status >= 500 || res.status === 0 ? 'server' : 'badrequest';
  throw new ApiError(msg, res.status === 502 || res.status === 503 || res.status === 504 ? 'unreachable' : kind, res.status);
}

/** The message of an error answer: Jaeger's `errors[].msg`, `error`/`message` fields, or plain text. */
export function errorMessage(body: unknown, text: string): string {
  if (body && typeof body === 'object') {
    const b = body as { errors?: { msg?: string }[] | null; error?: unknown; message?: unknown };
    const jaeger = (b.errors ?? []).map((e) => e?.msg ?? '').filter(Boolean).join('; ');
    if (jaeger) return jaeger;
    if (typeof b.error === 'string') return b.error;
    if (typeof b.message === 'string') return b.message;
  }
  return body === null ? text.trim().slice(0, 2000) : '';
}

async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  return (await getRaw<Envelope<T>>(path, signal)).data;
}

export function services(signal?: AbortSignal): Promise<string[]> {
  return get<string[] | null>('/api/services', signal).then((d) => d ?? []);
}

export function operations(service: string, signal?: AbortSignal): Promise<string[]> {
  return get<string[] | null>(`/api/services/${encodeURIComponent(service)}/operations`, signal).then((d) => d ?? []);
}

export interface SearchParams {
  service: string;
  operation?: string;
  tags?: Record<string, string>;
  minDuration?: string;
  maxDuration?: string;
  /** µs */
  start: number;
  /** µs */
  end: number;
  lookback?: string;
  limit: number;
}

export function searchTraces(p: SearchParams, signal?: AbortSignal): Promise<JaegerTrace[]> {
  const q = new URLSearchParams();
  q.set('service', p.service);
  if (p.operation) q.set('operation', p.operation);
  if (p.tags && Object.keys(p.tags).length) q.set('tags', JSON.stringify(p.tags));
  if (p.minDuration) q.set('minDuration', p.minDuration);
  if (p.maxDuration) q.set('maxDuration', p.maxDuration);
  q.set('start', String(Math.floor(p.start)));
  q.set('end', String(Math.ceil(p.end)));
  if (p.lookback) q.set('lookback', p.lookback);
  q.set('limit', String(p.limit));
  return get<JaegerTrace[] | null>(`/api/traces?${q}`, signal).then((d) => d ?? []);
}

/** One trace, parsed while it downloads (`src/streamjson.ts`): large traces are tens of MB. */
export async function trace(id: string, signal?: AbortSignal): Promise<JaegerTrace> {
  const d = (await getRaw<Envelope<JaegerTrace[] | null>>(`/api/traces/${encodeURIComponent(id)}`, signal, parseStreaming)).data;
  if (!d || !d.length) throw new ApiError(`Trace ${id} was not found.`, 'notfound', 404);
  return d[0];
}

export interface Dependency {
  parent: string;
  child: string;
  callCount: number;
}

export function dependencies(endMs: number, lookbackMs: number, signal?: AbortSignal): Promise<Dependency[]> {
  return get<Dependency[] | null>(`/api/dependencies?endTs=${Math.floor(endMs)}&lookback=${Math.floor(lookbackMs)}`, signal).then(
    (d) => d ?? [],
  );
}

// ---- Analysis API (`docs/analysis.md`) ----

/** RED numbers for one series or edge side over a window. Latencies in ms, null without calls. */
export interface Red {
  calls: number;
  errors: number;
  ratePerSecond: number;
  errorRatio: number;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
}

/** One RED series: a (service, operation, span kind) over the window. */
export interface RedSeries extends Red {
  service: string;
  operation: string;
  spanKind: string;
  exemplarTraceIDs: string[];
}

export interface RedAnswer {
  series: RedSeries[];
  windowSeconds: number;
}

/** `GET /api/analysis/red?service=&window=`: RED per operation over the newest `window`. */
export async function red(service: string, window: string, signal?: AbortSignal): Promise<RedAnswer> {
  const q = new URLSearchParams({ window });
  if (service) q.set('service', service);
  const body = await getRaw<{ data: RedSeries[] | null; windowSeconds: number }>(`/api/analysis/red?${q}`, signal);
  return { series: body.data ?? [], windowSeconds: body.windowSeconds };
}

export interface GraphNode {
  id: string;
  virtual: boolean;
  incoming: Red;
  outgoing: Red;
}

export interface GraphEdge {
  client: string;
  server: string;
  kind: 'request' | 'messaging' | 'virtual';
  virtualNodeFrom: string | null;
  clientSide: Red;
  serverSide: Red | null;
  exemplarTraceIDs: string[];
}

export interface ServiceGraph {
  windowSeconds: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

/** `GET /api/analysis/service-graph?window=`: the live service graph with RED per node and edge. */
export function serviceGraph(window: string, signal?: AbortSignal): Promise<ServiceGraph> {
  return get<ServiceGraph>(`/api/analysis/service-graph?window=${encodeURIComponent(window)}`, signal);
}

// ---- Incidents and root causes ----

export interface Symptom {
  service: string;
  operation: string;
  /** For an edge of the service graph: the callee, with `service` the caller. */
  peer?: string;
  signal: 'latency' | 'errors' | 'throughput';
  baseline: number;
  observed: number;
  unit: 'us' | 'ratio' | 'per_s';
  /** µs */
  detectedAt: number;
}

export interface AttributeEvidence {
  key: string;
  value: string;
  slowOrFailedShare: number;
  normalShare: number;
}

export interface RootCause {
  rank: number;
  kind: 'service' | 'operation' | 'dependency' | 'attribute';
  service: string;
  operation: string | null;
  dependency: string | null;
  attribute: { key: string; value: string } | null;
  score: number;
  explanation: string;
  evidence: {
    traceIDs: string[];
    spans: { traceID: string; spanID: string; service: string; operation: string }[];
    edges: { client: string; server: string }[];
    attributes: AttributeEvidence[];
    facts: string[];
  };
}

export interface Incident {
  id: string;
  status: 'open' | 'resolved';
  /** µs */
  openedAt: number;
  resolvedAt: number | null;
  symptoms: Symptom[];
  rootCauses: RootCause[];
}

/** `GET /api/incidents?status=&limit=`. */
export function incidents(status: 'open' | 'resolved' | '', limit: number, signal?: AbortSignal): Promise<Incident[]> {
  const q = new URLSearchParams({ limit: String(limit) });
  if (status) q.set('status', status);
  return get<Incident[] | null>(`/api/incidents?${q}`, signal).then((d) => d ?? []);
}

/** `GET /api/incidents/{id}`. */
export function incident(id: string, signal?: AbortSignal): Promise<Incident> {
  return get<Incident>(`/api/incidents/${encodeURIComponent(id)}`, signal);
}

// ---- Logs ----

/** A log line as `/api/logs` returns it. */
export interface LogLine {
  timeUnixNano: string;
  severityText: string;
  severityNumber: number;
  body: unknown;
  serviceName: string;
  traceID: string;
  /** "" when the line belongs to no span. */
  spanID: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

/** `GET /api/logs?traceID=`: the trace's log lines in time order. */
export function logs(traceID: string, signal?: AbortSignal): Promise<LogLine[]> {
  return get<LogLine[] | null>(`/api/logs?traceID=${encodeURIComponent(traceID)}`, signal).then((d) => d ?? []);
}

// ---- TraceQL search (Tempo's `/api/search`) ----

export interface TempoSpan {
  spanID: string;
  name?: string;
  startTimeUnixNano: string;
  durationNanos: string | number;
  attributes?: { key: string; value: unknown }[];
}

export interface TempoTrace {
  traceID: string;
  rootServiceName?: string;
  rootTraceName?: string;
  startTimeUnixNano: string;
  durationMs?: number;
  spanSets?: { spans: TempoSpan[]; matched: number }[];
  spanSet?: { spans: TempoSpan[]; matched: number };
}

export interface TraceQLParams {
  q: string;
  limit: number;
  /** seconds */
  start: number;
  end: number;
}

/**
 * `GET /api/search?q=`. A query the server cannot parse comes back as 400 with a message that
 * says where; that message becomes the ApiError's text, verbatim.
 */
export async function searchTraceQL(p: TraceQLParams, signal?: AbortSignal): Promise<TempoTrace[]> {
  const q = new URLSearchParams({ q: p.q, limit: String(p.limit), start: String(Math.floor(p.start)), end: String(Math.ceil(p.end)) });
  const body = await getRaw<{ traces?: TempoTrace[] | null }>(`/api/search?${q}`, signal);
  return body.traces ?? [];
}

/** What `/api/rca` finds for a time range against the range just before it. */
export interface WindowAnalysis {
  symptoms: Symptom[];
  rootCauses: RootCause[];
  /** Traces read: from the range, and from the baseline before it. */
  tracesSampled?: [number, number];
}

/** `GET /api/rca?start=&end=` (µs): symptoms and ranked causes for any time range. */
export function rca(startUs: number, endUs: number, signal?: AbortSignal): Promise<WindowAnalysis> {
  return get<WindowAnalysis>(`/api/rca?start=${Math.floor(startUs)}&end=${Math.ceil(endUs)}`, signal);
}
