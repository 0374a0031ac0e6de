// `tcpdaemon agent ...`: the agent's declarations (params.ts) through the one command runner.
import { type Command, runCommand } from '../platform/runner.js';
import { AGENT_COMMAND, type AgentConfig, validateAgentConfig } from './params.js';

const AGENT: Command = {
  spec: AGENT_COMMAND,
  words: ['agent'],
  check: (input) => {
    validateAgentConfig(input);
  },
  start: async (input, options) => (await import('./run.js')).startAgent(input as AgentConfig, options),
};

/** Runs `tcpdaemon agent <argv>`; resolves with the exit code once stopped (1 at once on bad flags). */
export function agentMain(argv: string[]): Promise<number> {
  return runCommand(AGENT, argv);
}
