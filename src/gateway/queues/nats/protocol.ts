// What gateways and workers agree on over NATS (--queue nats://HOST:PORT): they are separate
// commands, maybe on different hosts, and meet only in NATS. Subjects, with P the --queue-prefix:
//   P.w.<worker>        requests for one worker, a batch per message (envelope-batch.ts): the gateway
//                       picks the worker with the fewest of its requests outstanding, per request
//   P.req               the same, before the gateway has heard of any worker: workers take them as one
//                       queue group, a batch at a time
//   P.rep.<gw>.<b>      a worker's acks, replies and errors for requests of batch <b> of gateway <gw>,
//                       a batch per message
//   P.hb / P.bye        worker heartbeats / a worker's goodbye (payload: the worker's id)
//   P.retiring          a worker takes no new requests (payload: its id); its goodbye follows
//   P.s.<gw>.<n>        a message for session <gw>:<n> (request; answered with a SEND_RESULT)
//   P.n.<name>          a message for the session holding <name> (subscribed while it does)
//   P.claim.<name>      a new registration of <name>: older holders drop it (newest wins)
//   P.store.<name>      stored messages (JetStream stream `P-store`, work-queue retention, file storage)
// One NATS message per worker per event-loop turn each way, not three per request: NATS costs per
// message, not per byte.

/** Workers publish a heartbeat this often, ms. */
export const HEARTBEAT_MS = 500;
/** A batch (one NATS message) is sent before it grows past this, bytes (NATS' default max_payload is 1 MiB). */
export const BATCH_BYTES = 256 * 1024;
/** Room for the envelope's own fields on top of the largest client body, bytes. */
export const HEADROOM = 4096;

export class Subjects {
  constructor(readonly prefix: string) {}

  /** Requests addressed to one worker. */
  worker(id: string): string {
    return `${this.prefix}.w.${id}`;
  }

  /** Requests for whichever worker of the queue group takes them. */
  get group(): string {
    return `${this.prefix}.req`;
  }

  /** The queue group's name. */
  get workerGroup(): string {
    return `${this.prefix}-workers`;
  }

  /** Answers to batch `batch` of gateway `gateway`. */
  reply(gateway: string, batch: number): string {
    return `${this.prefix}.rep.${gateway}.${batch}`;
  }

  /** Answers to every batch of gateway `gateway`. */
  replies(gateway: string): string {
    return `${this.prefix}.rep.${gateway}.*`;
  }

  get heartbeat(): string {
    return `${this.prefix}.hb`;
  }

  get bye(): string {
    return `${this.prefix}.bye`;
  }

  get retiring(): string {
    return `${this.prefix}.retiring`;
  }

  /** A message for session `<gateway>:<n>`. */
  session(gateway: string, n: string): string {
    return `${this.prefix}.s.${gateway}.${n}`;
  }

  /** Messages for every session of gateway `gateway`. */
  sessions(gateway: string): string {
    return `${this.prefix}.s.${gateway}.*`;
  }

  /** A message for the session holding `name`. */
  name(name: string): string {
    return `${this.prefix}.n.${name}`;
  }

  claim(name: string): string {
    return `${this.prefix}.claim.${name}`;
  }

  get claims(): string {
    return `${this.prefix}.claim.*`;
  }

  /** Stored messages for `name`. */
  store(name: string): string {
    return `${this.prefix}.store.${name}`;
  }

  get storeAll(): string {
    return `${this.prefix}.store.>`;
  }

  get storeStream(): string {
    return `${this.prefix}-store`;
  }
}

/** The last token of a subject (a batch number, a session number, a name). */
export function lastToken(subject: string): string {
  return subject.slice(subject.lastIndexOf('.') + 1);
}
