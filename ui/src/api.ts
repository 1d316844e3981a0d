// The Jaeger-compatible query API, as served by `faultline serve` on --http (docs/api.md).

import type { JaegerTrace } from './model';

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

async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
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
  let body: Envelope<T> | null = null;
  try {
    body = (await res.json()) as Envelope<T>;
  } catch {
    body = null;
  }
  if (!res.ok || !body) {
    const msg = body?.errors?.map((e) => e.msg).join('; ') || `${res.status} ${res.statusText}`;
    const kind = res.status === 404 ? 'notfound' : res.status === 400 ? 'badrequest' : res.status >= 500 || res.status === 0 ? 'server' : 'badrequest';
    throw new ApiError(msg, res.status === 502 || res.status === 503 || res.status === 504 ? 'unreachable' : kind, res.status);
  }
  return body.data;
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

export async function trace(id: string, signal?: AbortSignal): Promise<JaegerTrace> {
  const d = await get<JaegerTrace[] | null>(`/api/traces/${encodeURIComponent(id)}`, signal);
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
