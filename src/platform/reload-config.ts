// SIGHUP with --config: re-read the file, merge the flags over it as at start, and sort what changed
// by the fields' declarations (Field.live). Live changes are handed to the command to apply; other
// changes are logged as "needs a restart" and keep the running value; a file that does not read or
// validate changes nothing and is logged in one line, with the message the start would have given.
import { ParamError } from '../errors.js';
import type { Logger } from '../types.js';
import { type Field, readFields, sameValue as same } from './fields.js';

/** What a command needs to re-read its input; the runner builds it when --config is given. */
export interface ConfigSource {
  /** The command's declarations. */
  readonly fields: readonly Field[];
  /** The input running now (flags merged over the file, as the start or the last reload took it). */
  current: Record<string, unknown>;
  /** The file read again with the flags merged over it; throws ParamError. */
  reread(): Record<string, unknown>;
  /** The command's own validation of a whole input (as before the start); throws ParamError. */
  check(input: Record<string, unknown>): void;
  /** Called with the input once it is accepted (the runner hands it to re-run workers). */
  accepted?(input: Record<string, unknown>): void;
}

/** One field whose value the file changed. */
export interface FieldChange {
  readonly field: Field;
  /** As parsed; undefined = not given (the default). */
  readonly before: unknown;
  readonly after: unknown;
}

export interface ReloadPlan {
  /** The input to run with: the new values of live fields, the running ones of all others. */
  readonly input: Record<string, unknown>;
  readonly live: readonly FieldChange[];
  readonly restart: readonly FieldChange[];
}

/** Fields whose parsed values differ between two inputs, in declaration order. */
export function changedFields(
  fields: readonly Field[],
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): FieldChange[] {
  const a = readFields(fields, before, 'config');
  const b = readFields(fields, after, 'config');
  return fields.flatMap((field) =>
    same(a[field.key], b[field.key]) ? [] : [{ field, before: a[field.key], after: b[field.key] }],
  );
}

/**
 * Re-reads `source` and plans the reload: undefined (everything kept, the reason logged) when the
 * file is broken or the result does not validate. Logs each change that needs a restart.
 */
export function planReload(source: ConfigSource, logger: Logger): ReloadPlan | undefined {
  let plan: ReloadPlan;
  try {
    const next = source.reread();
    const changes = changedFields(source.fields, source.current, next);
    const restart = changes.filter((c) => !c.field.live);
    const input: Record<string, unknown> = { ...next };
    for (const c of restart) {
      if (c.field.key in source.current) input[c.field.key] = source.current[c.field.key];
      else delete input[c.field.key];
    }
    source.check(input);
    plan = { input, live: changes.filter((c) => c.field.live), restart };
  } catch (err) {
    // ParamError carries the start's own message; anything else is a bug, still costs nothing live.
    const reason = err instanceof ParamError ? err.message : `${(err as Error).stack ?? String(err)}`;
    logger.error({ reason }, `config reload failed: ${reason}; nothing changed`);
    return undefined;
  }
  for (const c of plan.restart) {
    logger.warn({ key: c.field.key }, `needs a restart: ${describeChange(c)}; the running value is kept`);
  }
  source.current = plan.input;
  source.accepted?.(plan.input);
  return plan;
}

/** Logs what a reload applied (after the command applied it). */
export function logApplied(plan: ReloadPlan, logger: Logger): void {
  logger.info(
    { changes: plan.live.map(describeChange), kept: plan.restart.length },
    plan.live.length > 0 ? 'config reloaded' : 'config reloaded: no live value changed',
  );
}

/** `--max-connections (10 → 20)`; a value not given shows as `default`. */
export function describeChange(c: FieldChange): string {
  return `${c.field.flags[0] ?? c.field.key} (${shown(c.before)} → ${shown(c.after)})`;
}

/** The fields a reload applies live, for help and docs. */
export function liveFlags(fields: readonly Field[]): string[] {
  return fields.filter((f) => f.live).map((f) => f.flags[0] ?? f.key);
}

function shown(v: unknown): string {
  if (v === undefined) return 'default';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
