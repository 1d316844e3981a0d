import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import * as api from '../api';
import { CopyButton, Empty, ErrorState, Loading, VirtualList } from '../components';
import { fmtDuration, fmtTime, parseDuration, serviceColor } from '../format';
import {
  criticalPath,
  filterActive,
  matchSpans,
  operationStats,
  segmentsBySpan,
  visibleRows,
  withAncestors,
  type OpStats,
  type Segment,
  type SpanFilter,
} from '../layout';
import { attachLogs } from '../logs';
import { buildTrace, type KeyValue, type Span, type Trace } from '../model';
import { navigate, type Location } from '../router';
import { isFullRange, placeInRange, type TimeRange } from '../zoom';
import { FlameGraph } from './flame';
import { LogsPanel, SpanLogs, type LogsLoad } from './logs';
import { Minimap } from './minimap';
import { TimeRuler } from './ruler';

const ROW_H = 24;

type Load = { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; trace: Trace };

export function TraceView({ loc }: { loc: Location }) {
  const id = decodeURIComponent(loc.path.slice('/trace/'.length)).trim();
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [retry, setRetry] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    setLoad({ state: 'loading' });
    performance.clearMarks();
    api
      .trace(id, ac.signal)
      .then((raw) => {
        performance.mark('faultline:trace-parsed');
        const trace = buildTrace(raw);
        performance.mark('faultline:trace-built');
        setLoad({ state: 'done', trace });
      })
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [id, retry]);
  if (!/^[0-9a-fA-F]{1,32}$/.test(id))
    return (
      <Empty title="That is not a trace ID">
        <p>Trace IDs are up to 32 hexadecimal digits. Find traces on the Search page.</p>
      </Empty>
    );
  if (load.state === 'loading') return <Loading what={`trace ${id}`} />;
  if (load.state === 'error') return <ErrorState error={load.error} onRetry={() => setRetry((r) => r + 1)} />;
  if (!load.trace.spans.length)
    return (
      <Empty title="This trace has no spans">
        <p>The server returned the trace without spans; its spans may have been dropped by retention.</p>
      </Empty>
    );
  return <TraceDetail key={load.trace.traceID} trace={load.trace} tab={loc.query.get('view') ?? 'timeline'} initialSpan={loc.query.get('span')} />;
}

const NO_FILTER: SpanFilter = { text: '', service: '', errorsOnly: false, minDuration: 0 };

