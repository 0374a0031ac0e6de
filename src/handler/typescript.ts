// Which loader serves a TypeScript handler (compile.ts makes the JavaScript copy):
// - 'node': node's own type stripping, once, where this node strips types (on by default
//   from 22.18) and the handler has only erasable syntax;
// - 'esbuild': compiled once where node strips no types (Node 20) or cannot strip this
//   handler (enums, namespaces, parameter properties; tsx-style imports such as './lib.js'
//   meaning lib.ts, which node does not resolve);
// - 'tsx': tsx's hooks in this process, only when no copy can be written beside the handler
//   (a read-only folder): ~100 ms per process.
// Every later process (worker, thread, connection process) finds the current copy and imports it.
import { pathToFileURL } from 'node:url';
import { type Compiled, compileHandler, findCompiled, nodeStripper, stripHandler } from './compile.js';

export type TypeScriptLoader = 'node' | 'esbuild' | 'tsx';

export interface LoadedTypeScript {
  mod: Record<string, unknown>;
  loader: TypeScriptLoader;
  /** The JavaScript copy imported (none for tsx). */
  copy?: string;
  /** Why node's own stripping did not serve, when that was decided in this process. */
  reason?: string;
}

/** Node's type stripping is on (22.18+ by default; 22.6–22.17 with --experimental-strip-types). */
export function nodeStripsTypes(): boolean {
  return Boolean((process.features as { typescript?: string | false }).typescript);
}

/**
 * Errors after which esbuild takes over: syntax node cannot strip, TypeScript it will not strip
 * (under node_modules), imports it does not resolve; and a syntax error, so that it is reported
 * with file, line and column (node names no column), the same on every node.
 */
const COMPILER_TAKES_OVER = new Set([
  'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX',
  'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING',
  'ERR_INVALID_TYPESCRIPT_SYNTAX',
  'ERR_MODULE_NOT_FOUND',
]);
/** The folder does not take the copy. */
const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS']);

let tsxRegistered: Promise<void> | undefined;

export async function importTypeScript(abs: string, fresh: boolean): Promise<LoadedTypeScript> {
  const found = findCompiled(abs);
  if (found !== undefined)
    return { mod: await importCopy(found, fresh), loader: found.loader, copy: found.file };
  let reason = 'this node strips no types';
  try {
    const strip = await nodeStripper();
    if (strip !== undefined) {
      try {
        const copy = stripHandler(abs, strip);
        return { mod: await importCopy(copy, fresh), loader: 'node', copy: copy.file };
      } catch (err) {
        if (!COMPILER_TAKES_OVER.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
        reason = `node's type stripping: ${firstLine(err)}`;
      }
    }
    const copy = await compileHandler(abs);
    return { mod: await importCopy(copy, fresh), loader: 'esbuild', copy: copy.file, reason };
  } catch (err) {
    if (!NOT_WRITABLE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    await registerTsx();
    const url = pathToFileURL(abs);
    if (fresh) url.search = `?reload=${Date.now()}`;
    const mod = (await import(url.href)) as Record<string, unknown>;
    return { mod, loader: 'tsx', reason: `no copy can be written beside the handler (${firstLine(err)})` };
  }
}

function importCopy(c: Compiled, fresh: boolean): Promise<Record<string, unknown>> {
  // esbuild's copy maps back to the .ts files through its inline source map.
  if (c.loader === 'esbuild') process.setSourceMapsEnabled(true);
  const url = pathToFileURL(c.file);
  // The copy's path stays the same when it is made again: a reload must not get the cached module.
  if (fresh) url.search = `?reload=${Date.now()}`;
  return import(url.href) as Promise<Record<string, unknown>>;
}

/** Both hooks: a .ts file outside a "type": "module" package is loaded as CommonJS. */
function registerTsx(): Promise<void> {
  tsxRegistered ??= Promise.all([import('tsx/esm/api'), import('tsx/cjs/api')]).then(([esm, cjs]) => {
    esm.register();
    cjs.register();
  });
  return tsxRegistered;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
