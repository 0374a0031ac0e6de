// A gateway business module: replies to every message with the same msgid and body.
//   tcpdaemon gateway -l 127.0.0.1:9527 -s examples/gateway-echo.ts --business-workers 2
import type { BusinessHandler } from 'tcpdaemon';

const echo: BusinessHandler = async (msg) => ({ msgid: msg.msgid, body: msg.body });
export default echo;
