import { useEffect, useMemo, useState } from 'preact/hooks';
import * as api from '../api';
import { Empty, ErrorState, Loading } from '../components';
import { fmtDuration, fmtTime, serviceColor } from '../format';
import { fmtPercent } from '../incidents';
import { buildTrace, type JaegerTrace } from '../model';
import { differenceWindows, linear, nestedWindows, niceScale, RED_WINDOWS, type OperationRed, type RedPoint } from '../redchart';
import { linkClick, navigate, type Location } from '../router';

type Load = { state: 'idle' } | { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; ops: OperationRed[]; takenAt: number };

/** An exemplar trace placed on an operation's latency chart. */
interface ExemplarPoint {
  traceID: string;
  spanID: string;
  /** seconds before the RED answers were taken */
  ago: number;
  durationMs: number;
  error: boolean;
}

const EXEMPLARS_PER_OPERATION = 6;
const EXEMPLAR_FETCHES = 40;

/** Services: RED charts per operation of one service, with exemplar traces to click through. */
export function ServicesView({ loc }: { loc: Location }) {
  const service = loc.query.get('service') ?? '';
  const win = RED_WINDOWS.find((w) => w.id === loc.query.get('window')) ?? RED_WINDOWS[1];
  const [services, setServices] = useState<string[] | null>(null);
  const [servicesError, setServicesError] = useState<unknown>(null);
  const [load, setLoad] = useState<Load>({ state: 'idle' });
  const [exemplars, setExemplars] = useState<Map<string, ExemplarPoint[]>>(new Map());
  const [reload, setReload] = useState(0);
  const go = (svc: string, w = win.id) => navigate(`/services?${new URLSearchParams({ ...(svc ? { service: svc } : {}), window: w })}`, true);

  useEffect(() => {
    const ac = new AbortController();
    setServicesError(null);
    // Services with live RED series and services with stored traces: both are worth picking.
    Promise.all([
      api
        .red('', win.id, ac.signal)
        .then((r) => r.series.map((s) => s.service))
        // Without the analysis the stored services can still be picked; their charts then say why they fail.
        .catch((e) => (e.name === 'AbortError' ? Promise.reject(e) : [])),
      api.services(ac.signal),
    ])
      .then(([live, stored]) => setServices([...new Set([...live, ...stored])].sort()))
      .catch((e) => e.name !== 'AbortError' && setServicesError(e));
    return () => ac.abort();
  }, [reload, win.id]);

  useEffect(() => {
    if (!service) return setLoad({ state: 'idle' });
    const ac = new AbortController();
    setLoad({ state: 'loading' });
    setExemplars(new Map());
    const takenAt = Date.now();
    Promise.all(nestedWindows(win.seconds, win.bucket).map((w) => api.red(service, w, ac.signal)))
      .then((answers) => {
        const ops = differenceWindows(answers);
        setLoad({ state: 'done', ops, takenAt });
        void loadExemplars(ops, takenAt, ac.signal).then((m) => !ac.signal.aborted && setExemplars(m));
      })
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [service, win.id, reload]);

  if (servicesError) return <ErrorState error={servicesError} onRetry={() => setReload((r) => r + 1)} />;
  const bar = (
    <div class="map-bar">
      <label>
        Service
        <select name="service" value={service} onChange={(e) => go((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">{services ? 'Choose a service' : 'Loading…'}</option>
          {(services ?? []).map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
      </label>
      <label>
        Window
        <select name="window" value={win.id} onChange={(e) => go(service, (e.currentTarget as HTMLSelectElement).value)}>
          {RED_WINDOWS.map((w) => (
            <option value={w.id}>{w.label}</option>
          ))}
        </select>
      </label>
      <button type="button" onClick={() => setReload((r) => r + 1)}>
        Refresh
      </button>
      {service && (
        <a href={`/search?service=${encodeURIComponent(service)}&lookback=1h`} onClick={linkClick}>
          Search its traces
        </a>
      )}
    </div>
  );
  return (
    <div class="services-page">
      {bar}
      {load.state === 'idle' && (
        <Empty title="Pick a service">
          <p>
            The charts show rate, error ratio and latency per operation of the service over the window, from the live analysis of incoming
            spans. Dots on the latency charts are exemplar traces: click one to open it.
          </p>
        </Empty>
      )}
      {load.state === 'loading' && <Loading what={`RED metrics of ${service}`} />}
      {load.state === 'error' && <ErrorState error={load.error} onRetry={() => setReload((r) => r + 1)} />}
      {load.state === 'done' && load.ops.length === 0 && (
        <Empty title={`No spans from ${service} in the ${win.label.toLowerCase()}`}>
          <p>
            The analysis counts spans as they arrive and keeps 10 minutes. Pick a longer window, or check that {service} is sending spans
            (the Search page shows what is stored).
          </p>
        </Empty>
      )}
      {load.state === 'done' && load.ops.length > 0 && (
        <>
          <p class="muted">
            {load.ops.length} operation{load.ops.length === 1 ? '' : 's'}, busiest first; buckets of {win.bucket}s (the newest is still filling).
            Quantile lines are over the whole window. Taken {fmtTime(load.takenAt * 1000).slice(11, 19)}.
          </p>
          <div class="red-grid">
            {load.ops.map((op) => (
              <OperationCard op={op} windowSeconds={win.seconds} exemplars={exemplars.get(op.key) ?? []} />
            ))}
          </div>
        </>
      )}
    </div>
  );
}

/** Fetches a few exemplar traces per operation and finds the operation's span in each. */
async function loadExemplars(ops: OperationRed[], takenAt: number, signal: AbortSignal): Promise<Map<string, ExemplarPoint[]>> {
  const jobs: { op: OperationRed; traceID: string }[] = [];
  for (const op of ops) for (const id of op.total.exemplarTraceIDs.slice(0, EXEMPLARS_PER_OPERATION)) jobs.push({ op, traceID: id });
  const out = new Map<string, ExemplarPoint[]>();
  const cache = new Map<string, Promise<JaegerTrace | null>>();
  const fetchTrace = (id: string) => {
    let p = cache.get(id);
    if (!p) cache.set(id, (p = api.trace(id, signal).catch(() => null)));
    return p;
  };
  let next = 0;
  const worker = async () => {
    while (next < Math.min(jobs.length, EXEMPLAR_FETCHES) && !signal.aborted) {
      const { op, traceID } = jobs[next++];
      const raw = await fetchTrace(traceID);
      if (!raw) continue;
      const t = buildTrace(raw);
      // The operation's span in the exemplar: the longest one, which is what the bucket counted.
      let best = -1;
      for (const s of t.spans) if (s.service === op.service && s.operation === op.operation && (best < 0 || s.duration > t.spans[best].duration)) best = s.index;
      if (best < 0) continue;
      const s = t.spans[best];
      const list = out.get(op.key) ?? [];
      list.push({ traceID: t.traceID, spanID: s.spanID, ago: Math.max(0, (takenAt * 1000 - s.end) / 1e6), durationMs: s.duration / 1000, error: s.error });
      out.set(op.key, list);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return out;
}

function OperationCard({ op, windowSeconds, exemplars }: { op: OperationRed; windowSeconds: number; exemplars: ExemplarPoint[] }) {
  const t = op.total;
  const ms = (v: number | null) => (v === null ? '-' : fmtDuration(v * 1000));
  return (
    <section class="red-card" data-operation={op.operation} aria-label={`${op.service}: ${op.operation}`}>
      <header>
        <h3>
          <span class="svc-chip" style={{ backgroundColor: serviceColor(op.service) }} />
          {op.operation}
        </h3>
        <span class="muted kind">{op.spanKind}</span>
      </header>
      <dl class="red-summary">
        <div>
          <dt>Rate</dt>
          <dd>{t.ratePerSecond.toFixed(t.ratePerSecond >= 10 ? 1 : 2)}/s</dd>
        </div>
        <div>
          <dt>Errors</dt>
          <dd class={t.errors ? 'errors' : ''}>{fmtPercent(t.errorRatio)}</dd>
        </div>
        <div>
          <dt>p50</dt>
          <dd>{ms(t.p50Ms)}</dd>
        </div>
        <div>
          <dt>p90</dt>
          <dd>{ms(t.p90Ms)}</dd>
        </div>
        <div>
          <dt>p99</dt>
          <dd>{ms(t.p99Ms)}</dd>
        </div>
        <div>
          <dt>Calls</dt>
          <dd>{t.calls.toLocaleString('en')}</dd>
        </div>
      </dl>
      <div class="red-charts">
        <BarChart title="Rate" points={op.points} value={(p) => p.rate} windowSeconds={windowSeconds} fmt={(v) => `${+v.toPrecision(3)}/s`} />
        <BarChart title="Error ratio" points={op.points} value={(p) => p.errorRatio} windowSeconds={windowSeconds} fmt={fmtPercent} max={0.01} bad />
        <LatencyChart op={op} windowSeconds={windowSeconds} exemplars={exemplars} />
      </div>
      {exemplars.length > 0 && (
        <p class="exemplar-links">
          Exemplars:{' '}
          {exemplars.map((e) => (
            <a href={`/trace/${e.traceID}?span=${e.spanID}`} onClick={linkClick} class={e.error ? 'errors' : ''}>
              {fmtDuration(e.durationMs * 1000)}
            </a>
          ))}
        </p>
      )}
    </section>
  );
}

const W = 300;
const H = 120;
const PAD = { l: 50, r: 8, t: 18, b: 18 };

function Axes({ title, top, fmt, windowSeconds }: { title: string; top: number; fmt: (v: number) => string; windowSeconds: number }) {
  return (
    <>
      <text x={PAD.l} y={11} class="chart-title">
        {title}
      </text>
      <line x1={PAD.l} y1={H - PAD.b} x2={W - PAD.r} y2={H - PAD.b} class="axis" />
      <line x1={PAD.l} y1={PAD.t} x2={PAD.l} y2={H - PAD.b} class="axis" />
      <text x={PAD.l - 4} y={PAD.t + 4} class="tick" text-anchor="end">
        {fmt(top)}
      </text>
      <text x={PAD.l - 4} y={H - PAD.b} class="tick" text-anchor="end">
        0
      </text>
      <text x={PAD.l} y={H - 4} class="tick">
        -{windowSeconds >= 120 ? `${windowSeconds / 60}m` : `${windowSeconds}s`}
      </text>
      <text x={W - PAD.r} y={H - 4} class="tick" text-anchor="end">
        now
      </text>
    </>
  );
}

/** One value per bucket as bars; `bad` colours non-zero bars as errors. */
function BarChart(props: {
  title: string;
  points: RedPoint[];
  value: (p: RedPoint) => number | null;
  windowSeconds: number;
  fmt: (v: number) => string;
  /** The smallest axis top, so that tiny values do not fill the chart. */
  max?: number;
  bad?: boolean;
}) {
  const vals = props.points.map(props.value);
  const { top } = niceScale(Math.max(props.max ?? 0, ...vals.map((v) => v ?? 0)));
  const x = linear(props.windowSeconds, 0, PAD.l, W - PAD.r);
  const y = linear(0, top, H - PAD.b, PAD.t);
  return (
    <svg class="red-chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${props.title} per bucket`}>
      <Axes title={props.title} top={top} fmt={props.fmt} windowSeconds={props.windowSeconds} />
      {props.points.map((p, i) => {
        const v = vals[i];
        if (v === null) return null;
        const x0 = x(p.fromAgo) + 1;
        const x1 = x(p.toAgo) - 1;
        return (
          <rect x={x0} y={y(v)} width={Math.max(1, x1 - x0)} height={Math.max(0, y(0) - y(v))} class={props.bad && v > 0 ? 'bar err' : 'bar'}>
            <title>{`${props.fmt(v)} (${p.calls} calls, ${p.errors} errors) from ${p.fromAgo}s to ${p.toAgo}s ago`}</title>
          </rect>
        );
      })}
    </svg>
  );
}

/** Mean latency per bucket, the window's p50/p90/p99 as lines, and exemplar traces as dots. */
function LatencyChart({ op, windowSeconds, exemplars }: { op: OperationRed; windowSeconds: number; exemplars: ExemplarPoint[] }) {
  const t = op.total;
  const quantiles: [string, number | null][] = [
    ['p50', t.p50Ms],
    ['p90', t.p90Ms],
    ['p99', t.p99Ms],
  ];
  const maxV = Math.max(0, ...op.points.map((p) => p.meanMs ?? 0), ...quantiles.map(([, v]) => v ?? 0), ...exemplars.map((e) => e.durationMs));
  const { top } = niceScale(maxV);
  const x = linear(windowSeconds, 0, PAD.l, W - PAD.r);
  const y = linear(0, top, H - PAD.b, PAD.t);
  const fmt = (v: number) => fmtDuration(v * 1000);
  const pts = op.points.filter((p) => p.meanMs !== null);
  const path = pts.map((p, i) => `${i ? 'L' : 'M'} ${((x(p.fromAgo) + x(p.toAgo)) / 2).toFixed(1)} ${y(p.meanMs!).toFixed(1)}`).join(' ');
  const sorted = useMemo(() => [...exemplars].sort((a, b) => b.ago - a.ago), [exemplars]);
  return (
    <svg class="red-chart latency" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Latency">
      <Axes title="Latency: mean, p50/p90/p99, exemplars" top={top} fmt={fmt} windowSeconds={windowSeconds} />
      {quantiles.map(([name, v]) =>
        v === null ? null : (
          <g class={`quantile ${name}`}>
            <line x1={PAD.l} x2={W - PAD.r} y1={y(v)} y2={y(v)} />
            <text x={W - PAD.r - 2} y={y(v) - 2} text-anchor="end" class="tick">
              {name}
            </text>
            <title>{`${name} over the window: ${fmt(v)}`}</title>
          </g>
        ),
      )}
      {path && <path d={path} class="mean" />}
      {pts.map((p) => (
        <circle cx={(x(p.fromAgo) + x(p.toAgo)) / 2} cy={y(p.meanMs!)} r={2} class="mean-dot">
          <title>{`mean ${fmt(p.meanMs!)} over ${p.calls} calls, ${p.fromAgo}s to ${p.toAgo}s ago`}</title>
        </circle>
      ))}
      {sorted.map((e) => (
        <a href={`/trace/${e.traceID}?span=${e.spanID}`} onClick={linkClick as never} class="exemplar" aria-label={`Exemplar trace ${e.traceID}, ${fmt(e.durationMs)}`}>
          <circle cx={x(Math.min(windowSeconds, e.ago))} cy={y(e.durationMs)} r={4} class={e.error ? 'exemplar-dot err' : 'exemplar-dot'} data-trace={e.traceID}>
            <title>{`Exemplar: ${fmt(e.durationMs)}${e.error ? ', failed' : ''} (trace ${e.traceID}); click to open`}</title>
          </circle>
        </a>
      ))}
    </svg>
  );
}
