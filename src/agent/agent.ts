// The agent's core: local requests in, upstream connections out. A request gets an upstream seq
// (RequestMap), goes out on the usable connection with the fewest in flight, and its reply goes
// back to the local connection that asked, under that connection's own seq. Every request is
// answered once: by its reply, or by an error frame (busy, timeout, upstream lost, unavailable).
import { FLAG_ERROR, FLAG_REPLY } from '../message/codecs/codec.js';
import type { Codec } from '../message/codecs/index.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { Corks } from './corks.js';
import type { Host, HostCounts, HostSet, HostSpec } from './hosts.js';
import type { ResolvedAgentConfig } from './params.js';
import { type Asker, type Pending, RequestMap } from './requests.js';
import { UpstreamLink } from './upstream.js';

/** What each serving process reports with its heartbeats (and `tcpdaemon status` shows). */
export interface AgentSnapshot {
  agent: {
    localConnections: number;
    pausedLocals: number;
    inFlight: number;
    /** Of inFlight: waiting for an upstream connection to come up. */
    parked: number;
    busy: number;
    unavailable: number;
    lateDrops: number;
    oneWay: number;
    dropped: number;
  };
  links: { index: number; state: string; upstream: string | null; inFlight: number }[];
  hosts: ({ id: string; state: string; links: number; inFlight: number } & HostCounts)[];
}

const ERROR_REPLY = FLAG_REPLY | FLAG_ERROR;

export class Agent {
  readonly codec: Codec;
  /** Writes of one read chunk, corked together (local and upstream sides share it: one thread). */
  readonly corks = new Corks();
  private readonly links: UpstreamLink[] = [];
  private readonly requests: RequestMap<UpstreamLink>;
  private readonly lateLog: ThrottledCount;
  private readonly dropLog: ThrottledCount;
  private readonly counts = { busy: 0, unavailable: 0, lateDrops: 0, oneWay: 0, dropped: 0 };
  localConnections = 0;
  /** Local connections not read from until their answers drain (backpressure). */
  pausedLocals = 0;
  private closed = false;

  constructor(
    private readonly cfg: ResolvedAgentConfig,
    codec: Codec,
    private readonly hosts: HostSet,
    private readonly logger: Logger,
  ) {
    this.codec = codec;
    this.lateLog = new ThrottledCount(logger, 'late upstream replies dropped (their requests had timed out)');
    this.dropLog = new ThrottledCount(logger, 'frames dropped (no request to match)');
    this.requests = new RequestMap<UpstreamLink>({
      timeoutMs: cfg.requestTimeoutMs,
      maxInFlight: cfg.maxInFlight,
      maxInFlightPerConn: cfg.maxInFlightPerConn,
      onTimeout: (p) => this.timedOut(p),
      onParkedTimeout: (p) => {
        this.counts.unavailable++;
        this.answerError(
          p,
          `timeout: no upstream connection came up within ${this.cfg.requestTimeoutMs} ms (${this.unavailableReason()})`,
        );
      },
    });
    for (let i = 0; i < cfg.connections; i++) {
      this.links.push(
        new UpstreamLink(i, {
          codec,
          hosts,
          connectTimeoutMs: cfg.connectTimeoutMs,
          backoff: { initialDelay: cfg.reconnectDelayMs, maxDelay: cfg.reconnectDelayMaxMs },
          logger,
          corks: this.corks,
          events: {
            frame: (link, msgid, body, seq, flags) => this.fromUpstream(link, msgid, body, seq, flags),
            up: (link) => this.flushParked(link),
            lost: (link, host, reason) => this.lost(link, host, reason),
            inFlight: (link) => this.requests.countOn(link),
          },
        }),
      );
    }
  }

  start(): void {
    for (const link of this.links) link.start();
  }

  /** The route table changed: the new host list (connections on removed hosts move once idle). */
  setHosts(specs: HostSpec[]): void {
    const removed = new Set(this.hosts.set(specs));
    for (const link of this.links) {
      if (link.host && removed.has(link.host)) link.retire('its host was removed from the route table');
      else link.kick();
    }
    this.spreadToNewHosts();
  }

  /**
   * A host that joined gets connections too: while a listed host has none and another holds two
   * or more, one of those finishes what it carries and reconnects (the strategy then picks the
   * host with the fewest). Without this the links stay where they were until one is lost.
   */
  private spreadToNewHosts(): void {
    const listed = this.hosts.list().filter((h) => !h.removed);
    const staying = (h: Host) =>
      this.links.filter((l) => l.host === h && !l.retiring && l.state !== 'closed');
    let empty = listed.filter((h) => staying(h).length === 0).length;
    while (empty > 0) {
      const crowded = listed
        .map((h) => ({ h, links: staying(h) }))
        .filter((x) => x.links.length >= 2)
        .sort((a, b) => b.links.length - a.links.length)[0];
      if (crowded === undefined) return;
      crowded.links[crowded.links.length - 1]!.retire('rebalancing onto a host that joined');
      empty--;
    }
  }

