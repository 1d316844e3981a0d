import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { Empty, ErrorState, Loading } from '../components';
import { serviceColor } from '../format';
import { layoutGraph, type EdgePath } from '../graphlayout';
import { suspectServices } from '../incidents';
import { healthOf, type Health } from '../redchart';
import { linkClick, navigate, type Location } from '../router';
import { fitView, IDENTITY, panBy, zoomAround, type PanZoom } from '../zoom';

const WINDOWS: [string, string, number][] = [
  ['1h', 'Last hour', 3600e3],
  ['6h', 'Last 6 hours', 6 * 3600e3],
  ['24h', 'Last 24 hours', 24 * 3600e3],
  ['48h', 'Last 2 days', 48 * 3600e3],
  ['168h', 'Last 7 days', 168 * 3600e3],
];

/** The live RED colouring compares the last minute with the last 10 minutes (the analysis horizon). */
const NOW_WINDOW = '1m';
const BASELINE_WINDOW = '10m';

/** What colours the map: the live graph now and over the baseline window, and open incidents. */
interface Live {
  now: api.ServiceGraph;
  baseline: api.ServiceGraph;
  incidents: api.Incident[];
}

type Load = { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; deps: api.Dependency[]; live: Live | null; liveError: unknown };

const HEALTH_TEXT: Record<Health, string> = { idle: 'no calls in the last minute', ok: 'healthy', warn: 'degraded', bad: 'failing' };

