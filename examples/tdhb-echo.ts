// The C tcpdaemon's TDHB echo (test_callback_tdhb_echo.c) as a message handler: each frame is a
// 4-digit zero-padded ASCII body length, then the body; every frame is sent back as it came.
//   tcpdaemon -m LF -c 4 -l 127.0.0.1:9527 -s examples/tdhb-echo.ts
// TDHB carries no msgid: every frame arrives as msgid 0, and what a route returns is the reply.
import { createMessageHandler } from 'tcpdaemon';

export default createMessageHandler({
  codec: 'tdhb:4',
  routes: { 0: (body) => body },
});
