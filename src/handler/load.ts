import { spawnSync } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HandlerLoadError } from '../errors.js';
import type { Logger, Tcpmain } from '../types.js';
import { importTypeScript, type TypeScriptLoader } from './typescript.js';

const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs']);
const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);

export { HandlerLoadError };

export interface LoadHandlerOptions {
  /** Append a cache-busting query so a reload reads the file from disk again. */
  fresh?: boolean;
  /** Told at debug level which loader served (node, esbuild or tsx) and why. */
  logger?: Logger;
}

/**
 * Imports a handler module and returns its `default` or `tcpmain` export. TypeScript goes
 * through node's own type stripping where it can, else a copy compiled once (typescript.ts).
 */
export async function loadHandler(path: string, opts: LoadHandlerOptions = {}): Promise<Tcpmain> {
  const abs = resolve(path);
  const ext = extname(abs);
  if (!JS_EXTENSIONS.has(ext) && !TS_EXTENSIONS.has(ext)) {
    throw new HandlerLoadError(
      `handler ${abs}: unsupported extension '${ext}' (use .js, .mjs, .cjs, .ts, .mts or .cts)`,
    );
  }
  try {
    const st = await stat(abs);
    if (!st.isFile()) throw new HandlerLoadError(`handler ${abs}: not a regular file`);
  } catch (err) {
    if (err instanceof HandlerLoadError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new HandlerLoadError(
      `handler ${abs}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
    );
  }
  let mod: Record<string, unknown>;
  let loader: TypeScriptLoader = 'node';
  let reason: string | undefined;
  let copy: string | undefined;
  try {
    if (TS_EXTENSIONS.has(ext))
      ({ mod, loader, reason, copy } = await importTypeScript(abs, opts.fresh === true));
    else {
      const url = pathToFileURL(abs);
      if (opts.fresh) url.search = `?reload=${Date.now()}`;
      mod = (await import(url.href)) as Record<string, unknown>;
    }
  } catch (err) {
    throw new HandlerLoadError(`handler ${abs}: failed to load: ${describeLoadError(err, abs)}`);
  }
  if (opts.logger?.isLevelEnabled('debug'))
    opts.logger.debug({ handler: abs, loader, copy, reason }, 'handler module loaded');
  const fn = pickExport(mod);
  if (!fn) {
    const names = Object.keys(mod).filter((k) => k !== '__esModule');
    throw new HandlerLoadError(
      `handler ${abs}: exports no function (expected 'export default' or 'export const tcpmain'; found ${
        names.length ? names.join(', ') : 'no exports'
      })`,
    );
  }
  return fn;
}

function pickExport(mod: Record<string, unknown>): Tcpmain | undefined {
  for (const candidate of [mod.default, mod.tcpmain]) {
    if (typeof candidate === 'function') return candidate as Tcpmain;
  }
  // CommonJS: module.exports = { tcpmain } arrives as the default export object.
  const cjs = mod.default as Record<string, unknown> | undefined;
  if (cjs && typeof cjs === 'object') {
    for (const candidate of [cjs.default, cjs.tcpmain]) {
      if (typeof candidate === 'function') return candidate as Tcpmain;
    }
  }
  return undefined;
}

function describeLoadError(err: unknown, abs: string): string {
  if (!(err instanceof Error)) return String(err);
  // esbuild puts the location on the line after "Transform failed with 1 error:".
  const lines = err.message.split('\n').filter((l) => l.trim() !== '');
  const message = lines.slice(0, lines[0]?.endsWith(':') ? 2 : 1).join(' ') || err.name;
  return `${err.name}: ${message}${err.name === 'SyntaxError' ? syntaxErrorLocation(abs) : ''}`;
}

/** Node 20's import() reports a SyntaxError without file and line; `node --check` has them. */
function syntaxErrorLocation(abs: string): string {
  if (!JS_EXTENSIONS.has(extname(abs))) return '';
  const res = spawnSync(process.execPath, ['--check', abs], { encoding: 'utf8', timeout: 10_000 });
  const where = res.stderr?.split('\n').find((l) => l.startsWith(abs));
  return where ? ` (at ${where.trim()})` : '';
}
