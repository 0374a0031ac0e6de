// argv -> a command's parameter object, driven by its field declarations (fields.ts). The same
// spellings, messages and --config handling for every command. Validation of values is the
// command's (readFields); this only turns words into keys.
import { resolve } from 'node:path';
import { ParamError } from '../errors.js';
import { readConfigFile } from './config-file.js';
import { type CommandSpec, closest, type Field } from './fields.js';

export type CommandLine =
  | { kind: 'help' }
  | { kind: 'version' }
  | {
      kind: 'run';
      input: Record<string, unknown>;
      /** The --config file, absolute. */
      config?: string;
      /** What the flags alone gave (paths resolved): a reload merges them over the file again. */
      flags: Record<string, unknown>;
    };

/** Spellings every command has besides its fields. */
const GENERIC = { help: ['-h', '--help'], version: ['-v', '--version'], config: ['--config'] };

interface Spelling {
  field: Field;
  /** Set for a value switch such as --loglevel-debug: the value it stands for. */
  value?: string;
}

function spellings(spec: CommandSpec): Map<string, Spelling> {
  const map = new Map<string, Spelling>();
  for (const field of spec.fields) {
    if (field.configOnly) continue;
    for (const flag of field.flags) map.set(flag, { field });
    for (const [flag, value] of Object.entries(field.valueSwitches ?? {})) map.set(flag, { field, value });
  }
  return map;
}

/** Every spelling this command knows, for "did you mean". */
function knownFlags(spec: CommandSpec): string[] {
  return [...spellings(spec).keys(), ...Object.values(GENERIC).flat()];
}

/** Parses argv (after the command's own name). Throws ParamError with a one-line reason. */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[]): CommandLine {
  const known = spellings(spec);
  const given = new Map<Field, { flag: string; values: string[]; switched?: string }>();
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (!token.startsWith('-') || token === '-' || token === '--') {
      throw new ParamError(`unexpected argument '${token}'`);
    }
    const eq = token.startsWith('--') ? token.indexOf('=') : -1;
    const flag = eq === -1 ? token : token.slice(0, eq);
    const inline = eq === -1 ? undefined : token.slice(eq + 1);
    if (GENERIC.help.includes(flag)) return { kind: 'help' };
    if (GENERIC.version.includes(flag)) return { kind: 'version' };
    const refusal = spec.refused?.[flag];
    if (refusal !== undefined) throw new ParamError(`${flag} ${refusal}`);
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined) throw new ParamError(`flag ${shown(flag, known)} needs a value`);
      if (next.startsWith('-') && next !== '-') {
        throw new ParamError(
          `flag ${shown(flag, known)} needs a value; for one that starts with '-', write ${flag}=VALUE`,
        );
      }
      i++;
      return next;
    };
    if (GENERIC.config.includes(flag)) {
      configPath = takeValue();
      continue;
    }
    const spelling = known.get(flag);
    if (!spelling) {
      const near = closest(flag, knownFlags(spec));
      throw new ParamError(`unknown flag '${flag}'${near ? ` (did you mean ${near}?)` : ''}`);
    }
    const { field } = spelling;
    const entry = given.get(field) ?? { flag, values: [] };
    given.set(field, entry);
    if (spelling.value !== undefined || field.arg === undefined) {
      if (inline !== undefined) throw new ParamError(`flag ${flag} takes no value`);
      if (spelling.value !== undefined) {
        if (entry.switched !== undefined || entry.values.length > 0) throw conflict(field);
        entry.switched = spelling.value;
      } else entry.values.push('true');
      continue;
    }
    if (entry.switched !== undefined) throw conflict(field);
    const value = takeValue();
    if (field.repeat) entry.values.push(value);
    else entry.values = [value];
  }

  const fromFlags: Record<string, unknown> = {};
  for (const [field, entry] of given) {
    if (entry.switched !== undefined) fromFlags[field.key] = entry.switched;
    else if (field.arg === undefined) fromFlags[field.key] = true;
    else if (field.fromArgv) fromFlags[field.key] = field.fromArgv(entry.values);
    else if (field.repeat) fromFlags[field.key] = entry.values.map((v) => (field.path ? resolve(v) : v));
    else fromFlags[field.key] = field.path ? resolve(entry.values[0]!) : entry.values[0];
  }
  if (configPath === undefined) return { kind: 'run', input: fromFlags, flags: fromFlags };
  const config = resolve(configPath);
  return { kind: 'run', input: withConfigFile(spec, config, fromFlags), config, flags: fromFlags };
}

/** The file's parameters with the flags' over them (objects such as --param merged key by key). */
export function withConfigFile(
  spec: CommandSpec,
  configPath: string,
  fromFlags: Record<string, unknown>,
): Record<string, unknown> {
  const config = readConfigFile(
    configPath,
    spec.fields.filter((f) => f.path).map((f) => f.key),
  );
  const merged: Record<string, unknown> = { ...config, ...fromFlags };
  for (const [key, value] of Object.entries(fromFlags)) {
    const base = config[key];
    if (isPlainObject(base) && isPlainObject(value)) merged[key] = { ...base, ...value };
  }
  return merged;
}

function shown(flag: string, known: Map<string, Spelling>): string {
  const field = known.get(flag)?.field;
  return field ? field.flags.join(', ') : flag;
}

function conflict(field: Field): ParamError {
  const switches = Object.keys(field.valueSwitches ?? {});
  const spelled = `${field.flags[0]} ${field.arg ?? 'VALUE'}`;
  const pattern = switches.length > 0 ? ` or one ${field.flags[0]}-${field.arg ?? 'VALUE'}` : '';
  return new ParamError(`give one ${field.key} (${spelled}${pattern})`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
