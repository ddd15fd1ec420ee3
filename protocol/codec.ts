// msgpack frame codec. Encoding is plain msgpack (maps, no msgpackr records or extensions),
// so any msgpack library in any language can speak the protocol. Decoding enforces the
// structural limits of limits.ts before anything else looks at the value.
import { Packr, Unpackr } from 'msgpackr';
import { LanternError } from './errors.ts';
import { DEFAULT_FRAME_LIMITS, FORBIDDEN_KEYS, type FrameLimits } from './limits.ts';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Encode one frame. The bytes may be shared by many sockets (encode once per broadcast). */
export function encodeFrame(frame: object): Uint8Array {
  return packr.pack(frame);
}

/** Decode and structurally validate one frame; throws LanternError('bad_frame'). */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits = DEFAULT_FRAME_LIMITS): Record<string, unknown> {
  if (bytes.byteLength > limits.maxFrameBytes) {
    throw new LanternError('bad_frame', `frame of ${bytes.byteLength} bytes exceeds maxFrameBytes ${limits.maxFrameBytes}`);
  }
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
  } catch (err) {
    // Includes RangeError from absurd nesting: msgpackr recurses per level.
    throw new LanternError('bad_frame', `not valid msgpack: ${(err as Error).message}`, { cause: err });
  }
  if (!isPlainObject(value)) throw new LanternError('bad_frame', 'a frame must be a msgpack map');
  checkValue(value, 1, limits);
  return value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkValue(v: unknown, depth: number, limits: FrameLimits): void {
  switch (typeof v) {
    case 'string':
      if (v.length > limits.maxStringLength) throw new LanternError('bad_frame', `string longer than maxStringLength ${limits.maxStringLength}`);
      return;
    case 'number':
      // msgpack has no NaN/Infinity in ints, but float64 can carry them.
      if (!Number.isFinite(v)) throw new LanternError('bad_frame', 'numbers must be finite');
      return;
    case 'boolean':
      return;
    case 'bigint':
      throw new LanternError('bad_frame', 'integer outside the safe range (|n| > 2^53-1)');
    case 'object':
      break;
    default:
      throw new LanternError('bad_frame', `unsupported value type ${typeof v}`);
  }
  if (v === null) return;
  if (depth > limits.maxDepth) throw new LanternError('bad_frame', `nesting deeper than maxDepth ${limits.maxDepth}`);
  if (v instanceof Uint8Array) {
    if (v.byteLength > limits.maxBinaryBytes) throw new LanternError('bad_frame', `binary longer than maxBinaryBytes ${limits.maxBinaryBytes}`);
    return;
  }
  if (Array.isArray(v)) {
    if (v.length > limits.maxArrayLength) throw new LanternError('bad_frame', `array longer than maxArrayLength ${limits.maxArrayLength}`);
    for (const item of v) checkValue(item, depth + 1, limits);
    return;
  }
  if (!isPlainObject(v)) throw new LanternError('bad_frame', 'unsupported msgpack type (extensions are not allowed)');
  let keys = 0;
  for (const key in v) {
    if (++keys > limits.maxMapKeys) throw new LanternError('bad_frame', `map with more than maxMapKeys ${limits.maxMapKeys} keys`);
    if (FORBIDDEN_KEYS.has(key)) throw new LanternError('bad_frame', `forbidden key "${key}"`);
    checkValue(v[key], depth + 1, limits);
  }
}
