import { describe, expect, it } from 'vitest';
import type { LogLine } from '../../src/api';
import { attachLogs, bodyText, filterLogs, nanosToMicros, severityCounts, severityOf } from '../../src/logs';
import { buildTrace } from '../../src/model';
import { mk } from './helpers';

const line = (spanID: string, severityNumber: number, body: unknown, extra: Partial<LogLine> = {}): LogLine => ({
  timeUnixNano: '1700000000000123456',
  severityText: '',
  severityNumber,
  body,
  serviceName: 'cart',
  traceID: 't1',
  spanID,
  attributes: {},
  resource: {},
  ...extra,
});

describe('logs', () => {
  const trace = buildTrace(
    mk([
      ['a', '', 'frontend', 'GET /', 0, 100],
      ['b', 'a', 'cart', 'load', 10, 50],
    ]),
  );

  it('attaches lines to their spans and keeps the rest at trace level', () => {
    const logs = attachLogs(trace, [line('b', 9, 'loading'), line('', 13, 'no span'), line('zz', 17, 'elsewhere'), line('b', 17, 'boom')]);
    const b = trace.spans.find((s) => s.spanID === 'b')!.index;
    expect(logs.bySpan.get(b)).toEqual([0, 3]);
    expect(logs.bySpan.size).toBe(1);
    expect(logs.rows.map((r) => r.span)).toEqual([b, -1, -1, b]);
    expect(logs.orphans).toBe(1);
    expect(logs.rows[3]).toMatchObject({ severity: 'ERROR', body: 'boom', service: 'cart' });
  });

  it('grades severity by number, else by text', () => {
    expect(severityOf(1, '')).toBe('TRACE');
    expect(severityOf(9, 'whatever')).toBe('INFO');
    expect(severityOf(12, '')).toBe('INFO');
    expect(severityOf(13, '')).toBe('WARN');
    expect(severityOf(24, '')).toBe('FATAL');
    expect(severityOf(0, 'warning')).toBe('WARN');
    expect(severityOf(0, 'Err')).toBe('ERROR');
    expect(severityOf(0, '')).toBe('');
    expect(severityOf(99, 'nonsense')).toBe('');
  });

  it('reads nanosecond timestamps exactly to the microsecond', () => {
    expect(nanosToMicros('1700000000000123456')).toBeCloseTo(1700000000000123.456, 2);
    expect(nanosToMicros('999')).toBeCloseTo(0.999);
    expect(nanosToMicros('nope')).toBeNaN();
  });

  it('renders structured bodies as JSON text', () => {
    expect(bodyText('x')).toBe('x');
    expect(bodyText({ a: 1 })).toBe('{"a":1}');
    expect(bodyText(null)).toBe('');
  });

  it('filters by minimum severity and by text in body, service or attributes', () => {
    const rows = attachLogs(trace, [
      line('b', 5, 'debug detail'),
      line('b', 13, 'slow query', { attributes: { 'db.statement': 'SELECT 1' } }),
      line('a', 17, 'payment failed', { serviceName: 'frontend' }),
      line('', 0, 'no severity'),
    ]).rows;
    expect(filterLogs(rows, { minSeverity: '', text: '' })).toHaveLength(4);
    expect(filterLogs(rows, { minSeverity: 'WARN', text: '' }).map((r) => r.body)).toEqual(['slow query', 'payment failed']);
    expect(filterLogs(rows, { minSeverity: '', text: 'select' }).map((r) => r.body)).toEqual(['slow query']);
    expect(filterLogs(rows, { minSeverity: '', text: 'FRONTEND' }).map((r) => r.body)).toEqual(['payment failed']);
    expect(filterLogs(rows, { minSeverity: 'ERROR', text: 'slow' })).toHaveLength(0);
    expect(severityCounts(rows).get('WARN')).toBe(1);
  });
});
