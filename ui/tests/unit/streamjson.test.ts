import { describe, expect, it } from 'vitest';
import { closingBracket, SpanStreamParser } from '../../src/streamjson';
import { mk } from './helpers';

function feed(text: string, pieces: number[]): unknown {
  const p = new SpanStreamParser();
  let at = 0;
  for (const cut of pieces) {
    p.push(text.slice(at, cut));
    at = cut;
  }
  p.push(text.slice(at));
  return p.finish();
}

describe('streaming trace parser', () => {
  const trace = mk([
    ['a', '', 'frontend', 'GET /x', 0, 100, true],
    ['b', 'a', 'svc "quoted" {brace} [bracket] \\ back', 'op ]}', 10, 50],
    ['c', 'b', 'db', '"spans":[', 20, 5],
  ]);
  trace.spans[1].tags = [{ key: 'weird', type: 'string', value: '\\"},{"spanID":"x"}]' }];
  const text = JSON.stringify({ data: [trace], total: 1, limit: 0, offset: 0, errors: null });
  const expected = JSON.parse(text);

  it('gives what JSON.parse gives, wherever the text is cut', () => {
    for (let cut = 0; cut <= text.length; cut++) expect(feed(text, [cut])).toEqual(expected);
  });

  it('gives the same with many small pieces, whitespace and key orders', () => {
    const pretty = JSON.stringify({ errors: null, data: [{ processes: trace.processes, spans: trace.spans, traceID: 't1' }] }, null, 2);
    const cuts = [];
    for (let i = 7; i < pretty.length; i += 7) cuts.push(i);
    expect(feed(pretty, cuts)).toEqual(JSON.parse(pretty));
    expect(feed(text, [1, 2, 3, 50, 51, 52, 200])).toEqual(expected);
  });

  it('parses large span arrays in batches before the end', () => {
    const spans = Array.from({ length: 4000 }, (_, i) => ({ ...trace.spans[0], spanID: `s${i}`, tags: [{ key: 'k', type: 'string', value: 'x'.repeat(100) }] }));
    const big = JSON.stringify({ data: [{ traceID: 't', spans, processes: trace.processes }] });
    const p = new SpanStreamParser();
    const half = Math.floor(big.length / 2);
    p.push(big.slice(0, half));
    expect(p.parsedSpans).toBeGreaterThan(1000);
    p.push(big.slice(half));
    const out = p.finish() as { data: { spans: unknown[] }[] };
    expect(out.data[0].spans).toHaveLength(4000);
    expect(out).toEqual(JSON.parse(big));
  });

  it('parses once at the end when the answer arrives in one large piece', () => {
    const spans = Array.from({ length: 12000 }, (_, i) => ({ ...trace.spans[0], spanID: `s${i}`, tags: [{ key: 'k', type: 'string', value: 'x'.repeat(200) }] }));
    const big = JSON.stringify({ data: [{ traceID: 't', spans, processes: trace.processes }] });
    expect(big.length).toBeGreaterThan(2 * 1024 * 1024);
    const p = new SpanStreamParser();
    p.push(big);
    expect(p.parsedSpans).toBe(0);
    expect(p.finish()).toEqual(JSON.parse(big));
  });

  it('falls back to one parse for answers of another shape, and fails as JSON.parse does', () => {
    expect(feed('{"data":[],"errors":null}', [5])).toEqual({ data: [], errors: null });
    expect(feed('{"data":null,"errors":[{"code":404,"msg":"not found"}]}', [10])).toEqual({ data: null, errors: [{ code: 404, msg: 'not found' }] });
    expect(feed('{"other":{"spans":[1,2]},"data":[{"spans":[3]}]}', [12])).toEqual({ other: { spans: [1, 2] }, data: [{ spans: [3] }] });
    expect(() => feed('{"data":[{"spans":[{"a":1},{"b":}]}]}', [20])).toThrow();
    expect(() => feed('{"data":[{"spans":[{"a":1}', [])).toThrow();
  });
});

describe('closing bracket', () => {
  it('skips strings with escaped quotes and nested arrays', () => {
    expect(closingBracket('{"a":"x\\"]"},{"b":[1,[2]]}],"z":1')).toBe(26);
    expect(closingBracket('"\\\\"]')).toBe(4);
    expect(closingBracket('{"a":1}')).toBe(-1);
    expect(closingBracket('}]')).toBe(-1);
    expect(closingBracket('"open')).toBe(-1);
  });
});
