// Layered layout of the service dependency graph with dagre (Sugiyama-style: ranks, crossing
// reduction, coordinates), which keeps call chains flowing left to right and stays readable
// from a handful to a few hundred services.

import dagre from '@dagrejs/dagre';
import type { Dependency } from './api';

export interface NodeBox {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Calls received / made in the window. */
  callsIn: number;
  callsOut: number;
}

export interface EdgePath {
  from: string;
  to: string;
  calls: number;
  points: { x: number; y: number }[];
}

export interface GraphLayout {
  nodes: NodeBox[];
  edges: EdgePath[];
  width: number;
  height: number;
}

const CHAR_W = 7.2;

export function layoutGraph(deps: Dependency[]): GraphLayout {
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 90, edgesep: 10, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const calls = new Map<string, { in: number; out: number }>();
  const touch = (s: string) => {
    if (!calls.has(s)) calls.set(s, { in: 0, out: 0 });
    return calls.get(s)!;
  };
  const merged = new Map<string, Dependency>();
  for (const d of deps) {
    const key = JSON.stringify([d.parent, d.child]);
    const m = merged.get(key);
    if (m) m.callCount += d.callCount;
    else merged.set(key, { ...d });
  }
  for (const d of merged.values()) {
    touch(d.parent).out += d.callCount;
    touch(d.child).in += d.callCount;
  }
  for (const [id] of [...calls].sort((a, b) => a[0].localeCompare(b[0]))) {
    g.setNode(id, { width: Math.min(260, 24 + CHAR_W * id.length), height: 34 });
  }
  for (const d of merged.values()) if (d.parent !== d.child) g.setEdge(d.parent, d.child, { calls: d.callCount });
  dagre.layout(g);
  const nodes: NodeBox[] = g.nodes().map((id: string) => {
    const n = g.node(id);
    const c = calls.get(id)!;
    return { id, x: n.x, y: n.y, width: n.width, height: n.height, callsIn: c.in, callsOut: c.out };
  });
  const edges: EdgePath[] = [...merged.values()].map((d) => {
    if (d.parent === d.child) {
      const n = g.node(d.parent);
      const top = n.y - n.height / 2;
      return {
        from: d.parent,
        to: d.child,
        calls: d.callCount,
        points: [
          { x: n.x - 10, y: top },
          { x: n.x, y: top - 22 },
          { x: n.x + 10, y: top },
        ],
      };
    }
    const e = g.edge(d.parent, d.child);
    return { from: d.parent, to: d.child, calls: d.callCount, points: e.points };
  });
  const gr = g.graph();
  return { nodes, edges, width: gr.width ?? 0, height: gr.height ?? 0 };
}
