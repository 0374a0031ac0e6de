// One client connection as a gateway process sees it, and the table of them. What a request
// carries about its session (SessionInfo) is made once and kept until the session's name changes.
import type { MessageConn } from '../../message/conn.js';
import type { SessionInfo } from '../envelope.js';
import { sessionId } from '../names.js';
import type { Outcome } from '../requests.js';

export const PENDING = Symbol('pending');

/** Codecs without seq: one answer owed, in request order. */
export interface Slot {
  outcome: Outcome | typeof PENDING;
  /** What this finished answer is accounted in its session's `bytes`. */
  cost: number;
}

export interface HeldFrame {
  msgid: number;
  /** A view into the socket's chunk (the chunk is one read, at most 64 KiB). */
  body: Buffer;
}

export interface Session {
  readonly id: string;
  readonly conn: MessageConn;
  name: string | undefined;
  inflight: number;
  /** Codecs without seq: answers owed, in request order, from `lineHead` (pending or finished). */
  line: Slot[];
  lineHead: number;
  /** Codecs without seq: frames read past the in-flight bound, oldest first from `heldHead`. */
  held: HeldFrame[];
  heldHead: number;
  /** Accounted bytes of held frames and finished answers in `line`. */
  bytes: number;
  /** Inside admitHeld (its dispatches flush the line, which admits again). */
  admitting: boolean;
  /** What requests carry about the session; undefined after a name change (made again on use). */
  info: SessionInfo | undefined;
}

const kSession = 'gateway.session';

export class Sessions {
  private readonly byId = new Map<string, Session>();
  private last = 0;

  /** `instance`: this gateway's prefix of session ids. */
  constructor(private readonly instance: string) {}

  get size(): number {
    return this.byId.size;
  }

  open(conn: MessageConn): Session {
    const s: Session = {
      id: sessionId(this.instance, ++this.last),
      conn,
      name: undefined,
      inflight: 0,
      line: [],
      lineHead: 0,
      held: [],
      heldHead: 0,
      bytes: 0,
      admitting: false,
      info: undefined,
    };
    conn.state[kSession] = s;
    this.byId.set(s.id, s);
    return s;
  }

  /** The session of an open connection. */
  of(conn: MessageConn): Session {
    return conn.state[kSession] as Session;
  }

  get(id: string): Session | undefined {
    return this.byId.get(id);
  }

  /** The connection closed: the session leaves the table and drops its held frames. */
  close(conn: MessageConn): Session | undefined {
    const s = this.of(conn);
    if (!s) return undefined;
    this.byId.delete(s.id);
    s.held = [];
    s.heldHead = 0;
    return s;
  }
}

export function sessionInfo(s: Session): SessionInfo {
  s.info ??= {
    id: s.id,
    name: s.name ?? '',
    remoteAddress: s.conn.remoteAddress,
    remotePort: s.conn.remotePort,
  };
  return s.info;
}

/** The session's name changes: requests from now on carry the new one. */
export function rename(s: Session, name: string | undefined): void {
  s.name = name;
  s.info = undefined;
}
