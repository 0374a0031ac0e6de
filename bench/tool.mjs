#!/usr/bin/env node
// Runs the compiled load tool (`npm run build` first): node bench/tool.mjs --port P ...
// Same flags and exit status as `tcpdaemon bench`.
import { benchMain } from '../dist/bench/cli.js';

process.exitCode = await benchMain(process.argv.slice(2));