function TraceDetail({ trace, tab, initialSpan }: { trace: Trace; tab: string; initialSpan: string | null }) {
  const n = trace.spans.length;
  const [collapsed, setCollapsed] = useState(() => new Uint8Array(n));
  const [collapseVersion, setCollapseVersion] = useState(0);
  const [selected, setSelected] = useState<number>(() => {
    const i = initialSpan ? trace.spans.findIndex((s) => s.spanID === initialSpan) : -1;
    return i;
  });
  const [filter, setFilter] = useState<SpanFilter>(NO_FILTER);
  const [filterText, setFilterText] = useState('');
  const [minDurText, setMinDurText] = useState('');
  const [onlyMatches, setOnlyMatches] = useState(false);
  const [showCritical, setShowCritical] = useState(true);
  const [scrollReq, setScrollReq] = useState<{ top: number; seq: number } | null>(null);
  const [viewport, setViewport] = useState({ top: 0, height: 600 });
  const searchRef = useRef<HTMLInputElement>(null);
  const full = useMemo(() => ({ start: trace.start, end: trace.end }), [trace]);
  // The time range the timeline shows (drag across the ruler to zoom).
  const [view, setView] = useState<TimeRange>(full);
  const zoomed = !isFullRange(view, full);
  const [logsLoad, setLogsLoad] = useState<LogsLoad>({ state: 'loading' });
  const [logsRetry, setLogsRetry] = useState(0);
  // Correlated log lines load after the trace is on screen; they never hold up the timeline.
  useEffect(() => {
    const ac = new AbortController();
    setLogsLoad({ state: 'loading' });
    api
      .logs(trace.traceID, ac.signal)
      .then((lines) => setLogsLoad({ state: 'done', logs: attachLogs(trace, lines) }))
      .catch((e) => e.name !== 'AbortError' && setLogsLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [trace, logsRetry]);
  const logsBySpan = logsLoad.state === 'done' ? logsLoad.logs.bySpan : null;

  // The critical path is computed after the first frame: the rows show (and respond) first,
  // and the path's marks follow a moment later on large traces.
  const [critical, setCritical] = useState<(Segment[] | undefined)[] | null>(null);
  useEffect(() => {
    let t = 0;
    // After the next frame has been drawn, not merely after this render.
    const f = requestAnimationFrame(() => (t = window.setTimeout(() => setCritical(segmentsBySpan(criticalPath(trace), trace.spans.length)), 0)));
    return () => {
      cancelAnimationFrame(f);
      clearTimeout(t);
    };
  }, [trace]);
  const matches = useMemo(() => (filterActive(filter) ? matchSpans(trace, filter) : null), [trace, filter]);
  const matchList = useMemo(() => {
    if (!matches) return [];
    const l: number[] = [];
    for (let i = 0; i < matches.length; i++) if (matches[i]) l.push(i);
    return l;
  }, [matches]);
  const keep = useMemo(() => (matches && onlyMatches ? withAncestors(trace, matches) : undefined), [trace, matches, onlyMatches]);
  const rows = useMemo(() => visibleRows(trace, collapsed, keep), [trace, collapseVersion, keep]);
  const rowOf = useMemo(() => {
    const m = new Int32Array(n).fill(-1);
    rows.forEach((s, r) => (m[s] = r));
    return m;
  }, [rows]);

  // Debounce typing in the filter box: matching 100k spans with their tags takes a moment.
  useEffect(() => {
    const t = setTimeout(() => {
      const md = parseDuration(minDurText);
      setFilter((f) => ({ ...f, text: filterText, minDuration: md ?? 0 }));
    }, 150);
    return () => clearTimeout(t);
  }, [filterText, minDurText]);

  useEffect(() => {
    requestAnimationFrame(() => performance.mark('faultline:trace-rendered'));
  }, []);

  // The selected span is part of the URL (?span=), so a link can point at it.
  useEffect(() => {
    const q = new URLSearchParams(location.search);
    if (selected >= 0) q.set('span', trace.spans[selected].spanID);
    else q.delete('span');
    const qs = q.toString();
    history.replaceState(history.state, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
  }, [selected]);

  const scrollToSpan = (i: number) => {
    // Expand collapsed ancestors so the span has a row.
    let p = trace.spans[i].parent;
    let changed = false;
    while (p >= 0) {
      if (collapsed[p]) {
        collapsed[p] = 0;
        changed = true;
      }
      p = trace.spans[p].parent;
    }
    if (changed) setCollapseVersion((v) => v + 1);
    const r = changed ? visibleRows(trace, collapsed, keep).indexOf(i) : rowOf[i];
    if (r < 0) return;
    const top = r * ROW_H;
    if (top < viewport.top || top + ROW_H > viewport.top + viewport.height - ROW_H) {
      setScrollReq((q) => ({ top: Math.max(0, top - viewport.height / 3), seq: (q?.seq ?? 0) + 1 }));
    }
  };
  useEffect(() => {
    if (selected >= 0) requestAnimationFrame(() => scrollToSpan(selected));
  }, []);
  const select = (i: number) => {
    setSelected(i);
    if (i >= 0) scrollToSpan(i);
  };
  const toggle = (i: number, value?: boolean) => {
    if (!trace.spans[i].children.length) return;
    collapsed[i] = value === undefined ? (collapsed[i] ? 0 : 1) : value ? 1 : 0;
    setCollapseVersion((v) => v + 1);
  };
  const setAll = (value: 0 | 1) => {
    const c = new Uint8Array(n);
    if (value) for (let i = 0; i < n; i++) c[i] = trace.spans[i].children.length && trace.spans[i].depth >= 1 ? 1 : 0;
    setCollapsed(c);
    setCollapseVersion((v) => v + 1);
  };
  const jumpMatch = (dir: 1 | -1) => {
    if (!matchList.length) return;
    const cur = selected;
    let next = dir > 0 ? matchList.find((m) => m > cur) : [...matchList].reverse().find((m) => m < cur);
    if (next === undefined) next = dir > 0 ? matchList[0] : matchList[matchList.length - 1];
    select(next);
  };

  // Keyboard navigation (ignored while typing in a field). The listener is registered once
  // and calls the handler of the latest render, so a key pressed right after a state change
  // never acts on stale state.
  const onKeyRef = useRef<(e: KeyboardEvent) => void>(() => {});
  useEffect(() => {
    const listener = (e: KeyboardEvent) => onKeyRef.current(e);
    document.addEventListener('keydown', listener);
    return () => document.removeEventListener('keydown', listener);
  }, []);
  {
    onKeyRef.current = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key === 'Escape' && t === searchRef.current) return searchRef.current?.blur();
      if (t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA')) return;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const r = selected >= 0 ? rowOf[selected] : -1;
      const byRow = (d: number) => {
        const nr = Math.min(rows.length - 1, Math.max(0, r + d));
        if (rows.length) select(rows[nr]);
      };
      switch (e.key) {
        case 'ArrowDown':
        case 'j':
          byRow(r < 0 ? 1 : 1);
          break;
        case 'ArrowUp':
        case 'k':
          byRow(-1);
          break;
        case 'PageDown':
          byRow(Math.floor(viewport.height / ROW_H));
          break;
        case 'PageUp':
          byRow(-Math.floor(viewport.height / ROW_H));
          break;
        case 'Home':
          if (rows.length) select(rows[0]);
          break;
        case 'End':
          if (rows.length) select(rows[rows.length - 1]);
          break;
        case 'ArrowLeft':
        case 'h':
          if (selected < 0) return;
          if (trace.spans[selected].children.length && !collapsed[selected]) toggle(selected, true);
          else if (trace.spans[selected].parent >= 0) select(trace.spans[selected].parent);
          break;
        case 'ArrowRight':
        case 'l':
          if (selected < 0) return;
          if (collapsed[selected]) toggle(selected, false);
          else if (trace.spans[selected].children.length) select(trace.spans[selected].children[0]);
          break;
        case 'Enter':
        case ' ':
          if (selected >= 0) toggle(selected);
          break;
        case 'Escape':
          if (selected < 0 && zoomed) setView(full);
          else setSelected(-1);
          break;
        case 'z':
          if (zoomed) setView(full);
          else if (selected >= 0) setView(spanRange(trace.spans[selected], full));
          break;
        case '/':
          searchRef.current?.focus();
          break;
        case 'n':
          jumpMatch(1);
          break;
        case 'N':
          jumpMatch(-1);
          break;
        default:
          return;
      }
      e.preventDefault();
    };
  }

  const stats = useMemo(() => (tab === 'stats' ? operationStats(trace) : null), [trace, tab === 'stats']);
  const root = trace.spans[trace.roots[0]];
  const errors = useMemo(() => trace.spans.reduce((a, s) => a + (s.error ? 1 : 0), 0), [trace]);
  const maxDepth = useMemo(() => trace.spans.reduce((a, s) => Math.max(a, s.depth), 0), [trace]);
  const setTab = (t: string) => {
    const q = new URLSearchParams(location.search);
    if (t === 'timeline') q.delete('view');
    else q.set('view', t);
    const qs = q.toString();
    navigate(`${location.pathname}${qs ? `?${qs}` : ''}`, true);
  };

  return (
    <div class="trace-page">
      <header class="trace-header">
        <h1>
          <span class="svc-chip" style={{ backgroundColor: serviceColor(root.service) }} />
          {root.service}: {root.operation}
        </h1>
        <dl class="trace-facts">
          <div>
            <dt>Trace ID</dt>
            <dd>
              <code>{trace.traceID}</code> <CopyButton text={trace.traceID} />
            </dd>
          </div>
          <div>
            <dt>Start</dt>
            <dd>{fmtTime(trace.start)}</dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd>{fmtDuration(trace.duration)}</dd>
          </div>
          <div>
            <dt>Spans</dt>
            <dd>{n.toLocaleString('en')}</dd>
          </div>
          <div>
            <dt>Services</dt>
            <dd>{trace.services.length}</dd>
          </div>
          <div>
            <dt>Depth</dt>
            <dd>{maxDepth + 1}</dd>
          </div>
          <div>
            <dt>Errors</dt>
            <dd class={errors ? 'errors' : ''}>{errors}</dd>
          </div>
        </dl>
        <div class="trace-actions">
          <button type="button" onClick={() => downloadJson(trace)}>
            Download JSON
          </button>
          <button type="button" onClick={() => navigate(`/compare?a=${trace.traceID}`)}>
            Compare with…
          </button>
        </div>
        {trace.warnings.length > 0 && (
          <ul class="warnings">
            {trace.warnings.map((w) => (
              <li>{w}</li>
            ))}
          </ul>
        )}
      </header>
      <div class="tabs" role="tablist">
        {[
          ['timeline', 'Timeline'],
          ['flame', 'Flame graph'],
          ['stats', 'Statistics'],
          ['logs', logsLoad.state === 'done' ? `Logs (${logsLoad.logs.rows.length})` : 'Logs'],
        ].map(([k, l]) => (
          <button type="button" role="tab" aria-selected={tab === k} class={tab === k ? 'active' : ''} onClick={() => setTab(k)}>
            {l}
          </button>
        ))}
      </div>
      {tab === 'stats' ? (
        <StatsTable stats={stats ?? []} total={trace.duration} />
      ) : tab === 'logs' ? (
        <LogsPanel
          trace={trace}
          load={logsLoad}
          onRetry={() => setLogsRetry((r) => r + 1)}
          onSelectSpan={(i) => {
            setTab('timeline');
            select(i);
          }}
        />
      ) : (
        <>
          <div class="filter-bar" role="search">
            <input
              ref={searchRef}
              type="search"
              placeholder="Find spans: name, service, attribute (press /)"
              value={filterText}
              onInput={(e) => setFilterText((e.currentTarget as HTMLInputElement).value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter') jumpMatch(e.shiftKey ? -1 : 1);
              }}
              aria-label="Find spans"
            />
            <select
              aria-label="Service"
              value={filter.service}
              onChange={(e) => setFilter((f) => ({ ...f, service: (e.currentTarget as HTMLSelectElement).value }))}
            >
              <option value="">All services</option>
              {trace.services.map((s) => (
                <option value={s}>{s}</option>
              ))}
            </select>
            <label>
              <input type="checkbox" checked={filter.errorsOnly} onChange={(e) => setFilter((f) => ({ ...f, errorsOnly: (e.currentTarget as HTMLInputElement).checked }))} />
              Errors
            </label>
            <input
              class="short"
              placeholder="min duration"
              aria-label="Minimum duration"
              value={minDurText}
              onInput={(e) => setMinDurText((e.currentTarget as HTMLInputElement).value)}
            />
            <label>
              <input type="checkbox" checked={onlyMatches} onChange={(e) => setOnlyMatches((e.currentTarget as HTMLInputElement).checked)} />
              Only matches
            </label>
            {matches && (
              <span class="match-count" aria-live="polite">
                {matchList.length.toLocaleString('en')} match{matchList.length === 1 ? '' : 'es'}
                <button type="button" title="Previous match (N)" onClick={() => jumpMatch(-1)}>
                  ↑
                </button>
                <button type="button" title="Next match (n)" onClick={() => jumpMatch(1)}>
                  ↓
                </button>
              </span>
            )}
            <span class="spacer" />
            {tab !== 'flame' && zoomed && (
              <span class="zoom-state">
                Showing +{fmtDuration(view.start - trace.start)} to +{fmtDuration(view.end - trace.start)}
                <button type="button" class="reset-timeline-zoom" onClick={() => setView(full)} title="Show the whole trace (z)">
                  Reset zoom
                </button>
              </span>
            )}
            <label title="Highlight the critical path">
              <input type="checkbox" checked={showCritical} onChange={(e) => setShowCritical((e.currentTarget as HTMLInputElement).checked)} />
              Critical path
            </label>
            <button type="button" onClick={() => setAll(0)}>
              Expand all
            </button>
            <button type="button" onClick={() => setAll(1)}>
              Collapse all
            </button>
          </div>
          <div class={`trace-body ${selected >= 0 ? 'with-detail' : ''}`}>
            {tab === 'flame' ? (
              <FlameGraph trace={trace} selected={selected} matches={matches} onSelect={setSelected} critical={showCritical ? critical : null} />
            ) : (
              <div class="timeline">
                <TimeRuler trace={trace} view={view} onZoom={setView} />
                <div class="timeline-scroll">
                  <VirtualList
                    count={rows.length}
                    rowHeight={ROW_H}
                    scrollRequest={scrollReq}
                    label="Spans"
                    onScroll={(top, height) => setViewport({ top, height })}
                    renderRow={(r) => {
                      const i = rows[r];
                      return (
                        <SpanRow
                          key={i}
                          view={view}
                          logs={logsBySpan?.get(i)?.length ?? 0}
                          span={trace.spans[i]}
                          collapsed={!!collapsed[i]}
                          selected={i === selected}
                          match={matches ? !!matches[i] : null}
                          critical={showCritical ? critical?.[i] : undefined}
                          onSelect={() => setSelected(i === selected ? -1 : i)}
                          onToggle={() => toggle(i)}
                        />
                      );
                    }}
                  />
                  <Minimap
                    trace={trace}
                    rows={rows}
                    rowHeight={ROW_H}
                    viewport={viewport}
                    matches={matches}
                    onScrollTo={(top) => setScrollReq((q) => ({ top, seq: (q?.seq ?? 0) + 1 }))}
                  />
                </div>
              </div>
            )}
            {selected >= 0 && (
              <SpanDetail
                trace={trace}
                span={trace.spans[selected]}
                critical={critical ? critical[selected] : null}
                onClose={() => setSelected(-1)}
                onSelect={select}
                onZoom={tab === 'flame' ? undefined : () => setView(spanRange(trace.spans[selected], full))}
                logs={<SpanLogs trace={trace} load={logsLoad} span={selected} />}
              />
            )}
          </div>
          <p class="keys">
            Keys: ↑/↓ or j/k move, ←/→ collapse/expand, Enter toggle, / find, n/N next/previous match, z zoom to the span / reset, Esc
            close details. Drag across the time axis to zoom.
          </p>
        </>
      )}
    </div>
  );
}

/** A span's time range with a margin of 2% each side, within the trace. */
function spanRange(s: Span, full: TimeRange): TimeRange {
  const pad = Math.max(1, s.duration * 0.02);
  return { start: Math.max(full.start, s.start - pad), end: Math.min(full.end, s.end + pad) };
}

function SpanRow(props: {
  view: TimeRange;
  logs: number;
  span: Span;
  collapsed: boolean;
  selected: boolean;
  match: boolean | null;
  critical: Segment[] | undefined;
  onSelect: () => void;
  onToggle: () => void;
}) {
  const { view, span: s } = props;
  const bar = placeInRange(s.start, s.end, view);
  const left = bar.left;
  const width = bar.width;
  const color = serviceColor(s.service);
  const indent = Math.min(s.depth, 40);
  const cls = ['span-row', props.selected && 'selected', s.error && 'error', props.match === true && 'match', props.match === false && 'nomatch', props.critical && 'on-critical']
    .filter(Boolean)
    .join(' ');
  return (
    <div class={cls} role="listitem" data-span={s.spanID} onClick={props.onSelect} aria-selected={props.selected}>
      <div class="span-name" style={{ paddingLeft: `${indent * 12 + 4}px` }} title={`${s.service}: ${s.operation}`}>
        {s.children.length ? (
          <button
            type="button"
            class="toggle"
            aria-expanded={!props.collapsed}
            aria-label={props.collapsed ? 'Expand' : 'Collapse'}
            onClick={(e) => {
              e.stopPropagation();
              props.onToggle();
            }}
          >
            {props.collapsed ? '▸' : '▾'}
          </button>
        ) : (
          <span class="toggle-space" />
        )}
        {s.depth > 40 && <span class="deep">{s.depth}</span>}
        <span class="svc-chip" style={{ backgroundColor: color }} />
        {s.error && (
          <span class="err-mark" title="Error">
            !
          </span>
        )}
        <span class="svc">{s.service}</span>
        <span class="op">{s.operation}</span>
        {props.collapsed && <span class="hidden-count">+{s.last - s.index}</span>}
        {props.logs > 0 && (
          <span class="log-mark" title={`${props.logs} log line${props.logs === 1 ? '' : 's'}`}>
            {props.logs} log{props.logs === 1 ? '' : 's'}
          </span>
        )}
      </div>
      <div class="span-bar-cell">
        {bar.visible && <div class="span-bar" style={{ left: `${left}%`, width: `max(${width}%, 2px)`, backgroundColor: color }} />}
        {props.critical?.map((seg) => {
          const c = placeInRange(seg.start, seg.end, view);
          return c.visible && c.width > 0 ? <div class="crit" style={{ left: `${c.left}%`, width: `max(${c.width}%, 1px)` }} /> : null;
        })}
        {bar.visible && (
          <span class="span-dur" style={left > 70 ? { right: `${100 - left + 0.5}%` } : { left: `calc(${left + width}% + 4px)` }}>
          {fmtDuration(s.duration)}
        </span>
        )}
      </div>
    </div>
  );
}

function valueText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
}

function KVTable({ title, kvs, emptyText }: { title: string; kvs: KeyValue[]; emptyText: string }) {
  return (
    <section class="kv">
      <h3>
        {title} <span class="count">{kvs.length}</span>
        {kvs.length > 0 && <CopyButton label="Copy all" text={JSON.stringify(Object.fromEntries(kvs.map((k) => [k.key, k.value])), null, 2)} />}
      </h3>
      {kvs.length === 0 ? (
        <p class="muted">{emptyText}</p>
      ) : (
        <table>
          <tbody>
            {kvs.map((kv) => (
              <tr>
                <th scope="row">{kv.key}</th>
                <td>
                  <span class="value">{valueText(kv.value)}</span>
                  <CopyButton text={valueText(kv.value)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function SpanDetail({
  trace,
  span: s,
  critical,
  onClose,
  onSelect,
  onZoom,
  logs,
}: {
  trace: Trace;
  span: Span;
  /** null while the critical path is being computed */
  critical: Segment[] | undefined | null;
  onClose: () => void;
  onSelect: (i: number) => void;
  onZoom?: () => void;
  logs: preact.JSX.Element;
}) {
  const tags = s.raw.tags ?? [];
  const statusCode = tags.find((t) => t.key === 'otel.status_code')?.value;
  const statusMsg = tags.find((t) => t.key === 'otel.status_description')?.value;
  const critTime = (critical ?? []).reduce((a, c) => a + c.end - c.start, 0);
  const parent = s.parent >= 0 ? trace.spans[s.parent] : null;
  const byId = (id: string) => trace.spans.findIndex((x) => x.spanID === id);
  return (
    <aside class="span-detail" aria-label="Span details">
      <header>
        <h2>
          <span class="svc-chip" style={{ backgroundColor: serviceColor(s.service) }} />
          {s.service}: {s.operation}
        </h2>
        <button type="button" class="close" onClick={onClose} aria-label="Close details">
          ×
        </button>
      </header>
      <dl class="facts">
        <dt>Span ID</dt>
        <dd>
          <code>{s.spanID}</code> <CopyButton text={s.spanID} />
        </dd>
        <dt>Parent</dt>
        <dd>
          {parent ? (
            <a href="#" onClick={(e) => (e.preventDefault(), onSelect(parent.index))}>
              {parent.operation}
            </a>
          ) : (
            'none (root)'
          )}
        </dd>
        <dt>Start</dt>
        <dd>
          +{fmtDuration(s.start - trace.start)} ({fmtTime(s.start)})
        </dd>
        <dt>Duration</dt>
        <dd>{fmtDuration(s.duration)}</dd>
        <dt>Self time</dt>
        <dd>{fmtDuration(s.selfTime)}</dd>
        <dt>Critical path</dt>
        <dd>{critical === null ? 'computing…' : critTime > 0 ? fmtDuration(critTime) : 'not on it'}</dd>
        <dt>Kind</dt>
        <dd>{s.kind || 'unspecified'}</dd>
        <dt>Status</dt>
        <dd class={s.error ? 'errors' : ''}>
          {statusCode !== undefined ? valueText(statusCode) : s.error ? 'ERROR' : 'UNSET'}
          {statusMsg !== undefined && `: ${valueText(statusMsg)}`}
        </dd>
      </dl>
      {onZoom && (
        <button type="button" class="zoom-span" onClick={onZoom} title="Zoom the timeline to this span (z)">
          Zoom to span
        </button>
      )}
      <KVTable title="Attributes" kvs={tags} emptyText="No attributes." />
      {logs}
      <KVTable title="Resource" kvs={s.processTags} emptyText="No resource attributes." />
      <section class="kv">
        <h3>
          Events <span class="count">{(s.raw.logs ?? []).length}</span>
        </h3>
        {(s.raw.logs ?? []).length === 0 ? (
          <p class="muted">No events.</p>
        ) : (
          <ol class="events">
            {(s.raw.logs ?? []).map((l) => (
              <li>
                <span class="at">+{fmtDuration(l.timestamp - s.start)}</span>
                <table>
                  <tbody>
                    {l.fields.map((f) => (
                      <tr>
                        <th scope="row">{f.key}</th>
                        <td>
                          <span class="value">{valueText(f.value)}</span>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </li>
            ))}
          </ol>
        )}
      </section>
      <section class="kv">
        <h3>
          Links <span class="count">{(s.raw.references ?? []).length}</span>
        </h3>
        {(s.raw.references ?? []).length === 0 ? (
          <p class="muted">No references.</p>
        ) : (
          <ul class="links">
            {(s.raw.references ?? []).map((r) => {
              const local = r.traceID === trace.traceID ? byId(r.spanID) : -1;
              return (
                <li>
                  <span class="reftype">{r.refType}</span>{' '}
                  {local >= 0 ? (
                    <a href="#" onClick={(e) => (e.preventDefault(), onSelect(local))}>
                      {trace.spans[local].operation} <code>{r.spanID}</code>
                    </a>
                  ) : (
                    <a href={`/trace/${encodeURIComponent(r.traceID)}?span=${encodeURIComponent(r.spanID)}`} onClick={(e) => (e.preventDefault(), navigate(`/trace/${encodeURIComponent(r.traceID)}?span=${encodeURIComponent(r.spanID)}`))}>
                      <code>
                        {r.traceID}/{r.spanID}
                      </code>
                    </a>
                  )}
                </li>
              );
            })}
          </ul>
        )}
      </section>
      {(s.raw.warnings ?? []).length > 0 && (
        <section class="kv">
          <h3>Warnings</h3>
          <ul>
            {(s.raw.warnings ?? []).map((w) => (
              <li>{w}</li>
            ))}
          </ul>
        </section>
      )}
      <CopyButton label="Copy span JSON" text={JSON.stringify(s.raw, null, 2)} />
    </aside>
  );
}

function StatsTable({ stats, total }: { stats: OpStats[]; total: number }) {
  const [sort, setSort] = useState<keyof OpStats>('self');
  const sorted = useMemo(() => {
    const s = [...stats];
    s.sort((a, b) => {
      const x = a[sort];
      const y = b[sort];
      return typeof x === 'number' ? (y as number) - x : String(x).localeCompare(String(y));
    });
    return s;
  }, [stats, sort]);
  const cols: [keyof OpStats, string][] = [
    ['service', 'Service'],
    ['operation', 'Operation'],
    ['count', 'Spans'],
    ['errors', 'Errors'],
    ['total', 'Total'],
    ['self', 'Self time'],
    ['max', 'Max'],
  ];
  return (
    <div class="stats-wrap">
      <table class="stats">
        <thead>
          <tr>
            {cols.map(([k, l]) => (
              <th scope="col" aria-sort={sort === k ? 'descending' : undefined}>
                <button type="button" onClick={() => setSort(k)}>
                  {l}
                  {sort === k ? ' ▾' : ''}
                </button>
              </th>
            ))}
            <th scope="col">Avg</th>
            <th scope="col">Self % of trace</th>
          </tr>
        </thead>
        <tbody>
          {sorted.map((s) => (
            <tr>
              <td>
                <span class="svc-chip" style={{ backgroundColor: serviceColor(s.service) }} />
                {s.service}
              </td>
              <td>{s.operation}</td>
              <td class="num">{s.count}</td>
              <td class={`num ${s.errors ? 'errors' : ''}`}>{s.errors}</td>
              <td class="num">{fmtDuration(s.total)}</td>
              <td class="num">{fmtDuration(s.self)}</td>
              <td class="num">{fmtDuration(s.max)}</td>
              <td class="num">{fmtDuration(s.total / s.count)}</td>
              <td class="num">{total ? ((100 * s.self) / total).toFixed(1) : '0'}%</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function downloadJson(trace: Trace) {
  const blob = new Blob([JSON.stringify({ data: [trace.raw] }, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = `trace-${trace.traceID}.json`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
