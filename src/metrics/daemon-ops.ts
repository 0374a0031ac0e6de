// --metrics in a daemon process: the hub that merges every worker's values, their rendering, and
// the HTTP listener (/metrics, /healthz, /readyz). Loaded by the daemon only when --metrics is given.
import type { Server } from 'node:http';
import type { ListenAddress } from '../listen-address.js';
import type { Logger } from '../types.js';
import { Exposition } from './exposition.js';
import { MetricsHub } from './hub.js';
import { closeOps, opsAddress, serveOps } from './ops-server.js';

export class DaemonOps {
  readonly hub = new MetricsHub();
  private constructor(
    private readonly server: Server,
    /** As logged: `127.0.0.1:9100`, with the real port. */
    readonly address: string,
  ) {}

  /**
   * Listens on `address` (ListenError if it cannot). `notReady` says why the daemon does not take
   * connections now (undefined = ready).
   */
  static async start(
    address: ListenAddress,
    notReady: () => string | undefined,
    logger: Logger,
  ): Promise<DaemonOps> {
    const exposition = new Exposition();
    let ops: DaemonOps | undefined;
    const server = await serveOps(
      address,
      {
        metrics: async () => ({
          contentType: exposition.contentType,
          body: ops ? await exposition.render(ops.hub.snapshot()) : '',
        }),
        notReady,
      },
      logger,
    );
    ops = new DaemonOps(server, opsAddress(server, address));
    logger.info({ address: ops.address }, 'metrics and health listening (/metrics, /healthz, /readyz)');
    return ops;
  }

  close(): Promise<void> {
    return closeOps(this.server);
  }
}
