// Server of bench/broadcast-bench.ts: a client's first line "who" is answered "<pid>:<threadId>\n";
// each later line is published with env.broadcast (awaited: the bus's own backpressure) and every
// client of every worker gets it.
import { threadId } from 'node:worker_threads';

export default async function tcpmain(socket, env) {
  env.onBroadcast((data) => socket.write(data));
  let first = true;
  let rest = '';
  for await (const chunk of socket) {
    rest += chunk.toString('latin1');
    let nl = rest.indexOf('\n');
    while (nl !== -1) {
      const line = rest.slice(0, nl + 1);
      rest = rest.slice(nl + 1);
      if (first) socket.write(`${process.pid}:${threadId}\n`);
      else await env.broadcast(line);
      first = false;
      nl = rest.indexOf('\n');
    }
  }
}
