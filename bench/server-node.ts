// Which node binary the benchmarked servers run on: the runner's own, or the one given with
// `--node PATH` (run.ts passes it on as TCPDAEMON_BENCH_NODE). Servers get that binary's folder
// first on PATH, so `bin/tcpdaemon` (#!/usr/bin/env node) and everything it forks run on it;
// the load tool stays on the runner's node, so every column is measured by the same client.
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';

export const SERVER_NODE_ENV = 'TCPDAEMON_BENCH_NODE';

/** Absolute path of the servers' node binary. */
export const SERVER_NODE =
  process.env[SERVER_NODE_ENV] === undefined ? process.execPath : resolve(process.env[SERVER_NODE_ENV]);

/** `v24.22.3`: the servers' node version (asked once). */
export const SERVER_NODE_VERSION =
  SERVER_NODE === process.execPath
    ? process.version
    : execFileSync(SERVER_NODE, ['--version'], { encoding: 'utf8' }).trim();

/** The environment of a server process: SERVER_NODE's folder first on PATH. */
export function serverEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env[SERVER_NODE_ENV];
  if (SERVER_NODE !== process.execPath) env.PATH = `${dirname(SERVER_NODE)}:${env.PATH ?? ''}`;
  return env;
}

/** Whether the servers' node can move accepted sockets to worker threads (node-features.ts). */
export function serverNodeCanTransferSockets(): boolean {
  const probe =
    "import('./src/node-features.ts').then(async (m) => console.log(await m.canTransferSockets()))";
  const out = execFileSync(SERVER_NODE, ['--import', 'tsx', '-e', probe], {
    cwd: resolve(import.meta.dirname, '..'),
    encoding: 'utf8',
  });
  return out.trim() === 'true';
}
