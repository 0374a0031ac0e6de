// One parameter mechanism for every command, in the manner of HAProxy's keyword tables: each
// command declares its fields once (key, flag spellings, value placeholder, help, default, parser),
// shared fields are declared once in shared-fields.ts, and the argv parser, the --config reader,
// the validator and the help text are all driven by the declarations.
import { ParamError } from '../errors.js';
import type { Parse } from './values.js';

export interface Field<T = unknown> {
  /** The library / --config key. */
  readonly key: string;
  /** Command-line spellings; the first is the one messages and help show ('-c', '--timeout'). */
  readonly flags: readonly string[];
  /** Help placeholder of the value ('N', 'SECONDS', 'PATH'); absent for a switch. */
  readonly arg?: string;
  /** One phrase of help. */
  readonly help: string;
  /** The default as help shows it ("(default 10)"). */
  readonly shownDefault?: string;
  readonly parse: Parse<T>;
  /** The flag may be given more than once; its values are collected in a list. */
  readonly repeat?: boolean;
  /** A path: resolved against the caller's directory (flags) or the config file's folder. */
  readonly path?: boolean;
  /** Spellings that set a fixed value (`--loglevel-debug` → 'debug'). */
  readonly valueSwitches?: Readonly<Record<string, string>>;
  /** Turns the flag's values (every one given, in order) into the field's input (`--param k=v`). */
  readonly fromArgv?: (values: string[]) => unknown;
  /** Only in a config file or the library call (structured values): no flag. */
  readonly configOnly?: boolean;
  /**
   * SIGHUP applies a --config change of this field without a restart (no connection dropped);
   * a change of any other field is logged as "needs a restart" and the running value kept.
   */
  readonly live?: boolean;
}

/** The field list of one command and what its command line needs besides. */
export interface CommandSpec {
  /** As messages start: `tcpdaemon`, `tcpdaemon proxy`. */
  readonly name: string;
  /** Usage lines (after "usage: "). */
  readonly synopsis: readonly string[];
  readonly fields: readonly Field[];
  /** Old spellings of ours whose meaning changed, or that moved: refused with this message. */
  readonly refused?: Readonly<Record<string, string>>;
  /** Printed after the flag list (signals, notes). */
  readonly footer?: string;
}

/** The field as this command declares it, with `live` set as given (a command that cannot apply it live). */
export function withLive<T>(field: Field<T>, live: boolean): Field<T> {
  return { ...field, live };
}

/** `key (flag)`, as every message names a field. */
export function where(field: Field): string {
  return `${field.key} (${field.flags[0] ?? '--config'})`;
}

/** The field's value parsed, or undefined when absent. */
export type Read = Record<string, unknown>;

/**
 * Validates a library/config/flag object against `fields`: unknown keys are refused (with the
 * closest known key suggested), each present key is parsed. Returns the parsed values by key.
 */
export function readFields(fields: readonly Field[], input: unknown, command: string): Read {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ParamError(`${command} parameters must be an object`);
  }
  const byKey = new Map(fields.map((f) => [f.key, f]));
  const out: Read = {};
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    const field = byKey.get(key);
    if (!field) {
      const near = closest(key, [...byKey.keys()]);
      throw new ParamError(`unknown parameter '${key}'${near ? ` (did you mean '${near}'?)` : ''}`);
    }
    if (value === undefined) continue;
    out[key] = field.parse(value, where(field));
  }
  return out;
}

/**
 * Copies the live fields' values of `next` (validated parameters, defaults filled in) onto
 * `running`, in place: whatever reads `running` from now on sees them. Returns the keys that changed.
 */
export function applyLive<T extends object>(fields: readonly Field[], running: T, next: T): string[] {
  const target = running as Record<string, unknown>;
  const source = next as Record<string, unknown>;
  const changed: string[] = [];
  for (const f of fields) {
    if (!f.live || !(f.key in source) || sameValue(target[f.key], source[f.key])) continue;
    target[f.key] = source[f.key];
    changed.push(f.key);
  }
  return changed;
}

/** Parsed values compare by content (lists, objects as JSON). */
export function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/** The candidate nearest to `word` by edit distance, if it is near enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  const allowed = Math.max(1, Math.min(3, Math.floor(word.length / 3)));
  return bestDistance <= allowed ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
