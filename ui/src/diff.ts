// Structural diff of two traces. Spans are matched by their position in the call tree: the
// chain of (service, operation) from the root. Each node of the merged tree says whether the
// call is in both traces, only in B (added) or only in A (missing), and how its count and
// average duration changed.

import type { Trace } from './model';

export type DiffStatus = 'same' | 'added' | 'missing' | 'slower' | 'faster';

export interface Side {
  count: number;
  errors: number;
  total: number;
  /** A span of this node in that trace, to open it. */
  example: number;
}

export interface DiffNode {
  service: string;
  operation: string;
  depth: number;
  a: Side | null;
  b: Side | null;
  status: DiffStatus;
  /** Count differs between the traces. */
  countChanged: boolean;
}

export interface DiffOptions {
  /** B's average must exceed A's by this factor to count as slower (and vice versa). */
  ratio: number;
  /** ... and by at least this many µs. */
  minDelta: number;
}

const DEFAULTS: DiffOptions = { ratio: 1.2, minDelta: 100 };

interface Acc {
  key: number;
  parent: number;
  service: string;
  operation: string;
  depth: number;
  sides: [Side | null, Side | null];
  children: number[];
}

/** Merged tree of both traces in pre-order (A's order first, B-only calls after). */
export function diffTraces(a: Trace, b: Trace, opts: Partial<DiffOptions> = {}): DiffNode[] {
  const o = { ...DEFAULTS, ...opts };
  const intern = new Map<string, number>();
  const nodes: Acc[] = [];
  const rootKids: number[] = [];
  const add = (t: Trace, side: 0 | 1) => {
    const keyOf = new Int32Array(t.spans.length);
    for (const s of t.spans) {
      const parentKey = s.parent >= 0 ? keyOf[s.parent] : -1;
      const name = parentKey + '\u0000' + s.service + '\u0000' + s.operation;
      let k = intern.get(name);
      if (k === undefined) {
        k = nodes.length;
        intern.set(name, k);
        nodes.push({
          key: k,
          parent: parentKey,
          service: s.service,
          operation: s.operation,
          depth: parentKey >= 0 ? nodes[parentKey].depth + 1 : 0,
          sides: [null, null],
          children: [],
        });
        (parentKey >= 0 ? nodes[parentKey].children : rootKids).push(k);
      }
      keyOf[s.index] = k;
      let sd = nodes[k].sides[side];
      if (!sd) sd = nodes[k].sides[side] = { count: 0, errors: 0, total: 0, example: s.index };
      sd.count++;
      sd.total += s.duration;
      if (s.error) sd.errors++;
    }
  };
  add(a, 0);
  add(b, 1);
  const out: DiffNode[] = [];
  const stack = [...rootKids].reverse();
  while (stack.length) {
    const n = nodes[stack.pop()!];
    const [sa, sb] = n.sides;
    let status: DiffStatus = 'same';
    if (!sa) status = 'added';
    else if (!sb) status = 'missing';
    else {
      const avgA = sa.total / sa.count;
      const avgB = sb.total / sb.count;
      if (avgB > avgA * o.ratio && avgB - avgA >= o.minDelta) status = 'slower';
      else if (avgA > avgB * o.ratio && avgA - avgB >= o.minDelta) status = 'faster';
    }
    out.push({
      service: n.service,
      operation: n.operation,
      depth: n.depth,
      a: sa,
      b: sb,
      status,
      countChanged: !!sa && !!sb && sa.count !== sb.count,
    });
    for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
  }
  return out;
}

/** How many nodes have each status. */
export function diffSummary(nodes: DiffNode[]): Record<DiffStatus, number> {
  const r: Record<DiffStatus, number> = { same: 0, added: 0, missing: 0, slower: 0, faster: 0 };
  for (const n of nodes) r[n.status]++;
  return r;
}
