// Formatting and parsing helpers shared by the views (pure, unit tested).

/** A duration in µs as a short human string: 850µs, 12.3ms, 4.56s, 2m 5s. */
export function fmtDuration(us: number): string {
  if (!isFinite(us)) return '-';
  const a = Math.abs(us);
  if (a < 1000) return `${Math.round(us)}µs`;
  if (a < 1_000_000) return `${trim(us / 1000)}ms`;
  if (a < 60_000_000) return `${trim(us / 1_000_000)}s`;
  const m = Math.floor(a / 60_000_000);
  const s = Math.round((a - m * 60_000_000) / 1_000_000);
  return `${us < 0 ? '-' : ''}${m}m ${s}s`;
}

function trim(x: number): string {
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2);
}

/** A µs epoch timestamp as local date and time with milliseconds. */
export function fmtTime(us: number): string {
  const d = new Date(us / 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A µs timestamp relative to now: "12s ago", "3h ago". */
export function fmtAgo(us: number, nowMs = Date.now()): string {
  const s = Math.max(0, Math.round((nowMs - us / 1000) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

const UNITS: Record<string, number> = { ns: 0.001, us: 1, µs: 1, ms: 1000, s: 1e6, m: 6e7, h: 3.6e9 };

/** Parses a Go-style duration ("1.5s", "100ms", "1m30s") into µs; null when malformed. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (!t) return null;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t))) {
    total += parseFloat(m[1]) * UNITS[m[2]];
    pos = re.lastIndex;
  }
  return pos === t.length && pos > 0 ? total : null;
}

/**
 * Parses logfmt-style tag filters (`http.status_code=500 error=true msg="a b"`) into an
 * object for the API's `tags` JSON parameter. Returns an error message for malformed input.
 */
export function parseTags(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  const re = /\s*([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/y;
  let pos = 0;
  const t = text.trim();
  while (pos < t.length) {
    re.lastIndex = pos;
    const m = re.exec(t);
    if (!m) return `cannot read tags at "${t.slice(pos, pos + 20)}": write key=value pairs separated by spaces, quote values with spaces`;
    out[m[1]] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
    pos = re.lastIndex;
    while (pos < t.length && /\s/.test(t[pos])) pos++;
  }
  return out;
}

/** A stable colour for a service, from a 20-hue palette picked by a hash of its name. */
export function serviceColor(service: string): string {
  let h = 2166136261;
  for (let i = 0; i < service.length; i++) {
    h ^= service.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  const hue = ((h >>> 0) % 20) * 18;
  return `hsl(${hue} 62% 52%)`;
}
