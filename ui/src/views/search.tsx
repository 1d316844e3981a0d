import { useEffect, useMemo, useState } from 'preact/hooks';
import * as api from '../api';
import { Empty, ErrorState, Loading } from '../components';
import { fmtAgo, fmtDuration, fmtTime, serviceColor } from '../format';
import { formFrom, LOOKBACKS, toParams, toQuery, toTraceQLParams, type Form } from '../searchform';
import { linkClick, navigate, type Location } from '../router';
import { summarize, summarizeTempo, type TraceSummary } from '../summary';

const TRACEQL_EXAMPLES = [
  '{ status = error }',
  '{ resource.service.name = "frontend" && duration > 100ms }',
  '{ span.http.response.status_code >= 500 }',
  '{ .db.system.name = "postgresql" } | count() > 2',
];

type Results = { state: 'idle' } | { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; traces: TraceSummary[]; ms: number };

export function SearchView({ loc }: { loc: Location }) {
  const urlForm = useMemo(() => formFrom(loc.query), [loc.query.toString()]);
  const [form, setForm] = useState<Form>(urlForm);
  const [services, setServices] = useState<string[] | null>(null);
  const [servicesError, setServicesError] = useState<unknown>(null);
  const [ops, setOps] = useState<string[]>([]);
  const [results, setResults] = useState<Results>({ state: 'idle' });
  const [invalid, setInvalid] = useState('');
  const [picked, setPicked] = useState<string[]>([]);
  const [reload, setReload] = useState(0);
  const [queryError, setQueryError] = useState('');

  useEffect(() => setForm(urlForm), [urlForm]);

  useEffect(() => {
    const ac = new AbortController();
    setServicesError(null);
    api
      .services(ac.signal)
      .then(setServices)
      .catch((e) => e.name !== 'AbortError' && setServicesError(e));
    return () => ac.abort();
  }, [reload]);

  useEffect(() => {
    if (!form.service) return setOps([]);
    const ac = new AbortController();
    api
      .operations(form.service, ac.signal)
      .then(setOps)
      .catch(() => setOps([]));
    return () => ac.abort();
  }, [form.service]);

  // The URL is the source of truth: a search runs whenever it names a service or a query.
  useEffect(() => {
    const traceql = urlForm.mode === 'traceql';
    if (traceql ? !urlForm.q.trim() : !urlForm.service) return setResults({ state: 'idle' });
    const p = traceql ? toTraceQLParams(urlForm, Date.now()) : toParams(urlForm, Date.now());
    if (typeof p === 'string') {
      setInvalid(p);
      return;
    }
    setInvalid('');
    setQueryError('');
    const ac = new AbortController();
    setResults({ state: 'loading' });
    const t0 = performance.now();
    const run: Promise<TraceSummary[]> =
      'q' in p ? api.searchTraceQL(p, ac.signal).then((ts) => ts.map(summarizeTempo)) : api.searchTraces(p, ac.signal).then((ts) => ts.map(summarize));
    run
      .then((traces) => setResults({ state: 'done', traces, ms: performance.now() - t0 }))
      .catch((e) => {
        if (e.name === 'AbortError') return;
        // A query the server cannot parse is the user's to fix: say so under the box.
        if (traceql && e instanceof api.ApiError && e.kind === 'badrequest') {
          setQueryError(e.message);
          setResults({ state: 'idle' });
        } else setResults({ state: 'error', error: e });
      });
    return () => ac.abort();
  }, [urlForm, reload]);

  useEffect(() => {
    if (results.state === 'done') requestAnimationFrame(() => performance.mark('faultline:search-rendered'));
  }, [results]);

  const set = (k: keyof Form) => (e: Event) => {
    const v = (e.currentTarget as HTMLInputElement).value;
    setForm((f) => ({ ...f, [k]: v, ...(k === 'service' ? { operation: '' } : {}) }));
  };
  const submit = (e: Event) => {
    e.preventDefault();
    const p = form.mode === 'traceql' ? toTraceQLParams(form, Date.now()) : toParams(form, Date.now());
    if (typeof p === 'string') return setInvalid(p);
    setInvalid('');
    const url = `/search?${toQuery(form)}`;
    if (url === location.pathname + location.search) setReload((r) => r + 1);
    else navigate(url);
  };

  if (servicesError) return <ErrorState error={servicesError} onRetry={() => setReload((r) => r + 1)} />;
  if (services && services.length === 0)
    return (
      <Empty title="No traces stored yet">
        <p>
          Send spans over OTLP (gRPC on port 4317, HTTP <code>POST /v1/traces</code> on port 4318) or run <code>faultline demo</code>{' '}
          to generate some, then reload this page.
        </p>
        <button type="button" onClick={() => setReload((r) => r + 1)}>
          Reload
        </button>
      </Empty>
    );

  const sorted = results.state === 'done' ? sortResults(results.traces, form.sort) : [];
  const traceql = form.mode === 'traceql';
  const setMode = (mode: Form['mode']) => {
    setInvalid('');
    setQueryError('');
    setForm((f) => ({ ...f, mode }));
  };
  return (
    <div class="search-layout">
      <form class="search-form" onSubmit={submit} aria-label="Search traces">
        <div class="mode-switch" role="radiogroup" aria-label="Search with">
          <button type="button" role="radio" aria-checked={!traceql} class={traceql ? '' : 'active'} onClick={() => setMode('form')}>
            Service
          </button>
          <button type="button" role="radio" aria-checked={traceql} class={traceql ? 'active' : ''} onClick={() => setMode('traceql')}>
            TraceQL
          </button>
        </div>
        {traceql ? (
          <label>
            TraceQL query
            <textarea
              name="q"
              rows={5}
              value={form.q}
              spellcheck={false}
              aria-invalid={queryError ? true : undefined}
              aria-describedby={queryError ? 'traceql-error' : undefined}
              placeholder={TRACEQL_EXAMPLES[0]}
              onInput={(e) => setForm((f) => ({ ...f, q: (e.currentTarget as HTMLTextAreaElement).value }))}
              onKeyDown={(e) => {
                // Ctrl/Cmd+Enter runs the query; plain Enter is a new line.
                if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) submit(e);
              }}
            />
          </label>
        ) : null}
        {traceql && queryError && (
          <p class="invalid query-error" id="traceql-error" role="alert">
            {queryError}
          </p>
        )}
        {traceql && (
          <details class="traceql-help">
            <summary>Examples</summary>
            <ul>
              {TRACEQL_EXAMPLES.map((x) => (
                <li>
                  <button type="button" class="link" onClick={() => setForm((f) => ({ ...f, q: x }))}>
                    <code>{x}</code>
                  </button>
                </li>
              ))}
            </ul>
          </details>
        )}
        {!traceql && (<>
        <label>
          Service
          <select name="service" value={form.service} onChange={set('service')} required>
            <option value="">{services ? 'Choose a service' : 'Loading…'}</option>
            {(services ?? []).map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Operation
          <select name="operation" value={form.operation} onChange={set('operation')}>
            <option value="">All operations</option>
            {ops.map((o) => (
              <option value={o}>{o}</option>
            ))}
          </select>
        </label>
        <label>
          Tags
          <input name="tags" value={form.tags} onInput={set('tags')} placeholder='http.response.status_code=500 error=true' spellcheck={false} />
        </label>
        <div class="row2">
          <label>
            Min duration
            <input name="minDuration" value={form.minDuration} onInput={set('minDuration')} placeholder="e.g. 100ms" />
          </label>
          <label>
            Max duration
            <input name="maxDuration" value={form.maxDuration} onInput={set('maxDuration')} placeholder="e.g. 2s" />
          </label>
        </div>
        </>)}
        <label>
          Time range
          <select name="lookback" value={form.lookback} onChange={set('lookback')}>
            {LOOKBACKS.map(([v, l]) => (
              <option value={v}>{l}</option>
            ))}
          </select>
        </label>
        {form.lookback === 'custom' && (
          <div class="row2">
            <label>
              From
              <input type="datetime-local" step="1" name="start" value={form.start} onInput={set('start')} />
            </label>
            <label>
              To
              <input type="datetime-local" step="1" name="end" value={form.end} onInput={set('end')} />
            </label>
          </div>
        )}
        <label>
          Limit
          <input name="limit" type="number" min="1" max="1500" value={form.limit} onInput={set('limit')} />
        </label>
        {invalid && (
          <p class="invalid" role="alert">
            {invalid}
          </p>
        )}
        <button type="submit" class="primary">
          Find traces
        </button>
      </form>
      <section class="results" aria-label="Results">
        {results.state === 'idle' && (
          <Empty title={queryError ? 'The query has an error' : 'Search traces'}>
            <p>
              {queryError
                ? 'Fix the query (the message under the box says where) and press Find traces.'
                : traceql
                  ? 'Write a TraceQL query and press Find traces (or Ctrl+Enter). The URL keeps the query, so you can share it.'
                  : 'Pick a service and press Find traces. The URL keeps the search, so you can share it.'}
            </p>
          </Empty>
        )}
        {results.state === 'loading' && <Loading what="traces" />}
        {results.state === 'error' && <ErrorState error={results.error} onRetry={() => setReload((r) => r + 1)} />}
        {results.state === 'done' && results.traces.length === 0 && (
          <Empty title="No traces match">
            <p>{traceql ? 'Widen the time range or loosen the query’s conditions.' : 'Widen the time range, lower the minimum duration or remove tag filters.'}</p>
          </Empty>
        )}
        {results.state === 'done' && results.traces.length > 0 && (
          <>
            <Scatter traces={results.traces} />
            <div class="results-bar">
              <span>
                {results.traces.length} trace{results.traces.length === 1 ? '' : 's'}
              </span>
              <label>
                Sort
                <select
                  value={form.sort}
                  onChange={(e) => {
                    const f = { ...urlForm, sort: (e.currentTarget as HTMLSelectElement).value };
                    navigate(`/search?${toQuery(f)}`, true);
                  }}
                >
                  <option value="recent">Most recent</option>
                  <option value="longest">Longest first</option>
                  <option value="shortest">Shortest first</option>
                  <option value="spans">Most spans</option>
                  <option value="errors">Most errors</option>
                </select>
              </label>
              <button
                type="button"
                disabled={picked.length !== 2}
                title="Tick two traces to compare them"
                onClick={() => navigate(`/compare?a=${picked[0]}&b=${picked[1]}`)}
              >
                Compare selected ({picked.length}/2)
              </button>
            </div>
            <ol class="result-list">
              {sorted.map((t) => (
                <ResultRow
                  t={t}
                  maxDuration={Math.max(...results.traces.map((x) => x.duration))}
                  picked={picked.includes(t.traceID)}
                  onPick={(on) => setPicked((p) => (on ? [...p.filter((x) => x !== t.traceID), t.traceID].slice(-2) : p.filter((x) => x !== t.traceID)))}
                />
              ))}
            </ol>
          </>
        )}
      </section>
    </div>
  );
}

