import { once } from 'node:events';
import type { Tcpmain } from 'tcpdaemon';

const tcpmain: Tcpmain = async (socket) => {
  for await (const chunk of socket) {
    // write() returns false once the peer reads slower than it sends: wait until it has caught up.
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
};
export default tcpmain;
