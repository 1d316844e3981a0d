import type { JaegerSpan, JaegerTrace } from '../../src/model';

/** A compact way to write test traces: [spanID, parentID | '', service, op, start, duration, error?]. */
export type Row = [string, string, string, string, number, number, boolean?];

export function mk(rows: Row[], traceID = 't1'): JaegerTrace {
  const procs: JaegerTrace['processes'] = {};
  const spans: JaegerSpan[] = rows.map(([id, parent, svc, op, start, dur, err]) => {
    procs[svc] = { serviceName: svc, tags: [] };
    return {
      traceID,
      spanID: id,
      operationName: op,
      references: parent ? [{ refType: 'CHILD_OF', traceID, spanID: parent }] : [],
      startTime: start,
      duration: dur,
      tags: err ? [{ key: 'error', type: 'bool', value: true }] : [],
      logs: [],
      processID: svc,
    };
  });
  return { traceID, spans, processes: procs };
}