function sortResults(ts: TraceSummary[], how: string): TraceSummary[] {
  const s = [...ts];
  const by: Record<string, (a: TraceSummary, b: TraceSummary) => number> = {
    recent: (a, b) => b.start - a.start,
    longest: (a, b) => b.duration - a.duration,
    shortest: (a, b) => a.duration - b.duration,
    spans: (a, b) => (b.spanCount ?? b.matched ?? 0) - (a.spanCount ?? a.matched ?? 0),
    errors: (a, b) => (b.errorCount ?? 0) - (a.errorCount ?? 0),
  };
  return s.sort(by[how] ?? by.recent);
}

function ResultRow({ t, maxDuration, picked, onPick }: { t: TraceSummary; maxDuration: number; picked: boolean; onPick: (on: boolean) => void }) {
  const href = `/trace/${t.traceID}`;
  return (
    <li class={`result ${t.errorCount ? 'has-errors' : ''}`}>
      <input type="checkbox" checked={picked} aria-label={`Select ${t.traceID} for comparison`} onChange={(e) => onPick((e.currentTarget as HTMLInputElement).checked)} />
      <a href={href} onClick={linkClick} class="result-main">
        <span class="result-title">
          <span class="svc-chip" style={{ backgroundColor: serviceColor(t.rootService) }} />
          <strong>{t.rootService}</strong>: {t.rootOperation}
        </span>
        <span class="result-id">{t.traceID.slice(0, 12)}</span>
        <span class="result-bar">
          <span style={{ width: `${maxDuration ? (100 * t.duration) / maxDuration : 0}%` }} />
        </span>
        <span class="result-meta">
          <span class="dur">{fmtDuration(t.duration)}</span>
          {t.spanCount !== null && (
            <span>
              {t.spanCount} span{t.spanCount === 1 ? '' : 's'}
            </span>
          )}
          {t.matched !== undefined && (
            <span class="matched">
              {t.matched} matched span{t.matched === 1 ? '' : 's'}
            </span>
          )}
          {!!t.errorCount && (
            <span class="errors">
              {t.errorCount} error{t.errorCount === 1 ? '' : 's'}
            </span>
          )}
          <span title={fmtTime(t.start)}>{fmtAgo(t.start)}</span>
        </span>
        <span class="result-services">
          {t.services.map(([s, n]) => (
            <span class="svc-tag">
              <span class="svc-chip" style={{ backgroundColor: serviceColor(s) }} />
              {s} ({n})
            </span>
          ))}
        </span>
      </a>
    </li>
  );
}

