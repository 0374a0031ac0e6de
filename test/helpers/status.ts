// `tcpdaemon status` from tests: a fresh socket path and the JSON report.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { DaemonStatus } from '../../src/status.js';
import { runCli } from './daemon.js';
import { tempDir } from './temp-dir.js';

export function socketPath(): string {
  return join(tempDir('tcpd-status-'), 'status.sock');
}

export async function status(path: string): Promise<DaemonStatus> {
  const run = await runCli(['status', path, '--json']);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as DaemonStatus;
}
