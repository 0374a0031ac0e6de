// Hold mode, one load thread's share: opens its connections with at most RAMP_PARALLEL
// attempts at a time, each proven by one verified echo of `size` bytes (so the server
// has accepted it, not just the kernel), then holds them idle until stopped. Failed
// attempts are not retried. The ramp ends when every connection is open or failed, or
// after `duration` seconds (attempts still pending count as timeouts).
import type { Socket } from 'node:net';
import { type DialFailure, dial, socketFailure } from './dial.js';
import { closeGently, type LoadEngine, type LoadShare, type RampResult } from './engine.js';
import { PayloadPattern } from './payload.js';

/** Connection attempts in progress at once, per thread. */
const RAMP_PARALLEL = 64;

export class HoldLoad implements LoadEngine {
  private readonly pattern: PayloadPattern;
  private readonly held = new Set<Socket>();
  private readonly pending = new Set<Socket>();
  private nextIndex = 0;
  private failed = 0;
  private ramping = true;
  private running = true;
  private deadline: NodeJS.Timeout | undefined;
  private rampDone: (r: RampResult) => void = () => undefined;
  /** Resolves once the ramp is over. */
  readonly ramped: Promise<RampResult>;

  constructor(private readonly share: LoadShare) {
    this.pattern = new PayloadPattern(share.options.size);
    this.ramped = new Promise((resolve) => {
      this.rampDone = resolve;
    });
  }

  start(): void {
    this.deadline = setTimeout(() => this.endRamp(), this.share.options.duration * 1000);
    for (let i = 0; i < RAMP_PARALLEL; i++) this.attemptNext();
    this.checkRampOver();
  }

  private attemptNext(): void {
    if (!this.ramping || this.nextIndex >= this.share.connIds.length) return;
    const id = this.share.connIds[this.nextIndex++]!;
    const started = performance.now();
    const body = this.pattern.body(id, 0);
    const socket = dial(this.share.options.target, (failure, s) => {
      if (failure) return this.attemptFailed(s, failure);
      let matched = 0;
      s.on('data', (chunk: Buffer) => {
        const n = Math.min(chunk.length, body.length - matched);
        if (n < chunk.length || chunk.compare(body, matched, matched + n) !== 0) {
          return this.attemptFailed(s, { kind: 'verify', code: undefined });
        }
        matched += n;
        if (matched === body.length) this.opened(s, started);
      });
      s.on('error', (err) => this.attemptFailed(s, socketFailure(err)));
      s.on('end', () => this.attemptFailed(s, { kind: 'eof', code: undefined }));
      s.write(body);
    });
    this.pending.add(socket);
  }

  private opened(socket: Socket, started: number): void {
    if (!this.pending.delete(socket)) return;
    const tally = this.share.tally;
    tally.latency.recordMs(performance.now() - started);
    tally.done += 1;
    tally.bytes += this.share.options.size;
    this.held.add(socket);
    socket.removeAllListeners('data').removeAllListeners('error').removeAllListeners('end');
    socket.on('data', () => this.dropped(socket, { kind: 'verify', code: undefined }));
    socket.on('error', (err) => this.dropped(socket, socketFailure(err)));
    socket.on('end', () => this.dropped(socket, { kind: 'eof', code: undefined }));
    this.attemptNext();
    this.checkRampOver();
  }

  private attemptFailed(socket: Socket, failure: DialFailure): void {
    if (!this.pending.delete(socket)) return;
    socket.on('error', () => undefined);
    socket.destroy();
    this.failed += 1;
    this.share.tally.error(failure.kind, failure.code);
    this.attemptNext();
    this.checkRampOver();
  }

  /** A held connection went away (or talked) while idle. */
  private dropped(socket: Socket, failure: DialFailure): void {
    if (!this.held.delete(socket) || !this.running) return;
    socket.on('error', () => undefined);
    socket.destroy();
    this.share.tally.dropped += 1;
    this.share.tally.error(failure.kind, failure.code);
  }

  private checkRampOver(): void {
    if (this.ramping && this.pending.size === 0 && this.nextIndex >= this.share.connIds.length)
      this.endRamp();
  }

  private endRamp(): void {
    if (!this.ramping) return;
    this.ramping = false;
    clearTimeout(this.deadline);
    for (const s of this.pending) this.attemptFailed(s, { kind: 'timeout', code: 'ramp deadline' });
    const neverTried = this.share.connIds.length - this.nextIndex;
    for (let i = 0; i < neverTried; i++) this.share.tally.error('timeout', 'ramp deadline');
    this.failed += neverTried;
    this.nextIndex = this.share.connIds.length;
    this.rampDone({ open: this.held.size, failed: this.failed });
  }

  async stop(): Promise<void> {
    this.running = false;
    this.endRamp();
    const sockets = [...this.held];
    this.held.clear();
    await Promise.all(sockets.map((s) => closeGently(s)));
  }
}
