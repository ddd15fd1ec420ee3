// msgpack frame codec. The wire format is a strict subset of plain msgpack (PROTOCOL.md
// "Framing") so that any msgpack library in any language can speak it:
//  - encode: integers always as msgpack ints in their smallest form (never float, even above
//    2^32: typed decoders in other languages refuse a float for an int field), other numbers
//    as float64, map keys in insertion order, `undefined` map values omitted.
//  - decode: one map, no trailing bytes, no extension types, no 0xc1, str keys only, no
//    duplicate or forbidden keys, valid UTF-8, safe integers, finite floats, and the
//    structural limits of limits.ts, all checked in one pass (counts before allocating).
// It is hand-written rather than msgpackr because msgpackr decodes its own extensions
// (typed arrays, records, bundled strings) and small uint64s as BigInt, and encodes large
// integers as float64 and `undefined` as extension 0.
import { LanternError } from './errors.ts';
import { DEFAULT_FRAME_LIMITS, FORBIDDEN_KEYS, type FrameLimits } from './limits.ts';

// ---------------------------------------------------------------- encode

let out = new Uint8Array(8192);
let outView = new DataView(out.buffer);
let at = 0;

function reserve(n: number): void {
  if (at + n <= out.length) return;
  let size = out.length * 2;
  while (size < at + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(out.subarray(0, at));
  out = next;
  outView = new DataView(out.buffer);
}

const utf8 = new TextEncoder();

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
    else n += 3; // includes lone surrogates, which TextEncoder writes as U+FFFD
  }
  return n;
}

function writeHeader(len: number, fix: number, fixMax: number, c8: number, c16: number, c32: number): void {
  reserve(5);
  if (len <= fixMax) out[at++] = fix | len;
  else if (c8 !== 0 && len < 0x100) { out[at++] = c8; out[at++] = len; }
  else if (len < 0x10000) { out[at++] = c16; outView.setUint16(at, len); at += 2; }
  else { out[at++] = c32; outView.setUint32(at, len); at += 4; }
}

function writeString(s: string): void {
  const len = utf8Length(s);
  writeHeader(len, 0xa0, 31, 0xd9, 0xda, 0xdb);
  reserve(len);
  if (len === s.length && len < 64) {
    for (let i = 0; i < len; i++) out[at++] = s.charCodeAt(i);
  } else {
    at += utf8.encodeInto(s, out.subarray(at, at + len)).written;
  }
}

function writeNumber(n: number): void {
  reserve(9);
  if (Number.isSafeInteger(n)) {
    if (n >= 0) {
      if (n < 0x80) out[at++] = n;
      else if (n < 0x100) { out[at++] = 0xcc; out[at++] = n; }
      else if (n < 0x10000) { out[at++] = 0xcd; outView.setUint16(at, n); at += 2; }
      else if (n < 0x100000000) { out[at++] = 0xce; outView.setUint32(at, n); at += 4; }
      else { out[at++] = 0xcf; outView.setBigUint64(at, BigInt(n)); at += 8; }
    } else {
      if (n >= -32) out[at++] = n & 0xff;
      else if (n >= -0x80) { out[at++] = 0xd0; outView.setInt8(at, n); at += 1; }
      else if (n >= -0x8000) { out[at++] = 0xd1; outView.setInt16(at, n); at += 2; }
      else if (n >= -0x80000000) { out[at++] = 0xd2; outView.setInt32(at, n); at += 4; }
      else { out[at++] = 0xd3; outView.setBigInt64(at, BigInt(n)); at += 8; }
    }
    return;
  }
  if (!Number.isFinite(n)) throw new TypeError(`cannot encode ${n}: frames carry finite numbers only`);
  out[at++] = 0xcb;
  outView.setFloat64(at, n);
  at += 8;
}

