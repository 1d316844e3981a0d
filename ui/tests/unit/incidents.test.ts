import { describe, expect, it } from 'vitest';
import type { Incident, RootCause } from '../../src/api';
import { attributeBars, causeLabel, fmtSymptomValue, incidentAge, incidentTitle, rankedCauses, sortIncidents, suspectServices, symptomServices, symptomText } from '../../src/incidents';

const ev = { traceIDs: [], spans: [], edges: [], attributes: [], facts: [] };
const cause = (rank: number, score: number, extra: Partial<RootCause> = {}): RootCause => ({
  rank,
  kind: 'service',
  service: `svc${rank}`,
  operation: '',
  dependency: null,
  attribute: null,
  score,
  explanation: '',
  evidence: ev,
  ...extra,
});
const incident = (id: string, status: 'open' | 'resolved', openedAt: number, causes: RootCause[] = []): Incident => ({
  id,
  status,
  openedAt,
  resolvedAt: status === 'resolved' ? openedAt + 60e6 : null,
  symptoms: [{ service: 'frontend', operation: 'GET /', signal: 'errors', baseline: 0.01, observed: 0.4, unit: 'ratio', detectedAt: openedAt }],
  rootCauses: causes,
});

describe('incident display model', () => {
  it('lists causes by rank with bars relative to the best score', () => {
    const rows = rankedCauses([cause(2, 0.4), cause(1, 0.8), cause(3, 0)]);
    expect(rows.map((r) => r.rank)).toEqual([1, 2, 3]);
    expect(rows.map((r) => r.relative)).toEqual([1, 0.5, 0]);
  });

  it('names each kind of cause', () => {
    expect(causeLabel(cause(1, 1, { kind: 'operation', service: 'cart', operation: 'load' }))).toBe('cart: load');
    expect(causeLabel(cause(1, 1, { kind: 'dependency', service: 'cart', dependency: 'postgresql' }))).toBe('cart → postgresql');
    expect(causeLabel(cause(1, 1, { kind: 'attribute', service: 'cart', attribute: { key: 'k8s.node', value: 'n3' } }))).toBe('k8s.node=n3 (in cart)');
    expect(causeLabel(cause(1, 1, { kind: 'service', service: 'db' }))).toBe('db');
  });

  it('words symptoms in their units with the change factor', () => {
    expect(symptomText({ service: 'a', operation: 'op', signal: 'latency', baseline: 20_000, observed: 300_000, unit: 'us', detectedAt: 0 })).toEqual({
      where: 'a: op',
      what: 'latency',
      change: '20.0ms → 300ms',
      factor: '×15',
    });
    expect(symptomText({ service: 'a', operation: '', signal: 'errors', baseline: 0, observed: 0.2, unit: 'ratio', detectedAt: 0 }).factor).toBe('new');
    expect(symptomText({ service: 'a', operation: '', signal: 'throughput', baseline: 100, observed: 25, unit: 'per_s', detectedAt: 0 }).factor).toBe('÷4.0');
    expect(symptomText({ service: 'order', operation: '', peer: 'inventory', signal: 'latency', baseline: 3_000, observed: 150_000, unit: 'us', detectedAt: 0 }).where).toBe(
      'order → inventory',
    );
    expect(fmtSymptomValue(0.355, 'ratio')).toBe('36%');
    expect(fmtSymptomValue(0.0004, 'ratio')).toBe('<0.1%');
    expect(fmtSymptomValue(12.5, 'per_s')).toBe('12.5/s');
  });

  it('orders attribute comparisons by how much more common they are in bad traces', () => {
    const c = cause(1, 1, {
      evidence: {
        ...ev,
        attributes: [
          { key: 'region', value: 'eu', slowOrFailedShare: 0.5, normalShare: 0.5 },
          { key: 'version', value: '2.0', slowOrFailedShare: 0.95, normalShare: 0.1 },
          { key: 'bad', value: 'x', slowOrFailedShare: 7, normalShare: -1 },
        ],
      },
    });
    const bars = attributeBars(c);
    expect(bars.map((b) => b.label)).toEqual(['bad=x', 'version=2.0', 'region=eu']);
    expect(bars[0]).toMatchObject({ bad: 1, normal: 0 });
  });

  it('titles, ages and orders incidents', () => {
    const a = incident('a', 'resolved', 1_000e6, [cause(1, 1)]);
    const b = incident('b', 'open', 500e6);
    const c = incident('c', 'open', 900e6);
    expect(sortIncidents([a, b, c]).map((i) => i.id)).toEqual(['c', 'b', 'a']);
    expect(incidentTitle(a)).toBe('svc1');
    expect(incidentTitle(b)).toBe('frontend: GET / error ratio');
    expect(incidentAge(a, 0)).toBe('lasted 1m 0s');
    expect(incidentAge(b, 530e3)).toBe('open for 30.0s');
  });

  it('marks the services named by the top cause of open incidents only', () => {
    const open = incident('o', 'open', 2, [cause(2, 0.3, { service: 'cart' }), cause(1, 0.9, { kind: 'dependency', service: 'payments', dependency: 'bank' })]);
    const resolved = incident('r', 'resolved', 1, [cause(1, 1, { service: 'auth' })]);
    const m = suspectServices([resolved, open]);
    expect([...m.keys()].sort()).toEqual(['bank', 'payments']);
    expect(m.get('payments')).toBe('o');
    expect([...symptomServices([open, resolved])]).toEqual(['frontend']);
    open.symptoms.push({ service: 'cart', operation: '', peer: 'redis', signal: 'latency', baseline: 1_000, observed: 90_000, unit: 'us', detectedAt: 3 });
    expect([...symptomServices([open, resolved])].sort()).toEqual(['cart', 'frontend', 'redis']);
  });
});
