// A NATS client error as a few words for a log line or a start-up failure.
export function natsReason(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { code?: string } };
  if ((e.cause?.code ?? e.code) === 'ECONNREFUSED') return 'connection refused';
  return e.message ?? String(err);
}
