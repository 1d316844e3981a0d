// Parses a `/api/traces/{id}` answer while it downloads. A 100k-span trace is ~50 MB of JSON that
// arrives over half a second; JSON.parse can only start after the last byte. Here the spans
// array is cut into batches of complete spans as the text arrives, each parsed at once, so most
// of the parsing overlaps the transfer. The rest of the answer (processes, warnings) is parsed at
// the end with an empty spans array, which is then filled in.
//
// Batches are cut where one span ends and the next begins: the server writes compact JSON with
// `traceID` as each span's first key, so `},{"traceID":` marks a boundary (inside a string its
// quotes would be escaped). Found with one native lastIndexOf per chunk, which keeps the cost
// of cutting far below the cost of parsing. Anything else (another key order, pretty-printed
// JSON, a cut that does not parse) falls back to scanning the text or to one JSON.parse of the
// whole answer, so the result is always what JSON.parse gives.

const BOUNDARY = '},{"traceID":';
/**
 * A first piece this large means the answer is arriving faster than it can be parsed (a cache,
 * a fast local server): one JSON.parse of the whole text is then cheaper than cutting it.
 */
const WHOLE_ANSWER_CHUNK = 2 * 1024 * 1024;
const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;

export class SpanStreamParser {
  /** Everything received, kept until the end for the fallback. */
  private chunks: string[] = [];
  /** Received text not yet parsed: from the start of the next unparsed span. */
  private buf = '';
  /** `whole`: parse everything at the end (unexpected text, or no time to win). */
  private phase: 'prefix' | 'spans' | 'whole' = 'prefix';
  /** The answer up to and including `"spans":[`. */
  private prefix = '';
  private spans: unknown[] = [];

  /** Feeds the next piece of text. */
  push(text: string): void {
    this.chunks.push(text);
    if (this.phase === 'whole') return;
    if (this.spans.length === 0 && text.length >= WHOLE_ANSWER_CHUNK) {
      this.phase = 'whole';
      return;
    }
    this.buf += text;
    try {
      if (this.phase === 'prefix') this.findSpans();
      if (this.phase === 'spans') this.cutBatch();
    } catch {
      this.phase = 'whole';
    }
  }

  /** The parsed answer; throws like JSON.parse when the text is not JSON. */
  finish(): unknown {
    const whole = () => JSON.parse(this.chunks.join(''));
    if (this.phase !== 'spans') return whole();
    try {
      const close = closingBracket(this.buf);
      if (close < 0) return whole();
      this.parseSpans(this.buf.slice(0, close));
      // `"spans":[` + `]...`: the answer with an empty spans array.
      const envelope = JSON.parse(this.prefix + this.buf.slice(close)) as { data?: { spans?: unknown[] }[] };
      const trace = envelope?.data?.[0];
      if (!trace || !Array.isArray(trace.spans) || trace.spans.length !== 0) return whole();
      trace.spans = this.spans;
      return envelope;
    } catch {
      return whole();
    }
  }

  /** Spans parsed so far (for tests and progress). */
  get parsedSpans(): number {
    return this.spans.length;
  }

  private findSpans(): void {
    // `"spans":[` cannot occur inside a JSON string (its quotes would be escaped), so the first
    // occurrence is a key; the answer's shape is checked at the end.
    const at = this.buf.search(/"spans"\s*:\s*\[/);
    if (at < 0) return;
    const open = this.buf.indexOf('[', at);
    this.prefix = this.buf.slice(0, open + 1);
    this.buf = this.buf.slice(open + 1);
    this.phase = 'spans';
  }

  /** Parses every complete span before the last boundary received. */
  private cutBatch(): void {
    const at = this.buf.lastIndexOf(BOUNDARY);
    if (at < 0) return;
    this.parseSpans(this.buf.slice(0, at + 1));
    this.buf = this.buf.slice(at + 2);
  }

  private parseSpans(text: string): void {
    let t = text.trim();
    if (t.startsWith(',')) t = t.slice(1);
    if (!t.trim()) return;
    const batch = JSON.parse(`[${t}]`) as unknown[];
    for (let k = 0; k < batch.length; k++) this.spans.push(batch[k]);
  }
}

/** Index of the `]` that closes an array whose elements `text` starts with, or -1. */
export function closingBracket(text: string): number {
  let depth = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Jump to the closing quote: the first one not escaped by an odd run of backslashes.
      let q = text.indexOf('"', i + 1);
      for (;;) {
        if (q < 0) return -1;
        let k = q - 1;
        while (text.charCodeAt(k) === BACKSLASH) k--;
        if ((q - 1 - k) % 2 === 0) break;
        q = text.indexOf('"', q + 1);
      }
      i = q + 1;
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth === 0) return c === CLOSE_BRACKET ? i : -1;
      depth--;
    }
    i++;
  }
  return -1;
}

/** Reads a response body as text chunks into the parser; resolves to the parsed answer. */
export async function parseStreaming(res: Response): Promise<unknown> {
  if (!res.body || typeof TextDecoderStream === 'undefined') return res.json();
  const parser = new SpanStreamParser();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.push(value);
  }
  return parser.finish();
}
