// A chat room on the message layer (Lars framing): whatever one client says (msgid 1) every client
// of every worker hears (msgid 2), whichever worker process or thread holds its connection:
//   tcpdaemon -m IOMP -c 2 -l 127.0.0.1:7777 -s examples/chat.ts
import { createMessageHandler } from 'tcpdaemon';

const room = createMessageHandler({
  codec: 'lars',
  routes: {
    1: async (body, _msgid, conn) => {
      try {
        await room.broadcastAll(2, body);
      } catch (err) {
        // The bus is full: this worker's clients are saying more than the workers can pass on.
        conn.logger.warn({ err: (err as Error).message }, 'message not passed on');
      }
    },
  },
});
export default room;
