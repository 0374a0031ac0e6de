// The agent's local side: the handler of each local connection. Frames are decoded with the
// agent's codec and handed to the agent; answers are written back under the connection's own seq.
// A local process that stops reading is paused (backpressure): the agent reads no more of its
// requests until its answers drain. A bad frame closes that connection only. On shutdown a
// connection gets its requests in flight answered, then it is closed.
import type { Socket } from 'node:net';
import type { TcpdaemonEnv, Tcpmain } from '../types.js';
import type { Agent } from './agent.js';
import type { Asker } from './requests.js';

export function createLocalHandler(a: Agent): Tcpmain {
  return (socket: Socket, env: TcpdaemonEnv) =>
    new Promise<void>((resolve) => {
      const codec = a.codec;
      a.localConnections++;
      let stopping = false;
      /** Not read from until its answers drain (it does not read them fast enough). */
      let paused = false;
      const asker: Asker = {
        inFlight: 0,
        closed: false,
        answer(msgid, body, seq, flags) {
          if (asker.closed) return;
          let frame: Buffer;
          try {
            frame = codec.encode(msgid, body, seq, flags);
          } catch (err) {
            env.logger.warn(
              { err: (err as Error).message },
              'an answer the codec cannot carry; connection closed',
            );
            socket.destroy();
            return;
          }
          if (!a.corks.write(socket, frame) && !paused) {
            paused = true;
            a.pausedLocals++;
            socket.pause();
            socket.once('drain', () => {
              if (asker.closed) return;
              paused = false;
              a.pausedLocals--;
              socket.resume();
            });
          }
          if (stopping && asker.inFlight === 0) socket.end();
        },
      };
      const decoder = codec.createDecoder({
        frame: (msgid, body, seq, flags) => a.fromLocal(asker, msgid, body, seq, flags),
        error: (reason) => {
          env.logger.warn({ reason }, 'bad frame from a local connection; closed');
          socket.destroy();
        },
      });
      socket.on('data', (chunk: Buffer) => {
        if (!stopping) a.corks.run(() => decoder.push(chunk));
      });
      socket.on('error', () => undefined);
      socket.once('close', () => {
        asker.closed = true;
        decoder.stop();
        a.localConnections--;
        if (paused) a.pausedLocals--;
        env.signal.removeEventListener('abort', stop);
        resolve();
      });
      const stop = () => {
        stopping = true;
        if (asker.inFlight === 0) socket.end();
      };
      if (env.signal.aborted) stop();
      else env.signal.addEventListener('abort', stop, { once: true });
    });
}
