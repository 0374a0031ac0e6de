// The announce fields of a command (platform/shared-fields.ts ANNOUNCE_FIELDS) as one plain value.
import { ParamError } from '../errors.js';
import { parseListenAddress } from '../listen-address.js';
import type { Read } from '../platform/fields.js';
import { SERVICE_NAME } from './route.js';

/** The route-table fields of a command that announces itself (the daemon, the proxy, the gateway). */
export interface AnnounceParams {
  /** `--announce SERVICE`: publish the listening address under SERVICE in the route table (needs discovery). */
  announce?: string;
  /** `--discovery`: NATS URLs (JetStream on) of the route table. */
  discovery?: string | string[];
  /** `--advertise HOST:PORT`: the address announced; default the listening one. */
  advertise?: string;
  /** `--announce-weight`: relative share of new connections. Default 1. */
  announceWeight?: number;
  /** `--announce-version`: published with the entry. */
  announceVersion?: string;
  /** `--announce-ttl`: seconds a killed process's entry lasts at most. Default 10. */
  announceTtl?: number;
}

export interface AnnounceSettings {
  service: string;
  /** NATS server URLs. */
  servers: string[];
  /** HOST:PORT to publish; undefined = the listening address (which must then be a specific one). */
  advertise: string | undefined;
  weight: number;
  version: string;
  ttlMs: number;
}

/** The settings from a command's read fields; undefined when --announce is absent. Throws ParamError. */
export function readAnnounceSettings(read: Read): AnnounceSettings | undefined {
  const service = read.announce as string | undefined;
  const servers = read.discovery as string[] | undefined;
  if (service === undefined) {
    const given = ['discovery', 'advertise', 'announceWeight', 'announceVersion', 'announceTtl'].find(
      (k) => read[k] !== undefined,
    );
    if (given !== undefined && given !== 'discovery')
      throw new ParamError(`${given} needs announce (--announce SERVICE)`);
    return undefined;
  }
  checkServiceName(service, 'announce (--announce)');
  checkDiscovery(servers, 'announce (--announce)');
  const advertise = read.advertise as string | undefined;
  if (advertise !== undefined) {
    let a: ReturnType<typeof parseListenAddress>;
    try {
      a = parseListenAddress(advertise);
    } catch (err) {
      throw new ParamError(`advertise (--advertise) ${(err as Error).message}`);
    }
    if (a.kind !== 'tcp' || a.port === 0 || isWildcard(a.host))
      throw new ParamError(
        `advertise (--advertise) '${advertise}' must be a HOST:PORT clients can connect to (not a unix path, port 0 or a wildcard address)`,
      );
  }
  return {
    service,
    servers,
    advertise,
    weight: (read.announceWeight as number | undefined) ?? 1,
    version: (read.announceVersion as string | undefined) ?? '',
    ttlMs: Math.round(((read.announceTtl as number | undefined) ?? 10) * 1000),
  };
}

/** `servers` (--discovery) as `who` needs them: given, and each a nats:// or tls:// URL. Throws ParamError. */
export function checkDiscovery(servers: string[] | undefined, who: string): asserts servers is string[] {
  if (servers === undefined || servers.length === 0)
    throw new ParamError(`${who} needs discovery (--discovery nats://HOST:PORT[,...])`);
  for (const url of servers) {
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(url))
      throw new ParamError(`discovery (--discovery) '${url}' is not a nats://HOST:PORT URL`);
  }
}

/** A service name (--announce, --discover) or a ParamError saying what one is. */
export function checkServiceName(service: string, who: string): void {
  if (!SERVICE_NAME.test(service))
    throw new ParamError(`${who} '${service}' is not a service name: 1 to 64 letters, digits, '_' or '-'`);
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}