export function ServiceMapView({ loc }: { loc: Location }) {
  const win = WINDOWS.find((w) => w[0] === loc.query.get('lookback')) ?? WINDOWS[2];
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [retry, setRetry] = useState(0);
  const [focus, setFocus] = useState<string | null>(null);
  useEffect(() => {
    const ac = new AbortController();
    setLoad({ state: 'loading' });
    // The live colouring is extra: without it (an older server, or the analysis off) the map still shows.
    const live: Promise<Live> = Promise.all([
      api.serviceGraph(NOW_WINDOW, ac.signal),
      api.serviceGraph(BASELINE_WINDOW, ac.signal),
      api.incidents('open', 50, ac.signal).catch(() => [] as api.Incident[]),
    ]).then(([now, baseline, incidents]) => ({ now, baseline, incidents }));
    Promise.all([api.dependencies(Date.now(), win[2], ac.signal), live.then((l) => [l, null] as const, (e) => [null, e] as const)])
      .then(([deps, [l, liveError]]) => setLoad({ state: 'done', deps, live: l, liveError }))
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [win[0], retry]);
  const layout = useMemo(() => {
    if (load.state !== 'done') return null;
    // Stored calls, plus live calls storage does not show (virtual nodes: databases, brokers).
    const seen = new Set(load.deps.map((d) => `${d.parent}\u0000${d.child}`));
    const extra = (load.live?.now.edges ?? [])
      .filter((e) => !seen.has(`${e.client}\u0000${e.server}`))
      .map((e) => ({ parent: e.client, child: e.server, callCount: e.clientSide.calls }));
    return layoutGraph([...load.deps, ...extra]);
  }, [load]);
  const colouring = useMemo(() => (load.state === 'done' && load.live ? colour(load.live) : null), [load]);
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
  return (
    <div class="map-page">
      {selector}
      <Legend colouring={colouring} liveError={load.liveError} incidents={load.live?.incidents ?? []} />
      <MapCanvas layout={layout} colouring={colouring} focus={focus} setFocus={setFocus} lookback={win[0]} />
    </div>
  );
}

interface Colouring {
  node: Map<string, { level: Health; reasons: string[] }>;
  edge: Map<string, { level: Health; reasons: string[] }>;
  suspects: Map<string, string>;
}

const edgeKey = (a: string, b: string) => `${a}\u0000${b}`;

/** Health of every node and edge now against its baseline, and the services incidents blame. */
function colour(live: Live): Colouring {
  const baseNode = new Map(live.baseline.nodes.map((n) => [n.id, n]));
  const baseEdge = new Map(live.baseline.edges.map((e) => [edgeKey(e.client, e.server), e]));
  const node = new Map<string, { level: Health; reasons: string[] }>();
  for (const n of live.now.nodes) {
    // A service is judged by the calls it serves; one nobody instrumented calls (the entry
    // point) by the calls it makes.
    const side = n.incoming.calls > 0 ? 'incoming' : 'outgoing';
    node.set(n.id, healthOf(n[side], baseNode.get(n.id)?.[side]));
  }
  const edge = new Map<string, { level: Health; reasons: string[] }>();
  for (const e of live.now.edges) edge.set(edgeKey(e.client, e.server), healthOf(e.clientSide, baseEdge.get(edgeKey(e.client, e.server))?.clientSide));
  return { node, edge, suspects: suspectServices(live.incidents) };
}

function Legend({ colouring, liveError, incidents }: { colouring: Colouring | null; liveError: unknown; incidents: api.Incident[] }) {
  if (!colouring)
    return (
      <p class="muted map-legend">
        Live RED colouring is unavailable ({(liveError as Error)?.message ?? 'no answer'}); the map shows stored calls only.
      </p>
    );
  return (
    <div class="map-legend">
      <span class="muted">
        Colour: errors and p90 latency in the last minute against the last 10 minutes.
      </span>
      <span class="legend-item ok">healthy</span>
      <span class="legend-item warn">degraded (errors ≥ 1% or p90 ≥ 1.5×)</span>
      <span class="legend-item bad">failing (errors ≥ 5% or p90 ≥ 3×)</span>
      <span class="legend-item idle">no recent calls</span>
      {colouring.suspects.size > 0 && <span class="legend-item suspect">top cause of an open incident</span>}
      {incidents.length > 0 && (
        <a href="/incidents?status=open" onClick={linkClick}>
          {incidents.length} open incident{incidents.length === 1 ? '' : 's'}
        </a>
      )}
    </div>
  );
}

function MapCanvas(props: {
  layout: ReturnType<typeof layoutGraph>;
  colouring: Colouring | null;
  focus: string | null;
  setFocus: (s: string | null) => void;
  lookback: string;
}) {
  const { layout, colouring, focus, setFocus } = props;
  const box = useRef<HTMLDivElement>(null);
  const [view, setView] = useState<PanZoom>(IDENTITY);
  const [size, setSize] = useState({ w: 800, h: 500 });
  const fitTo = (w: number, h: number) => fitView(layout.width, layout.height + 24, w, h);
  const fit = () => setView(fitTo(size.w, size.h));
  useEffect(() => {
    const el = box.current!;
    const ro = new ResizeObserver(() => setSize({ w: el.clientWidth, h: el.clientHeight }));
    ro.observe(el);
    setSize({ w: el.clientWidth, h: el.clientHeight });
    // The first view fits the map into the box as measured, not the default size.
    setView(fitTo(el.clientWidth, el.clientHeight));
    return () => ro.disconnect();
  }, []);
  // Wheel zooms around the pointer; it needs a non-passive listener to keep the page still.
  useEffect(() => {
    const el = box.current!;
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const r = el.getBoundingClientRect();
      setView((v) => zoomAround(v, Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top));
    };
    el.addEventListener('wheel', onWheel, { passive: false });
    return () => el.removeEventListener('wheel', onWheel);
  }, []);
  const onMouseDown = (e: MouseEvent) => {
    if (e.button !== 0 || (e.target as Element).closest('.node')) return;
    let x = e.clientX;
    let y = e.clientY;
    const move = (m: MouseEvent) => {
      setView((v) => panBy(v, m.clientX - x, m.clientY - y));
      x = m.clientX;
      y = m.clientY;
    };
    const up = () => {
      removeEventListener('mousemove', move);
      removeEventListener('mouseup', up);
    };
    addEventListener('mousemove', move);
    addEventListener('mouseup', up);
  };
  const onKeyDown = (e: KeyboardEvent) => {
    const step = 40;
    const c = { x: size.w / 2, y: size.h / 2 };
    const act: Record<string, () => PanZoom> = {
      '+': () => zoomAround(view, 1.25, c.x, c.y),
      '=': () => zoomAround(view, 1.25, c.x, c.y),
      '-': () => zoomAround(view, 0.8, c.x, c.y),
      ArrowLeft: () => panBy(view, step, 0),
      ArrowRight: () => panBy(view, -step, 0),
      ArrowUp: () => panBy(view, 0, step),
      ArrowDown: () => panBy(view, 0, -step),
      '0': () => fitTo(size.w, size.h),
    };
    const f = act[e.key];
    if (!f || (e.target as Element).closest('.node')) return;
    e.preventDefault();
    setView(f());
  };
  const maxCalls = Math.max(1, ...layout.edges.map((e) => e.calls));
  const related = (e: EdgePath) => !focus || e.from === focus || e.to === focus;
  const go = (id: string) => navigate(`/search?service=${encodeURIComponent(id)}&lookback=${props.lookback}`);
  return (
    <div class="map-scroll" ref={box} onMouseDown={onMouseDown} onKeyDown={onKeyDown} tabIndex={0} aria-label="Service map: drag to pan, wheel or +/- to zoom, 0 to fit">
      <div class="map-zoom" role="toolbar" aria-label="Zoom">
        <button type="button" title="Zoom in (+)" onClick={() => setView((v) => zoomAround(v, 1.25, size.w / 2, size.h / 2))}>
          +
        </button>
        <button type="button" title="Zoom out (-)" onClick={() => setView((v) => zoomAround(v, 0.8, size.w / 2, size.h / 2))}>
          −
        </button>
        <button type="button" title="Fit the map (0)" class="map-fit" onClick={fit}>
          Fit
        </button>
        <span class="muted zoom-level">{Math.round(view.k * 100)}%</span>
      </div>
      <svg class="service-map" width={size.w} height={size.h} role="img" aria-label="Service dependency map">
        <defs>
          {(['ok', 'warn', 'bad', 'idle', 'none'] as const).map((h) => (
            <marker id={`arrow-${h}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" class={`arrowhead health-${h}`} />
            </marker>
          ))}
        </defs>
        <g class="map-content" transform={`translate(${view.x.toFixed(1)} ${view.y.toFixed(1)}) scale(${view.k.toFixed(4)}) translate(0 24)`}>
          {layout.edges.map((e) => {
            const d = e.points.map((p, i) => `${i ? 'L' : 'M'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');
            const mid = e.points[Math.floor(e.points.length / 2)];
            const h = colouring?.edge.get(edgeKey(e.from, e.to));
            const level = h?.level ?? 'none';
            return (
              <g class={`edge health-${level} ${related(e) ? '' : 'faded'}`} data-edge={`${e.from}->${e.to}`} data-health={level}>
                <path d={d} marker-end={`url(#arrow-${level})`} stroke-width={1 + 3 * Math.sqrt(e.calls / maxCalls)} />
                <text x={mid.x} y={mid.y - 4} text-anchor="middle" class="edge-label">
                  {e.calls.toLocaleString('en')}
                </text>
                <title>{`${e.from} → ${e.to}: ${e.calls} calls${h ? `\nlast minute: ${HEALTH_TEXT[h.level]}${h.reasons.length ? ` (${h.reasons.join(', ')})` : ''}` : ''}`}</title>
              </g>
            );
          })}
          {layout.nodes.map((n) => {
            const h = colouring?.node.get(n.id);
            const level = h?.level ?? 'none';
            const incident = colouring?.suspects.get(n.id);
            return (
              <g
                class={`node health-${level} ${incident ? 'suspect' : ''} ${focus && focus !== n.id ? 'faded' : ''}`}
                data-service={n.id}
                data-health={level}
                data-suspect={incident ? 'true' : undefined}
                tabIndex={0}
                role="link"
                aria-label={`${n.id}${h ? `, ${HEALTH_TEXT[h.level]}` : ''}${incident ? ', top cause of an open incident' : ''}: search its traces`}
                transform={`translate(${n.x - n.width / 2} ${n.y - n.height / 2})`}
                onClick={() => go(n.id)}
                onKeyDown={(e) => e.key === 'Enter' && go(n.id)}
                onMouseEnter={() => setFocus(n.id)}
                onMouseLeave={() => setFocus(null)}
                onFocus={() => setFocus(n.id)}
                onBlur={() => setFocus(null)}
              >
                {incident && <rect class="suspect-ring" x={-5} y={-5} width={n.width + 10} height={n.height + 10} rx="9" />}
                <rect class="node-box" width={n.width} height={n.height} rx="6" />
                <rect width="6" height={n.height} rx="3" fill={serviceColor(n.id)} />
                <text x="14" y={n.height / 2 + 4}>
                  {n.id.length > 34 ? `${n.id.slice(0, 33)}…` : n.id}
                </text>
                {incident && (
                  <text x={n.width - 4} y={-8} text-anchor="end" class="suspect-label">
                    suspected cause
                  </text>
                )}
                <title>{`${n.id}\ncalls in: ${n.callsIn}, calls out: ${n.callsOut}${h ? `\nlast minute: ${HEALTH_TEXT[h.level]}${h.reasons.length ? ` (${h.reasons.join(', ')})` : ''}` : ''}${incident ? `\ntop cause of open incident ${incident}` : ''}`}</title>
              </g>
            );
          })}
        </g>
      </svg>
    </div>
  );
}
