// JetStream requests during a NATS cluster's leader election (or to a node just restarted, which
// says JetStream is not enabled until it has caught up) time out or find no responders for a few
// seconds: a start-up that meets one retries until its deadline instead of failing at once.
import { setTimeout as sleep } from 'node:timers/promises';

/** How long start-up keeps retrying a transient JetStream failure, ms. */
export const JETSTREAM_START_WAIT_MS = 20_000;

export function isTransientJetStreamError(err: unknown): boolean {
  const e = err as { message?: string; name?: string; code?: string | number };
  const text = `${e.name ?? ''} ${e.code ?? ''} ${e.message ?? ''}`;
  return /timeout|no responders|503|jetstream (system )?(temporarily )?not available|jetstream is not enabled|no suitable peers|leader/i.test(
    text,
  );
}

/** `fn` until it succeeds, a non-transient error, or `waitMs`; `onRetry` hears the first retry. */
export async function retryTransient<T>(
  fn: () => Promise<T>,
  onRetry: (err: unknown) => void,
  waitMs = JETSTREAM_START_WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientJetStreamError(err) || Date.now() >= deadline) throw err;
      if (!told) onRetry(err);
      told = true;
      await sleep(250);
    }
  }
}
