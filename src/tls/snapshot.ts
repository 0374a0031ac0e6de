// The daemon's last good TLS material, for its workers: one JSON file (mode 0600, in a private
// directory, replaced atomically) that a worker process or thread reads when it starts. A worker
// started after a reload whose new files were broken still gets the certificates being served,
// and every worker shares one set of session ticket keys (a session resumes on any worker).
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePrivateDir } from '../private-dir.js';
import type { TlsMaterial } from './context.js';

interface SnapshotFile {
  material: TlsMaterial;
  /** Base64 of the 48 bytes node's ticketKeys takes. */
  ticketKeys: string;
}

export interface TlsSnapshotContent {
  material: TlsMaterial;
  ticketKeys: Buffer;
}

export class TlsSnapshot {
  readonly path: string;
  readonly ticketKeys = randomBytes(48);
  readonly #dir: string;

  constructor(material: TlsMaterial) {
    this.#dir = makePrivateDir('tcpdaemon-tls-'); // key material: a killed daemon's is removed by the next
    this.path = join(this.#dir, 'tls.json');
    this.write(material);
  }

  write(material: TlsMaterial): void {
    const content: SnapshotFile = { material, ticketKeys: this.ticketKeys.toString('base64') };
    const next = `${this.path}.next`;
    writeFileSync(next, JSON.stringify(content), { mode: 0o600 });
    renameSync(next, this.path);
  }

  remove(): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

export function readTlsSnapshot(path: string): TlsSnapshotContent {
  const file = JSON.parse(readFileSync(path, 'utf8')) as SnapshotFile;
  return { material: file.material, ticketKeys: Buffer.from(file.ticketKeys, 'base64') };
}
