// The same echo handler in plain JavaScript.
import { once } from 'node:events';

export default async function tcpmain(socket) {
  for await (const chunk of socket) {
    // write() returns false once the peer reads slower than it sends: wait until it has caught up.
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
}
