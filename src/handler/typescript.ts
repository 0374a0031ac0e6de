// Which loader serves a TypeScript handler, in the daemon and in each of its processes:
// - 'node': node's own type stripping (on by default from 22.18), nothing loaded for it;
// - 'esbuild': compiled once (compile.ts) when node strips no types or cannot strip this
//   handler's syntax (enums, namespaces, parameter properties); later processes import the
//   compiled JavaScript;
// - 'tsx': tsx's hooks in this process, only when the compiled copy cannot be written (a
//   read-only folder): the old way, ~100 ms per process.
import { pathToFileURL } from 'node:url';
import { type Compiled, type CompileReason, compileHandler, findCompiled } from './compile.js';

export type TypeScriptLoader = 'node' | 'esbuild' | 'tsx';

export interface LoadedTypeScript {
  mod: Record<string, unknown>;
  loader: TypeScriptLoader;
  /** Why node's own stripping did not serve, for the log. */
  reason?: CompileReason | 'not-writable';
  /** What node or the file system said, when it said it in this process. */
  detail?: string;
}

/** Node's type stripping is on (22.18+ by default; 22.6–22.17 with --experimental-strip-types). */
export function nodeStripsTypes(): boolean {
  return Boolean((process.features as { typescript?: string | false }).typescript);
}

/**
 * Node rejects syntax it cannot strip, or TypeScript under node_modules: the compiler takes
 * both. On a syntax error the compiler runs too, to fail with the file, line and column (node
 * names no column), the same message on every node.
 */
const NOT_STRIPPABLE = new Set([
  'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX',
  'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING',
  'ERR_INVALID_TYPESCRIPT_SYNTAX',
]);
/** tsx-style imports node does not resolve (`./lib.js` meaning lib.ts, or no extension); the compiler does. */
const NOT_RESOLVED = 'ERR_MODULE_NOT_FOUND';
/** The folder does not take the compiled copy. */
const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS']);

let tsxRegistered: Promise<void> | undefined;

export async function importTypeScript(abs: string, fresh: boolean): Promise<LoadedTypeScript> {
  const strips = nodeStripsTypes();
  const found = findCompiled(abs);
  // On a stripping node, a compiled copy serves only when node already failed on this very source.
  if (found !== undefined && (!strips || found.reason === 'unsupported-syntax'))
    return { mod: await importCompiled(found, fresh), loader: 'esbuild', reason: found.reason };
  let reason: CompileReason = 'no-type-stripping';
  let detail: string | undefined;
  if (strips) {
    try {
      return { mod: await importModule(pathToFileURL(abs), fresh), loader: 'node' };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!NOT_STRIPPABLE.has(code) && code !== NOT_RESOLVED) throw err;
      reason = 'unsupported-syntax';
      detail = firstLine(err);
    }
  }
  let compiled: Compiled;
  try {
    compiled = await compileHandler(abs, reason);
  } catch (err) {
    if (!NOT_WRITABLE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    await registerTsx();
    return {
      mod: await importModule(pathToFileURL(abs), fresh),
      loader: 'tsx',
      reason: 'not-writable',
      detail: firstLine(err),
    };
  }
  return { mod: await importCompiled(compiled, fresh), loader: 'esbuild', reason, detail };
}

function importCompiled(c: Compiled, fresh: boolean): Promise<Record<string, unknown>> {
  // Stack traces through the inline source map: the .ts file and line, not the compiled copy's.
  process.setSourceMapsEnabled(true);
  return importModule(pathToFileURL(c.file), fresh);
}

async function importModule(url: URL, fresh: boolean): Promise<Record<string, unknown>> {
  if (fresh) url.search = `?reload=${Date.now()}`;
  return (await import(url.href)) as Record<string, unknown>;
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
