// The codec table: every wire format by name. `createCodec('tdhb:6')` is the one place a name is parsed.
import { type Codec, type CodecOptions, checkMaxBody } from './codec.js';
import { larsCodec } from './lars.js';
import { lineCodec } from './line.js';
import { seqCodec } from './seq.js';
import { parseTdhbWidth, tdhbCodec } from './tdhb.js';
import { u32beCodec } from './u32be.js';

type CodecFactory = (param: string | undefined, opts: CodecOptions) => Codec;

function noParam(name: string, make: (opts: CodecOptions) => Codec): CodecFactory {
  return (param, opts) => {
    if (param !== undefined) throw new RangeError(`codec ${name} takes no parameter, got "${name}:${param}"`);
    return make(opts);
  };
}

const CODECS: Readonly<Record<string, CodecFactory>> = {
  lars: noParam('lars', larsCodec),
  seq: noParam('seq', seqCodec),
  tdhb: (param, opts) => tdhbCodec(parseTdhbWidth(param), opts),
  u32be: noParam('u32be', u32beCodec),
  line: noParam('line', lineCodec),
};

/** Names as a user writes them. */
export const CODEC_NAMES: readonly string[] = ['lars', 'seq', 'tdhb:W', 'u32be', 'line'];

/**
 * A codec by name (`lars`, `seq`, `tdhb`, `tdhb:W`, `u32be`, `line`), or the given codec as is.
 * Throws RangeError for an unknown name or a bad parameter or limit.
 */
export function createCodec(spec: string | Codec = 'lars', opts: CodecOptions = {}): Codec {
  if (typeof spec !== 'string') {
    if (opts.maxBody !== undefined) checkMaxBody(opts.maxBody);
    return spec;
  }
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  const param = colon < 0 ? undefined : spec.slice(colon + 1);
  const factory = Object.hasOwn(CODECS, name) ? CODECS[name] : undefined;
  if (factory === undefined) {
    throw new RangeError(`unknown codec "${spec}"; known: ${CODEC_NAMES.join(', ')}`);
  }
  return factory(param, opts);
}

export {
  type Codec,
  type CodecOptions,
  DEFAULT_MAX_BODY,
  type Decoder,
  decodeDatagram,
  FLAG_ERROR,
  FLAG_REPLY,
  type Frame,
  type FrameSink,
} from './codec.js';
export { larsCodec } from './lars.js';
export { lineCodec } from './line.js';
export { seqCodec } from './seq.js';
export { tdhbCodec } from './tdhb.js';
export { u32beCodec } from './u32be.js';
