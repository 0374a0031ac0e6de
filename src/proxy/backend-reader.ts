import type { OnReadOpts, Socket } from 'node:net';

/**
 * The backend -> client direction of a forwarded connection, through net.connect's `onread`:
 * node reads into a buffer the proxy owns and hands over the byte count; the bytes are
 * written on to the client at once. This skips what node's stream path costs per read (a
 * 64 KiB allocation cut down to the bytes read, an ArrayBuffer, the Readable queue and a
 * 'data' event).
 *
 * Invariant: node never reads into a buffer that a write still holds. A write that did not
 * complete at once (the client's kernel buffer was full, or earlier bytes wait in the
 * socket's queue) keeps its buffer, and the next read gets another one; a buffer goes back
 * to a pool only when no write holds it.
 *
 * Size: a connection starts on a SMALL_READ buffer, all an idle or chatty connection holds
 * for its life; a read that fills its buffer moves it to LARGE_READ (node's own read size,
 * for bulk transfer), a read shorter than SMALL_READ moves it back.
 */

/** Bytes: the read buffer of a connection that moves little data at a time. */
export const SMALL_READ = 2048;
/** Bytes: the read buffer after a read filled the small one. */
export const LARGE_READ = 65536;

/** Free buffers of one size, kept for reuse up to `max` (memory kept: size × max bytes). */
class FreeBuffers {
  private readonly free: Buffer[] = [];
  constructor(
    readonly size: number,
    private readonly max: number,
  ) {}
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }
  give(buf: Buffer): void {
    if (this.free.length < this.max) this.free.push(buf);
  }
}

const small = new FreeBuffers(SMALL_READ, 1024); // 2 MiB at most
const large = new FreeBuffers(LARGE_READ, 64); // 4 MiB at most
const NONE = Buffer.alloc(0);

function giveBack(buf: Buffer): void {
  if (buf.length === LARGE_READ) large.give(buf);
  else if (buf.length === SMALL_READ) small.give(buf);
}

export class BackendReader {
  /** Where node reads next; never held by a write. */
  #buf: Buffer = small.take();
  readonly #dst: Socket;

  /** `dst`: the client the backend's bytes go to. */
  constructor(dst: Socket) {
    this.#dst = dst;
  }

  /** For net.connect. A false return (the client holds more than its highWaterMark) stops reading until resume(). */
  readonly onread: OnReadOpts = {
    buffer: () => this.#buf,
    callback: (n: number, buf: Uint8Array): boolean => {
      const dst = this.#dst;
      const filled = n === buf.length;
      const ok = dst.write(filled ? buf : buf.subarray(0, n));
      if (dst.writableLength > 0) {
        this.#buf = filled ? large.take() : small.take(); // the write keeps `buf`
      } else if (filled && buf.length === SMALL_READ) {
        small.give(this.#buf);
        this.#buf = large.take();
      } else if (n < SMALL_READ && buf.length === LARGE_READ) {
        large.give(this.#buf);
        this.#buf = small.take();
      }
      return ok;
    },
  };

  /** The backend socket has closed: node reads no more, so its buffer can serve another connection. */
  release(): void {
    giveBack(this.#buf);
    this.#buf = NONE;
  }
}
