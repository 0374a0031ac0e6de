import type { Logger } from 'pino';

/** Runs a user hook; true when it finished, false when it threw or rejected (logged). Sync hooks stay sync. */
export function runHook(
  name: string,
  logger: Pick<Logger, 'error'>,
  hook: () => unknown,
): boolean | Promise<boolean> {
  const failed = (err: unknown) => {
    logger.error({ err }, `${name} hook failed`);
    return false;
  };
  let result: unknown;
  try {
    result = hook();
  } catch (err) {
    return failed(err);
  }
  if (result === null || typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function')
    return true;
  return Promise.resolve(result).then(() => true, failed);
}
