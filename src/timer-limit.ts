/** Node's longest timer delay, ms: a longer one (2^31 ms, about 24.8 days, and up) fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
