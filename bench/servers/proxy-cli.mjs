// `tcpdaemon proxy` from the build, for the benchmark runner (no TypeScript loader in the
// measured process). usage: node bench/servers/proxy-cli.mjs PROXY-FLAGS...
import { proxyMain } from '../../dist/proxy/cli.js';

process.exit(await proxyMain(process.argv.slice(2)));
