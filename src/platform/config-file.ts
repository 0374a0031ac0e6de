// `--config FILE.json`: an object with the command's library keys. Relative paths in it are read
// against the file's folder, not the caller's.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ParamError } from '../errors.js';

export function readConfigFile(path: string, pathKeys: readonly string[]): Record<string, unknown> {
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
  const rebase = (v: unknown) => (typeof v === 'string' && v !== '' && !isAbsolute(v) ? resolve(base, v) : v);
  for (const key of pathKeys) {
    const v = config[key];
    config[key] = Array.isArray(v) ? v.map(rebase) : rebase(v);
    if (v === undefined) delete config[key];
  }
  return config;
}