  /** One frame from a local connection. */
  fromLocal(asker: Asker, msgid: number, body: Buffer, seq: number, flags: number): void {
    if ((flags & FLAG_REPLY) !== 0) {
      this.counts.dropped++;
      this.dropLog.add({ reason: 'a local connection sent a reply frame' });
      return;
    }
    if (seq === 0) {
      // One-way: out on any usable connection, else dropped (nobody waits for it).
      const link = this.leastBusy();
      this.counts.oneWay++;
      if (link) this.corks.write(link, this.codec.encode(msgid, body, 0, 0));
      else {
        this.counts.dropped++;
        this.dropLog.add({ reason: 'one-way frame with no upstream connected' });
      }
      return;
    }
    if (this.closed) {
      asker.answer(msgid, Buffer.from('unavailable: the agent is stopping'), seq, ERROR_REPLY);
      return;
    }
    const busy = this.requests.refusal(asker);
    if (busy !== undefined) {
      this.counts.busy++;
      asker.answer(msgid, Buffer.from(busy), seq, ERROR_REPLY);
      return;
    }
    const link = this.leastBusy();
    if (link === undefined) {
      if (this.hosts.size === 0) {
        this.counts.unavailable++;
        asker.answer(msgid, Buffer.from(`unavailable: ${this.unavailableReason()}`), seq, ERROR_REPLY);
      } else {
        // Hosts are known but no connection is up (connecting, reconnecting): wait for one.
        this.requests.park(asker, seq, msgid, body);
      }
      return;
    }
    this.send(link, asker, seq, msgid, body);
  }

  private send(
    link: UpstreamLink,
    asker: Asker,
    seq: number,
    msgid: number,
    body: Uint8Array,
    timeoutMs?: number,
  ): void {
    const p = this.requests.add(asker, seq, msgid, link, timeoutMs);
    const host = link.host!;
    host.counts.requests++;
    host.inFlight++;
    this.corks.write(link, this.codec.encode(msgid, body, p.upSeq, 0));
  }

  /** A connection came up: parked requests go out on the usable connections, oldest first. */
  private flushParked(first: UpstreamLink): void {
    if (this.requests.parkedCount === 0) return;
    const now = Date.now();
    for (let p = this.requests.unpark(); p !== undefined; p = this.requests.unpark()) {
      if (p.asker.closed) continue;
      const link = this.leastBusy() ?? first;
      this.send(link, p.asker, p.localSeq, p.msgid, p.body, p.deadline - now);
    }
  }

  /** Requests in flight, all local connections. */
  get inFlight(): number {
    return this.requests.size;
  }

  snapshot(): AgentSnapshot {
    return {
      agent: {
        localConnections: this.localConnections,
        pausedLocals: this.pausedLocals,
        inFlight: this.requests.size,
        parked: this.requests.parkedCount,
        ...this.counts,
      },
      links: this.links.map((l) => ({
        index: l.index,
        state: l.retiring ? 'retiring' : l.state,
        upstream: l.host?.id ?? null,
        inFlight: this.requests.countOn(l),
      })),
      hosts: this.hosts.list().map((h) => ({
        id: h.id,
        state: this.hosts.state(h),
        links: h.active,
        inFlight: h.inFlight,
        ...h.counts,
      })),
    };
  }

  /** Stops: upstream connections close; anything still in flight is answered with an error. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links) link.close();
    for (const p of this.requests.takeAll()) this.answerError(p, 'unavailable: the agent is stopping');
    this.hosts.close();
  }

  private fromUpstream(link: UpstreamLink, msgid: number, body: Buffer, seq: number, flags: number): void {
    const host = link.host!;
    if (seq === 0 || (flags & FLAG_REPLY) === 0) {
      this.counts.dropped++;
      this.dropLog.add({ reason: 'upstream sent a frame that answers no request', upstream: host.id });
      return;
    }
    const p = this.requests.take(seq);
    if (p === undefined) {
      this.counts.lateDrops++;
      host.counts.lateDrops++;
      this.lateLog.add({ upstream: host.id });
      return;
    }
    host.counts.replies++;
    host.inFlight--;
    this.hosts.success(host);
    if (!p.asker.closed) p.asker.answer(msgid, body, p.localSeq, flags);
    link.moveIfIdle();
  }

  private timedOut(p: Pending<UpstreamLink>): void {
    const host = p.link.host;
    if (host) {
      host.counts.timeouts++;
      host.inFlight--;
      this.hosts.error(host);
    }
    this.answerError(
      p,
      `timeout: no reply from upstream ${host?.id ?? ''} within ${this.cfg.requestTimeoutMs} ms`,
    );
    p.link.moveIfIdle();
  }

  private lost(link: UpstreamLink, host: Host, reason: string): void {
    const lostOnes = this.requests.takeLink(link);
    if (lostOnes.length > 0)
      this.logger.warn(
        { link: link.index, upstream: host.id, requests: lostOnes.length, reason },
        'requests in flight on a lost upstream connection answered with errors',
      );
    for (const p of lostOnes) {
      host.counts.errors++;
      host.inFlight--;
      this.answerError(p, `upstream lost: ${host.id} (${reason}) with the request in flight`);
    }
  }

  private answerError(p: { asker: Asker; msgid: number; localSeq: number }, message: string): void {
    if (!p.asker.closed) p.asker.answer(p.msgid, Buffer.from(message), p.localSeq, ERROR_REPLY);
  }

  private leastBusy(): UpstreamLink | undefined {
    let best: UpstreamLink | undefined;
    let bestCount = Number.POSITIVE_INFINITY;
    for (const link of this.links) {
      if (!link.usable) continue;
      const n = this.requests.countOn(link);
      if (n < bestCount) {
        best = link;
        bestCount = n;
      }
    }
    return best;
  }

  private unavailableReason(): string {
    if (this.hosts.size === 0) return 'no upstream host is known (none listed for the service)';
    return 'no upstream connection is up: connecting';
  }
}
