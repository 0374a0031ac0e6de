// Scraping the operations listener (--metrics) from tests: a real HTTP client, a small parser of
// the text format, and promtool's verdict.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import type { DaemonProcess } from './daemon.js';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function httpGet(port: number, path: string, method = 'GET'): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

/** The port of the operations listener, from the daemon's log line. */
export async function metricsPort(daemon: DaemonProcess): Promise<number> {
  const line = await daemon.waitForMsg('metrics and health listening (/metrics, /healthz, /readyz)');
  return Number(/:(\d+)$/.exec(String(line.address))![1]);
}

/** `name{labels}` → value, for every sample line (labels as written, in their order). */
export function parseSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

export async function scrape(port: number): Promise<Map<string, number>> {
  const res = await httpGet(port, '/metrics');
  assert.equal(res.status, 200, res.body);
  return parseSamples(res.body);
}

/** Scrapes until `series` satisfies `pred` (heartbeats bring workers' values within a second). */
export async function waitForSample(
  port: number,
  series: string,
  pred: (v: number) => boolean,
  timeoutMs = 15_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: number | undefined;
  for (;;) {
    last = (await scrape(port)).get(series);
    if (last !== undefined && pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${series}; last value ${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `/readyz` until it answers `status`. */
export async function waitForReadyz(port: number, status: number, timeoutMs = 15_000): Promise<HttpAnswer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await httpGet(port, '/readyz');
    if (res.status === status) return res;
    if (Date.now() > deadline) throw new Error(`/readyz still ${res.status} (${res.body.trim()})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** promtool is Debian's `prometheus` package (scripts/install-system-deps.sh installs it). */
export function hasPromtool(): boolean {
  return spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** `promtool check metrics` on `text`: resolves with its output; rejects when it finds a problem. */
export function promtoolCheck(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`promtool check metrics: ${out}`)),
    );
    p.stdin.end(text);
  });
}
