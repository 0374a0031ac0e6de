// Spawned backends (`--spawn 'COMMAND {port}' --spawn-count N`): each is one slot of a
// Supervisor (src/supervisor/), which starts it, waits until it accepts connections, restarts it
// with backoff after an exit (and says so when it crash-loops), and stops it with the proxy. The
// pool hears of every change at once: a backend whose process exits is out of rotation before
// the next connection is picked, and back once its replacement accepts.
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { childEnv } from '../child-channel.js';
import { makePrivateDir } from '../private-dir.js';
import { readyWhenAccepting, Supervisor } from '../supervisor/index.js';
import type { Logger } from '../types.js';
import { type BackendAddress, type BackendSpec, backendId } from './backend.js';
import type { BackendPool } from './pool.js';
import { commandFor } from './spawn-command.js';

export interface SpawnPlan {
  /** The command's words, {port} still in them. */
  words: string[];
  count: number;
  /** Fixed ports basePort..basePort+count-1; undefined = free ports chosen at start. */
  basePort: number | undefined;
  /** Unix socket paths in a private directory instead of ports. */
  unix: boolean;
}

export interface SpawnTuning {
  /** Restart delays, ms (the daemon's --restart-delay / --restart-delay-max). */
  restartDelayMs?: number;
  restartDelayMaxMs?: number;
  /** A backend not accepting connections this long after its start is killed and restarted, ms. */
  readyTimeoutMs?: number;
  /** On stop, how long backends get to exit after SIGTERM before SIGKILL, ms. */
  graceMs?: number;
}

/** Where each backend listens: chosen once, kept across restarts so its pool entry stays. */
export async function planAddresses(plan: SpawnPlan): Promise<{ addresses: BackendAddress[]; dir?: string }> {
  const slots = Array.from({ length: plan.count }, (_, i) => i);
  if (plan.unix) {
    const dir = makePrivateDir('tcpdaemon-backends-');
    return { addresses: slots.map((i) => ({ path: join(dir, `backend-${i + 1}.sock`) })), dir };
  }
  if (plan.basePort !== undefined) {
    const base = plan.basePort;
    return { addresses: slots.map((i) => ({ host: '127.0.0.1', port: base + i })) };
  }
  // Hold all the listeners at once so the ports differ, then free them for the backends.
  const servers: Server[] = await Promise.all(
    slots.map(
      () =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return { addresses: ports.map((port) => ({ host: '127.0.0.1', port })) };
}

export class SpawnedBackends {
  readonly specs: BackendSpec[];
  private readonly supervisor: Supervisor;
  private readonly graceMs: number;

  constructor(
    plan: SpawnPlan,
    private readonly addresses: BackendAddress[],
    private readonly dir: string | undefined,
    pool: BackendPool,
    logger: Logger,
    tuning: SpawnTuning = {},
  ) {
    this.specs = addresses.map((address) => ({ id: backendId(address), address, weight: 1 }));
    this.unsettled = new Set(this.specs.map((_, i) => i));
    this.firstOutcomes = new Promise((resolve) => {
      this.allSettled = resolve;
    });
    this.graceMs = tuning.graceMs ?? 10_000;
    const log = logger.child({ component: 'backends' });
    this.supervisor = new Supervisor({
      name: 'backends',
      size: plan.count,
      logger: log,
      spec: {
        start: (ctx) => this.launch(plan.words, ctx.slot, ctx.env, log),
        readiness: readyWhenAccepting((worker) => this.addresses[worker.slot]!),
        heartbeats: false,
      },
      backoff: {
        ...(tuning.restartDelayMs !== undefined ? { initialMs: tuning.restartDelayMs } : {}),
        ...(tuning.restartDelayMaxMs !== undefined ? { maxMs: tuning.restartDelayMaxMs } : {}),
      },
      readyTimeoutMs: tuning.readyTimeoutMs ?? 30_000,
      retireGraceMs: this.graceMs,
    });
    this.supervisor.on('ready', (w) => {
      this.settle(w.slot);
      pool.markUp(this.specs[w.slot]!.id, `backend process ready (pid ${w.pid})`);
    });
    this.supervisor.on('exit', (w, info) => {
      this.settle(w.slot);
      const how = info.signal ?? `code ${info.code}`;
      pool.markDown(
        this.specs[w.slot]!.id,
        `backend process exited (${how}, ${info.reason}) after ${info.uptimeMs} ms`,
      );
    });
  }

  /** Resolves once every backend has been ready or has exited at least once. */
  readonly firstOutcomes: Promise<void>;
  private unsettled: Set<number>;
  private allSettled!: () => void;

  private settle(slot: number): void {
    if (this.unsettled.delete(slot) && this.unsettled.size === 0) this.allSettled();
  }

  /**
   * Starts every backend. Resolves at once: the proxy serves with those that are ready, and
   * one that never gets ready (a bad command) is restarted with backoff, logged, never waited for.
   */
  start(): void {
    this.supervisor.start().catch(() => undefined);
  }

  /** Pids of the backend processes by slot, started or starting (undefined between restarts). */
  pids(): (number | undefined)[] {
    const out: (number | undefined)[] = this.specs.map(() => undefined);
    for (const w of this.supervisor.workers()) if (w.state !== 'retiring') out[w.slot] = w.pid;
    return out;
  }

  /** SIGTERM to every backend, SIGKILL after the grace; resolves once all have exited. */
  async stop(graceMs = this.graceMs): Promise<void> {
    await this.supervisor.stop(graceMs);
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
  }

  private launch(
    words: string[],
    slot: number,
    protocolEnv: Record<string, string>,
    log: Logger,
  ): ChildProcess {
    const address = this.addresses[slot]!;
    const where = 'path' in address ? address.path : String(address.port);
    // A socket file left by the slot's previous process would make the new one fail to bind.
    if ('path' in address) rmSync(address.path, { force: true });
    const [file, ...args] = commandFor(words, where);
    // The backend is not ours: none of our private variables, its port and number (child-channel.ts).
    const env = childEnv(
      { backendPort: where, backendIndex: String(slot + 1) },
      'not-inherited',
      protocolEnv,
    );
    const child = spawn(file!, args, {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The backend's output goes to the proxy's log, one line per entry, tagged with the backend.
    const backend = this.specs[slot]!.id;
    for (const [stream, name] of [
      [child.stdout, 'stdout'],
      [child.stderr, 'stderr'],
    ] as const) {
      let buf = '';
      stream?.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          log.info({ backend, stream: name, line: buf.slice(0, i) }, 'backend output');
          buf = buf.slice(i + 1);
        }
        if (buf.length > 64 * 1024) buf = buf.slice(-64 * 1024); // a line without end: keep its tail
      });
    }
    return child;
  }
}
