import { describe, expect, it } from 'vitest';
import { diffSummary, diffTraces } from '../../src/diff';
import { buildTrace } from '../../src/model';
import { mk } from './helpers';

const a = buildTrace(
  mk([
    ['r', '', 'front', 'GET /', 0, 100],
    ['x', 'r', 'auth', 'check', 5, 10],
    ['y', 'r', 'db', 'select', 20, 10],
    ['y2', 'r', 'db', 'select', 40, 10],
    ['z', 'r', 'cache', 'get', 60, 5],
  ]),
);
const b = buildTrace(
  mk(
    [
      ['R', '', 'front', 'GET /', 0, 300],
      ['X', 'R', 'auth', 'check', 5, 11],
      ['Y', 'R', 'db', 'select', 20, 200],
      ['W', 'R', 'payments', 'charge', 230, 50],
      ['W1', 'W', 'bank', 'authorize', 235, 40],
    ],
    't2',
  ),
);

describe('diffTraces', () => {
  const d = diffTraces(a, b);
  const find = (svc: string) => d.find((n) => n.service === svc)!;

  it('matches calls by their path from the root', () => {
    expect(d.map((n) => `${n.depth}:${n.service}`)).toEqual(['0:front', '1:auth', '1:db', '1:cache', '1:payments', '2:bank']);
  });

  it('classifies added, missing, slower and unchanged calls', () => {
    expect(find('cache').status).toBe('missing');
    expect(find('payments').status).toBe('added');
    expect(find('bank').status).toBe('added');
    expect(find('db').status).toBe('slower');
    expect(find('db').countChanged).toBe(true);
    expect(find('auth').status).toBe('same'); // 10 → 11µs is below the thresholds
    expect(find('front').status).toBe('slower');
    expect(diffSummary(d)).toEqual({ same: 1, added: 2, missing: 1, slower: 2, faster: 0 });
  });

  it('is symmetric: swapping the traces swaps added/missing and slower/faster', () => {
    const r = diffTraces(b, a);
    expect(diffSummary(r)).toEqual({ same: 1, added: 1, missing: 2, slower: 0, faster: 2 });
  });

  it('finds nothing changed when comparing a trace with itself', () => {
    expect(diffSummary(diffTraces(a, a))).toEqual({ same: 4, added: 0, missing: 0, slower: 0, faster: 0 });
  });

  it('does not confuse the same operation under different parents', () => {
    const p = buildTrace(
      mk([
        ['r', '', 's', 'root', 0, 10],
        ['a', 'r', 's', 'A', 0, 5],
        ['q', 'a', 'db', 'q', 0, 1],
      ]),
    );
    const q = buildTrace(
      mk([
        ['r', '', 's', 'root', 0, 10],
        ['b', 'r', 's', 'B', 0, 5],
        ['q', 'b', 'db', 'q', 0, 1],
      ]),
    );
    expect(diffSummary(diffTraces(p, q))).toMatchObject({ same: 1, added: 2, missing: 2 });
  });
});
