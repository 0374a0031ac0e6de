// What the gateway daemon hands its child processes (gateway and worker processes) in their environment.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ResolvedGatewayParams } from './params.js';

export const CHILD_ENV = {
  /** ResolvedGatewayParams as JSON. */
  params: 'TCPDAEMON_GATEWAY_PARAMS',
  /** ipc: the folder holding every worker's unix socket (`w<spawnId>.sock`). */
  socketDir: 'TCPDAEMON_GATEWAY_SOCKET_DIR',
} as const;

export function readChildParams(): ResolvedGatewayParams {
  const raw = process.env[CHILD_ENV.params];
  if (!raw)
    throw new Error(`${CHILD_ENV.params} is not set: this process must be started by tcpdaemon gateway`);
  return JSON.parse(raw) as ResolvedGatewayParams;
}

/** The ipc socket of the worker started as `spawnId`. */
export function workerSocketPath(dir: string, spawnId: number): string {
  return `${dir}/w${spawnId}.sock`;
}

/** A child entry module next to this one: compiled .js, or .ts run through tsx (tests on src/). */
export function childEntry(name: string): { file: string; execArgv: string[] } {
  const js = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  if (existsSync(js)) return { file: js, execArgv: [] };
  return { file: fileURLToPath(new URL(`./${name}.ts`, import.meta.url)), execArgv: ['--import', 'tsx'] };
}
