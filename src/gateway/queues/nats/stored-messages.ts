// The gateway's side of the NATS store: messages kept in JetStream for a name nobody held, handed
// to the session that registers it, oldest first, through a durable consumer per name.
import { AckPolicy, type Consumer, type JetStreamClient, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../../types.js';
import { decodeEnvelope, KIND } from '../../envelope.js';
import { ms2ns } from './connect.js';
import type { Subjects } from './protocol.js';

/** A stored message not acked within this is handed out again (its gateway died mid-delivery), ms. */
const STORE_ACK_WAIT_MS = 10_000;
/** One fetch of stored messages waits at most this long, ms. */
const STORE_FETCH_MS = 1000;
/** A name's durable consumer is removed after this long unused, ms. */
const CONSUMER_IDLE_MS = 24 * 3600_000;

export class StoredMessages {
  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly subjects: Subjects,
    private readonly logger: Logger,
  ) {}

  /**
   * Hands what is stored for `name` to `push`, oldest first, while `stillHeld()`. Each fetch runs
   * to its end: a message it brings after the session is gone is nak'ed (available again at once),
   * never left in a dropped inbox until its ack wait passes.
   */
  async drain(
    name: string,
    stillHeld: () => boolean,
    push: (msgid: number, body: Buffer) => boolean,
  ): Promise<void> {
    const consumer = await this.consumer(name);
    for (let round = 0; round < 100 && stillHeld(); round++) {
      const { num_pending: pending } = await consumer.info();
      if (pending === 0) return;
      const batch = await consumer.fetch({ max_messages: Math.min(pending, 256), expires: STORE_FETCH_MS });
      for await (const sm of batch) {
        let pushed = false;
        try {
          const e = decodeEnvelope(Buffer.from(sm.data));
          pushed = e.kind === KIND.send && stillHeld() && push(e.msgid, e.body);
        } catch (err) {
          this.logger.warn({ name, err: (err as Error).message }, 'bad stored message; dropped');
          sm.term();
          continue;
        }
        if (pushed) sm.ack();
        else sm.nak();
      }
    }
  }

  private async consumer(name: string): Promise<Consumer> {
    const jsm = await jetstreamManager(this.nc);
    const stream = this.subjects.storeStream;
    const durable = `n_${name}`;
    try {
      await jsm.consumers.info(stream, durable);
    } catch {
      await jsm.consumers.add(stream, {
        durable_name: durable,
        filter_subject: this.subjects.store(name),
        ack_policy: AckPolicy.Explicit,
        ack_wait: ms2ns(STORE_ACK_WAIT_MS),
        inactive_threshold: ms2ns(CONSUMER_IDLE_MS),
      });
    }
    return this.js.consumers.get(stream, durable);
  }
}
