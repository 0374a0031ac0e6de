// The embedded queue (--queue ipc, the default): no broker. Every worker listens on its own unix
// socket; every gateway process connects to every worker and sends each request straight to the
// worker it picked (fewest outstanding, below the bound), so a request crosses one socket each way.
// Names, cross-gateway delivery and stored messages go through the daemon (ipc-hub.ts), which sees
// every gateway process; they are the rare path.
import { unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { leastOutstanding } from '../balancer.js';
import type { DeliverResult } from '../business.js';
import { type Envelope, KIND } from '../envelope.js';
import { EnvelopeLink, linkCodec } from '../envelope-link.js';
import { IdSet } from '../id-set.js';
import type { Rpc } from '../ipc-rpc.js';
import type { Target } from '../names.js';
import { type SendFn, WorkerRunner } from '../worker-runner.js';
import type {
  GatewayQueue,
  GatewayQueueEvents,
  GatewayQueueOptions,
  WorkerQueue,
  WorkerQueueOptions,
  WorkRequest,
} from './queue.js';

/** A ctx.send waits this long for the gateway's answer, ms. */
const SEND_TIMEOUT_MS = 10_000;
const CONNECT_ATTEMPTS = 5;
const CONNECT_RETRY_MS = 100;

// ---------------------------------------------------------------- gateway side

class WorkerLink {
  outstanding = 0;
  accepting = false;
  /** Requests sent to it and not answered yet. */
  readonly ids = new IdSet();
  link: EnvelopeLink | undefined;
  constructor(
    readonly key: string,
    readonly path: string,
  ) {}
}

export class IpcGatewayQueue implements GatewayQueue {
  private readonly links: WorkerLink[] = [];
  private rotate = 0;
  private closing = false;

  constructor(
    private readonly opts: GatewayQueueOptions,
    private readonly events: GatewayQueueEvents,
    private readonly rpc: Rpc,
  ) {
    rpc.on('worker-up', (m) => this.addWorker(String(m.key), String(m.path)));
    rpc.on('push', (m) =>
      events.push(String(m.session), Number(m.msgid), Buffer.from(String(m.body), 'base64')),
    );
    rpc.on('name-taken', (m) => events.nameTaken(String(m.name), String(m.session)));
  }

  get workers(): number {
    return this.links.filter((l) => l.accepting).length;
  }

  /** Connects to a worker that the daemon reported ready. */
  addWorker(key: string, path: string): void {
    if (this.closing || this.links.some((l) => l.key === key)) return;
    const w = new WorkerLink(key, path);
    this.links.push(w);
    this.connectWorker(w, 1);
  }

  private connectWorker(w: WorkerLink, attempt: number): void {
    const socket = connect(w.path);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      const link = new EnvelopeLink(
        socket,
        linkCodec(this.opts.maxBody),
        (e) => this.onEnvelope(w, e),
        this.opts.logger,
        undefined,
        (id, msgid, body) => {
          this.settle(w, id);
          this.events.reply(id, msgid, body);
        },
      );
      w.link = link;
      w.accepting = !this.closing;
      this.opts.logger.debug({ worker: w.key }, 'connected to worker');
      void link.closed.then((reason) => this.onLinkClosed(w, reason));
      this.events.capacity();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (attempt < CONNECT_ATTEMPTS && !this.closing) {
        setTimeout(() => this.connectWorker(w, attempt + 1), CONNECT_RETRY_MS).unref();
        return;
      }
      this.opts.logger.error(
        { worker: w.key, path: w.path, err: err.code ?? err.message },
        'cannot reach worker',
      );
      this.drop(w);
    });
  }

  dispatch(req: WorkRequest): boolean {
    const i = leastOutstanding(this.links, this.opts.perWorkerBound, this.rotate++);
    if (this.rotate > 1e9) this.rotate = 0;
    if (i < 0) return false;
    const w = this.links[i]!;
    const ok = w.link!.sendRequest(req);
    if (!ok) {
      w.accepting = false;
      return this.dispatch(req);
    }
    w.outstanding++;
    w.ids.add(req.id);
    return true;
  }

  private onEnvelope(w: WorkerLink, e: Envelope): void {
    switch (e.kind) {
      case KIND.reply:
        this.settle(w, e.id);
        this.events.reply(e.id, e.msgid, e.body);
        break;
      case KIND.none:
        this.settle(w, e.id);
        this.events.reply(e.id, 0, undefined);
        break;
      case KIND.error:
        this.settle(w, e.id);
        this.events.fail(e.id, e.message);
        break;
      case KIND.send:
        this.events.send(e.target, e.msgid, e.body).then(
          (text) => w.link?.send({ kind: KIND.sendResult, id: e.id, ok: true, text }),
          (err: Error) => w.link?.send({ kind: KIND.sendResult, id: e.id, ok: false, text: err.message }),
        );
        break;
      case KIND.bye:
        w.accepting = false;
        w.link?.send({ kind: KIND.byeAck });
        break;
      default:
        w.link?.destroy(`unexpected envelope kind ${e.kind} from a worker`);
    }
  }

  /** One answer came back from `w`: it has room for one more. */
  private settle(w: WorkerLink, id: number): void {
    if (!w.ids.delete(id)) return;
    const wasFull = w.outstanding >= this.opts.perWorkerBound;
    w.outstanding--;
    if (wasFull) this.events.capacity();
  }

  private onLinkClosed(w: WorkerLink, reason: string): void {
    this.drop(w);
    if (w.ids.size > 0) this.events.lost(w.ids.values(), `worker ${w.key} link closed: ${reason}`);
    w.ids.clear();
    w.outstanding = 0;
  }

  private drop(w: WorkerLink): void {
    w.accepting = false;
    const i = this.links.indexOf(w);
    if (i >= 0) this.links.splice(i, 1);
  }

  async register(name: string, sessionId: string): Promise<void> {
    const stored = await this.rpc.call<{ msgid: number; body: string }[]>({
      gw: 'register',
      name,
      session: sessionId,
    });
    let gone = false;
    for (const m of stored) {
      const body = Buffer.from(m.body, 'base64');
      gone ||= !this.events.push(sessionId, m.msgid, body);
      // The session closed while its stored messages came: keep the rest for the next registration.
      if (gone) await this.deliver({ kind: 'name', name }, m.msgid, body).catch(() => undefined);
    }
  }

  unregister(name: string, sessionId: string): void {
    this.rpc.post({ gw: 'unregister', name, session: sessionId });
  }

  deliver(target: Target, msgid: number, body: Buffer): Promise<DeliverResult> {
    const to = target.kind === 'name' ? target.name : target.sessionId;
    return this.rpc.call<DeliverResult>({ gw: 'deliver', target: to, msgid, body: body.toString('base64') });
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const w of this.links) {
      w.accepting = false;
      w.link?.end('gateway closing');
    }
    await Promise.all(this.links.map((w) => w.link?.closed));
  }
}

