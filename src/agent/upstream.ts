// One upstream connection of the agent. It picks a host (HostSet), connects within the connect
// timeout, decodes replies for the agent, and after a failed connect or a lost connection tries
// again with backoff, preferring another host. retire() moves it off a removed host once the
// requests it carries are answered. It never answers a request itself: the agent does (onLost).
import { connect as netConnect, type Socket } from 'node:net';
import { Backoff } from '../message/backoff.js';
import type { Codec, Decoder } from '../message/codecs/index.js';
import type { Logger } from '../types.js';
import type { Corks } from './corks.js';
import type { Host, HostSet } from './hosts.js';

/** A connection that lived this long was a success: the next reconnect starts at the first delay, ms. */
const STABLE_MS = 1000;
/** While connects keep failing, a warning at most this often, ms. */
const WARN_EVERY_MS = 60_000;

export type LinkState = 'connecting' | 'connected' | 'waiting' | 'closed';

export interface LinkEvents {
  /** A frame from the host, in wire order. */
  frame(link: UpstreamLink, msgid: number, body: Buffer, seq: number, flags: number): void;
  /** Connected (requests may go out on it). */
  up(link: UpstreamLink): void;
  /** The connection was lost (or cut for a bad frame): the requests on it have no answer coming. */
  lost(link: UpstreamLink, host: Host, reason: string): void;
  /** How many requests are in flight on it (to know when a retiring link is idle). */
  inFlight(link: UpstreamLink): number;
}

export interface LinkOptions {
  codec: Codec;
  hosts: HostSet;
  connectTimeoutMs: number;
  backoff: { initialDelay: number; maxDelay: number };
  logger: Logger;
  events: LinkEvents;
  /** A read chunk's replies to local connections go out corked. */
  corks: Corks;
}

export class UpstreamLink {
  state: LinkState = 'waiting';
  /** The host it is connected or connecting to. */
  host: Host | undefined;
  /** Its host was removed from the route table: no new requests; it moves once idle. */
  retiring = false;
  private retireWhy = '';
  private socket: Socket | undefined;
  private decoder: Decoder | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  /** The host of the last failure, avoided by the next pick while another exists. */
  private avoid = new Set<string>();
  /** Connect attempts failed in a row, and when the last warning about them was logged (ms). */
  private failedAttempts = 0;
  private lastWarnAt = 0;
  /** Date.now() of the last connect: a connection lost sooner than STABLE_MS keeps the backoff growing. */
  private connectedAt = 0;

  constructor(
    readonly index: number,
    private readonly opts: LinkOptions,
  ) {
    this.backoff = new Backoff({ ...opts.backoff, jitter: 0.5 });
  }

  /** Connected and not retiring: a request may go out on it. */
  get usable(): boolean {
    return this.state === 'connected' && !this.retiring;
  }

  start(): void {
    if (this.state === 'waiting' && this.timer === undefined) this.connect();
  }

  /** Hosts changed: a link waiting for a host tries at once. */
  kick(): void {
    if (this.state !== 'waiting') return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.connect();
  }

  /** Writes one encoded frame; false when the socket is over its high-water mark. */
  write(frame: Buffer): boolean {
    return this.socket!.write(frame);
  }

  cork(): void {
    this.socket?.cork();
  }

  /** The socket corked may have been replaced since (a drop in the same chunk): uncorking the new one is harmless. */
  uncork(): void {
    this.socket?.uncork();
  }

  /**
   * Its host is gone from the list, or another host needs a connection (`why`): finish what is in
   * flight, then reconnect with the current list.
   */
  retire(why: string): void {
    if (this.state === 'closed') return;
    this.retireWhy = why;
    if (this.state !== 'connected') {
      // Connecting to (or waiting on) that host: start over with the current list.
      this.drop(why, false);
      return;
    }
    this.retiring = true;
    this.moveIfIdle();
  }

  /** A request on it was answered: a retiring link moves once none is left. */
  moveIfIdle(): void {
    if (this.retiring && this.state === 'connected' && this.opts.events.inFlight(this) === 0) {
      this.opts.logger.info(
        { link: this.index, upstream: this.host?.id, why: this.retireWhy },
        'upstream connection moves to another host',
      );
      this.drop(this.retireWhy, false);
    }
  }

