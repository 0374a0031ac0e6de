// Builds native/sockets.c into dist/native/sockets.node with the system's C compiler ($CC or cc) and the
// headers of the node running this (N-API: the one build serves Node 20, 22 and 24). Run by
// `npm run build`. It never fails the build: without a compiler or headers it says so in one line
// and tcpdaemon goes without (src/native/addon.ts: LF then takes each copy from the daemon, and peers are read through node).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const out = join(root, 'dist/native/sockets.node');
const headers = [join(dirname(process.execPath), '../include/node'), '/usr/include/node'].find((d) =>
  existsSync(join(d, 'node_api.h')),
);
rmSync(out, { force: true });
if (!headers) {
  process.stdout.write('build-native: no node_api.h next to this node: dist/native/sockets.node not built\n');
  process.exit(0);
}
mkdirSync(dirname(out), { recursive: true });
const cc = process.env.CC || 'cc';
const args = [
  '-O2',
  '-Wall',
  '-Wextra',
  '-shared',
  '-fPIC',
  `-I${headers}`,
  '-o',
  out,
  join(root, 'native/sockets.c'),
];
const r = spawnSync(cc, args, { encoding: 'utf8' });
if (r.error || r.status !== 0) {
  rmSync(out, { force: true });
  const why = r.error ? r.error.message : r.stderr.trim().split('\n')[0];
  process.stdout.write(`build-native: ${cc} failed (${why}): dist/native/sockets.node not built\n`);
}
