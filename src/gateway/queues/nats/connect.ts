// A NATS connection for a gateway or a worker (reconnecting for ever, its disconnects logged) and
// the JetStream stream that holds stored messages.
import {
  DiscardPolicy,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { natsReason } from '../../../fleet/nats-reason.js';
import { retryTransient } from '../../../fleet/nats-retry.js';
import type { Logger } from '../../../types.js';
import type { QueueSpec } from '../../params.js';
import type { Subjects } from './protocol.js';

export type NatsSpec = Extract<QueueSpec, { kind: 'nats' }>;

/** Store limits a worker uses if it has to create the stream before any gateway did. */
export const DEFAULT_STORE = { maxPerName: 100, ttlMs: 300_000 };

export const ms2ns = (ms: number) => ms * 1_000_000;

export async function connectTo(spec: NatsSpec, name: string, logger: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers: spec.servers,
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(spec.tls ? { tls: spec.tls } : {}),
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect') logger.warn({ nats: s.type }, `NATS ${s.type}`);
    }
  })();
  return nc;
}

/**
 * Creates the store stream if missing (`update` also brings its limits to these). JetStream that is
 * not answering yet (a cluster electing, a node just restarted) is retried for a while.
 */
export function ensureStore(
  nc: NatsConnection,
  subjects: Subjects,
  limits: { maxPerName: number; ttlMs: number },
  update: boolean,
  logger: Logger,
): Promise<void> {
  return retryTransient(
    () => ensureStoreOnce(nc, subjects, limits, update),
    (err) =>
      logger.warn(
        { err: natsReason(err) },
        'JetStream is not answering yet (a NATS cluster electing its leader?); retrying',
      ),
  );
}

async function ensureStoreOnce(
  nc: NatsConnection,
  subjects: Subjects,
  limits: { maxPerName: number; ttlMs: number },
  update: boolean,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: subjects.storeStream,
    subjects: [subjects.storeAll],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_msgs_per_subject: limits.maxPerName,
    discard: DiscardPolicy.New,
    discard_new_per_subject: true,
    max_age: ms2ns(limits.ttlMs),
  };
  try {
    await jsm.streams.info(config.name);
    if (update) await jsm.streams.update(config.name, config);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== 10059) throw err;
    await jsm.streams.add(config);
  }
}
