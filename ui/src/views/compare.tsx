import { useEffect, useMemo, useState } from 'preact/hooks';
import * as api from '../api';
import { Empty, ErrorState, Loading, VirtualList } from '../components';
import { diffSummary, diffTraces, type DiffNode } from '../diff';
import { fmtDuration, serviceColor } from '../format';
import { buildTrace, type Trace } from '../model';
import { navigate, type Location } from '../router';

type Load = { state: 'idle' } | { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; a: Trace; b: Trace };

const LABELS: Record<DiffNode['status'], string> = {
  same: 'same',
  added: 'added in B',
  missing: 'missing in B',
  slower: 'slower in B',
  faster: 'faster in B',
};

export function CompareView({ loc }: { loc: Location }) {
  const a = loc.query.get('a') ?? '';
  const b = loc.query.get('b') ?? '';
  const [inA, setInA] = useState(a);
  const [inB, setInB] = useState(b);
  const [load, setLoad] = useState<Load>({ state: 'idle' });
  const [retry, setRetry] = useState(0);
  const [onlyChanges, setOnlyChanges] = useState(false);
  useEffect(() => {
    setInA(a);
    setInB(b);
    if (!a || !b) return setLoad({ state: 'idle' });
    const ac = new AbortController();
    setLoad({ state: 'loading' });
    Promise.all([api.trace(a, ac.signal), api.trace(b, ac.signal)])
      .then(([ra, rb]) => setLoad({ state: 'done', a: buildTrace(ra), b: buildTrace(rb) }))
      .catch((e) => e.name !== 'AbortError' && setLoad({ state: 'error', error: e }));
    return () => ac.abort();
  }, [a, b, retry]);
  const diff = useMemo(() => (load.state === 'done' ? diffTraces(load.a, load.b) : []), [load]);
  const shown = useMemo(() => (onlyChanges ? diff.filter((d) => d.status !== 'same' || d.countChanged) : diff), [diff, onlyChanges]);
  const summary = diffSummary(diff);
  return (
    <div class="compare-page">
      <form
        class="compare-form"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(`/compare?a=${encodeURIComponent(inA.trim())}&b=${encodeURIComponent(inB.trim())}`);
        }}
      >
        <label>
          Trace A
          <input name="a" value={inA} onInput={(e) => setInA((e.currentTarget as HTMLInputElement).value)} placeholder="trace ID" spellcheck={false} />
        </label>
        <label>
          Trace B
          <input name="b" value={inB} onInput={(e) => setInB((e.currentTarget as HTMLInputElement).value)} placeholder="trace ID" spellcheck={false} />
        </label>
        <button type="submit" class="primary" disabled={!inA.trim() || !inB.trim()}>
          Compare
        </button>
      </form>
      {load.state === 'idle' && (
        <Empty title="Compare two traces">
          <p>Enter two trace IDs, or tick two traces in the search results and press Compare selected. Calls are matched by their path of service and operation from the root.</p>
        </Empty>
      )}
      {load.state === 'loading' && <Loading what="both traces" />}
      {load.state === 'error' && <ErrorState error={load.error} onRetry={() => setRetry((r) => r + 1)} />}
      {load.state === 'done' && (
        <>
          <div class="diff-summary">
            <span>
              A: <a href={`/trace/${load.a.traceID}`} onClick={(e) => (e.preventDefault(), navigate(`/trace/${load.a.traceID}`))}>{load.a.traceID.slice(0, 12)}</a> {fmtDuration(load.a.duration)}, {load.a.spans.length} spans
            </span>
            <span>
              B: <a href={`/trace/${load.b.traceID}`} onClick={(e) => (e.preventDefault(), navigate(`/trace/${load.b.traceID}`))}>{load.b.traceID.slice(0, 12)}</a> {fmtDuration(load.b.duration)}, {load.b.spans.length} spans
            </span>
            {(['added', 'missing', 'slower', 'faster'] as const).map((s) => (
              <span class={`badge ${s}`}>
                {summary[s]} {LABELS[s]}
              </span>
            ))}
            <label>
              <input type="checkbox" checked={onlyChanges} onChange={(e) => setOnlyChanges((e.currentTarget as HTMLInputElement).checked)} />
              Only changes
            </label>
          </div>
          <div class="diff-head">
            <span>Call (service: operation)</span>
            <span>A count · avg</span>
            <span>B count · avg</span>
            <span>Change</span>
          </div>
          <VirtualList
            class="diff-list"
            count={shown.length}
            rowHeight={26}
            label="Differences"
            renderRow={(i) => <DiffRow node={shown[i]} a={load.a} b={load.b} />}
          />
        </>
      )}
    </div>
  );
}

function side(s: DiffNode['a']): string {
  if (!s) return '—';
  return `${s.count}× · ${fmtDuration(s.total / s.count)}${s.errors ? ` · ${s.errors} err` : ''}`;
}

/** The average duration of one side as a bar, relative to the slower side. */
function SideBar({ s, max, cls }: { s: DiffNode['a']; max: number; cls: string }) {
  const w = s && max > 0 ? (100 * s.total) / s.count / max : 0;
  return (
    <span class={`side-bar ${cls}`} aria-hidden="true">
      <span style={{ width: `${w}%` }} />
    </span>
  );
}

function DiffRow({ node: d, a, b }: { node: DiffNode; a: Trace; b: Trace }) {
  let change = LABELS[d.status];
  if (d.a && d.b) {
    const delta = d.b.total / d.b.count - d.a.total / d.a.count;
    change = `${delta >= 0 ? '+' : ''}${fmtDuration(delta)}${d.status === 'same' ? '' : ` (${LABELS[d.status]})`}`;
    if (d.countChanged) change += `, count ${d.a.count}→${d.b.count}`;
  }
  const max = Math.max(d.a ? d.a.total / d.a.count : 0, d.b ? d.b.total / d.b.count : 0);
  const open = () => {
    const t = d.b ? b : a;
    const s = d.b ?? d.a;
    if (s) navigate(`/trace/${t.traceID}?span=${t.spans[s.example].spanID}`);
  };
  return (
    <div class={`diff-row ${d.status} ${d.countChanged ? 'count-changed' : ''}`} role="listitem" data-status={d.status} onClick={open}>
      <span class="diff-name" style={{ paddingLeft: `${Math.min(d.depth, 40) * 12 + 4}px` }}>
        <span class="svc-chip" style={{ backgroundColor: serviceColor(d.service) }} />
        <span class="svc">{d.service}</span> <span class="op">{d.operation}</span>
      </span>
      <span class="num side">
        <SideBar s={d.a} max={max} cls="a" />
        {side(d.a)}
      </span>
      <span class="num side">
        <SideBar s={d.b} max={max} cls="b" />
        {side(d.b)}
      </span>
      <span class="change">{change}</span>
    </div>
  );
}
