// What the gateway daemon hands its child processes (gateway and worker processes) in their
// environment: the child channel's gatewayParams and gatewaySocketDir (src/child-channel.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CHANNEL_VARS, readVar } from '../child-channel.js';
import type { ResolvedGatewayParams } from './params.js';

/** The variables of one gateway child: ResolvedGatewayParams as JSON; ipc: the folder of every worker's unix socket (`w<spawnId>.sock`). */
export interface GatewayChildVars {
  gatewayParams: string;
  gatewaySocketDir?: string;
}

export function readChildParams(): ResolvedGatewayParams {
  const raw = readVar('gatewayParams');
  if (!raw)
    throw new Error(
      `${CHANNEL_VARS.gatewayParams.name} is not set: this process must be started by tcpdaemon gateway`,
    );
  return JSON.parse(raw) as ResolvedGatewayParams;
}

/** ipc: the folder of every worker's unix socket; undefined without one. */
export function childSocketDir(): string | undefined {
  return readVar('gatewaySocketDir');
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
