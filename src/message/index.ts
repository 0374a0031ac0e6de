// The message layer's public surface (re-exported from the package root).
export { Backoff, type BackoffOptions } from './backoff.js';
export { type ClientStats, MessageClient, type MessageClientOptions } from './client.js';
export {
  CODEC_NAMES,
  type Codec,
  type CodecOptions,
  createCodec,
  DEFAULT_MAX_BODY,
  type Decoder,
  decodeDatagram,
  FLAG_ERROR,
  FLAG_REPLY,
  type Frame,
  type FrameSink,
} from './codecs/index.js';
export { DEFAULT_OUTPUT_CAP, MessageConn, type MessageStats } from './conn.js';
export { MessageError, type MessageErrorCode, ReplyError } from './errors.js';
export type { RequestOptions } from './pending.js';
export {
  type MessagePeer,
  type RouteHandler,
  type RouteReply,
  Router,
  type RouteTable,
} from './router.js';
export { createMessageHandler, type MessageHandler, type MessageHandlerOptions } from './server.js';
export type { ServiceHost } from './service-calls.js';
export {
  createUdpMessageHandler,
  UdpMessageClient,
  type UdpMessageClientOptions,
  type UdpMessageHandler,
  type UdpMessageHandlerOptions,
  type UdpPeer,
  type UdpStats,
} from './udp.js';