  close(): void {
    if (this.state === 'closed') return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    const host = this.host;
    this.release();
    this.state = 'closed';
    if (socket && host) {
      socket.destroy();
      this.opts.events.lost(this, host, 'the agent is stopping');
    }
  }

  private connect(): void {
    this.timer = undefined;
    const host = this.opts.hosts.pick(this.avoid, `link-${this.index}`);
    if (host === undefined) {
      this.state = 'waiting';
      this.schedule();
      return;
    }
    this.state = 'connecting';
    this.host = host;
    host.active++;
    const socket =
      'path' in host.address
        ? netConnect({ path: host.address.path })
        : netConnect({ host: host.address.host, port: host.address.port });
    this.socket = socket;
    socket.setNoDelay(true);
    const connectTimer = setTimeout(() => {
      this.failed(socket, `no connection within ${this.opts.connectTimeoutMs} ms`);
    }, this.opts.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(connectTimer);
      if (this.socket !== socket) return;
      this.state = 'connected';
      this.connectedAt = Date.now();
      this.avoid.clear();
      host.counts.connects++;
      const fields = { link: this.index, upstream: host.id };
      this.opts.logger.info(
        this.failedAttempts > 0 ? { ...fields, failedAttempts: this.failedAttempts } : fields,
        'upstream connected',
      );
      this.failedAttempts = 0;
      this.decoder = this.opts.codec.createDecoder({
        frame: (msgid, body, seq, flags) => this.opts.events.frame(this, msgid, body, seq, flags),
        error: (reason) => {
          this.opts.logger.warn({ link: this.index, upstream: host.id, reason }, 'upstream sent a bad frame');
          this.drop(`bad frame from upstream: ${reason}`, true);
        },
      });
      this.opts.events.up(this);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.opts.corks.run(() => this.decoder?.push(chunk));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer);
      if (this.state === 'connecting') this.failed(socket, err.code ?? err.message);
      else if (this.socket === socket) this.drop(`connection error: ${err.code ?? err.message}`, true);
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      if (this.socket !== socket) return;
      if (this.state === 'connecting') this.failed(socket, 'closed while connecting');
      else this.drop('closed by the upstream host', true);
    });
  }

  /** A connect attempt failed. */
  private failed(socket: Socket, reason: string): void {
    if (this.socket !== socket || this.state !== 'connecting') return;
    const host = this.host!;
    host.counts.connectErrors++;
    this.opts.hosts.error(host);
    // Not one line per retry: the first failure of a run, then at most one a minute (with the count).
    const now = Date.now();
    const fields = { link: this.index, upstream: host.id, reason, failedAttempts: ++this.failedAttempts };
    if (this.failedAttempts === 1 || now - this.lastWarnAt >= WARN_EVERY_MS) {
      this.lastWarnAt = now;
      this.opts.logger.warn(fields, 'upstream connect failed');
    } else this.opts.logger.debug(fields, 'upstream connect failed');
    this.avoid = new Set([host.id]);
    this.release();
    socket.destroy();
    this.state = 'waiting';
    this.schedule();
  }

  /** The connection ends (lost, cut, or moved): the agent answers what was on it, then we reconnect. */
  private drop(reason: string, failure: boolean): void {
    if (this.state === 'closed') return;
    const socket = this.socket;
    const host = this.host;
    const wasConnected = this.state === 'connected';
    this.release();
    socket?.destroy();
    this.state = 'waiting';
    if (host && wasConnected) {
      // A host that accepts and drops at once must not be reconnected to ten times a second.
      if (Date.now() - this.connectedAt >= STABLE_MS) this.backoff.reset();
      if (failure) {
        this.opts.hosts.error(host);
        this.avoid = new Set([host.id]);
        this.opts.logger.warn({ link: this.index, upstream: host.id, reason }, 'upstream connection lost');
      }
      this.opts.events.lost(this, host, reason);
    }
    if (failure) this.schedule();
    else this.connect();
  }

  private release(): void {
    this.decoder?.stop();
    this.decoder = undefined;
    this.socket = undefined;
    if (this.host) this.host.active--;
    this.host = undefined;
    this.retiring = false;
  }

  private schedule(): void {
    if (this.state === 'closed') return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.backoff.next());
  }
}
