// The message layer serving the gateway benchmark's handler directly (no gateway, no workers):
// every Lars frame is answered with the same msgid and body.
//   bin/tcpdaemon -m IOMP -c 1 -l 127.0.0.1:0 -s bench/servers/message-echo.js
// Plain JavaScript importing the built package (dist/), like examples/echo.js for the raw echo
// rows: no TypeScript loader in the server, and the code measured is the code users run.
import { createMessageHandler } from 'tcpdaemon';

export default createMessageHandler({ codec: 'lars', fallback: (body) => body });
