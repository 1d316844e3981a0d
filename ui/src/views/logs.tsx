import { useMemo, useState } from 'preact/hooks';
import { Empty, ErrorState, Loading } from '../components';
import { fmtDuration, fmtTime, serviceColor } from '../format';
import { bodyText, filterLogs, SEVERITIES, severityCounts, type LogRow, type Severity, type TraceLogs } from '../logs';
import type { Trace } from '../model';

/** The trace's correlated log lines as they load: pending, failed, or attached to spans. */
export type LogsLoad = { state: 'loading' } | { state: 'error'; error: unknown } | { state: 'done'; logs: TraceLogs };

function SeverityBadge({ row }: { row: LogRow }) {
  return <span class={`sev sev-${(row.severity || 'none').toLowerCase()}`}>{row.severityLabel || '—'}</span>;
}

/** One log line: time from the trace start, severity, service, body; attributes on demand. */
function LogLineView({ trace, row, onSelectSpan }: { trace: Trace; row: LogRow; onSelectSpan?: (i: number) => void }) {
  const attrs = Object.entries(row.line.attributes ?? {});
  const span = row.span >= 0 ? trace.spans[row.span] : null;
  const go = span && onSelectSpan ? () => onSelectSpan(span.index) : undefined;
  return (
    <li class={`log-line ${go ? 'has-span' : ''}`} data-severity={row.severity}>
      <span class="log-at" title={fmtTime(row.time)}>
        +{fmtDuration(row.time - trace.start)}
      </span>
      <SeverityBadge row={row} />
      <span class="log-svc">
        <span class="svc-chip" style={{ backgroundColor: serviceColor(row.service) }} />
        {row.service}
      </span>
      <span class="log-body">{row.body}</span>
      {go ? (
        <button type="button" class="link log-span" onClick={go} title="Select this line's span in the timeline">
          {span!.operation}
        </button>
      ) : (
        <span class="log-span muted">{row.spanID ? `span ${row.spanID} not in trace` : 'no span'}</span>
      )}
      {attrs.length > 0 && (
        <details class="log-attrs">
          <summary>{attrs.length} attribute{attrs.length === 1 ? '' : 's'}</summary>
          <table>
            <tbody>
              {attrs.map(([k, v]) => (
                <tr>
                  <th scope="row">{k}</th>
                  <td>{bodyText(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </li>
  );
}

/** All the trace's log lines, filtered by minimum severity and text; a click selects the span. */
export function LogsPanel({ trace, load, onSelectSpan, onRetry }: { trace: Trace; load: LogsLoad; onSelectSpan: (i: number) => void; onRetry: () => void }) {
  const [minSeverity, setMinSeverity] = useState<Severity | ''>('');
  const [text, setText] = useState('');
  const rows = load.state === 'done' ? load.logs.rows : [];
  const shown = useMemo(() => filterLogs(rows, { minSeverity, text }), [rows, minSeverity, text]);
  const counts = useMemo(() => severityCounts(rows), [rows]);
  if (load.state === 'loading') return <Loading what="log lines" />;
  if (load.state === 'error') return <ErrorState error={load.error} onRetry={onRetry} />;
  if (!rows.length)
    return (
      <Empty title="No log lines for this trace">
        <p>
          Logs appear here when the services send them over OTLP (<code>POST /v1/logs</code> on port 4318, or the logs service on
          4317) with this trace's ID in their trace context. Most OpenTelemetry log bridges add it automatically inside a span.
        </p>
      </Empty>
    );
  return (
    <div class="logs-panel">
      <div class="filter-bar" role="search">
        <input type="search" placeholder="Filter log lines: body, service, attribute" aria-label="Filter log lines" value={text} onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)} />
        <label>
          At least
          <select aria-label="Minimum severity" value={minSeverity} onChange={(e) => setMinSeverity((e.currentTarget as HTMLSelectElement).value as Severity | '')}>
            <option value="">any severity ({rows.length})</option>
            {SEVERITIES.map((s) => (
              <option value={s}>
                {s} ({counts.get(s) ?? 0})
              </option>
            ))}
          </select>
        </label>
        <span class="muted log-count" aria-live="polite">
          {shown.length === rows.length ? `${rows.length} line${rows.length === 1 ? '' : 's'}` : `${shown.length} of ${rows.length} lines`}
          {load.state === 'done' && load.logs.orphans > 0 && `, ${load.logs.orphans} naming spans not in the trace`}
        </span>
      </div>
      {shown.length === 0 ? (
        <p class="muted">No line matches; lower the minimum severity or clear the filter.</p>
      ) : (
        <ol class="log-list" aria-label="Log lines">
          {shown.map((r) => (
            <LogLineView trace={trace} row={r} onSelectSpan={onSelectSpan} />
          ))}
        </ol>
      )}
    </div>
  );
}

/** The lines of one span, in the span detail panel. */
export function SpanLogs({ trace, load, span }: { trace: Trace; load: LogsLoad; span: number }) {
  if (load.state !== 'done') return null;
  const idx = load.logs.bySpan.get(span) ?? [];
  return (
    <section class="kv span-logs">
      <h3>
        Log lines <span class="count">{idx.length}</span>
      </h3>
      {idx.length === 0 ? (
        <p class="muted">No log lines for this span.</p>
      ) : (
        <ol class="log-list compact">
          {idx.map((i) => (
            <LogLineView trace={trace} row={load.logs.rows[i]} />
          ))}
        </ol>
      )}
    </section>
  );
}
