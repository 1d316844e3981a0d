import { useEffect, useState } from 'preact/hooks';
import * as api from '../api';
import { Empty, ErrorState, Loading } from '../components';
import { fmtDuration, fmtTime, serviceColor } from '../format';
import { attributeBars, fmtPercent, incidentAge, incidentTitle, rankedCauses, sortIncidents, symptomText, type CauseRow } from '../incidents';
import { linkClick, navigate, type Location } from '../router';

/** How often the list refreshes while open: incidents open and resolve on their own. */
const REFRESH_MS = 15_000;

/** Ranges the list offers to analyze on demand, ending now. */
const ANALYZE: [string, number][] = [
  ['5 min', 5 * 60e3],
  ['15 min', 15 * 60e3],
  ['1 hour', 3600e3],
];

const rangeUrl = (startMs: number, endMs: number) => `/incidents/range?start=${Math.floor(startMs * 1000)}&end=${Math.floor(endMs * 1000)}`;

type Load<T> = { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; value: T };

/** Incidents: the list (open first), and one incident with its symptoms and ranked causes. */
export function IncidentsView({ loc }: { loc: Location }) {
  const id = decodeURIComponent(loc.path.slice('/incidents'.length).replace(/^\//, ''));
  if (id === 'range') return <RangeAnalysis start={Number(loc.query.get('start'))} end={Number(loc.query.get('end'))} />;
  return id ? <IncidentDetail id={id} /> : <IncidentList status={(loc.query.get('status') as 'open' | 'resolved' | '') ?? ''} />;
}

function IncidentList({ status }: { status: 'open' | 'resolved' | '' }) {
  const [load, setLoad] = useState<Load<api.Incident[]>>({ state: 'loading' });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    api
      .incidents(status, 100, ac.signal)
      .then((value) => setLoad({ state: 'done', value: sortIncidents(value) }))
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    const t = setTimeout(() => setTick((x) => x + 1), REFRESH_MS);
    return () => {
      ac.abort();
      clearTimeout(t);
    };
  }, [status, tick]);
  const filters: [typeof status, string][] = [
    ['', 'All'],
    ['open', 'Open'],
    ['resolved', 'Resolved'],
  ];
  return (
    <div class="incidents-page">
      <div class="map-bar">
        <div class="mode-switch" role="radiogroup" aria-label="Show incidents">
          {filters.map(([v, l]) => (
            <button
              type="button"
              role="radio"
              aria-checked={status === v}
              class={status === v ? 'active' : ''}
              onClick={() => {
                setLoad({ state: 'loading' });
                navigate(v ? `/incidents?status=${v}` : '/incidents', true);
              }}
            >
              {l}
            </button>
          ))}
        </div>
        <span class="muted">Refreshes every {REFRESH_MS / 1000}s.</span>
        <span class="spacer" />
        <span class="analyze">
          Analyze the last{' '}
          {ANALYZE.map(([label, ms]) => (
            <button type="button" onClick={() => navigate(rangeUrl(Date.now() - ms, Date.now()))} title={`Symptoms and causes in the last ${label} against the ${label} before`}>
              {label}
            </button>
          ))}
        </span>
      </div>
      {load.state === 'loading' && <Loading what="incidents" />}
      {load.state === 'error' && <ErrorState error={load.error} onRetry={() => setTick((x) => x + 1)} />}
      {load.state === 'done' && load.value.length === 0 && (
        <Empty title={status === 'resolved' ? 'No resolved incidents' : status === 'open' ? 'No open incidents' : 'No incidents'}>
          <p>
            An incident opens when an operation's latency, error ratio or throughput leaves its learned baseline. The detector needs a few
            minutes of normal traffic to learn one; the Services page shows the current RED metrics.
          </p>
        </Empty>
      )}
      {load.state === 'done' && load.value.length > 0 && (
        <ol class="incident-list">
          {load.value.map((i) => {
            const top = rankedCauses(i.rootCauses ?? [])[0];
            return (
              <li class={`incident ${i.status}`} data-incident={i.id}>
                <a href={`/incidents/${encodeURIComponent(i.id)}`} onClick={linkClick} class="incident-main">
                  <span class={`status-badge ${i.status}`}>{i.status}</span>
                  <strong class="incident-title">{incidentTitle(i)}</strong>
                  <span class="muted">
                    opened {fmtTime(i.openedAt)} · {incidentAge(i, Date.now())}
                  </span>
                  <span class="incident-meta">
                    {(i.symptoms ?? []).length} symptom{(i.symptoms ?? []).length === 1 ? '' : 's'}
                    {top && ` · top cause: ${top.cause.kind}, score ${top.cause.score.toFixed(2)}`}
                  </span>
                </a>
              </li>
            );
          })}
        </ol>
      )}
    </div>
  );
}

