import { describe, expect, it } from 'vitest';
import { layoutGraph } from '../../src/graphlayout';

function overlaps(a: { x: number; y: number; width: number; height: number }, b: typeof a) {
  return Math.abs(a.x - b.x) * 2 < a.width + b.width && Math.abs(a.y - b.y) * 2 < a.height + b.height;
}

describe('layoutGraph', () => {
  it('lays calls out left to right and merges duplicate edges', () => {
    const g = layoutGraph([
      { parent: 'frontend', child: 'cart', callCount: 3 },
      { parent: 'cart', child: 'db', callCount: 5 },
      { parent: 'frontend', child: 'cart', callCount: 2 },
    ]);
    const x = (id: string) => g.nodes.find((n) => n.id === id)!.x;
    expect(x('frontend')).toBeLessThan(x('cart'));
    expect(x('cart')).toBeLessThan(x('db'));
    expect(g.edges.find((e) => e.from === 'frontend')!.calls).toBe(5);
    expect(g.nodes.find((n) => n.id === 'cart')).toMatchObject({ callsIn: 5, callsOut: 5 });
  });

  it('survives cycles and self-calls', () => {
    const g = layoutGraph([
      { parent: 'a', child: 'b', callCount: 1 },
      { parent: 'b', child: 'a', callCount: 1 },
      { parent: 'a', child: 'a', callCount: 4 },
    ]);
    expect(g.nodes.length).toBe(2);
    expect(g.edges.length).toBe(3);
    for (const e of g.edges) expect(e.points.length).toBeGreaterThanOrEqual(2);
  });

  it('keeps 200 services apart', () => {
    const deps = [];
    for (let i = 1; i < 200; i++) deps.push({ parent: `svc-${Math.floor((i - 1) / 4)}`, child: `svc-${i}`, callCount: i });
    for (let i = 0; i < 60; i++) deps.push({ parent: `svc-${i * 3}`, child: `svc-${(i * 7 + 11) % 200}`, callCount: 1 });
    const g = layoutGraph(deps);
    expect(g.nodes.length).toBe(200);
    for (let i = 0; i < g.nodes.length; i++)
      for (let j = i + 1; j < g.nodes.length; j++) expect(overlaps(g.nodes[i], g.nodes[j])).toBe(false);
    expect(g.width).toBeGreaterThan(0);
  });
});
