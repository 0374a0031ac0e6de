// A NATS cluster with JetStream, one node per simulated host (netns.ts): what --discovery points at
// in the multi-host tests. Ready once every node has logged that it joined the JetStream cluster.
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, DaemonProcess, type LogLine, ROOT } from './daemon.js';
import type { Host } from './netns.js';
import { tempDir } from './temp-dir.js';

const CLIENT_PORT = 4222;
const ROUTE_PORT = 6222;

export interface NatsNode {
  host: Host;
  url: string;
  child: ChildProcess;
  log: string;
  exited: Promise<void>;
}

export class NatsCluster {
  private constructor(
    readonly nodes: NatsNode[],
    private readonly dir: string,
    private readonly routes: string,
  ) {}

  /** Every node's URL: what a client lists in --discovery to survive the loss of one. */
  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** The URLs with `host`'s own node first (a client prefers its local node). */
  urlsFrom(host: Host): string[] {
    return [...this.nodes.filter((n) => n.host === host), ...this.nodes.filter((n) => n.host !== host)].map(
      (n) => n.url,
    );
  }

  static async start(hosts: Host[], timeoutMs = 30_000): Promise<NatsCluster> {
    const dir = tempDir('tcpdaemon-nats-cluster-');
    const routes = hosts.map((h) => `nats://${h.ip}:${ROUTE_PORT}`).join(',');
    const nodes = hosts.map((host) => spawnNode(host, dir, routes));
    const cluster = new NatsCluster(nodes, dir, routes);
    // Ready when every node serves clients and a JetStream meta leader is elected. A node may learn
    // the leader a little later; JetStream requests meanwhile time out, and our clients retry those.
    const seen = (n: NatsNode, re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (re.test(n.log)) resolve();
        };
        check();
        n.child.stderr!.on('data', check);
        void n.exited.then(() => reject(new Error(`nats-server on host ${n.host.index} exited`)));
      });
    const ready = [
      ...nodes.map((n) => seen(n, /Server is ready/)),
      Promise.any(nodes.map((n) => seen(n, /metadata leader/i))),
    ];
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(ready),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not ready in ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      const logs = nodes.map((n) => `--- n${n.host.index}\n${n.log.slice(-2000)}`).join('\n');
      await cluster.stop();
      throw new Error(`NATS cluster: ${(err as Error).message}:\n${logs}`);
    } finally {
      clearTimeout(timer);
    }
    try {
      await cluster.untilMeshed(timeoutMs);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /**
   * Until every node tells its clients of every node (INFO connect_urls): the routes are gossiped
   * a moment after start, and a bucket created before would get fewer replicas than the cluster.
   * Asked from a client in each node's host (the test process is outside the hosts' network).
   */
  private async untilMeshed(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const probe = (n: NatsNode) =>
      new Promise<number>((resolve) => {
        const c = spawn(
          n.host.exec[0]!,
          [
            ...n.host.exec.slice(1),
            process.execPath,
            '-e',
            `import('@nats-io/transport-node').then(async ({ connect }) => {
              const nc = await connect({ servers: ${JSON.stringify(n.url)}, reconnect: false });
              console.log(nc.info?.connect_urls?.length ?? 0);
              await nc.close();
            }).catch(() => console.log(0));`,
          ],
          { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] },
        );
        let out = '';
        c.stdout!.setEncoding('utf8').on('data', (d: string) => {
          out += d;
        });
        c.once('exit', () => resolve(Number(out.trim()) || 0));
      });
    for (;;) {
      const seen = await Promise.all(this.nodes.map(probe));
      if (seen.every((k) => k >= this.nodes.length)) return;
      if (Date.now() > deadline)
        throw new Error(`NATS cluster not meshed in ${timeoutMs} ms: ${seen.join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * `tcpdaemon -m IOMP` on `host`'s own address serving `handler`, announced as `service` through
   * this cluster (its local node first); resolves with its `announced` log line.
   */
  async announcing(
    host: Host,
    service: string,
    handler: string,
    ttlS: string,
  ): Promise<{ daemon: DaemonProcess; announced: LogLine; address: string }> {
    const daemon = new DaemonProcess(
      [
        '-m',
        'IOMP',
        '-l',
        `${host.ip}:0`,
        '-s',
        handler,
        '--announce',
        service,
        '--discovery',
        this.urlsFrom(host).join(','),
        '--announce-ttl',
        ttlS,
      ],
      { command: [...host.exec, BIN] },
    );
    const announced = await daemon.waitForMsg('announced', 30_000);
    return { daemon, announced, address: String(announced.address) };
  }

  /** SIGKILL of one node (a NATS host lost). */
  async kill(index: number): Promise<void> {
    const node = this.nodes.find((n) => n.host.index === index);
    if (node === undefined) throw new Error(`no NATS node on host ${index}`);
    node.child.kill('SIGKILL');
    await node.exited;
  }

  /** Starts a killed node again on its own store; resolves once it has rejoined (knows a meta leader). */
  async restart(index: number, timeoutMs = 30_000): Promise<void> {
    const at = this.nodes.findIndex((n) => n.host.index === index);
    const old = this.nodes[at];
    if (old === undefined) throw new Error(`no NATS node on host ${index}`);
    if (old.child.exitCode === null && old.child.signalCode === null)
      throw new Error(`node ${index} is running`);
    const node = spawnNode(old.host, this.dir, this.routes);
    this.nodes[at] = node;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          const check = () => {
            if (/metadata leader/i.test(node.log)) resolve();
          };
          node.child.stderr!.on('data', check);
          void node.exited.then(() => reject(new Error(`nats-server on host ${index} exited:\n${node.log}`)));
        }),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`node ${index} not back in ${timeoutMs} ms:\n${node.log}`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    for (const n of this.nodes)
      if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
    await Promise.all(this.nodes.map((n) => n.exited));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function spawnNode(host: Host, dir: string, routes: string): NatsNode {
  const child = spawn(
    host.exec[0]!,
    [
      ...host.exec.slice(1),
      'nats-server',
      '-a',
      host.ip,
      '-p',
      String(CLIENT_PORT),
      '-js',
      '-sd',
      join(dir, `n${host.index}`),
      '--server_name',
      `n${host.index}`,
      '--cluster_name',
      'tdtest',
      '--cluster',
      `nats://${host.ip}:${ROUTE_PORT}`,
      '--routes',
      routes,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const node: NatsNode = {
    host,
    url: `nats://${host.ip}:${CLIENT_PORT}`,
    child,
    log: '',
    exited: new Promise((r) => child.once('exit', () => r())),
  };
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    node.log += d;
    if (node.log.length > 200_000) node.log = node.log.slice(-100_000);
  });
  return node;
}
