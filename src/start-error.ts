/**
 * A start the user has to fix (an address, a path, a handler): the message names it and says why,
 * and the CLIs print it as one line, without a stack. Anything else that fails a start is a bug
 * and is printed with its stack.
 */
export class StartError extends Error {
  override name = 'StartError';
}
