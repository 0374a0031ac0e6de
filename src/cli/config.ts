import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ParamError } from '../params.js';

/** Keys whose relative paths are read against the config file's folder, not the caller's. */
const PATH_KEYS = ['handler', 'logfile', 'pidFile', 'statusSocket', 'workPath'];

/** Reads `--config FILE.json`: an object with the library's parameter keys. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ParamError(
      `cannot read config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ParamError(`config ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ParamError(`config ${path} must hold a JSON object of parameters`);
  }
  const config = parsed as Record<string, unknown>;
  const base = dirname(resolve(path));
  for (const key of PATH_KEYS) {
    const v = config[key];
    if (typeof v === 'string' && v !== '' && !isAbsolute(v)) config[key] = resolve(base, v);
  }
  return config;
}
