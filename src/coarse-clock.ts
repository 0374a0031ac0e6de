// Date.now() read once per run of synchronous work: the first call reads the clock and queues a
// microtask that forgets it, so every later call until that microtask runs (the rest of this
// callback and the microtasks queued before it) gets the same value. For the per-request deadlines
// of the gateway and its workers: Date.now() is a runtime call in V8, and one read of a socket
// carries tens of requests. The value is at most that run of work old (microseconds; a
// millisecond for a very large read), never ahead of the clock.

let cached = 0;
let valid = false;
const forget = (): void => {
  valid = false;
};

/** Date.now(), or the value it had earlier in this same run of synchronous work. */
export function coarseNow(): number {
  if (!valid) {
    cached = Date.now();
    valid = true;
    queueMicrotask(forget);
  }
  return cached;
}
