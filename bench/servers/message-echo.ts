// The message layer serving the gateway benchmark's handler directly (no gateway, no workers):
// every Lars frame is answered with the same msgid and body.
//   bin/tcpdaemon -m IOMP -l 127.0.0.1:0 -s bench/servers/message-echo.ts
import { createMessageHandler } from '../../src/message/index.js';

export default createMessageHandler({ codec: 'lars', fallback: (body) => body });
