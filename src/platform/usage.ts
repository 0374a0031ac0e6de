// Help text generated from a command's field declarations, so it cannot drift from what parses.
import type { CommandSpec, Field } from './fields.js';

const COLUMN = 28;

function left(field: Field): string {
  const flags = field.flags.join(', ');
  return field.arg === undefined ? flags : `${flags} ${field.arg}`;
}

function row(head: string, help: string): string {
  const pad = head.length + 2 >= COLUMN ? `\n${' '.repeat(COLUMN + 2)}` : ' '.repeat(COLUMN - head.length);
  return `  ${head}${pad}${help}`;
}

export function renderUsage(spec: CommandSpec): string {
  const lines = spec.synopsis.map((s, i) => `${i === 0 ? 'usage: ' : '       '}${s}`);
  lines.push('');
  for (const field of spec.fields) {
    if (field.configOnly) continue;
    const notes = [
      field.shownDefault === undefined ? '' : ` (default ${field.shownDefault})`,
      field.repeat ? ' (repeatable)' : '',
    ].join('');
    lines.push(row(left(field), `${field.help}${notes}`));
  }
  const configOnly = spec.fields.filter((f) => f.configOnly).map((f) => f.key);
  lines.push(
    row(
      '--config FILE.json',
      `parameters as JSON, the library's keys${configOnly.length ? ` (also ${configOnly.join(', ')})` : ''}; flags override it`,
    ),
  );
  const live = spec.fields.filter((f) => f.live).map((f) => f.flags[0] ?? f.key);
  if (live.length > 0) {
    lines.push(
      row(
        '',
        `SIGHUP re-reads it: ${live.join(', ')} apply live; other changes are logged as needing a restart`,
      ),
    );
  }
  lines.push(row('-v, --version', 'print the version'));
  lines.push(row('-h, --help', 'print this help'));
  if (spec.footer) lines.push('', spec.footer);
  return lines.join('\n');
}
