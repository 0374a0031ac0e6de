// Addresses of clients: session ids (`<gateway instance>:<n>`, given by the gateway) and names
// (registered by the client). Both are also NATS subject tokens, hence the strict alphabets.

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
const INSTANCE = /^[A-Za-z0-9_-]{1,32}$/;
const SESSION = /^([A-Za-z0-9_-]{1,32}):([1-9][0-9]{0,15})$/;

export type Target =
  | { kind: 'session'; sessionId: string; instance: string; n: string }
  | { kind: 'name'; name: string };

export function isValidName(s: string): boolean {
  return NAME.test(s);
}

export function checkInstance(s: string): string {
  if (!INSTANCE.test(s)) throw new RangeError(`gateway instance id must match ${INSTANCE}, got '${s}'`);
  return s;
}

export function sessionId(instance: string, n: number): string {
  return `${instance}:${n}`;
}

/** A session id or a name, or a sentence saying why it is neither. */
export function parseTarget(s: string): Target | string {
  const m = SESSION.exec(s);
  if (m) return { kind: 'session', sessionId: s, instance: m[1]!, n: m[2]! };
  if (NAME.test(s)) return { kind: 'name', name: s };
  return `'${s.length > 80 ? `${s.slice(0, 80)}...` : s}' is neither a session id (instance:n) nor a name (letters, digits, _ and -, up to 64)`;
}

export function describeNameRule(): string {
  return 'a name is 1 to 64 letters, digits, _ or - (not starting with -)';
}
