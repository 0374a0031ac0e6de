// Shared value parsers: every field of every command validates with these, so the same kind of
// value gets the same units and the same wording ("workers (-c) must be a whole number >= 1,
// got 'many'"). `where` names the key and its flag. Strings (from argv) are accepted for numbers.
import { ParamError } from '../errors.js';

/** Validates one value from the library, a config file or a flag; throws ParamError. */
export type Parse<T> = (value: unknown, where: string) => T;

export function fail(where: string, what: string, value: unknown): never {
  const shown = typeof value === 'string' ? `'${value}'` : JSON.stringify(value);
  throw new ParamError(`${where} ${what}, got ${shown}`);
}

interface Range {
  min: number;
  max?: number;
}

function numeric(integer: boolean, { min, max }: Range): Parse<number> {
  const what = `must be ${integer ? 'a whole number' : 'a number'} >= ${min}${max === undefined ? '' : ` and <= ${max}`}`;
  return (value, where) => {
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n)) fail(where, what, value);
    if ((integer && !Number.isInteger(n)) || n < min || (max !== undefined && n > max))
      fail(where, what, value);
    return n;
  };
}

/** A whole number in [min, max]. */
export const integer = (range: Range): Parse<number> => numeric(true, range);

/** A number (fractions allowed) in [min, max]. */
export const decimal = (range: Range): Parse<number> => numeric(false, range);

/** Seconds, fractions allowed; the unit every time-valued flag uses. */
export const seconds = (range: Range = { min: 0, max: 2147483 }): Parse<number> => numeric(false, range);

/** A byte count (a whole number). */
export const bytes = (range: Range = { min: 0, max: 2 ** 53 - 1 }): Parse<number> => numeric(true, range);

export const text: Parse<string> = (value, where) => {
  if (typeof value !== 'string' || value === '') fail(where, 'must be a non-empty string', value);
  return value;
};

export const boolean: Parse<boolean> = (value, where) => {
  if (typeof value !== 'boolean') fail(where, 'must be true or false', value);
  return value;
};

/** One of `values`, compared after `fold` (e.g. upper-casing). */
export function choice<T extends string>(
  values: readonly T[],
  fold: (v: string) => string = (v) => v,
): Parse<T> {
  return (value, where) => {
    if (typeof value !== 'string' || !values.includes(fold(value) as T)) {
      fail(where, `must be one of ${values.join(', ')}`, value);
    }
    return fold(value) as T;
  };
}

/** A list (a repeatable flag, or a JSON array in a config file) of items each parsed by `item`. */
export function list<T>(item: Parse<T>): Parse<T[]> {
  return (value, where) => {
    const items = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(items)) fail(where, 'must be a list', value);
    return items.map((v, i) => item(v, `${where}[${i}]`));
  };
}

/** An object of string values (`--param k=v`, repeatable); frozen. */
export const stringMap: Parse<Readonly<Record<string, string>>> = (value, where) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(where, 'must be an object of string values', value);
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(`${where}.${k}`, 'must be a string', v);
  }
  return Object.freeze({ ...(value as Record<string, string>) });
};