function writeValue(v: unknown): void {
  switch (typeof v) {
    case 'string': writeString(v); return;
    case 'number': writeNumber(v); return;
    case 'boolean': reserve(1); out[at++] = v ? 0xc3 : 0xc2; return;
    case 'undefined': reserve(1); out[at++] = 0xc0; return; // only reached inside arrays
    case 'object': break;
    default: throw new TypeError(`cannot encode a ${typeof v}`);
  }
  if (v === null) { reserve(1); out[at++] = 0xc0; return; }
  if (v instanceof Uint8Array) {
    writeHeader(v.byteLength, 0, -1, 0xc4, 0xc5, 0xc6);
    reserve(v.byteLength);
    out.set(v, at);
    at += v.byteLength;
    return;
  }
  if (Array.isArray(v)) {
    writeHeader(v.length, 0x90, 15, 0, 0xdc, 0xdd);
    for (const item of v) writeValue(item);
    return;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) throw new TypeError(`cannot encode a ${proto?.constructor?.name ?? 'non-plain object'}`);
  const rec = v as Record<string, unknown>;
  let count = 0;
  for (const key in rec) if (rec[key] !== undefined) count++;
  writeHeader(count, 0x80, 15, 0, 0xde, 0xdf);
  for (const key in rec) {
    const item = rec[key];
    if (item === undefined) continue;
    writeString(key);
    writeValue(item);
  }
}

/** Encode one frame. The bytes may be shared by many sockets (encode once per broadcast). */
export function encodeFrame(frame: object): Uint8Array {
  at = 0;
  writeValue(frame);
  return out.slice(0, at);
}

// ---------------------------------------------------------------- decode

const EMPTY = new Uint8Array(0);
const EMPTY_VIEW = new DataView(EMPTY.buffer);
let src: Uint8Array = EMPTY;
let view: DataView = EMPTY_VIEW;
let pos = 0;
let lim: FrameLimits = DEFAULT_FRAME_LIMITS;

// ignoreBOM keeps a leading U+FEFF: it is part of the string, not a marker.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function bad(message: string): never {
  throw new LanternError('bad_frame', message);
}

function need(n: number): void {
  if (pos + n > src.length) bad(`truncated msgpack: needs ${pos + n - src.length} more byte(s) at offset ${pos}`);
}

function readString(len: number): string {
  need(len);
  const start = pos;
  pos += len;
  const s = len < 64 ? decodeShortUtf8(start, pos) : decodeUtf8(start);
  if (s.length > lim.maxStringLength) bad(`string longer than maxStringLength ${lim.maxStringLength}`);
  return s;
}

// Short strings (ids, field names) dominate frames; decoding them by hand avoids TextDecoder's
// per-call overhead. Anything unusual falls back to the strict TextDecoder.
function decodeShortUtf8(start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = src[i]!;
    if (c < 0x80) { s += String.fromCharCode(c); continue; }
    if (c >= 0xc2 && c < 0xe0 && i + 1 < end) {
      const c1 = src[i + 1]!;
      if ((c1 & 0xc0) === 0x80) { s += String.fromCharCode(((c & 0x1f) << 6) | (c1 & 0x3f)); i++; continue; }
    }
    return decodeUtf8(start);
  }
  return s;
}

function decodeUtf8(start: number): string {
  try {
    return strictUtf8.decode(src.subarray(start, pos));
  } catch (err) {
    throw new LanternError('bad_frame', `string at offset ${start} is not valid UTF-8`, { cause: err });
  }
}

function readInt64(signed: boolean): number {
  need(8);
  const n = signed ? view.getBigInt64(pos) : view.getBigUint64(pos);
  pos += 8;
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) bad(`integer ${n} outside the safe range (|n| > 2^53-1)`);
  return Number(n);
}

function finite(n: number): number {
  if (!Number.isFinite(n)) bad('numbers must be finite (no NaN or Infinity)');
  return n;
}

function readKey(): string {
  need(1);
  const b = src[pos++]!;
  let len: number;
  if ((b & 0xe0) === 0xa0) len = b & 0x1f;
  else if (b === 0xd9) { need(1); len = src[pos++]!; }
  else if (b === 0xda) { need(2); len = view.getUint16(pos); pos += 2; }
  else if (b === 0xdb) { need(4); len = view.getUint32(pos); pos += 4; }
  else bad(`map keys must be strings (found type byte 0x${b.toString(16)} at offset ${pos - 1})`);
  const key = readString(len);
  if (FORBIDDEN_KEYS.has(key)) bad(`forbidden key "${key}"`);
  return key;
}

function readMap(count: number, depth: number): Record<string, unknown> {
  if (depth > lim.maxDepth) bad(`nesting deeper than maxDepth ${lim.maxDepth}`);
  if (count > lim.maxMapKeys) bad(`map with more than maxMapKeys ${lim.maxMapKeys} keys`);
  need(count * 2); // every key and value takes at least one byte: refuse absurd counts before looping
  const obj: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    const key = readKey();
    if (obj[key] !== undefined) bad(`duplicate key "${key}"`); // decoded values are never undefined
    obj[key] = readValue(depth + 1);
  }
  return obj;
}

