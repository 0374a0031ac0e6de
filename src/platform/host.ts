// The one host of a command's daemon process, used by tcpdaemon() (the daemon, and the proxy's
// front) and by the gateway and worker commands (gateway/daemon.ts):
//   HostFiles     the files at paths that must not outlive the process: the pid file, the status
//                 socket, and what the command adds (a TLS snapshot, a socket folder)
//   stopInOrder   the graceful stop, in one order for every command
//   attachSignals TERM/INT drain (a second one forces), HUP reload, USR1 reopen; exit codes
// The command runner (runner.ts) does what comes around it: parse, detach, systemd's READY and the
// exit code of a failed start.
import { unlinkSync } from 'node:fs';
import type { Server } from 'node:net';
import type { Announcer } from '../fleet/announcer.js';
import { createPidFile, removePidFile } from '../pid-file.js';
import type { SignalInbox } from '../signals.js';
import { closeStatus, type DaemonStatus, serveStatus } from '../status.js';
import type { ServiceManager } from '../systemd/notify.js';
import type { Logger } from '../types.js';

/** The pid file, the status socket and the command's own leftovers; removed at the stop, forced or not. */
export class HostFiles {
  private status: { server: Server; path: string } | undefined;
  /** Run once each, in the order given, by removeNow(). */
  private removers: (() => void)[] = [];

  constructor(private readonly logger: Logger) {}

  /** --pid-file: created before anything listens; a live daemon's file stops the start (PidFileError). */
  claimPidFile(path: string | undefined): void {
    if (path === undefined) return;
    createPidFile(path, this.logger);
    this.onRemove(() => removePidFile(path));
  }

  /** Something else to remove (synchronously) when the process stops, also on a forced exit. */
  onRemove(remove: () => void): void {
    this.removers.push(remove);
  }

  /** --status-socket: answers `tcpdaemon status PATH` with `report()` until the stop (StatusSocketError). */
  async serveStatus(
    path: string | undefined,
    report: () => DaemonStatus | Promise<DaemonStatus>,
  ): Promise<void> {
    if (path === undefined) return;
    this.status = { server: await serveStatus(path, report, this.logger), path };
  }

  /** Stops answering on the status socket and removes it. */
  async closeStatus(): Promise<void> {
    const s = this.status;
    this.status = undefined;
    if (s) await closeStatus(s.server, s.path);
  }

  /** Removes the status socket file and runs every remover, now (a forced exit has no time to wait). */
  removeNow(): void {
    if (this.status) {
      this.status.server.close();
      unlinkQuietly(this.status.path);
      this.status = undefined;
    }
    const removers = this.removers;
    this.removers = [];
    for (const remove of removers) remove();
  }

  /** A failed start: everything goes, in the stop's order. */
  async close(): Promise<void> {
    await this.closeStatus();
    this.removeNow();
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** What a graceful stop closes, in this order (see stopInOrder). */
export interface StopPlan {
  logger: Logger;
  /** --announce: withdrawn first, so clients stop coming before the drain; closed after it. */
  announcer?: Announcer | undefined;
  /** Called once the stop has begun (after the withdrawal): /readyz fails from then on. */
  markStopping?: () => void;
  /** Where clients connect; undefined for a command without one (the worker command). */
  listener?: { close(done: () => void): void } | undefined;
  /** --drain-delay, seconds: still accepting (not ready) this long first. Only with a listener. */
  drainDelayS: number;
  /** --shutdown-timeout, seconds: the whole stop, the drain delay included. */
  shutdownTimeoutS: number;
  /** More fields of the `stopping: no new connections` line. */
  stoppingFields?: () => Record<string, unknown>;
  /** Lets open connections and requests finish within graceMs, then cuts them (the model, the supervisors). */
  drain(graceMs: number): Promise<void>;
  /** --metrics: answered until the drain is over. */
  ops?: { close(): Promise<void> } | undefined;
  /** The last thing closed before the files go (the gateway's ipc hub). */
  finish?: () => void;
  files: HostFiles;
  flush(): void;
}

/**
 * The graceful stop of every command: out of the route table; --drain-delay (not ready, still
 * accepting); no new connections; the drain within what is left of --shutdown-timeout; the
 * route-table client, the status socket and the metrics listener; the files; `stopped`.
 */
export async function stopInOrder(plan: StopPlan): Promise<void> {
  const { logger, listener } = plan;
  await plan.announcer?.withdraw();
  plan.markStopping?.();
  const delayS = listener ? plan.drainDelayS : 0;
  if (delayS > 0) {
    // Kubernetes' order: the endpoint goes (readiness fails) while we still accept, then the drain.
    logger.info({ drainDelayS: delayS }, 'stop requested: not ready; still accepting for --drain-delay');
    await new Promise((r) => setTimeout(r, delayS * 1000));
  }
  const closed = listener ? new Promise<void>((r) => listener.close(() => r())) : Promise.resolve();
  const graceS = plan.shutdownTimeoutS - delayS;
  logger.info({ ...plan.stoppingFields?.(), timeoutS: graceS }, 'stopping: no new connections');
  await plan.drain(graceS * 1000);
  await closed;
  await plan.announcer?.close();
  await plan.files.closeStatus();
  await plan.ops?.close();
  plan.finish?.();
  plan.files.removeNow();
  logger.info('stopped');
  plan.flush();
}

/** What the signals act on. */
export interface HostTarget {
  readonly logger: Logger;
  /** The graceful stop (stopInOrder); resolves once stopped. */
  close(): Promise<void>;
  /** SIGHUP: re-read --config, roll the workers, swap certificates. */
  reload(): Promise<unknown>;
  /** SIGUSR1: reopen this process's log file and the children's. */
  reopenLogs(): void;
  /** A forced exit (second stop signal): the files must still go (HostFiles.removeNow). */
  removeFiles(): void;
  /** Writes out buffered log lines. */
  flush(): void;
}

/**
 * The daemon's signals, for every command. SIGTERM/SIGINT: graceful stop, then exit(0) (exit(1)
 * when the stop fails); a second one: remove the files and exit(1) at once. SIGHUP: reload
 * (RELOADING/READY to systemd around it), ignored while stopping. SIGUSR1: reopen the logs.
 */
export function attachSignals(
  target: HostTarget,
  inbox: SignalInbox,
  exit: (code: number) => void,
  service: ServiceManager | undefined,
): void {
  let stopping = false;
  inbox.attach((sig) => {
    const { logger } = target;
    if (sig === 'SIGUSR1') {
      target.reopenLogs();
      logger.info('log file reopened (SIGUSR1)');
    } else if (sig === 'SIGHUP') {
      if (!stopping) void (service ? service.reloading(() => target.reload()) : target.reload());
    } else if (!stopping) {
      stopping = true;
      logger.info({ signal: sig }, 'stop requested');
      service?.stopping();
      target.close().then(
        () => exit(0),
        (err: unknown) => {
          logger.error({ err }, 'stop failed');
          target.flush();
          exit(1);
        },
      );
    } else {
      logger.warn({ signal: sig }, 'second stop signal: exiting now');
      target.removeFiles();
      target.flush();
      exit(1);
    }
  });
}
