// Messages between workers: env.broadcast and the message layer's broadcastAll reach the clients of
// every worker of the daemon, the sender's included, in every model that has several workers.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { MessageClient } from '../src/message/index.js';
import { EXAMPLES, FIXTURES, modelArgs, startDaemon, stopCleanly } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect } from './helpers/net.js';
import { waitUntil } from './helpers/supervisor.js';

after(checkNoLeftoverProcesses);

interface ChatClient {
  client: MessageClient;
  worker: string;
  heard: string[];
}

async function chatClient(port: number): Promise<ChatClient> {
  const heard: string[] = [];
  const client = new MessageClient({
    port,
    codec: 'lars',
    reconnect: false,
    logger: pino({ level: 'silent' }),
    routes: { 2: (body) => void heard.push(body.toString()) },
  });
  await client.connect();
  const worker = (await client.request(9, '', { timeout: 5000 })).toString();
  return { client, worker, heard };
}

/** Connects until clients sit on `workers` different workers (at most 40 tries). */
async function clientsOnEveryWorker<T extends { worker: string }>(
  workers: number,
  open: () => Promise<T>,
): Promise<T[]> {
  const clients: T[] = [];
  for (let i = 0; i < 40 && new Set(clients.map((c) => c.worker)).size < workers; i++)
    clients.push(await open());
  assert.equal(new Set(clients.map((c) => c.worker)).size, workers, 'clients on every worker');
  return clients;
}

describe('message layer: broadcastAll reaches the clients of every worker', () => {
  for (const model of ['IOMP', 'TLF', 'LF'] as const) {
    test(`${model} -c 2`, async () => {
      const { daemon, port } = await startDaemon(modelArgs(model, 2, `${FIXTURES}/chat-room.mjs`));
      const clients: ChatClient[] = [];
      try {
        // LF: one connection per worker, so exactly two clients, one on each.
        if (model === 'LF') for (let i = 0; i < 2; i++) clients.push(await chatClient(port));
        else clients.push(...(await clientsOnEveryWorker(2, () => chatClient(port))));
        assert.equal(new Set(clients.map((c) => c.worker)).size, 2);
        for (let i = 0; i < 5; i++) clients[i % clients.length]!.client.send(1, `line ${i}`);
        for (const c of clients) {
          await waitUntil(() => c.heard.length >= 5, `every line at the client on ${c.worker}`);
          assert.deepEqual(
            [...c.heard].sort(),
            [0, 1, 2, 3, 4].map((i) => `line ${i}`),
          );
        }
      } finally {
        for (const c of clients) await c.client.close();
        await stopCleanly(daemon);
      }
    });
  }

  test('examples/chat.ts under IOMP -c 2: every client hears each line once', async () => {
    const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, `${EXAMPLES}/chat.ts`));
    const heard: string[][] = [];
    const clients: MessageClient[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const mine: string[] = [];
        heard.push(mine);
        const c = new MessageClient({
          port,
          codec: 'lars',
          reconnect: false,
          logger: pino({ level: 'silent' }),
          routes: { 2: (body) => void mine.push(body.toString()) },
        });
        await c.connect();
        clients.push(c);
      }
      // A client that hears its own line is in the room (a connect completes before a worker takes it).
      for (const [i, c] of clients.entries()) {
        c.send(1, `ping ${i}`);
        await waitUntil(() => heard[i]!.includes(`ping ${i}`), `client ${i} in the room`);
      }
      clients[0]!.send(1, 'hello room');
      for (const mine of heard) await waitUntil(() => mine.includes('hello room'), 'the line at each client');
      for (const mine of heard) assert.equal(mine.filter((l) => l === 'hello room').length, 1, 'heard once');
    } finally {
      for (const c of clients) await c.close();
      await stopCleanly(daemon);
    }
  });
});

interface RawClient {
  worker: string;
  received: () => string;
  write(line: string): void;
  close(): void;
}

async function rawClient(port: number): Promise<RawClient> {
  const s = await connect(port);
  let text = '';
  s.on('data', (d: Buffer) => {
    text += d.toString();
  });
  s.write('hi\n');
  await waitUntil(() => text.includes('\n'), 'the worker line');
  const nl = text.indexOf('\n');
  const worker = text.slice(0, nl);
  return {
    worker,
    received: () => text.slice(nl + 1),
    write: (line) => s.write(line),
    close: () => s.destroy(),
  };
}

describe('env.broadcast / env.onBroadcast on a raw handler', () => {
  for (const [model, workers] of [
    ['IOMP', 2],
    ['TLF', 2],
    ['IOMP', 1],
  ] as const) {
    test(`${model} -c ${workers}: every client of every worker hears every line, with the sender's worker id`, async () => {
      const { daemon, port } = await startDaemon(modelArgs(model, workers, `${FIXTURES}/raw-broadcast.mjs`));
      const clients: RawClient[] = [];
      try {
        clients.push(...(await clientsOnEveryWorker(workers, () => rawClient(port))));
        clients[0]!.write('one\n');
        clients[clients.length - 1]!.write('two\n');
        for (const c of clients) {
          await waitUntil(() => c.received().split('\n').length > 2, `two lines at ${c.worker}`);
          const lines = c.received().trim().split('\n');
          assert.equal(lines.length, 2, c.received());
          for (const line of lines) assert.match(line, /^\d+:(one|two)$/);
          assert.deepEqual(lines.map((l) => l.split(':')[1]).sort(), ['one', 'two']);
        }
      } finally {
        for (const c of clients) c.close();
        await stopCleanly(daemon);
      }
    });
  }
});

describe('the worker bus is bounded', () => {
  test('a worker with 4 MiB not yet written to its channel is refused, with a code; room comes back as writes finish', async () => {
    const { WorkerBus, MAX_UNSENT_BYTES, BroadcastFullError } = await import('../src/worker-bus.js');
    const bus = new WorkerBus();
    const written: (() => void)[] = [];
    let handed = 0;
    bus.connect((_topic, _data, sent) => {
      handed++;
      written.push(sent);
    }, 1);
    const chunk = Buffer.alloc(MAX_UNSENT_BYTES / 4);
    const first = [0, 1, 2, 3].map(() => bus.publish('t', chunk));
    await assert.rejects(bus.publish('t', 'one byte more'), (err: unknown) => {
      assert.ok(err instanceof BroadcastFullError);
      assert.equal(err.code, 'TD_ERR_BROADCAST_FULL');
      return true;
    });
    written.shift()!();
    await first[0];
    const later = bus.publish('t', 'fits again');
    for (const w of written) w();
    await Promise.all([...first, later]);
    assert.equal(handed, 5, 'every accepted message went to the channel, the refused one did not');
  });

  test('without a daemon (IOMP -c 1, a library call) messages are delivered here, in order', async () => {
    const { WorkerBus } = await import('../src/worker-bus.js');
    const bus = new WorkerBus();
    const got: string[] = [];
    const stop = bus.subscribe('t', (d, from) => got.push(`${from}:${d}`));
    bus.subscribe('other', () => got.push('wrong topic'));
    await Promise.all(['a', 'b', 'c'].map((m) => bus.publish('t', m)));
    stop();
    await bus.publish('t', 'after stop');
    assert.deepEqual(got, ['0:a', '0:b', '0:c']);
    assert.equal(bus.listenerCount('t'), 0);
  });
});
