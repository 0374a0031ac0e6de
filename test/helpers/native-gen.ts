// One of the bench's C generators (bench/native.ts), built once per test file into a temporary
// directory, and run to its end: exit code, its JSON (if it printed one) and stderr.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { after, before } from 'node:test';
import { buildNative, type NativeProgram } from '../../bench/native.js';
import { tempDir } from './temp-dir.js';

export interface GenRun<T> {
  code: number | null;
  json: T | undefined;
  stderr: string;
}

/** Registers the build (before) and the clean-up (after); returns the runner. */
export function nativeGenerator<T>(program: NativeProgram): (args: string[]) => Promise<GenRun<T>> {
  const outDir = tempDir(`${program}-`);
  after(() => rmSync(outDir, { recursive: true, force: true }));
  let binary = '';
  before(() => {
    binary = buildNative(program, outDir);
  });
  return async (args) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, json: out.trim() ? (JSON.parse(out) as T) : undefined, stderr };
  };
}