function IncidentDetail({ id }: { id: string }) {
  const [load, setLoad] = useState<Load<api.Incident>>({ state: 'loading' });
  const [retry, setRetry] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    setLoad({ state: 'loading' });
    api
      .incident(id, ac.signal)
      .then((value) => setLoad({ state: 'done', value }))
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [id, retry]);
  const back = (
    <a href="/incidents" onClick={linkClick}>
      ← All incidents
    </a>
  );
  if (load.state === 'loading') return <Loading what={`incident ${id}`} />;
  if (load.state === 'error')
    return (
      <>
        {back}
        <ErrorState error={load.error} onRetry={() => setRetry((r) => r + 1)} />
      </>
    );
  const inc = load.value;
  const causes = rankedCauses(inc.rootCauses ?? []);
  return (
    <div class="incident-page">
      {back}
      <header class="incident-header">
        <h1>
          <span class={`status-badge ${inc.status}`}>{inc.status}</span> {incidentTitle(inc)}
        </h1>
        <p class="muted">
          Incident <code>{inc.id}</code> · opened {fmtTime(inc.openedAt)}
          {inc.resolvedAt !== null && ` · resolved ${fmtTime(inc.resolvedAt)}`} · {incidentAge(inc, Date.now())}
        </p>
      </header>
      <Findings symptoms={inc.symptoms ?? []} causes={causes} />
    </div>
  );
}

