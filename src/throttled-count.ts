// Log lines that come in floods, counted instead of written each time: ThrottledCount for one
// process-wide event (refused connections), PeerLog for lines each peer can cause.
import type { Logger } from './types.js';

/**
 * Counts an event that can come in floods (dropped connections) and logs it at most once
 * per `intervalMs`: the first occurrence at once, then one summary per interval.
 */
export class ThrottledCount {
  total = 0;
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly msg: string,
    private readonly intervalMs = 1000,
    /** Repeated on the count lines, which carry no line's own fields (what tells them apart). */
    private readonly summary: Record<string, unknown> = {},
  ) {}

  add(fields: Record<string, unknown> = {}): void {
    this.total++;
    if (this.timer) {
      this.pending++;
      return;
    }
    this.logger.warn({ ...fields, count: 1, total: this.total }, this.msg);
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending === 0) return;
    this.logger.warn(
      { ...this.summary, count: this.pending, total: this.total, intervalMs: this.intervalMs },
      this.msg,
    );
    this.pending = 0;
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}

/** A line a peer can cause, once per event: see PeerLog. */
export interface PeerLine {
  /** The peer's address without the port, so that one host's connections count together; 'unix' on a unix socket. */
  peer: string;
  msg: string;
  /** Fields of the line when it is written. */
  fields?: Record<string, unknown>;
  /** Fields that tell lines of one msg apart (a reason, an error code): counted apart, repeated in the summary. */
  group?: Record<string, string | number>;
  /** Writes the line when it is written (the connection's logger); the PeerLog's own by default. */
  logger?: Logger;
  /**
   * Where that logger comes from, read only when the line is written: a connection's env builds
   * its child logger then, not for every counted line (a flood of resets would build one each).
   */
  source?: { readonly logger: Logger };
}

type PeerLevel = 'debug' | 'info' | 'warn' | 'error';

interface PeerEntry {
  level: PeerLevel;
  msg: string;
  peer: string;
  group: Record<string, string | number> | undefined;
  /** Lines like it since the last summary. */
  suppressed: number;
}

/** A group's part of a PeerLog key: each field as \0name\0value, in the group's order. */
function groupKey(group: Record<string, string | number>): string {
  let key = '';
  for (const name in group) key += `\0${name}\0${group[name]}`;
  return key;
}

/** Distinct (peer, msg, group) counted at once; lines past them are only counted, all together. */
const MAX_PEER_KEYS = 256;

/**
 * Lines a peer can make us write once per frame, request or connection (no route, connection
 * lost, header refused...), so that a flood costs a few lines, not one per event: the first line
 * of a (peer, msg, group) is written at once, later ones are counted, and at the end of each
 * interval in which some were counted one summary line says how many (`suppressed`), with the
 * peer as `remote`. A steady flood thus writes one line per interval per peer and reason. Past
 * MAX_PEER_KEYS distinct keys in an interval (many peers at once) lines are counted into one
 * summary for all.
 */
export class PeerLog {
  private readonly entries = new Map<string, PeerEntry>();
  /** Lines beyond MAX_PEER_KEYS in this interval. */
  private overflow = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Writes the summaries: the process's logger, not a connection's. */
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
    private readonly maxKeys = MAX_PEER_KEYS,
  ) {}

  debug(line: PeerLine): void {
    this.add('debug', line);
  }
  info(line: PeerLine): void {
    this.add('info', line);
  }
  warn(line: PeerLine): void {
    this.add('warn', line);
  }
  error(line: PeerLine): void {
    this.add('error', line);
  }

  private add(level: PeerLevel, line: PeerLine): void {
    const writer = line.logger ?? this.logger;
    if (!writer.isLevelEnabled(level)) return;
    const key =
      line.group === undefined
        ? `${level}\0${line.peer}\0${line.msg}`
        : `${level}\0${line.peer}\0${line.msg}${groupKey(line.group)}`;
    const seen = this.entries.get(key);
    if (seen !== undefined) {
      seen.suppressed++;
      return;
    }
    this.arm();
    if (this.entries.size >= this.maxKeys) {
      this.overflow++;
      return;
    }
    this.entries.set(key, { level, msg: line.msg, peer: line.peer, group: line.group, suppressed: 0 });
    (line.source?.logger ?? writer)[level]({ ...line.group, ...line.fields }, line.msg);
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    for (const [key, e] of this.entries) {
      if (e.suppressed === 0) {
        this.entries.delete(key);
        continue;
      }
      this.logger[e.level](
        { remote: e.peer, ...e.group, suppressed: e.suppressed, intervalMs: this.intervalMs },
        e.msg,
      );
      e.suppressed = 0;
    }
    if (this.overflow > 0) {
      this.logger.warn(
        { suppressed: this.overflow, keys: this.maxKeys, intervalMs: this.intervalMs },
        'log lines suppressed: more peers and reasons at once than are counted apart',
      );
      this.overflow = 0;
    }
    if (this.entries.size > 0) this.arm();
  }
}

/** How a connection's env carries its runner's PeerLog to the handler (message layer, proxy). */
export const kPeerLog = Symbol('tcpdaemon.peerLog');

/** The PeerLog of the process serving `env`'s connection, if it has one. */
export function peerLogOf(env: object): PeerLog | undefined {
  return (env as { [kPeerLog]?: PeerLog })[kPeerLog];
}
