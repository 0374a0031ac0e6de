// The one command runner: argv -> a running daemon, proxy, gateway or worker. Parses by the
// command's declarations, prints help/version, checks the parameters before anything starts,
// detaches (--daemon-level), starts, and turns a failed start into one line and exit code 1.
// Resolves with the exit code once the command has stopped.
import type { AddressInfo } from 'node:net';
import { ParamError, TcpdaemonError } from '../errors.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { SignalInbox } from '../signals.js';
import { takeListenFds } from '../systemd/listen-fds.js';
import { type ServiceManager, systemdNotifier } from '../systemd/notify.js';
import type { Logger } from '../types.js';
import { VERSION } from '../version.js';
import { parseCommandLine, withConfigFile } from './command-line.js';
import { detach, isDetachedCopy, reportStart } from './detach.js';
import type { CommandSpec } from './fields.js';
import { handDownInput, takeHandedDownInput } from './handed-down-input.js';
import type { ConfigSource } from './reload-config.js';
import { renderUsage } from './usage.js';

export interface StartOptions {
  /** Signals taken from the first line on (a signal that comes during start-up is kept). */
  signals: SignalInbox;
  /** Called once the command has stopped and the process should end with `code`. */
  exit: (code: number) => void;
  /** systemd's notify socket (Type=notify): told of reloads and the stop; undefined without one. */
  serviceManager?: ServiceManager;
  /** With --config: what SIGHUP re-reads (see reload-config.ts). */
  config?: ConfigSource;
}

export interface Command {
  readonly spec: CommandSpec;
  /** The words before the flags when the command re-runs itself detached (`['proxy']`). */
  readonly words: readonly string[];
  /** Validates the parsed input before anything starts (throws ParamError). */
  check(input: Record<string, unknown>): void;
  start(
    input: Record<string, unknown>,
    options: StartOptions,
  ): Promise<{ logger: Logger; address(): AddressInfo | string | null }>;
}

function write(stream: NodeJS.WriteStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

export async function runCommand(command: Command, argv: string[]): Promise<number> {
  const { spec } = command;
  const inbox = new SignalInbox();
  let input: Record<string, unknown>;
  let config: ConfigSource | undefined;
  try {
    // A re-run worker of a daemon started with --config runs with what that daemon accepted.
    const inherited = takeHandedDownInput(spec.name, argv);
    const line = inherited
      ? { kind: 'run' as const, input: inherited, flags: {}, config: undefined }
      : parseCommandLine(spec, argv);
    if (line.kind === 'help' || line.kind === 'version') {
      inbox.dispose();
      write(
        process.stdout,
        line.kind === 'help' ? renderUsage(spec) : `tcpdaemon ${VERSION} (node ${process.version})`,
      );
      return 0;
    }
    input = line.input;
    if (line.config !== undefined) {
      const file = line.config;
      const { flags } = line;
      config = {
        fields: spec.fields,
        current: input,
        reread: () => withConfigFile(spec, file, flags),
        check: (next) => command.check(next),
        accepted: (next) => handDownInput(spec.name, argv, next),
      };
    }
    if (input.daemonLevel === true && input.logfile === undefined) {
      throw new ParamError(
        'daemonLevel (--daemon-level) needs --logfile: a detached daemon has no terminal to log to',
      );
    }
    command.check(input);
  } catch (err) {
    inbox.dispose();
    if (!(err instanceof ParamError)) throw err;
    write(process.stderr, `${spec.name}: ${err.message}\n\n${renderUsage(spec)}`);
    return 1;
  }
  const detached = isDetachedCopy();
  if (input.daemonLevel === true && !detached) {
    inbox.dispose();
    return detach([...command.words, ...argv], spec.name);
  }

  let exited!: (code: number) => void;
  const exitCode = new Promise<number>((r) => {
    exited = r;
  });
  // systemd's variables are this process's: taken before any child starts, so none inherits them.
  takeListenFds();
  const notifier = systemdNotifier();
  notifier?.start();
  // Here, not before detaching: the detached copy reads the file itself and reloads it.
  if (config) handDownInput(spec.name, argv, input);
  try {
    const handle = await command.start(input, {
      signals: inbox,
      exit: exited,
      serviceManager: notifier,
      config,
    });
    keepServingOnUncaught(handle.logger);
    const address = handle.address();
    notifier?.ready(
      handle.logger,
      address === null ? 'workers ready' : `serving on ${shownAddress(address)}`,
    );
    if (detached) reportStart({ ready: true, address: shownAddress(address) });
  } catch (err) {
    await notifier?.close();
    inbox.dispose();
    const message =
      err instanceof TcpdaemonError ? err.message : `start-up failed: ${(err as Error).stack ?? String(err)}`;
    if (detached) await reportStart({ ready: false, error: message });
    write(process.stderr, `${spec.name}: ${message}`);
    return 1;
  }
  const code = await exitCode;
  await notifier?.close();
  return code;
}

function shownAddress(a: AddressInfo | string | null): string {
  if (a === null) return '(no listener)';
  if (typeof a === 'string') return a;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
