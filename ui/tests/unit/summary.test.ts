import { describe, expect, it } from 'vitest';
import { errorMessage } from '../../src/api';
import { summarizeTempo } from '../../src/summary';

describe('TraceQL results', () => {
  it('summarise root, time, duration and matched spans', () => {
    const s = summarizeTempo({
      traceID: 'abc',
      rootServiceName: 'frontend',
      rootTraceName: 'GET /checkout',
      startTimeUnixNano: '1700000000123456789',
      durationMs: 42,
      spanSets: [
        { matched: 3, spans: [{ spanID: '1', startTimeUnixNano: '1', durationNanos: '5', attributes: [{ key: 'status', value: { stringValue: 'error' } }] }] },
        { matched: 1, spans: [] },
      ],
    });
    expect(s).toMatchObject({ traceID: 'abc', rootService: 'frontend', rootOperation: 'GET /checkout', matched: 4, duration: 42_000, spanCount: null, errorCount: 1 });
    expect(s.start).toBeCloseTo(1700000000123456.789, 1);
  });

  it('accept the older single spanSet field and missing roots', () => {
    const s = summarizeTempo({ traceID: 'x', startTimeUnixNano: '0', spanSet: { matched: 2, spans: [] } });
    expect(s).toMatchObject({ matched: 2, rootService: '', duration: 0, errorCount: null });
  });
});

describe('error answers', () => {
  it('take the message from Jaeger envelopes, error fields or plain text', () => {
    expect(errorMessage({ errors: [{ code: 400, msg: 'bad window' }] }, '')).toBe('bad window');
    expect(errorMessage({ error: 'parse error at line 1, col 9: unexpected }' }, '')).toBe('parse error at line 1, col 9: unexpected }');
    expect(errorMessage({ message: 'nope' }, '')).toBe('nope');
    expect(errorMessage(null, '  syntax error at 1:5\n')).toBe('syntax error at 1:5');
    expect(errorMessage({ data: null }, '')).toBe('');
  });
});
