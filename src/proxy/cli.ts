// `tcpdaemon proxy ...`: the proxy's declarations (config.ts) through the one command runner.
import { parseCommandLine } from '../platform/command-line.js';
import { type Command, runCommand } from '../platform/runner.js';
import { renderUsage } from '../platform/usage.js';
import { PROXY_COMMAND, type ProxyConfig, validateProxyConfig } from './config.js';
import { startProxy } from './run.js';

export const PROXY_USAGE = renderUsage(PROXY_COMMAND);

/** argv (after `proxy`) -> the library's config, or 'help'. Throws ParamError. */
export function parseProxyArgs(argv: string[]): ProxyConfig | 'help' {
  const line = parseCommandLine(PROXY_COMMAND, argv);
  return line.kind === 'run' ? (line.input as unknown as ProxyConfig) : 'help';
}

const PROXY: Command = {
  spec: PROXY_COMMAND,
  words: ['proxy'],
  check: (input) => {
    validateProxyConfig(input);
  },
  start: (input, options) => startProxy(input as unknown as ProxyConfig, options),
};

/** Runs `tcpdaemon proxy <argv>`; resolves with the exit code once stopped (1 at once on bad flags). */
export function proxyMain(argv: string[]): Promise<number> {
  return runCommand(PROXY, argv);
}
