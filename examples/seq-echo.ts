// Request/response with the seq codec: what a route returns is the reply to that request (same
// msgid and seq, REPLY flag); a throw becomes an error reply. Replies may go out of order.
//   tcpdaemon -m IOMP -l 127.0.0.1:7778 -s examples/seq-echo.ts
// A MessageClient with codec 'seq' gets them with client.request(1, body).
import { createMessageHandler } from 'tcpdaemon';

export default createMessageHandler({
  codec: 'seq',
  routes: {
    // echo
    1: (body) => body,
    // the body is a delay in ms: later requests can be answered first
    2: async (body) => {
      const ms = Math.min(Number(body.toString()) || 0, 10_000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return `waited ${ms} ms`;
    },
    // an error reply
    3: () => {
      throw new Error('msgid 3 always fails');
    },
  },
});
