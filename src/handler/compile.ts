// A TypeScript handler turned into JavaScript once, by the daemon before it listens; its
// workers and connection processes find the copy and import plain JavaScript, loading no
// TypeScript machinery (node's type stripping alone costs a process ~40 ms: its compiler is
// WebAssembly, compiled in every process that strips).
// - 'node': node's own type stripping (module.stripTypeScriptTypes, Node >= 22.13 with stripping
//   on). Types become blanks, so every line and column stays where it was, and a sourceURL
//   comment names the .ts file: stack traces name the .ts file and line.
// - 'esbuild': for a node that strips no types (Node 20) or syntax stripping does not cover
//   (enums, namespaces, parameter properties): the handler and the TypeScript modules it
//   imports, bundled, with an inline source map naming the .ts files.
//
// The copy sits beside the handler (`.NAME.tcpdaemon.LOADER.mjs`, `.cjs` or `.js`), so the packages it
// imports resolve as from the source. A manifest beside it (`.NAME.tcpdaemon.json`) lists every
// input with its size and mtime: any change, or another node major, makes it stale, and the
// next process to load the handler makes a new one.
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** What made the JavaScript copy. */
export type CopyLoader = 'node' | 'esbuild';

export interface Compiled {
  /** The JavaScript module to import. */
  file: string;
  loader: CopyLoader;
}

interface Manifest {
  /** Bumped when what this module writes changes. */
  layout: number;
  /** Made by this node major (esbuild's target; node's stripping of that version). */
  node: string;
  loader: CopyLoader;
  file: string;
  /** [absolute path, size in bytes, mtime in ms] of the handler and every module bundled with it. */
  inputs: [string, number, number][];
}

const LAYOUT = 3;
const NODE_MAJOR = process.versions.node.split('.')[0]!;

function manifestPath(abs: string): string {
  return join(dirname(abs), `.${basename(abs)}.tcpdaemon.json`);
}

/** The copy of `abs` if it is current (nothing it was made from changed), else undefined. Cheap: one read, a stat per input. */
export function findCompiled(abs: string): Compiled | undefined {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(manifestPath(abs), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
  if (m.layout !== LAYOUT || m.node !== NODE_MAJOR || !Array.isArray(m.inputs)) return undefined;
  for (const [path, size, mtimeMs] of m.inputs) {
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined || st.size !== size || st.mtimeMs !== mtimeMs) return undefined;
  }
  return statSync(m.file, { throwIfNoEntry: false }) ? { file: m.file, loader: m.loader } : undefined;
}

type StripTypes = (code: string, options: { mode: 'strip'; sourceUrl: string }) => string;

/** node:module's stripTypeScriptTypes, where this node has it and strips types at all; else undefined. */
export async function nodeStripper(): Promise<StripTypes | undefined> {
  if (!(process.features as { typescript?: string | false }).typescript) return undefined;
  const mod = (await import('node:module')) as unknown as { stripTypeScriptTypes?: StripTypes };
  return mod.stripTypeScriptTypes;
}

/**
 * Strips the types of `abs` with node's own stripper and writes the copy and its manifest.
 * Throws node's error (code ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX for an enum, a namespace, a
 * parameter property; ERR_INVALID_TYPESCRIPT_SYNTAX for a syntax error).
 */
