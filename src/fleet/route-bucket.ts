// Opens the route table's bucket, creating it when it is missing. Whoever comes first creates it
// (an announcer or a reader), so both create it alike: replicated over up to 3 servers of the NATS
// cluster it is connected to (what the server's INFO lists), so that losing one node loses no route.
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ROUTES_BUCKET } from './route.js';

/** Replicas for a new bucket: the cluster's servers, at most 3 (1 for a single server). */
export function bucketReplicas(nc: NatsConnection): number {
  const servers = nc.info?.connect_urls?.length ?? 1;
  return Math.min(3, Math.max(1, servers));
}

/** An existing bucket keeps its own settings: `ttlMs` and `replicas` apply only to a new one. */
export function openRouteBucket(nc: NatsConnection, ttlMs: number, replicas?: number): Promise<KV> {
  return new Kvm(nc).create(ROUTES_BUCKET, {
    history: 1,
    ttl: ttlMs,
    replicas: replicas ?? bucketReplicas(nc),
  });
}
