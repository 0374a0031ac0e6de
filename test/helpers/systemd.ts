// systemd's side of sd_notify and socket activation, for tests: a receiver on a unix datagram
// socket (node cannot open one; python3 does), and a free port for systemd-socket-activate.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';

/** One datagram as the receiver saw it. */
export interface Notice {
  /** The sender's pid in SCM_CREDENTIALS. */
  pid: number | null;
  /** VAR=VALUE lines. */
  fields: string[];
  /** The receiver's CLOCK_MONOTONIC at arrival, µs. */
  monoUsec: number;
}

// Prints one JSON line per datagram; closes the descriptors that come with one (systemd-notify's
// BARRIER=1 waits for its pipe to close, as systemd closes it).
const RECEIVER = `
import array, json, os, socket, sys, time
where = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\\0' + where[1:] if where.startswith('@') else where)
print('ready', flush=True)
while True:
    data, anc, flags, _ = s.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array('i')
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(payload[0:4], sys.byteorder)
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = [f for f in data.decode('utf-8', 'replace').split('\\n') if f]
    print(json.dumps({'pid': pid, 'fields': fields, 'monoUsec': mono}), flush=True)
`;

export function hasProgram(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export class NotifyReceiver {
  readonly notices: Notice[] = [];
  private waiters: { pred: (n: Notice) => boolean; resolve: (n: Notice) => void }[] = [];
  private stderr = '';

  private constructor(
    readonly socket: string,
    private readonly child: ChildProcess,
  ) {}

  /** Binds `@tcpdaemon-test-…` (abstract) or the path given; resolves once it receives. */
  static async start(socket = `@tcpdaemon-test-${randomUUID()}`): Promise<NotifyReceiver> {
    if (!socket.startsWith('@')) rmSync(socket, { force: true });
    const child = spawn('python3', ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = new NotifyReceiver(socket, child);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      r.stderr += d;
    });
    let buf = '';
    let ready!: () => void;
    let failed!: (e: Error) => void;
    const up = new Promise<void>((res, rej) => {
      ready = res;
      failed = rej;
    });
    child.once('exit', (code) => failed(new Error(`receiver exited (${code}): ${r.stderr}`)));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === 'ready') ready();
        else r.add(JSON.parse(line) as Notice);
      }
    });
    await up;
    return r;
  }

  private add(n: Notice): void {
    this.notices.push(n);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(n)) return true;
      w.resolve(n);
      return false;
    });
  }

  /** The first datagram (past or future) with every one of `fields`. */
  waitFor(fields: string[], timeoutMs = 15_000, after = 0): Promise<Notice> {
    const pred = (n: Notice) => fields.every((f) => n.fields.includes(f));
    const seen = this.notices.slice(after).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const timer = setTimeout(
        () =>
          rej(
            new Error(
              `no datagram with ${fields.join(' ')} in ${timeoutMs} ms; got ${JSON.stringify(this.notices)}`,
            ),
          ),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        resolve: (n) => {
          clearTimeout(timer);
          res(n);
        },
      });
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      await gone;
    }
    if (!this.socket.startsWith('@')) rmSync(this.socket, { force: true });
  }
}

/**
 * A port that was free a moment ago: listen on port 0, read the number, close. Another process
 * may take it before systemd-socket-activate binds it (a tiny race, rare on a test machine: the
 * kernel hands out ephemeral ports in turn); the test then fails with EADDRINUSE in its stderr.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
