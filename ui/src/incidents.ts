// How incidents and their ranked causes are shown: labels, symptom wording, score bars, the
// attribute comparison, and which services the service map marks. Pure and unit tested.

import type { Incident, RootCause, Symptom } from './api';
import { fmtDuration } from './format';

/** A symptom's value in its unit: µs as a duration, ratios as percentages, rates per second. */
export function fmtSymptomValue(v: number, unit: Symptom['unit']): string {
  if (!Number.isFinite(v)) return '-';
  if (unit === 'us') return fmtDuration(v);
  if (unit === 'ratio') return `${fmtPercent(v)}`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)}/s`;
}

/** A ratio 0..1 as a percentage with sensible precision. */
export function fmtPercent(r: number): string {
  const p = r * 100;
  if (p === 0) return '0%';
  if (Math.abs(p) < 0.1) return '<0.1%';
  return `${Math.abs(p) < 10 ? p.toFixed(1) : p.toFixed(0)}%`;
}

const SIGNAL: Record<Symptom['signal'], string> = { latency: 'latency', errors: 'error ratio', throughput: 'throughput' };

/** "checkout: POST /pay error ratio 0.2% → 35% (×175)" in parts the view lays out. */
export function symptomText(s: Symptom): { where: string; what: string; change: string; factor: string } {
  const factor = s.baseline > 0 ? s.observed / s.baseline : Infinity;
  return {
    where: s.peer ? `${s.service} → ${s.peer}` : s.operation ? `${s.service}: ${s.operation}` : s.service,
    what: SIGNAL[s.signal] ?? s.signal,
    change: `${fmtSymptomValue(s.baseline, s.unit)} → ${fmtSymptomValue(s.observed, s.unit)}`,
    factor: !Number.isFinite(factor) ? 'new' : factor >= 1 ? `×${factor >= 10 ? factor.toFixed(0) : factor.toFixed(1)}` : `÷${(1 / Math.max(factor, 1e-9)).toFixed(1)}`,
  };
}

/** What a cause points at, in words. */
export function causeLabel(c: RootCause): string {
  switch (c.kind) {
    case 'service':
      return c.service;
    case 'operation':
      return c.operation ? `${c.service}: ${c.operation}` : c.service;
    case 'dependency':
      return `${c.service} → ${c.dependency ?? '?'}`;
    case 'attribute':
      return c.attribute ? `${c.attribute.key}=${c.attribute.value}${c.service ? ` (in ${c.service})` : ''}` : c.service;
    default:
      return c.service;
  }
}

/** One ranked cause as the detail page lists it. */
export interface CauseRow {
  cause: RootCause;
  rank: number;
  label: string;
  /** Score relative to the top cause, 0..1, for the bar. */
  relative: number;
}

/** Causes in rank order (ties by score), each with its bar length relative to the best score. */
export function rankedCauses(causes: RootCause[]): CauseRow[] {
  const sorted = [...causes].sort((a, b) => a.rank - b.rank || b.score - a.score);
  const top = Math.max(0, ...sorted.map((c) => c.score));
  return sorted.map((c, i) => ({
    cause: c,
    rank: Number.isFinite(c.rank) && c.rank > 0 ? c.rank : i + 1,
    label: causeLabel(c),
    relative: top > 0 ? Math.max(0, c.score) / top : 0,
  }));
}

/** The attribute comparison: share among slow/failed vs normal traces, biggest difference first. */
export function attributeBars(c: RootCause): { label: string; bad: number; normal: number; lift: number }[] {
  return (c.evidence?.attributes ?? [])
    .map((a) => ({
      label: `${a.key}=${a.value}`,
      bad: clamp01(a.slowOrFailedShare),
      normal: clamp01(a.normalShare),
      lift: clamp01(a.slowOrFailedShare) - clamp01(a.normalShare),
    }))
    .sort((a, b) => b.lift - a.lift || a.label.localeCompare(b.label));
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.max(0, Math.min(1, x)) : 0;
}

/** A one-line title: the top cause, else the first symptom. */
export function incidentTitle(i: Incident): string {
  const top = rankedCauses(i.rootCauses ?? [])[0];
  if (top) return top.label;
  const s = (i.symptoms ?? [])[0];
  if (s) {
    const t = symptomText(s);
    return `${t.where} ${t.what}`;
  }
  return `Incident ${i.id}`;
}

/** "open for 3m 5s" / "lasted 41s", from µs timestamps. */
export function incidentAge(i: Incident, nowMs: number): string {
  const end = i.resolvedAt ?? nowMs * 1000;
  const d = Math.max(0, end - i.openedAt);
  return i.status === 'open' && i.resolvedAt === null ? `open for ${fmtDuration(d)}` : `lasted ${fmtDuration(d)}`;
}

/** Newest first; open incidents before resolved ones. */
export function sortIncidents(list: Incident[]): Incident[] {
  return [...list].sort((a, b) => (a.status === b.status ? b.openedAt - a.openedAt : a.status === 'open' ? -1 : 1));
}

/**
 * Services the service map marks: for each open incident, the services its rank-1 cause names
 * (the service and, for a dependency, the callee), mapped to the incident's ID.
 */
export function suspectServices(list: Incident[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const i of sortIncidents(list)) {
    if (i.status !== 'open') continue;
    const top = rankedCauses(i.rootCauses ?? [])[0]?.cause;
    if (!top) continue;
    for (const s of [top.service, top.kind === 'dependency' ? top.dependency : null]) if (s && !m.has(s)) m.set(s, i.id);
  }
  return m;
}

/** Services with a symptom in an open incident. */
export function symptomServices(list: Incident[]): Set<string> {
  const out = new Set<string>();
  for (const i of list)
    if (i.status === 'open')
      for (const s of i.symptoms ?? []) {
        out.add(s.service);
        // An edge's symptom is measured at the caller but describes the callee too.
        if (s.peer) out.add(s.peer);
      }
  return out;
}
