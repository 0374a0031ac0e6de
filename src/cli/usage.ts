import { DAEMON_COMMAND } from '../params.js';
import { renderUsage } from '../platform/usage.js';

export const USAGE = renderUsage(DAEMON_COMMAND);
