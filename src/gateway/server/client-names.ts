// Names clients register (newest registration wins, across gateways), the relay frame, and
// delivery to a client: here when it is here, else through the queue (another gateway, or the
// store for an offline name).
import type { Logger } from '../../types.js';
import type { DeliverResult } from '../business.js';
import { describeNameRule, isValidName, parseTarget } from '../names.js';
import { decodeRelay, GATEWAY_MSGID } from '../protocol.js';
import type { GatewayQueue } from '../queues/queue.js';
import { GatewayError, type Outcome } from '../requests.js';
import { rename, type Session, type Sessions } from './session.js';

export class ClientNames {
  private queue: GatewayQueue | undefined;
  private readonly names = new Map<string, Session>();

  constructor(
    private readonly instance: string,
    private readonly sessions: Sessions,
    private readonly log: Logger,
  ) {}

  attach(queue: GatewayQueue): void {
    this.queue = queue;
  }

  /** The register frame: the session's id once `name` is its own, an error otherwise. */
  async register(s: Session, name: string): Promise<Outcome> {
    const ok: Outcome = { msgid: GATEWAY_MSGID.register, body: Buffer.from(s.id) };
    if (!isValidName(name)) {
      return new GatewayError('refused', `cannot register '${name}': ${describeNameRule()}`);
    }
    if (s.name === name) return ok;
    if (s.name !== undefined) this.drop(s);
    try {
      await this.queue!.register(name, s.id);
    } catch (err) {
      return new GatewayError('refused', `cannot register '${name}': ${(err as Error).message}`);
    }
    if (!this.sessions.get(s.id)) return undefined;
    const before = this.names.get(name);
    if (before && before !== s) rename(before, undefined);
    rename(s, name);
    this.names.set(name, s);
    this.log.debug({ session: s.id, name }, 'name registered');
    return ok;
  }

  /** The session closes or takes another name: it no longer holds its name. */
  drop(s: Session): void {
    const name = s.name!;
    rename(s, undefined);
    if (this.names.get(name) === s) this.names.delete(name);
    this.queue?.unregister(name, s.id);
  }

  /** `name` was registered by a newer session elsewhere: session `id` here is told and loses it. */
  taken(name: string, id: string): void {
    const s = this.sessions.get(id);
    if (!s || s.name !== name) return;
    rename(s, undefined);
    if (this.names.get(name) === s) this.names.delete(name);
    s.conn.send(GATEWAY_MSGID.error, `name '${name}' was registered by another session`);
    this.log.info({ session: id, name }, 'name taken over by a newer registration');
  }

  /** The relay frame: 'delivered' or 'stored', or the reason it was neither. */
  relay(body: Buffer): Outcome | Promise<Outcome> {
    const frame = decodeRelay(body);
    if (typeof frame === 'string') return new GatewayError('refused', frame);
    return this.deliver(frame.target, frame.msgid, Buffer.from(frame.body)).then(
      (result): Outcome => ({ msgid: GATEWAY_MSGID.relay, body: Buffer.from(result) }),
      (err: Error) => new GatewayError('refused', err.message),
    );
  }

  /** To a client here when it is here, else through the queue (another gateway, or the store). */
  async deliver(targetText: string, msgid: number, body: Buffer): Promise<DeliverResult> {
    const target = parseTarget(targetText);
    if (typeof target === 'string') throw new Error(target);
    if (target.kind === 'session' && target.instance === this.instance) {
      if (this.push(target.sessionId, msgid, body)) return 'delivered';
      throw new Error(`no session ${target.sessionId}`);
    }
    if (target.kind === 'name') {
      const s = this.names.get(target.name);
      if (s && this.push(s.id, msgid, body)) return 'delivered';
    }
    if (!this.queue) throw new Error('the gateway is not connected to its queue');
    return this.queue.deliver(target, msgid, body);
  }

  /** Writes to a session here; false when it is not here or closing. Throws RangeError for a body the codec cannot carry. */
  push(id: string, msgid: number, body: Buffer): boolean {
    const s = this.sessions.get(id);
    if (!s?.conn.isOpen) return false;
    s.conn.send(msgid, body);
    return true;
  }
}
