import { fileURLToPath } from 'node:url';

/**
 * The file of a worker entry module beside this one (`name` without extension): compiled .js from
 * dist, or .ts when tcpdaemon itself runs from source under tsx (its own tests), which then needs
 * `--import tsx` in the worker's node flags.
 */
export function workerEntry(name: string): { file: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const file = fileURLToPath(new URL(`./${name}${fromSource ? '.ts' : '.js'}`, import.meta.url));
  return { file, execArgv: fromSource ? ['--import', 'tsx'] : [] };
}
