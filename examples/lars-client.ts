// The client for examples/lars-echo.ts:  node --import tsx examples/lars-client.ts [HOST] PORT
// Prints the welcome, sends msgid 1 and prints the echo, sends msgid 2, then leaves.
import { MessageClient } from 'tcpdaemon';

const args = process.argv.slice(2);
const port = Number(args.at(-1));
const host = args.length > 1 ? args[0]! : '127.0.0.1';
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: lars-client.ts [HOST] PORT');
  process.exit(1);
}

let welcomed: () => void;
const welcome = new Promise<void>((resolve) => {
  welcomed = resolve;
});
const client = new MessageClient({
  host,
  port,
  codec: 'lars',
  connectTimeout: 3000,
  routes: {
    101: (body) => {
      console.log(`msgid 101: ${body}`);
      welcomed();
    },
  },
  onClose: (_conn, reason) => console.log(`closed: ${reason}`),
});

const giveUp = setTimeout(() => {
  console.error(`no answer from ${host}:${port} within 10 s`);
  process.exit(2);
}, 10_000);

await client.connect();
await welcome;
const echo = await client.request(1, 'hello lars!', { timeout: 5000 });
console.log(`msgid 1: ${echo}`);
client.send(2, 'hello msgid 2');
await client.close();
clearTimeout(giveUp);
