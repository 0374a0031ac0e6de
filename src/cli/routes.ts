// `tcpdaemon routes --discovery nats://...`: what the fleet looks like now. The route table's live
// entries (services, hosts, weight, version, who announced them) beside what the clients that call
// those services report (fleet/report.ts): each host's state as the clients' health sees it
// (overloaded when any client has it overloaded) and the calls' outcomes heard during --wait.
// One-shot: prints a table (or --json) and exits.
import type { Subscription } from '@nats-io/transport-node';
import type { BackendState } from '../balance/health.js';
import { ConnectError, ParamError } from '../errors.js';
import { type OutcomeReport, parseReport, REPORT_SUBJECT_PREFIX } from '../fleet/report.js';
import type { RouteEntry } from '../fleet/route.js';
import { RouteTable } from '../fleet/route-table.js';
import { defaultLogger } from '../message/default-logger.js';
import { type CommandSpec, type Field, readFields } from '../platform/fields.js';
import { type Command, runCommand } from '../platform/runner.js';
import { ANNOUNCE_FIELDS } from '../platform/shared-fields.js';
import { boolean, list, seconds, text } from '../platform/values.js';

const ROUTES_FIELDS: readonly Field[] = [
  {
    ...ANNOUNCE_FIELDS.find((f) => f.key === 'discovery')!,
    help: 'the NATS servers (JetStream on) that hold the route table and carry the reports',
  },
  {
    key: 'service',
    flags: ['--service'],
    arg: 'NAME',
    help: 'show only this service',
    repeat: true,
    parse: list(text),
  },
  {
    key: 'wait',
    flags: ['--wait'],
    arg: 'SECONDS',
    help: "how long to listen for the clients' reports (they report every 5 s by default); 0: the route table only",
    shownDefault: '6',
    parse: seconds({ min: 0, max: 600 }),
  },
  { key: 'json', flags: ['--json'], help: 'print one JSON object instead of a table', parse: boolean },
];

export const ROUTES_COMMAND: CommandSpec = {
  name: 'tcpdaemon routes',
  synopsis: [
    'tcpdaemon routes --discovery nats://HOST:PORT[,...] [--service NAME] [--wait SECONDS] [--json]',
  ],
  fields: ROUTES_FIELDS,
  footer: 'exit status: 0 shown; 1 bad flags or the route table could not be read (the reason on stderr)',
};

export interface HostView {
  address: string;
  /** up / overloaded as the reporting clients see it; 'gone' when reported but no longer announced. */
  state: BackendState | 'gone';
  ok: number;
  error: number;
  timeout: number;
  /** Clients that reported on it during the wait. */
  reporters: number;
  weight: number;
  version: string;
  tls: boolean;
  pid: number;
  hostname: string;
}

export interface RoutesView {
  /** How long reports were listened for, ms. */
  waitedMs: number;
  services: { service: string; hosts: HostView[] }[];
}

/** The view from route entries and the reports heard (oldest first). */
export function buildRoutesView(
  entries: Map<string, RouteEntry[]>,
  reports: OutcomeReport[],
  waitedMs: number,
): RoutesView {
  const services = new Map<string, Map<string, HostView>>();
  const blank = (address: string): HostView => ({
    address,
    state: 'up',
    ok: 0,
    error: 0,
    timeout: 0,
    reporters: 0,
    weight: 0,
    version: '',
    tls: false,
    pid: 0,
    hostname: '',
  });
  for (const [service, list] of entries) {
    const hosts = new Map<string, HostView>();
    for (const e of list)
      hosts.set(e.address, {
        ...blank(e.address),
        weight: e.weight,
        version: e.version,
        tls: e.tls,
        pid: e.pid,
        hostname: e.hostname,
      });
    services.set(service, hosts);
  }
  // The latest state per reporter and host; counts summed over every report.
  const latest = new Map<string, BackendState>();
  const reportersOf = new Map<string, Set<string>>();
  for (const r of reports) {
    let hosts = services.get(r.service);
    if (hosts === undefined) {
      hosts = new Map();
      services.set(r.service, hosts);
    }
    for (const h of r.hosts) {
      let view = hosts.get(h.address);
      if (view === undefined) {
        view = { ...blank(h.address), state: 'gone' };
        hosts.set(h.address, view);
      }
      view.ok += h.ok;
      view.error += h.error;
      view.timeout += h.timeout;
      const key = `${r.service} ${h.address}`;
      latest.set(`${key} ${r.reporter}`, h.state);
      const who = reportersOf.get(key) ?? new Set();
      who.add(r.reporter);
      reportersOf.set(key, who);
    }
  }
  for (const [service, hosts] of services) {
    for (const view of hosts.values()) {
      const key = `${service} ${view.address}`;
      const who = reportersOf.get(key);
      view.reporters = who?.size ?? 0;
      if (view.state === 'gone') continue;
      const states = [...(who ?? [])].map((r) => latest.get(`${key} ${r}`));
      if (states.includes('overloaded') || states.includes('down')) view.state = 'overloaded';
    }
  }
  return {
    waitedMs,
    services: [...services.keys()].sort().map((service) => ({
      service,
      hosts: [...services.get(service)!.values()].sort((a, b) => (a.address < b.address ? -1 : 1)),
    })),
  };
}

