import { useEffect, useMemo, useState } from 'preact/hooks';
import * as api from '../api';
import { Empty, ErrorState, Loading } from '../components';
import { serviceColor } from '../format';
import { layoutGraph, type EdgePath } from '../graphlayout';
import { navigate, type Location } from '../router';

const WINDOWS: [string, string, number][] = [
  ['1h', 'Last hour', 3600e3],
  ['6h', 'Last 6 hours', 6 * 3600e3],
  ['24h', 'Last 24 hours', 24 * 3600e3],
  ['48h', 'Last 2 days', 48 * 3600e3],
  ['168h', 'Last 7 days', 168 * 3600e3],
];

type Load = { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; deps: api.Dependency[] };

export function ServiceMapView({ loc }: { loc: Location }) {
  const win = WINDOWS.find((w) => w[0] === loc.query.get('lookback')) ?? WINDOWS[2];
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [retry, setRetry] = useState(0);
  const [focus, setFocus] = useState<string | null>(null);
  useEffect(() => {
    const ac = new AbortController();
    setLoad({ state: 'loading' });
    api
      .dependencies(Date.now(), win[2], ac.signal)
      .then((deps) => setLoad({ state: 'done', deps }))
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [win[0], retry]);
  const layout = useMemo(() => (load.state === 'done' ? layoutGraph(load.deps) : null), [load]);
  const selector = (
    <div class="map-bar">
      <label>
        Time window
        <select value={win[0]} onChange={(e) => navigate(`/dependencies?lookback=${(e.currentTarget as HTMLSelectElement).value}`, true)}>
          {WINDOWS.map(([v, l]) => (
            <option value={v}>{l}</option>
          ))}
        </select>
      </label>
      {layout && (
        <span class="muted">
          {layout.nodes.length} services, {layout.edges.length} dependencies. Click a service to search its traces.
        </span>
      )}
    </div>
  );
  if (load.state === 'loading') return <>{selector}<Loading what="dependencies" /></>;
  if (load.state === 'error') return <>{selector}<ErrorState error={load.error} onRetry={() => setRetry((r) => r + 1)} /></>;
  if (!layout || !layout.nodes.length)
    return (
      <>
        {selector}
        <Empty title="No service calls in this window">
          <p>The map shows calls between services seen in stored traces. Pick a longer window, or send traces that cross services (or run <code>faultline demo</code>).</p>
        </Empty>
      </>
    );
  const maxCalls = Math.max(1, ...layout.edges.map((e) => e.calls));
  const related = (e: EdgePath) => !focus || e.from === focus || e.to === focus;
  return (
    <div class="map-page">
      {selector}
      <div class="map-scroll">
        <svg class="service-map" width={layout.width} height={layout.height + 24} viewBox={`0 -24 ${layout.width} ${layout.height + 24}`} role="img" aria-label="Service dependency map">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
            </marker>
          </defs>
          {layout.edges.map((e) => {
            const d = e.points.map((p, i) => `${i ? 'L' : 'M'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');
            const mid = e.points[Math.floor(e.points.length / 2)];
            return (
              <g class={`edge ${related(e) ? '' : 'faded'}`}>
                <path d={d} marker-end="url(#arrow)" stroke-width={1 + 3 * Math.sqrt(e.calls / maxCalls)} />
                <text x={mid.x} y={mid.y - 4} text-anchor="middle" class="edge-label">
                  {e.calls.toLocaleString('en')}
                </text>
                <title>{`${e.from} → ${e.to}: ${e.calls} calls`}</title>
              </g>
            );
          })}
          {layout.nodes.map((n) => (
            <g
              class={`node ${focus && focus !== n.id ? 'faded' : ''}`}
              data-service={n.id}
              tabIndex={0}
              role="link"
              aria-label={`${n.id}: search its traces`}
              transform={`translate(${n.x - n.width / 2} ${n.y - n.height / 2})`}
              onClick={() => navigate(`/search?service=${encodeURIComponent(n.id)}&lookback=${win[0]}`)}
              onKeyDown={(e) => e.key === 'Enter' && navigate(`/search?service=${encodeURIComponent(n.id)}&lookback=${win[0]}`)}
              onMouseEnter={() => setFocus(n.id)}
              onMouseLeave={() => setFocus(null)}
              onFocus={() => setFocus(n.id)}
              onBlur={() => setFocus(null)}
            >
              <rect width={n.width} height={n.height} rx="6" />
              <rect width="6" height={n.height} rx="3" fill={serviceColor(n.id)} />
              <text x="14" y={n.height / 2 + 4}>
                {n.id.length > 34 ? `${n.id.slice(0, 33)}…` : n.id}
              </text>
              <title>{`${n.id}\ncalls in: ${n.callsIn}, calls out: ${n.callsOut}`}</title>
            </g>
          ))}
        </svg>
      </div>
    </div>
  );
}
