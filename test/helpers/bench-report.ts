// A fixed machine for tests that render BENCHMARKS.md sections.
import type { Machine } from '../../bench/machine.js';

export const TEST_MACHINE: Machine = {
  date: '2026-01-01T00:00:00.000Z',
  cpu: 'Test CPU',
  cores: 2,
  memory: 2 ** 30,
  kernel: '6.0',
  node: 'v20.20.2',
  load1: 0.5,
  openFiles: '20000',
  commit: 'abc1234',
};