// ---------------------------------------------------------------- worker side

interface GatewayLink {
  link: EnvelopeLink;
  byeAcked: boolean;
  /** ctx.send and the answer of every request that came by this link (made once, not per request). */
  send: SendFn;
  answer: (e: Envelope) => void;
}

export class IpcWorkerQueue implements WorkerQueue {
  private readonly runner: WorkerRunner;
  private readonly gateways = new Set<GatewayLink>();
  private readonly sends = new Map<
    number,
    { resolve: (r: DeliverResult) => void; reject: (e: Error) => void }
  >();
  private lastSendId = 0;
  private retiring = false;
  private server!: Server;
  private byeWaiters: (() => void)[] = [];

  private constructor(
    private readonly opts: WorkerQueueOptions,
    readonly path: string,
  ) {
    this.runner = new WorkerRunner(opts.handler, {
      workerId: opts.workerId,
      logger: opts.logger,
      maxConcurrent: opts.maxConcurrent,
      params: opts.params ?? {},
    });
  }

  /** Listens on `path` (a unix socket; a stale file there is removed). */
  static async open(opts: WorkerQueueOptions, path: string): Promise<IpcWorkerQueue> {
    const q = new IpcWorkerQueue(opts, path);
    try {
      unlinkSync(path);
    } catch {
      // nothing there
    }
    q.server = createServer((socket) => q.accept(socket));
    await new Promise<void>((resolve, reject) => {
      q.server.once('error', reject);
      q.server.listen(path, () => {
        q.server.off('error', reject);
        resolve();
      });
    });
    return q;
  }