function readArray(count: number, depth: number): unknown[] {
  if (depth > lim.maxDepth) bad(`nesting deeper than maxDepth ${lim.maxDepth}`);
  if (count > lim.maxArrayLength) bad(`array longer than maxArrayLength ${lim.maxArrayLength}`);
  need(count);
  const arr = new Array<unknown>(count);
  for (let i = 0; i < count; i++) arr[i] = readValue(depth + 1);
  return arr;
}

function readBinary(len: number): Uint8Array {
  if (len > lim.maxBinaryBytes) bad(`binary longer than maxBinaryBytes ${lim.maxBinaryBytes}`);
  need(len);
  // Copy: the caller's buffer (a uWS message) is only valid during its callback.
  const b = src.slice(pos, pos + len);
  pos += len;
  return b;
}

function readValue(depth: number): unknown {
  need(1);
  const b = src[pos++]!;
  if (b < 0x80) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b < 0x90) return readMap(b & 0x0f, depth);
  if (b < 0xa0) return readArray(b & 0x0f, depth);
  if (b < 0xc0) return readString(b & 0x1f);
  let n: number;
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: need(1); return readBinary(src[pos++]!);
    case 0xc5: need(2); n = view.getUint16(pos); pos += 2; return readBinary(n);
    case 0xc6: need(4); n = view.getUint32(pos); pos += 4; return readBinary(n);
    case 0xca: need(4); n = view.getFloat32(pos); pos += 4; return finite(n);
    case 0xcb: need(8); n = view.getFloat64(pos); pos += 8; return finite(n);
    case 0xcc: need(1); return src[pos++]!;
    case 0xcd: need(2); n = view.getUint16(pos); pos += 2; return n;
    case 0xce: need(4); n = view.getUint32(pos); pos += 4; return n;
    case 0xcf: return readInt64(false);
    case 0xd0: need(1); n = view.getInt8(pos); pos += 1; return n;
    case 0xd1: need(2); n = view.getInt16(pos); pos += 2; return n;
    case 0xd2: need(4); n = view.getInt32(pos); pos += 4; return n;
    case 0xd3: return readInt64(true);
    case 0xd9: need(1); return readString(src[pos++]!);
    case 0xda: need(2); n = view.getUint16(pos); pos += 2; return readString(n);
    case 0xdb: need(4); n = view.getUint32(pos); pos += 4; return readString(n);
    case 0xdc: need(2); n = view.getUint16(pos); pos += 2; return readArray(n, depth);
    case 0xdd: need(4); n = view.getUint32(pos); pos += 4; return readArray(n, depth);
    case 0xde: need(2); n = view.getUint16(pos); pos += 2; return readMap(n, depth);
    case 0xdf: need(4); n = view.getUint32(pos); pos += 4; return readMap(n, depth);
    case 0xc1: return bad(`reserved msgpack byte 0xc1 at offset ${pos - 1}`);
    default: return bad(`msgpack extension types are not allowed (type byte 0x${b.toString(16)} at offset ${pos - 1})`);
  }
}

/** Decode and structurally validate one frame; throws LanternError('bad_frame'). */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits = DEFAULT_FRAME_LIMITS): Record<string, unknown> {
  if (bytes.byteLength > limits.maxFrameBytes) {
    throw new LanternError('bad_frame', `frame of ${bytes.byteLength} bytes exceeds maxFrameBytes ${limits.maxFrameBytes}`);
  }
  src = bytes;
  view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  lim = limits;
  try {
    if (bytes.byteLength === 0) bad('empty frame');
    const first = bytes[0]!;
    if (!((first & 0xf0) === 0x80 || first === 0xde || first === 0xdf)) bad('a frame must be a msgpack map');
    const frame = readValue(1) as Record<string, unknown>;
    if (pos !== bytes.byteLength) bad(`${bytes.byteLength - pos} trailing byte(s) after the frame`);
    return frame;
  } finally {
    // Do not keep the caller's buffer alive until the next call.
    src = EMPTY;
    view = EMPTY_VIEW;
  }
}