export function formatRoutesView(view: RoutesView): string {
  const rows = [
    ['SERVICE', 'HOST', 'STATE', 'OK', 'ERR', 'TIMEOUT', 'CLIENTS', 'WEIGHT', 'VERSION', 'PID', 'HOSTNAME'],
  ];
  for (const s of view.services)
    for (const h of s.hosts)
      rows.push([
        s.service,
        h.address,
        h.state,
        String(h.ok),
        String(h.error),
        String(h.timeout),
        String(h.reporters),
        h.weight === 0 ? '-' : String(h.weight),
        h.version || '-',
        h.pid === 0 ? '-' : String(h.pid),
        h.hostname || '-',
      ]);
  if (rows.length === 1) return 'no service in the route table and no report heard';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  lines.push(`(counts: calls reported during ${(view.waitedMs / 1000).toFixed(1)} s)`);
  return lines.join('\n');
}

async function showRoutes(read: Record<string, unknown>): Promise<number> {
  const servers = read.discovery as string[];
  const only = read.service as string[] | undefined;
  const waitMs = Math.round(((read.wait as number | undefined) ?? 6) * 1000);
  const logger = defaultLogger('routes');
  const table = await RouteTable.open({ servers, logger, services: only, name: 'tcpdaemon routes' });
  const reports: OutcomeReport[] = [];
  const subs: Subscription[] = [];
  try {
    if (waitMs > 0) {
      const subjects =
        only === undefined
          ? [`${REPORT_SUBJECT_PREFIX}.>`]
          : only.map((s) => `${REPORT_SUBJECT_PREFIX}.${s}`);
      for (const subject of subjects)
        subs.push(
          table.connection.subscribe(subject, {
            callback: (err, m) => {
              if (err) return;
              const r = parseReport(m.data);
              if (r !== undefined) reports.push(r);
            },
          }),
        );
      await table.connection.flush();
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
    const entries = new Map<string, RouteEntry[]>();
    for (const s of only ?? table.services()) entries.set(s, table.entries(s));
    const view = buildRoutesView(entries, reports, waitMs);
    process.stdout.write(`${read.json === true ? JSON.stringify(view) : formatRoutesView(view)}\n`);
    return 0;
  } finally {
    for (const s of subs) s.unsubscribe();
    await table.close();
  }
}

const ROUTES: Command = {
  spec: ROUTES_COMMAND,
  words: ['routes'],
  check: (input) => {
    const read = readFields(ROUTES_FIELDS, input, 'tcpdaemon routes');
    const servers = read.discovery as string[] | undefined;
    if (servers === undefined || servers.length === 0)
      throw new ParamError('discovery (--discovery) is needed: the NATS servers of the route table');
    for (const url of servers)
      if (!/^(nats|tls):\/\/[^/\s]+$/.test(url))
        throw new ParamError(`discovery (--discovery) '${url}' is not a nats://HOST:PORT URL`);
  },
  start: async (input, options) => {
    const read = readFields(ROUTES_FIELDS, input, 'tcpdaemon routes');
    const logger = defaultLogger('routes');
    let code: number;
    try {
      code = await showRoutes(read);
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      throw new ConnectError(`cannot show the routes: ${(err as Error).message}`);
    }
    options.signals.dispose();
    options.exit(code);
    return { logger, address: () => null };
  },
};

/** Runs `tcpdaemon routes <argv>`; resolves with the exit code. */
export function routesMain(argv: string[]): Promise<number> {
  return runCommand(ROUTES, argv);
}
