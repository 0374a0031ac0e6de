// Names held by this gateway's sessions, over NATS: a registration claims the name (older holders
// elsewhere drop it: newest wins), subscribes to the name's subject, and first hands over what was
// stored for it; live messages that come meanwhile wait, so the session sees them in order.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { GatewayQueueEvents } from '../queue.js';
import { answerDelivery } from './delivery.js';
import { lastToken, type Subjects } from './protocol.js';
import type { StoredMessages } from './stored-messages.js';

/** After a registration, the store is checked once more this much later, ms. */
const STORE_RECHECK_MS = 1000;

interface Holder {
  sessionId: string;
  sub: Subscription;
  /** Live messages wait here until the stored ones are out, so the name sees them in order. */
  held: { msgid: number; body: Buffer }[] | undefined;
}

export class NameHolders {
  private readonly holders = new Map<string, Holder>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    private readonly store: StoredMessages,
    private readonly events: Pick<GatewayQueueEvents, 'push' | 'nameTaken'>,
  ) {}

  /** A claim on P.claim.<name>: a session here that held the name loses it. */
  onClaim(m: Msg): void {
    const name = lastToken(m.subject);
    const claimant = m.string();
    const h = this.holders.get(name);
    if (!h || h.sessionId === claimant) return;
    this.release(name, h);
    this.events.nameTaken(name, h.sessionId);
  }

  async register(name: string, sessionId: string): Promise<void> {
    const before = this.holders.get(name);
    if (before) this.release(name, before);
    this.nc.publish(this.subjects.claim(name), sessionId);
    const h: Holder = { sessionId, sub: undefined as unknown as Subscription, held: [] };
    h.sub = this.nc.subscribe(this.subjects.name(name), {
      callback: (_e, m) =>
        answerDelivery(m, (msgid, body) => {
          if (this.holders.get(name) !== h) return false;
          if (h.held) {
            h.held.push({ msgid, body });
            return true;
          }
          return this.events.push(sessionId, msgid, body);
        }),
    });
    this.holders.set(name, h);
    await this.nc.flush();
    await this.drainStore(name, h);
    this.releaseHeld(h);
    // Once more a little later: a sender that found the name offline just before we subscribed
    // may still have been storing its message.
    setTimeout(() => void this.drainStore(name, h).catch(() => undefined), STORE_RECHECK_MS).unref();
  }

  unregister(name: string, sessionId: string): void {
    const h = this.holders.get(name);
    if (h && h.sessionId === sessionId) this.release(name, h);
  }

  /** The gateway closes: every name is given up. */
  releaseAll(): void {
    for (const [name, h] of this.holders) this.release(name, h);
  }

  private drainStore(name: string, h: Holder): Promise<void> {
    return this.store.drain(
      name,
      () => this.holders.get(name) === h,
      (msgid, body) => this.events.push(h.sessionId, msgid, body),
    );
  }

  /** The stored messages are out: live ones held meanwhile follow, in order. */
  private releaseHeld(h: Holder): void {
    const held = h.held;
    if (!held) return;
    h.held = undefined;
    for (const m of held) this.events.push(h.sessionId, m.msgid, m.body);
  }

  private release(name: string, h: Holder): void {
    if (this.holders.get(name) === h) this.holders.delete(name);
    // drain, not unsubscribe: a message already on its way still gets its answer (GONE, so the
    // sender stores it) instead of being dropped here and timing out there.
    h.sub.drain().catch(() => undefined);
  }
}