export function stripHandler(abs: string, strip: StripTypes): Compiled {
  const source = readFileSync(abs, 'utf8');
  const st = statSync(abs);
  // Node warns once per process that the function is experimental; this daemon's one call is no news.
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (!String(warning).includes('stripTypeScriptTypes'))
      (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  let code: string;
  try {
    code = strip(source, { mode: 'strip', sourceUrl: pathToFileURL(abs).href });
  } finally {
    process.emitWarning = emitWarning;
  }
  const format = declaredFormat(abs);
  // No "type" said: a .js copy, whose format node then detects from the syntax, as for the .ts.
  const out = outputPath(abs, 'node', format ?? 'detect');
  writeAtomically(out, code);
  const manifest: Manifest = {
    layout: LAYOUT,
    node: NODE_MAJOR,
    loader: 'node',
    file: out,
    inputs: [[abs, st.size, st.mtimeMs]],
  };
  writeAtomically(manifestPath(abs), JSON.stringify(manifest));
  return { file: out, loader: 'node' };
}

/**
 * Compiles `abs` (with the local modules it imports; packages stay imports) and writes the
 * output and its manifest beside it. Throws esbuild's error for code it cannot compile, and the
 * file system's when the folder is not writable.
 */
export async function compileHandler(abs: string): Promise<Compiled> {
  const { build } = await import('esbuild');
  const run = (format: 'esm' | 'cjs', outfile: string) =>
    build({
      plugins: [keepModulesInPlace(format)],
      entryPoints: [abs],
      absWorkingDir: dirname(abs),
      outfile,
      format,
      bundle: true,
      packages: 'external',
      platform: 'node',
      target: `node${NODE_MAJOR}`,
      sourcemap: 'inline',
      sourcesContent: false,
      metafile: true,
      write: false,
      logLevel: 'silent',
    });
  let format = declaredFormat(abs);
  let out = outputPath(abs, 'esbuild', format ?? 'esm');
  let result = await run(format ?? 'esm', out);
  if (format === undefined) {
    // No "type" in package.json: node goes by the syntax, and so do we (esbuild saw it).
    const entry = Object.entries(result.metafile.inputs).find(([p]) => resolve(dirname(abs), p) === abs);
    if (entry?.[1].format === 'cjs') {
      format = 'cjs';
      out = outputPath(abs, 'esbuild', format);
      result = await run(format, out);
    }
  }
  const code = result.outputFiles.find((f) => f.path === out)?.text;
  if (code === undefined) throw new Error(`esbuild wrote no ${out}`);
  const inputs = Object.keys(result.metafile.inputs).map((p): [string, number, number] => {
    const path = resolve(dirname(abs), p);
    const st = statSync(path);
    return [path, st.size, st.mtimeMs];
  });
  writeAtomically(out, code);
  const manifest: Manifest = { layout: LAYOUT, node: NODE_MAJOR, loader: 'esbuild', file: out, inputs };
  writeAtomically(manifestPath(abs), JSON.stringify(manifest));
  return { file: out, loader: 'esbuild' };
}

const TS_FILE = /\.[mc]?ts$/;
const JS_FILE = /\.[mc]?js$/;
const IMPORT_META = /\bimport\.meta\.(url|filename|dirname)\b/g;

/**
 * Only TypeScript is bundled into the compiled copy; every JavaScript module it imports stays an
 * import of the file where it is, so it loads as it would from the source. A bundled TypeScript
 * module keeps its own import.meta.url (dirname, filename), not the compiled copy's, so what it
 * resolves relative to itself (createRequire, readFile(new URL(...))) still resolves.
 */
function keepModulesInPlace(format: 'esm' | 'cjs'): import('esbuild').Plugin {
  return {
    name: 'tcpdaemon-keep-modules-in-place',
    setup(b) {
      b.onResolve({ filter: /^[./]/ }, async (args) => {
        if (args.pluginData === 'inner') return undefined;
        const r = await b.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: 'inner',
        });
        if (r.errors.length > 0 || !JS_FILE.test(r.path)) return undefined;
        return { path: format === 'esm' ? pathToFileURL(r.path).href : r.path, external: true };
      });
      b.onLoad({ filter: TS_FILE }, async (args) => {
        const source = await readFile(args.path, 'utf8');
        const url = pathToFileURL(args.path).href;
        const meta = { url, filename: args.path, dirname: dirname(args.path) };
        const contents = source.replace(IMPORT_META, (_m, key: keyof typeof meta) =>
          JSON.stringify(meta[key]),
        );
        return { contents, loader: 'ts', resolveDir: dirname(args.path) };
      });
    },
  };
}

/**
 * One name per loader: a copy node's stripping made and that then failed to import stays in
 * this process's module cache as a failure, so esbuild's copy must have another URL.
 */
function outputPath(abs: string, loader: CopyLoader, format: 'esm' | 'cjs' | 'detect'): string {
  const ext = format === 'esm' ? 'mjs' : format === 'cjs' ? 'cjs' : 'js';
  return join(dirname(abs), `.${basename(abs)}.tcpdaemon.${loader}.${ext}`);
}

/** Renamed into place: a process starting meanwhile reads the old file or the new one, never half of one. */
function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** .mts is ESM, .cts CommonJS, .ts as the nearest package.json's "type" says; undefined: it says nothing. */
function declaredFormat(abs: string): 'esm' | 'cjs' | undefined {
  const ext = extname(abs);
  if (ext === '.mts') return 'esm';
  if (ext === '.cts') return 'cjs';
  for (let dir = dirname(abs); ; dir = dirname(dir)) {
    let text: string | undefined;
    try {
      text = readFileSync(join(dir, 'package.json'), 'utf8');
    } catch {
      // none here: look further up
    }
    if (text !== undefined) {
      const type = (JSON.parse(text) as { type?: unknown }).type;
      return type === 'module' ? 'esm' : type === 'commonjs' ? 'cjs' : undefined;
    }
    if (dirname(dir) === dir) return undefined;
  }
}
