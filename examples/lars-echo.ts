// The Lars reactor's demo server as a tcpdaemon handler, speaking Lars' wire format:
//   tcpdaemon -m IOMP -l 127.0.0.1:7777 -s examples/lars-echo.ts
// On connect it sends msgid 101 "welcome! you online.."; msgid 1 is echoed back as msgid 1;
// msgid 2 is logged. examples/lars-client.ts (or a Lars C++ client) talks to it.
import { createMessageHandler } from 'tcpdaemon';

export default createMessageHandler({
  codec: 'lars',
  onConnect(conn) {
    conn.send(101, 'welcome! you online..');
  },
  onClose(conn, reason) {
    conn.logger.info({ reason }, 'lars client gone');
  },
  routes: {
    1: (body, msgid, conn) => {
      conn.send(msgid, body);
    },
    2: (body, msgid, conn) => {
      conn.logger.info({ msgid, body: body.toString() }, 'lars message');
    },
  },
});
