// One watch of the route bucket: an ordered push consumer over some keys (each key's last value
// first, then every change), plus a probe that asks the server for that consumer now and then.
// The NATS client notices a lost consumer only after two missed idle heartbeats, and it sets those
// to 30 s for an ordered consumer: for a minute or more, a watch whose consumer lived on a NATS node
// that died (while this connection, to another node, stayed up) would hear nothing. The probe
// notices within a few seconds and says so (`onLost`), and the reader watches again.
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JsMsg,
  jetstream,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsReason } from './nats-reason.js';

export type BucketOperation = 'PUT' | 'DEL' | 'PURGE';

export interface BucketEntry {
  key: string;
  operation: BucketOperation;
  value: Uint8Array;
  /** The entry's stream sequence. */
  revision: number;
}

export interface BucketWatchHandlers {
  entry(e: BucketEntry): void;
  /** Every key's value at the start has been delivered (at once when there was none). */
  snapshot(): void;
  /** The watch stopped delivering (its consumer is gone or no longer answers, or it ended). */
  lost(why: string): void;
}

export interface BucketWatch {
  stop(): void;
}

/** Probe failures in a row (timeouts) after which the consumer counts as lost. */
const PROBE_FAILURES = 2;

/**
 * Watches `keys` (each `SERVICE.>` or `>`) of the KV bucket `bucket`. The JetStream API requests
 * (consumer create, probes) wait at most `requestMs` each.
 */
export async function watchBucket(
  nc: NatsConnection,
  bucket: string,
  keys: string[],
  handlers: BucketWatchHandlers,
  opts: { probeMs: number; requestMs: number },
): Promise<BucketWatch> {
  const prefix = `$KV.${bucket}.`;
  const subjects = keys.map((k) => prefix + k);
  const js = jetstream(nc, { timeout: opts.requestMs });
  const consumer = await js.consumers.getPushConsumer(`KV_${bucket}`, {
    filter_subjects: subjects.length === 1 ? subjects[0]! : subjects,
    deliver_policy: DeliverPolicy.LastPerSubject,
  });
  let stopped = false;
  let pending = (await consumer.info(true)).num_pending;
  if (pending === 0) handlers.snapshot();
  const lose = (why: string) => {
    if (stopped) return;
    stop();
    handlers.lost(why);
  };
  const messages = await consumer.consume({
    callback: (m: JsMsg) => {
      if (stopped) return;
      handlers.entry({
        key: m.subject.slice(prefix.length),
        operation: operationOf(m),
        value: m.data,
        revision: m.seq,
      });
      if (pending > 0 && --pending === 0) handlers.snapshot();
    },
  });
  void messages.closed().then(
    () => lose('the watch ended'),
    (err: unknown) => lose(`the watch failed: ${natsReason(err)}`),
  );
  let failures = 0;
  let probing = false;
  const probe = setInterval(() => {
    if (probing || stopped || nc.isClosed()) return;
    probing = true;
    consumer
      .info()
      .then(
        () => {
          failures = 0;
        },
        (err: unknown) => {
          if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)
            lose("the watch's consumer is gone (its NATS node lost?)");
          else if (++failures >= PROBE_FAILURES)
            lose(`the watch's consumer does not answer (${natsReason(err)})`);
        },
      )
      .finally(() => {
        probing = false;
      });
  }, opts.probeMs);
  probe.unref();
  function stop(): void {
    if (stopped) return;
    stopped = true;
    clearInterval(probe);
    messages.stop();
  }
  return { stop };
}

function operationOf(m: JsMsg): BucketOperation {
  const op = m.headers?.get('KV-Operation');
  return op === 'DEL' || op === 'PURGE' ? op : 'PUT';
}