/** Duration over start time, one dot per trace (red when it has errors); click opens it. */
function Scatter({ traces }: { traces: TraceSummary[] }) {
  const W = 800;
  const H = 160;
  const pad = { l: 56, r: 12, t: 10, b: 24 };
  const xs = traces.map((t) => t.start);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  const yMax = Math.max(1, ...traces.map((t) => t.duration));
  const sx = (v: number) => pad.l + (x1 > x0 ? ((v - x0) / (x1 - x0)) * (W - pad.l - pad.r) : (W - pad.l - pad.r) / 2);
  const sy = (v: number) => H - pad.b - (v / yMax) * (H - pad.t - pad.b);
  const size = (t: TraceSummary) => t.spanCount ?? t.matched ?? 1;
  const maxSpans = Math.max(1, ...traces.map(size));
  return (
    <svg class="scatter" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="Trace duration over time">
      <line x1={pad.l} y1={H - pad.b} x2={W - pad.r} y2={H - pad.b} class="axis" />
      <line x1={pad.l} y1={pad.t} x2={pad.l} y2={H - pad.b} class="axis" />
      {[0, 0.5, 1].map((f) => (
        <text x={pad.l - 6} y={sy(yMax * f) + 4} class="tick" text-anchor="end">
          {fmtDuration(yMax * f)}
        </text>
      ))}
      <text x={pad.l} y={H - 6} class="tick">
        {fmtTime(x0).slice(11, 19)}
      </text>
      <text x={W - pad.r} y={H - 6} class="tick" text-anchor="end">
        {fmtTime(x1).slice(11, 19)}
      </text>
      {traces.map((t) => (
        <a href={`/trace/${t.traceID}`} onClick={linkClick as never}>
          <circle
            cx={sx(t.start)}
            cy={sy(t.duration)}
            r={3 + 5 * Math.sqrt(size(t) / maxSpans)}
            class={t.errorCount ? 'dot err' : 'dot'}
          >
            <title>{`${t.rootService}: ${t.rootOperation}\n${fmtDuration(t.duration)}${t.spanCount !== null ? `, ${t.spanCount} spans` : ''}${t.matched !== undefined ? `, ${t.matched} matched` : ''}${t.errorCount ? `, ${t.errorCount} errors` : ''}`}</title>
          </circle>
        </a>
      ))}
    </svg>
  );
}
