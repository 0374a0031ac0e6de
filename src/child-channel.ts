// The one channel between a tcpdaemon process and the children it starts (worker processes and
// threads, gateway and business worker processes, spawned backends, the --daemon-level copy):
// every TCPDAEMON_* variable, what it holds and who sees it, and the one discriminator of IPC
// messages. Every read and write of those variables goes through here (as node's cluster keeps
// NODE_UNIQUE_ID in two files). Imported by worker entries and threads: imports nothing.

interface ChannelVar {
  readonly name: string;
  /** What the value is. */
  readonly holds: string;
  /**
   * false: removed where it is read (or never given to the handler's children), so processes a
   * handler starts do not see it. true: the handler (and its children) may read it.
   */
  readonly handlerSees: boolean;
}

export const CHANNEL_VARS = {
  // Daemon -> worker process (src/worker/config.ts): taken at the worker's start.
  worker: { name: 'TCPDAEMON_WORKER', holds: 'the WorkerConfig as JSON', handlerSees: false },
  // Supervisor -> any supervised child (src/supervisor/): a handler may ask whether it is a worker.
  supervised: { name: 'TCPDAEMON_SUPERVISED', holds: "'1' in every supervised child", handlerSees: true },
  workerId: {
    name: 'TCPDAEMON_WORKER_ID',
    holds: 'the slot 1..N (a replacement keeps it)',
    handlerSees: true,
  },
  spawnId: {
    name: 'TCPDAEMON_SPAWN_ID',
    holds: 'unique per start in one supervisor, from 1',
    handlerSees: true,
  },
  heartbeatMs: { name: 'TCPDAEMON_HEARTBEAT_MS', holds: 'heartbeat interval, ms', handlerSees: true },
  graceMs: {
    name: 'TCPDAEMON_GRACE_MS',
    holds: 'drain time when orphaned or SIGTERMed, ms',
    handlerSees: true,
  },
  // Gateway daemon -> gateway and business worker processes (src/gateway/).
  gatewayParams: {
    name: 'TCPDAEMON_GATEWAY_PARAMS',
    holds: 'ResolvedGatewayParams as JSON',
    handlerSees: true,
  },
  gatewaySocketDir: {
    name: 'TCPDAEMON_GATEWAY_SOCKET_DIR',
    holds: "ipc queue: the folder of every worker's unix socket",
    handlerSees: true,
  },
  // Terminal process -> its --daemon-level copy (src/platform/detach.ts); never to workers.
  detached: { name: 'TCPDAEMON_DETACHED', holds: "'1' in the detached copy", handlerSees: false },
  // Daemon -> its workers re-running the command with --config (src/platform/handed-down-input.ts).
  commandInput: {
    name: 'TCPDAEMON_COMMAND_INPUT',
    holds: 'the command input the daemon accepted, as JSON',
    handlerSees: false,
  },
  // Proxy -> its front workers (src/proxy/run.ts); never to spawned backends.
  proxySpawned: {
    name: 'TCPDAEMON_PROXY_SPAWNED',
    holds: "the spawned backends' addresses as JSON",
    handlerSees: false,
  },
  // Proxy daemon -> its front workers with --discover (src/proxy/discovery.ts): the list at their start.
  proxyDiscovered: {
    name: 'TCPDAEMON_PROXY_DISCOVERED',
    holds: 'the discovered backends (DiscoveredList) as JSON',
    handlerSees: false,
  },
  // Proxy -> each spawned backend (a user's program: public, documented in --spawn's help).
  backendPort: {
    name: 'TCPDAEMON_BACKEND_PORT',
    holds: "the backend's port or socket path",
    handlerSees: true,
  },
  // The operator -> every process (src/native/addon.ts): '0' turns the native addon off.
  native: { name: 'TCPDAEMON_NATIVE', holds: "'0': go without the native addon", handlerSees: true },
  backendIndex: { name: 'TCPDAEMON_BACKEND_INDEX', holds: "the backend's slot, 1..N", handlerSees: true },
} as const satisfies Record<string, ChannelVar>;

export type ChannelVarKey = keyof typeof CHANNEL_VARS;

/** Variables the processes a handler starts must not inherit. */
export const NOT_INHERITED: readonly string[] = Object.values(CHANNEL_VARS as Record<string, ChannelVar>)
  .filter((v) => !v.handlerSees)
  .map((v) => v.name);

/** The variable's value in `env` (this process's by default). */
export function readVar(key: ChannelVarKey, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env[CHANNEL_VARS[key].name];
}

/** Reads the variable and removes it from this process's environment, so no child inherits it. */
export function takeVar(key: ChannelVarKey): string | undefined {
  const { name } = CHANNEL_VARS[key];
  const value = process.env[name];
  delete process.env[name];
  return value;
}

/**
 * Sets the variable in this process's environment: every child it starts from now on inherits
 * it (a worker re-running the command, a front worker of the proxy). The one write of our
 * variables to process.env.
 */
export function handDown(key: ChannelVarKey, value: string): void {
  process.env[CHANNEL_VARS[key].name] = value;
}

/** Removes the variable from this process's environment. */
export function forgetVar(key: ChannelVarKey): void {
  delete process.env[CHANNEL_VARS[key].name];
}

/**
 * The environment of a child: this process's, plus `set` (by key), minus `drop`. Pass
 * `drop: 'not-inherited'` for a program that is not ours (a spawned backend): none of our
 * private variables reach it.
 */
export function childEnv(
  set: Partial<Record<ChannelVarKey, string>> = {},
  drop: readonly ChannelVarKey[] | 'not-inherited' = [],
  extra: Readonly<Record<string, string>> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  const dropped = drop === 'not-inherited' ? NOT_INHERITED : drop.map((k) => CHANNEL_VARS[k].name);
  for (const name of dropped) delete env[name];
  for (const [key, value] of Object.entries(set))
    if (value !== undefined) env[CHANNEL_VARS[key as ChannelVarKey].name] = value;
  return env;
}

/**
 * IPC messages: the field that tells which conversation a message belongs to, and that carries
 * its type. supervisor: the supervisor's own (src/supervisor/protocol.ts); model: connections and
 * listening handles between a model's daemon and worker halves (src/worker/messages.ts);
 * gateway: the gateway daemon's calls to its gateway processes (src/gateway/ipc-rpc.ts).
 */
export const DISCRIMINATORS = { supervisor: 'tdw', model: 'tdm', gateway: 'gw' } as const;

export type ChannelName = keyof typeof DISCRIMINATORS;

const CHANNELS = Object.entries(DISCRIMINATORS) as [ChannelName, string][];

/** Which conversation an IPC message belongs to; undefined for anything else (a user's message). */
export function channelOf(m: unknown): ChannelName | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const o = m as Record<string, unknown>;
  for (const [name, field] of CHANNELS) if (typeof o[field] === 'string') return name;
  return undefined;
}
