// A message from one client (or a worker's ctx.send) to another over NATS: to a session anywhere,
// or to a name (live when someone holds it, else stored). Both ends: the sender (deliverVia, used
// by gateways for client relays and by workers) and the gateway holding the target (answerDelivery).
import { JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import type { DeliverResult } from '../../business.js';
import { decodeEnvelope, encodeEnvelope, KIND } from '../../envelope.js';
import type { Target } from '../../names.js';
import type { Subjects } from './protocol.js';

/** A delivery to another gateway waits this long for its answer, ms. */
const DELIVER_TIMEOUT_MS = 5000;
/** The answer a gateway gives when the target session is no longer there (the deliverer stores then). */
const GONE = 'gone';

function isNoResponders(err: unknown): boolean {
  return (
    (err as { isNoResponders?: () => boolean }).isNoResponders?.() === true ||
    (err as Error).name === 'NoRespondersError'
  );
}

export async function deliverVia(
  nc: NatsConnection,
  js: JetStreamClient,
  subjects: Subjects,
  target: Target,
  msgid: number,
  body: Buffer,
): Promise<DeliverResult> {
  const to = target.kind === 'session' ? target.sessionId : target.name;
  const payload = encodeEnvelope({ kind: KIND.send, id: 0, msgid, target: to, body });
  const subject =
    target.kind === 'session' ? subjects.session(target.instance, target.n) : subjects.name(target.name);
  try {
    const answer = decodeEnvelope(
      Buffer.from((await nc.request(subject, payload, { timeout: DELIVER_TIMEOUT_MS })).data),
    );
    if (answer.kind !== KIND.sendResult) throw new Error('unexpected answer to a delivery');
    if (answer.ok) return 'delivered';
    if (answer.text !== GONE || target.kind === 'session')
      throw new Error(answer.text === GONE ? `no session ${to}` : answer.text);
  } catch (err) {
    if (!isNoResponders(err)) throw err;
    if (target.kind === 'session') throw new Error(`no session ${to}`);
  }
  try {
    await js.publish(subjects.store(to), payload);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === 10077) throw new Error(`store for '${to}' is full`);
    throw err;
  }
  return 'stored';
}

/** Decodes a SEND envelope, writes it with `push`, answers delivered / GONE / the error. */
export function answerDelivery(m: Msg, push: (msgid: number, body: Buffer) => boolean): void {
  let ok = false;
  let text = GONE;
  try {
    const e = decodeEnvelope(Buffer.from(m.data));
    if (e.kind !== KIND.send) throw new Error('not a delivery');
    ok = push(e.msgid, e.body);
    if (ok) text = 'delivered';
  } catch (err) {
    text = (err as Error).message;
  }
  m.respond(encodeEnvelope({ kind: KIND.sendResult, id: 0, ok, text }));
}
