// The daemon's half of the embedded queue: tells gateway processes where the workers listen, and
// answers their calls about names, cross-gateway delivery and stored messages (directory.ts).
import type { WorkerHandle } from '../../supervisor/index.js';
import type { Logger } from '../../types.js';
import type { DeliverResult } from '../business.js';
import { Directory } from '../directory.js';
import type { Rpc } from '../ipc-rpc.js';
import { parseTarget } from '../names.js';
import { MessageStore, type StoreLimits } from '../store.js';

/** Expired stored messages are swept this often, ms. */
const SWEEP_MS = 10_000;

export class IpcHub {
  readonly directory: Directory;
  readonly store: MessageStore;
  /** Ready workers: spawn id -> socket path. */
  private readonly workers = new Map<number, string>();
  /** Gateway processes: instance (`g<spawnId>`) -> their channel. */
  private readonly gateways = new Map<string, Rpc>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(limits: StoreLimits, logger: Logger) {
    this.store = new MessageStore(limits);
    this.directory = new Directory(this.store, {
      push: async (instance, session, msgid, body) => {
        const rpc = this.gateways.get(instance);
        if (!rpc) return false;
        return rpc
          .call<boolean>({ gw: 'push', session, msgid, body: body.toString('base64') })
          .catch(() => false);
      },
      nameTaken: (holder, name) => {
        this.gateways.get(holder.instance)?.post({ gw: 'name-taken', name, session: holder.sessionId });
      },
    });
    this.sweeper = setInterval(() => {
      const n = this.store.sweep();
      if (n > 0) logger.info({ count: n, held: this.store.size }, 'stored messages expired unseen');
    }, SWEEP_MS);
    this.sweeper.unref();
  }

  /** A gateway process is ready: answer its calls, tell it every ready worker. */
  addGateway(handle: WorkerHandle, rpc: Rpc): void {
    const instance = `g${handle.spawnId}`;
    this.gateways.set(instance, rpc);
    rpc
      .on('register', (m) =>
        this.directory
          .register(String(m.name), { instance, sessionId: String(m.session) })
          .map((s) => ({ msgid: s.msgid, body: s.body.toString('base64') })),
      )
      .on('unregister', (m) => this.directory.unregister(String(m.name), String(m.session)))
      .on('deliver', (m) => this.deliver(String(m.target), Number(m.msgid), String(m.body)));
    for (const [spawnId, path] of this.workers) rpc.post({ gw: 'worker-up', key: String(spawnId), path });
  }

  removeGateway(spawnId: number): void {
    const instance = `g${spawnId}`;
    this.gateways.get(instance)?.closed('gateway process exited');
    this.gateways.delete(instance);
    this.directory.forgetInstance(instance);
  }

  /** A worker is ready at `path`: every gateway connects to it. */
  workerUp(spawnId: number, path: string): void {
    this.workers.set(spawnId, path);
    for (const rpc of this.gateways.values()) rpc.post({ gw: 'worker-up', key: String(spawnId), path });
  }

  workerGone(spawnId: number): void {
    this.workers.delete(spawnId);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private deliver(targetText: string, msgid: number, body64: string): Promise<DeliverResult> {
    const target = parseTarget(targetText);
    if (typeof target === 'string') return Promise.reject(new Error(target));
    return this.directory.deliver(target, msgid, Buffer.from(body64, 'base64'));
  }
}
