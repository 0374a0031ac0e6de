// Bundles the worker entry (dist/worker/main.js and what it imports) into one CommonJS file,
// dist/worker/main.cjs. IF forks a process per connection; loading one CommonJS file instead
// of ~17 ES modules takes about 15 ms of CPU off every connection (BENCHMARKS.md, IF).
// Run by `npm run build` after tsc.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/worker/main.js'],
  outfile: 'dist/worker/main.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Loaded only when needed (esbuild to compile a .ts handler, tsx where the compiled copy cannot be
  // written, pino for the first log line), from node_modules.
  external: ['tsx', 'tsx/*', 'esbuild', 'pino'],
  // import.meta.url does not exist in CommonJS; the modules use it to resolve packages, which
  // resolve the same from the bundle's folder.
  define: { 'import.meta.url': '__tcpdaemon_bundle_url' },
  banner: { js: "const __tcpdaemon_bundle_url = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
