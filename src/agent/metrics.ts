// The agent's values on /metrics (--metrics), from each serving process's agent at each heartbeat:
// its own answers and drops, and per upstream host (an address from --upstream or the route table).
import type { Meter } from '../metrics/meter.js';
import type { Agent } from './agent.js';

const STATES = ['up', 'overloaded', 'down', 'removed'] as const;

export function meterAgent(meter: Meter, agent: () => Agent | undefined): void {
  meter.collect((out) => {
    const a = agent();
    if (!a) return;
    const snap = a.snapshot();
    out.gauge('agentLocals', snap.agent.localConnections);
    out.gauge('agentInFlight', snap.agent.inFlight);
    out.counter('agentRefused', snap.agent.busy, { reason: 'busy' });
    out.counter('agentRefused', snap.agent.unavailable, { reason: 'unavailable' });
    out.counter('agentDropped', snap.agent.dropped);
    out.counter('agentLateDrops', snap.agent.lateDrops);
    for (const h of snap.hosts) {
      const upstream = h.id;
      for (const state of STATES)
        out.gauge('agentUpstreamState', h.state === state ? 1 : 0, { upstream, state });
      out.counter('agentUpstreamRequests', h.requests, { upstream });
      out.counter('agentUpstreamReplies', h.replies, { upstream });
      out.counter('agentUpstreamErrors', h.errors, { upstream });
      out.counter('agentUpstreamTimeouts', h.timeouts, { upstream });
      out.counter('agentUpstreamConnectErrors', h.connectErrors, { upstream });
    }
  });
}
