/**
 * `--spawn 'COMMAND {port}'`: the command is split into words as a shell would (spaces
 * separate, '…' and "…" quote, \ escapes) and run without a shell, so a signal to the
 * backend reaches the program itself. For shell features, spawn `sh -c 'exec …'` explicitly.
 */

export const PORT_PLACEHOLDER = '{port}';

/** Words of `command`; throws with a one-line reason on an unterminated quote or an empty command. */
export function splitCommand(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (c === '\\') {
      if (i + 1 >= command.length) throw new Error('command ends with a lone backslash');
      word += command[++i];
      inWord = true;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new Error(`unterminated ${quote} quote in command`);
  if (inWord) words.push(word);
  if (words.length === 0) throw new Error('empty command');
  return words;
}

/** argv with every {port} replaced by `port` (a TCP port number or a unix socket path). */
export function commandFor(words: readonly string[], port: string): string[] {
  return words.map((w) => w.replaceAll(PORT_PLACEHOLDER, port));
}
