// The layer rule (ARCHITECTURE.md): commands sit on the platform, the platform on the server core,
// the core on the libraries. A command never imports another command; nothing below the commands
// imports one; the libraries import nothing of the layers above them. Each model lives in its own
// folder of src/models/ (daemon half and worker half) and imports no other model's; src/worker/ is
// model-neutral and reaches the models only through their worker-half table. Checked on src/'s import graph.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/daemon.js';

const SRC = join(ROOT, 'src');

/** Which command a file belongs to, or its layer. */
export function layerOf(file: string): string {
  const rel = relative(SRC, file);
  if (rel === 'cli/main.ts' || rel === 'index.ts') return 'entry';
  if (['errors.ts', 'types.ts', 'worker-bus.ts', 'throttled-count.ts', 'child-channel.ts'].includes(rel))
    return 'base';
  if (rel === 'cli/status.ts') return 'command:status';
  if (rel === 'cli/routes.ts') return 'command:routes';
  const top = rel.split('/')[0]!;
  const commands: Record<string, string> = {
    cli: 'command:daemon',
    proxy: 'command:proxy',
    gateway: 'command:gateway',
    bench: 'command:bench',
  };
  if (commands[top]) return commands[top]!;
  if (top === 'platform') return 'platform';
  if (top === 'message' || top === 'proxy-protocol' || top === 'balance') return 'library';
  // The fleet's route table and reports are a library (the message client follows them); reading a
  // command's --announce fields and announcing a listener are the core's.
  if (top === 'fleet')
    return rel === 'fleet/settings.ts' || rel === 'fleet/announcer.ts' ? 'core' : 'library';
  return 'core';
}

/** Why importing `to` from `from` breaks the rule, or undefined. */
export function violation(from: string, to: string): string | undefined {
  const a = layerOf(from);
  const b = layerOf(to);
  if (a === b || b === 'base' || a === 'entry') return undefined;
  if (b.startsWith('command:'))
    return a.startsWith('command:') ? 'a command imports another command' : `the ${a} imports a command`;
  if (b === 'entry') return 'imports the entry';
  if (a === 'library') return 'a library imports a layer above it';
  if (
    a === 'core' &&
    b === 'platform' &&
    !/^platform\/(fields|values|shared-fields|host)\.ts$/.test(relative(SRC, to))
  ) {
    return 'the core imports the platform (beyond the parameter declarations it validates with and the host)';
  }
  return undefined;
}

/** Why importing `to` from `from` breaks the models' rule (one folder each; a neutral worker), or undefined. */
export function modelViolation(from: string, to: string): string | undefined {
  const a = relative(SRC, from);
  const b = relative(SRC, to);
  const folder = (rel: string) => /^models\/([^/]+)\//.exec(rel)?.[1];
  if (folder(a) && folder(b) && folder(a) !== folder(b)) return 'a model imports another model';
  if (a.startsWith('worker/') && b.startsWith('models/') && b !== 'models/worker-halves.ts')
    return 'the model-neutral worker imports a model (beyond the worker-half table)';
  if (a === 'models/worker-halves.ts' && b.startsWith('models/') && !/^models\/[^/]+\/worker\.ts$/.test(b))
    return 'the worker-half table imports more than the worker halves';
  return undefined;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

function importsOf(file: string, runtimeOnly = false): string[] {
  let text = readFileSync(file, 'utf8');
  // `import type` is erased: it loads nothing.
  if (runtimeOnly) text = text.replace(/\b(?:import|export)\s+type\s[^;]*?\bfrom\s+['"][^'"]+['"]/g, '');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    out.push(normalize(join(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
  }
  return out;
}

test('layer rule: no command imports another, nothing below a command imports one', () => {
  const broken: string[] = [];
  const files = sources(SRC);
  assert.ok(files.length > 50, `found src files (${files.length})`);
  for (const file of files) {
    for (const target of importsOf(file)) {
      const why = violation(file, target);
      if (why) broken.push(`${relative(SRC, file)} -> ${relative(SRC, target)}: ${why}`);
    }
  }
  assert.deepEqual(broken, []);
});

test("models: each in its own folder, importing no other model's; src/worker/ is model-neutral", () => {
  const broken: string[] = [];
  for (const file of sources(SRC)) {
    for (const target of importsOf(file)) {
      const why = modelViolation(file, target);
      if (why) broken.push(`${relative(SRC, file)} -> ${relative(SRC, target)}: ${why}`);
    }
  }
  assert.deepEqual(broken, []);
  // What a worker process loads (the bundled entry) holds no daemon half and no supervisor.
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const target of importsOf(file, true)) walk(target);
  };
  walk(join(SRC, 'worker/main.ts'));
  const loaded = [...seen].map((f) => relative(SRC, f));
  for (const half of ['iomp', 'lf', 'if']) assert.ok(loaded.includes(`models/${half}/worker.ts`), half);
  assert.deepEqual(
    loaded.filter((f) =>
      /^models\/([^/]+\/daemon|index|worker-pool|handoff)\.ts$|^supervisor\/supervisor\.ts$/.test(f),
    ),
    [],
  );
});

test('layer rule: the check itself catches each kind of break', () => {
  const f = (p: string) => join(SRC, p);
  assert.match(violation(f('proxy/run.ts'), f('gateway/daemon.ts')) ?? '', /command imports another command/);
  assert.match(violation(f('daemon.ts'), f('proxy/run.ts')) ?? '', /core imports a command/);
  assert.match(violation(f('platform/runner.ts'), f('cli/daemon.ts')) ?? '', /platform imports a command/);
  assert.match(violation(f('message/conn.ts'), f('daemon.ts')) ?? '', /library imports a layer above/);
  assert.match(violation(f('balance/host-pool.ts'), f('daemon.ts')) ?? '', /library imports a layer above/);
  assert.match(
    violation(f('fleet/route-table.ts'), f('fleet/settings.ts')) ?? '',
    /library imports a layer above/,
  );
  assert.equal(violation(f('message/client.ts'), f('fleet/route-table.ts')), undefined);
  assert.equal(violation(f('proxy/run.ts'), f('daemon.ts')), undefined);
  assert.equal(violation(f('cli/main.ts'), f('proxy/cli.ts')), undefined);
  assert.match(
    modelViolation(f('models/lf/daemon.ts'), f('models/if/daemon.ts')) ?? '',
    /imports another model/,
  );
  assert.match(modelViolation(f('worker/run.ts'), f('models/lf/worker.ts')) ?? '', /model-neutral worker/);
  assert.match(modelViolation(f('models/worker-halves.ts'), f('models/lf/daemon.ts')) ?? '', /worker halves/);
  assert.equal(modelViolation(f('models/lf/daemon.ts'), f('models/handoff.ts')), undefined);
  assert.equal(modelViolation(f('worker/run.ts'), f('models/worker-halves.ts')), undefined);
});
