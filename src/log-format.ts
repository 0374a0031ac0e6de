// --log-format: how a log record is written. json = pino's JSON line (the default, for machines);
// pretty = one readable line per record for a person at a terminal during development:
//   09:27:33.129 WARN  [11701 w1] business handler failed  msgid=3 session=g1:1 err="boom"
// An error's stack, when the record carries one, follows on lines indented by four spaces.
// Written here (no pino-pretty): pino hands each JSON line to prettyStream, which rewrites it.

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Keys shown in the line's head, not among the fields. */
const HEAD = new Set(['level', 'time', 'pid', 'worker', 'msg']);

const COLORS: Record<string, string> = {
  debug: '\x1b[90m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
  fatal: '\x1b[35m',
};
const RESET = '\x1b[0m';

/** A value as `key=value` shows it: bare when it has no space, quote or `=`, else JSON. */
function shown(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value) ?? String(value);
}

/** `2026-12-02T09:27:33.129Z` → `09:27:33.129`; anything else as it is. */
function clock(time: unknown): string {
  if (typeof time !== 'string') return String(time ?? '');
  const t = time.indexOf('T');
  return t >= 0 ? time.slice(t + 1).replace(/Z$/, '') : time;
}

/** One pino record (parsed JSON) as its pretty text, ending in a newline. */
export function prettyRecord(record: Record<string, unknown>, color = false): string {
  const level = String(record.level ?? 'info');
  const tag = level.toUpperCase().padEnd(5);
  let line = `${clock(record.time)} ${color ? `${COLORS[level] ?? ''}${tag}${RESET}` : tag}`;
  if (record.pid !== undefined) line += ` [${record.pid} w${record.worker ?? 0}]`;
  line += ` ${String(record.msg ?? '')}`;
  let stack: string | undefined;
  const fields: string[] = [];
  for (const [key, value] of Object.entries(record)) {
    if (HEAD.has(key) || value === undefined) continue;
    const err = value as { message?: unknown; type?: unknown; stack?: unknown } | null;
    if (typeof err === 'object' && err !== null && typeof err.stack === 'string' && 'message' in err) {
      // pino's err serializer: { type, message, stack, ...own props }.
      const type = typeof err.type === 'string' && err.type !== 'Error' ? `${err.type}: ` : '';
      fields.push(`${key}=${shown(`${type}${String(err.message)}`)}`);
      stack ??= err.stack;
      continue;
    }
    fields.push(`${key}=${shown(value)}`);
  }
  if (fields.length > 0) line += `  ${fields.join(' ')}`;
  if (stack !== undefined) {
    // The stack's first line repeats the message; the frames follow, indented.
    const frames = stack.split('\n').slice(1);
    if (frames.length > 0) line += `\n${frames.map((f) => `    ${f.trim()}`).join('\n')}`;
  }
  return `${line}\n`;
}

/** What a pino destination must offer here: write, and what logger.ts calls on it. */
export interface LineSink {
  write(text: string): unknown;
}

/**
 * A pino destination that writes each record through prettyRecord into `sink`. A line that is
 * not JSON (never from pino) goes through as it is.
 */
export function prettyStream(sink: LineSink, color: boolean): LineSink {
  return {
    write(chunk: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(chunk) as Record<string, unknown>;
      } catch {
        return sink.write(chunk);
      }
      return sink.write(prettyRecord(record, color));
    },
  };
}
