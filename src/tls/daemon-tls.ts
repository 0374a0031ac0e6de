// The daemon process's side of TLS: reads and checks the files before listening (a broken or
// expired certificate stops the start, naming the file), logs each certificate's days left, keeps
// the last good material for the workers (snapshot.ts), and on SIGHUP re-reads the files: good
// ones are served by new handshakes from then on, broken ones are logged and the old ones kept.
import type { Logger } from '../types.js';
import { logExpiry, readTlsMaterial, type TlsMaterial } from './context.js';
import type { TlsSettings } from './settings.js';
import { TlsSnapshot } from './snapshot.js';

/** What a worker process or thread is told (WorkerConfig.tls): plain JSON. */
export interface WorkerTls {
  /** The snapshot file with the material to serve. */
  snapshot: string;
  settings: TlsSettings;
}

export class DaemonTls {
  #material: TlsMaterial;
  readonly #snapshot: TlsSnapshot | undefined;
  readonly #listeners: ((m: TlsMaterial) => void)[] = [];

  /** Throws TlsConfigError. `forWorkers`: the model's workers terminate TLS (they read a snapshot). */
  constructor(
    readonly settings: TlsSettings,
    private readonly logger: Logger,
    forWorkers: boolean,
  ) {
    this.#material = readTlsMaterial(settings);
    logExpiry(this.#material, logger);
    this.#snapshot = forWorkers ? new TlsSnapshot(this.#material) : undefined;
  }

  get material(): TlsMaterial {
    return this.#material;
  }

  /** For WorkerConfig; undefined when this process terminates TLS itself. */
  workerTls(): WorkerTls | undefined {
    return this.#snapshot ? { snapshot: this.#snapshot.path, settings: this.settings } : undefined;
  }

  /** Session ticket keys the workers share (IOMP -c 1 has its own). */
  get ticketKeys(): Buffer | undefined {
    return this.#snapshot?.ticketKeys;
  }

  /** Called with the new material after each good reload. */
  onUpdate(listener: (m: TlsMaterial) => void): void {
    this.#listeners.push(listener);
  }

  /** SIGHUP: re-reads every file. False (and one error line) when one is broken: the old material stays. */
  reload(): boolean {
    let material: TlsMaterial;
    try {
      material = readTlsMaterial(this.settings);
    } catch (err) {
      const { file, reason } = err as { file?: string; reason?: string };
      this.logger.error(
        { file, reason: reason ?? (err as Error).message },
        'tls reload failed; still serving the previous certificates',
      );
      return false;
    }
    this.#material = material;
    this.#snapshot?.write(material);
    for (const l of this.#listeners) l(material);
    this.logger.info({ certs: material.pairs.map((p) => p.certFile) }, 'tls certificates reloaded');
    logExpiry(material, this.logger);
    return true;
  }

  close(): void {
    this.#snapshot?.remove();
  }
}
