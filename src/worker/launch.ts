// How the daemon starts a worker process: the lean worker entry for a handler module, or the
// calling script again for a function handler (as node:cluster does).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface WorkerLaunch {
  /** Script to fork. */
  file: string;
  args: string[];
  execArgv: string[];
}

/** Flags a worker must not inherit: a second inspector would fight for the first one's port. */
const NOT_INHERITED = /^--(inspect|debug)/;

/** The worker entry `name`, relative to this folder: 'main' (a process), '../models/tlf/thread-main' (TLF). */
export function entryLaunch(name = 'main'): WorkerLaunch {
  // The build's one-file bundle when there is one (it starts faster), else the compiled module.
  for (const ext of ['.cjs', '.js']) {
    const file = fileURLToPath(new URL(`./${name}${ext}`, import.meta.url));
    if (existsSync(file)) return { file, args: [], execArgv: [] };
  }
  // Running from the TypeScript sources (tests, tsx): the entry needs the TypeScript loader too.
  return {
    file: fileURLToPath(new URL(`./${name}.ts`, import.meta.url)),
    args: [],
    execArgv: ['--import', 'tsx'],
  };
}

/** Undefined when there is no script to re-run (node -e, the REPL). */
export function rerunLaunch(): WorkerLaunch | undefined {
  const script = process.argv[1];
  if (script === undefined || script === '' || script === '-') return undefined;
  return {
    file: script,
    args: process.argv.slice(2),
    execArgv: process.execArgv.filter((a) => !NOT_INHERITED.test(a)),
  };
}