/** Symptoms (baseline → observed) and the ranked causes, for an incident or a range. */
function Findings({ symptoms, causes }: { symptoms: api.Symptom[]; causes: CauseRow[] }) {
  return (
    <>
      <section>
        <h2>Symptoms</h2>
        {symptoms.length === 0 ? (
          <p class="muted">No symptoms listed.</p>
        ) : (
          <table class="stats symptoms">
            <thead>
              <tr>
                <th scope="col">Where</th>
                <th scope="col">Signal</th>
                <th scope="col">Baseline → observed</th>
                <th scope="col">Change</th>
                <th scope="col">Detected</th>
              </tr>
            </thead>
            <tbody>
              {symptoms.map((s) => {
                const t = symptomText(s);
                return (
                  <tr>
                    <td>
                      <a href={`/services?service=${encodeURIComponent(s.service)}`} onClick={linkClick}>
                        {t.where}
                      </a>
                    </td>
                    <td>{t.what}</td>
                    <td>{t.change}</td>
                    <td class="errors">{t.factor}</td>
                    <td>{fmtTime(s.detectedAt).slice(11)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </section>
      <section>
        <h2>Likely causes, ranked</h2>
        {causes.length === 0 ? (
          <p class="muted">No cause ranked yet: the ranking needs traces from the window. Reload in a moment.</p>
        ) : (
          <ol class="cause-list">
            {causes.map((c) => (
              <CauseCard row={c} />
            ))}
          </ol>
        )}
      </section>
    </>
  );
}

/** `/api/rca` for a time range: what deviated in it against the range before, and why. */
function RangeAnalysis({ start, end }: { start: number; end: number }) {
  const [load, setLoad] = useState<Load<api.WindowAnalysis>>({ state: 'loading' });
  const [retry, setRetry] = useState(0);
  const valid = Number.isFinite(start) && Number.isFinite(end) && end > start;
  useEffect(() => {
    if (!valid) return;
    const ac = new AbortController();
    setLoad({ state: 'loading' });
    api
      .rca(start, end, ac.signal)
      .then((value) => setLoad({ state: 'done', value }))
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [start, end, retry]);
  const back = (
    <a href="/incidents" onClick={linkClick}>
      ← All incidents
    </a>
  );
  if (!valid)
    return (
      <>
        {back}
        <Empty title="No time range to analyze">
          <p>Pick one of the ranges on the Incidents page; the URL takes start and end in microseconds since the epoch.</p>
        </Empty>
      </>
    );
  return (
    <div class="incident-page">
      {back}
      <header class="incident-header">
        <h1>
          Analysis of {fmtTime(start)} to {fmtTime(end).slice(11)}
        </h1>
        <p class="muted">
          Compared with the {fmtDuration(end - start)} before it.
          {load.state === 'done' && load.value.tracesSampled && ` Traces read: ${load.value.tracesSampled[0]} in the range, ${load.value.tracesSampled[1]} before.`}
        </p>
      </header>
      {load.state === 'loading' && <Loading what="the analysis (it reads traces from the store)" />}
      {load.state === 'error' && <ErrorState error={load.error} onRetry={() => setRetry((r) => r + 1)} />}
      {load.state === 'done' &&
        (load.value.symptoms.length === 0 && load.value.rootCauses.length === 0 ? (
          <Empty title="Nothing deviated in this range">
            <p>Its rate, errors and latency match the range before it. Try a longer range, or one that starts before the trouble did.</p>
          </Empty>
        ) : (
          <Findings symptoms={load.value.symptoms} causes={rankedCauses(load.value.rootCauses)} />
        ))}
    </div>
  );
}

function CauseCard({ row }: { row: CauseRow }) {
  const c = row.cause;
  const ev = c.evidence ?? { traceIDs: [], spans: [], edges: [], attributes: [], facts: [] };
  const bars = attributeBars(c);
  return (
    <li class={`cause rank-${row.rank}`} data-rank={row.rank} data-kind={c.kind}>
      <header>
        <span class="rank">#{row.rank}</span>
        <span class="svc-chip" style={{ backgroundColor: serviceColor(c.service) }} />
        <strong class="cause-label">{row.label}</strong>
        <span class="muted kind">{c.kind}</span>
        <span class="score" title={`score ${c.score}`}>
          <span class="score-bar">
            <span style={{ width: `${(row.relative * 100).toFixed(1)}%` }} />
          </span>
          {c.score.toFixed(2)}
        </span>
      </header>
      <p class="explanation">{c.explanation}</p>
      {(ev.facts ?? []).length > 0 && (
        <ul class="facts-list">
          {ev.facts.map((f) => (
            <li>{f}</li>
          ))}
        </ul>
      )}
      {bars.length > 0 && (
        <div class="attr-compare" aria-label="Attribute values in slow or failed traces compared with normal ones">
          <div class="attr-legend">
            <span class="swatch bad" /> slow or failed traces <span class="swatch normal" /> normal traces
          </div>
          {bars.map((b) => (
            <div class="attr-row">
              <span class="attr-label">{b.label}</span>
              <span class="attr-bars">
                <span class="attr-bar bad" style={{ width: `${(b.bad * 100).toFixed(1)}%` }} title={`${fmtPercent(b.bad)} of slow or failed traces`} />
                <span class="attr-bar normal" style={{ width: `${(b.normal * 100).toFixed(1)}%` }} title={`${fmtPercent(b.normal)} of normal traces`} />
              </span>
              <span class="attr-nums">
                {fmtPercent(b.bad)} vs {fmtPercent(b.normal)}
              </span>
            </div>
          ))}
        </div>
      )}
      {(ev.edges ?? []).length > 0 && (
        <p class="evidence-edges">
          Calls:{' '}
          {ev.edges.map((e) => (
            <span class="edge-chip">
              {e.client} → {e.server}
            </span>
          ))}
        </p>
      )}
      {((ev.traceIDs ?? []).length > 0 || (ev.spans ?? []).length > 0) && (
        <div class="evidence-traces">
          Evidence:{' '}
          {(ev.spans ?? []).map((s) => (
            <a href={`/trace/${encodeURIComponent(s.traceID)}?span=${encodeURIComponent(s.spanID)}`} onClick={linkClick} class="evidence-link">
              {s.service}: {s.operation} <code>{s.traceID.slice(0, 8)}</code>
            </a>
          ))}
          {(ev.traceIDs ?? [])
            .filter((t) => !(ev.spans ?? []).some((s) => s.traceID === t))
            .map((t) => (
              <a href={`/trace/${encodeURIComponent(t)}`} onClick={linkClick} class="evidence-link">
                trace <code>{t.slice(0, 12)}</code>
              </a>
            ))}
        </div>
      )}
      <p class="cause-links">
        <a href={`/services?service=${encodeURIComponent(c.service)}`} onClick={linkClick}>
          RED of {c.service}
        </a>{' '}
        ·{' '}
        <a href={`/search?service=${encodeURIComponent(c.service)}&lookback=1h`} onClick={linkClick}>
          its traces
        </a>
      </p>
    </li>
  );
}