  counts(): { served: number; active: number } {
    return { served: this.runner.served, active: this.runner.active + this.runner.queued };
  }

  private accept(socket: import('node:net').Socket): void {
    if (this.retiring) {
      socket.destroy();
      return;
    }
    const g: GatewayLink = {
      link: new EnvelopeLink(
        socket,
        linkCodec(this.opts.maxBody),
        (e) => this.onEnvelope(g, e),
        this.opts.logger,
      ),
      byeAcked: false,
      send: (target, msgid, body) => this.send(g, target, msgid, body),
      answer: (answer) => this.answer(g, answer),
    };
    this.gateways.add(g);
    void g.link.closed.then(() => {
      this.gateways.delete(g);
      this.checkByes();
    });
  }

  private onEnvelope(g: GatewayLink, e: Envelope): void {
    switch (e.kind) {
      case KIND.request:
        this.runner.run(e, g.send, g.answer);
        break;
      case KIND.sendResult: {
        const s = this.sends.get(e.id);
        if (!s) return;
        this.sends.delete(e.id);
        if (e.ok) s.resolve(e.text as DeliverResult);
        else s.reject(new Error(e.text));
        break;
      }
      case KIND.byeAck:
        g.byeAcked = true;
        this.checkByes();
        break;
      default:
        g.link.destroy(`unexpected envelope kind ${e.kind} from a gateway`);
    }
  }

  /** Writes the answer on the link the request came by; a reply too big for the link becomes an error. */
  private answer(g: GatewayLink, answer: Envelope): void {
    try {
      g.link.send(answer);
    } catch (err) {
      if (answer.kind === KIND.reply) {
        const message = `reply not sent: ${(err as Error).message}`;
        this.opts.logger.warn({ msgid: answer.msgid }, message);
        g.link.send({ kind: KIND.error, id: answer.id, message });
      }
    }
  }

  private send(g: GatewayLink, target: string, msgid: number, body: Buffer): Promise<DeliverResult> {
    const via = g.link.open ? g : [...this.gateways].find((x) => x.link.open);
    if (!via) return Promise.reject(new Error('no gateway is connected'));
    this.lastSendId = (this.lastSendId % 0xffffffff) + 1;
    const id = this.lastSendId;
    return new Promise<DeliverResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.sends.delete(id);
        reject(new Error(`no answer from the gateway within ${SEND_TIMEOUT_MS} ms`));
      }, SEND_TIMEOUT_MS);
      this.sends.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      try {
        via.link.send({ kind: KIND.send, id, msgid, target, body });
      } catch (err) {
        this.sends.get(id)?.reject(err as Error);
        this.sends.delete(id);
      }
    });
  }

  private checkByes(): void {
    if ([...this.gateways].every((g) => g.byeAcked)) for (const w of this.byeWaiters.splice(0)) w();
  }

  /** Says goodbye to every gateway, waits until none will send more and every request is answered. */
  async retire(graceMs: number): Promise<void> {
    if (this.retiring) return;
    this.retiring = true;
    this.server.close();
    const acked = new Promise<void>((resolve) => this.byeWaiters.push(resolve));
    for (const g of this.gateways) g.link.send({ kind: KIND.bye });
    this.checkByes();
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([acked.then(() => this.runner.idle()), deadline]);
    for (const g of this.gateways) g.link.end('worker retiring');
    await Promise.race([Promise.all([...this.gateways].map((g) => g.link.closed)), deadline]);
  }
}
