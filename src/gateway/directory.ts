// Who holds which name, and the way to every session: the embedded (ipc) queue keeps this in the
// daemon, which sees all its gateway processes. Newest registration of a name wins; a message to
// a name nobody holds is stored (store.ts); a message to a session id goes to its gateway or fails.
import type { DeliverResult } from './business.js';
import type { Target } from './names.js';
import type { MessageStore, StoredMessage } from './store.js';

export interface Holder {
  /** Gateway instance (the session id's prefix). */
  instance: string;
  sessionId: string;
}

export interface DirectoryRoutes {
  /** Writes to a session on gateway `instance`; false when it is not there (closed, gateway gone). */
  push(instance: string, sessionId: string, msgid: number, body: Buffer): Promise<boolean>;
  /** `holder` lost `name` to a newer registration. */
  nameTaken(holder: Holder, name: string): void;
}

export class Directory {
  private readonly names = new Map<string, Holder>();

  constructor(
    private readonly store: MessageStore,
    private readonly routes: DirectoryRoutes,
  ) {}

  /** Names held now. */
  get size(): number {
    return this.names.size;
  }

  holder(name: string): Holder | undefined {
    return this.names.get(name);
  }

  /** `holder` now holds `name`; returns what was stored for it, oldest first (the caller delivers it). */
  register(name: string, holder: Holder): StoredMessage[] {
    const before = this.names.get(name);
    this.names.set(name, holder);
    if (before && before.sessionId !== holder.sessionId) this.routes.nameTaken(before, name);
    return this.store.take(name);
  }

  unregister(name: string, sessionId: string): void {
    if (this.names.get(name)?.sessionId === sessionId) this.names.delete(name);
  }

  /** A gateway is gone: its names are offline from now on. */
  forgetInstance(instance: string): void {
    for (const [name, h] of this.names) if (h.instance === instance) this.names.delete(name);
  }

  /** Rejects with an Error whose message is the reason (unknown session, store full). */
  async deliver(target: Target, msgid: number, body: Buffer): Promise<DeliverResult> {
    if (target.kind === 'session') {
      if (await this.routes.push(target.instance, target.sessionId, msgid, body)) return 'delivered';
      throw new Error(`no session ${target.sessionId}`);
    }
    // Twice at most: a newer holder may have registered while a push to a closed one was failing.
    for (let attempt = 0; attempt < 2; attempt++) {
      const h = this.names.get(target.name);
      if (!h) break;
      if (await this.routes.push(h.instance, h.sessionId, msgid, body)) return 'delivered';
      // It closed meanwhile: the name is offline.
      if (this.names.get(target.name) === h) this.names.delete(target.name);
    }
    const put = this.store.put(target.name, msgid, body);
    if (!put.ok) throw new Error(put.reason);
    return 'stored';
  }
}
