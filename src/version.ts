import { createRequire } from 'node:module';

// Works from src/ (tsx) and dist/ alike: both sit one level below package.json.
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string })
  .version;
