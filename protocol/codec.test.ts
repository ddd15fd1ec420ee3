// Property and boundary tests of the frame codec: what any frame survives, what no input can
// do to the decoder, and that every structural limit holds at exactly its value.
import t from 'tap';
import { Unpackr } from 'msgpackr';
import { decodeFrame, encodeFrame } from './codec.ts';
import { LanternError } from './errors.ts';
import { DEFAULT_FRAME_LIMITS, FORBIDDEN_KEYS, type FrameLimits } from './limits.ts';
import { FRAME_SPECS, MAX_ID_LENGTH, parseClientFrame } from './schema.ts';

// ---------------------------------------------------------------- seeded generator

/** mulberry32: tiny, fast, and the same sequence for the same seed on every machine. */
function rng(seed: number) {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof rng>;

const SEED = Number(process.env['LANTERN_TEST_SEED'] ?? 20231114);
const CHARS = ['a', 'z', '0', ' ', ':', '-', 'é', 'ß', 'Ж', '中', '€', '😀', '\u0000', '\u007f', '\u0080', '\u07ff', '\u0800', '\uffff', '\ufeff'];

function randString(r: Rng, max: number): string {
  const n = r.int(0, max);
  let s = '';
  while (s.length < n) s += r.next() < 0.6 ? String.fromCharCode(r.int(0x20, 0x7e)) : r.pick(CHARS);
  return s;
}

const INT_EDGES = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER,
  -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, Number.MIN_SAFE_INTEGER];

function randNumber(r: Rng): number {
  switch (r.int(0, 3)) {
    case 0: return r.pick(INT_EDGES);
    case 1: return r.int(-1000, 1000);
    case 2: return Math.floor((r.next() - 0.5) * 2 ** r.int(1, 53));
    default: { const f = (r.next() - 0.5) * 10 ** r.int(-5, 300); return Object.is(f, -0) || Number.isInteger(f) ? 0.5 : f; }
  }
}

function randValue(r: Rng, depth: number, limits: FrameLimits): unknown {
  // Fewer containers the deeper we are, so frames stay small but some reach maxDepth.
  const container = depth < limits.maxDepth && r.next() < 0.5 / depth;
  if (container) return r.next() < 0.5 ? randMap(r, depth + 1, limits) : Array.from({ length: r.int(0, 6) }, () => randValue(r, depth + 1, limits));
  switch (r.int(0, 5)) {
    case 0: return randString(r, 40);
    case 1: return randNumber(r);
    case 2: return r.next() < 0.5;
    case 3: return null;
    case 4: return Uint8Array.from({ length: r.int(0, 40) }, () => r.int(0, 255));
    default: return randString(r, 300);
  }
}

function randMap(r: Rng, depth: number, limits: FrameLimits): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  for (let i = r.int(0, 8); i > 0; i--) {
    const key = randString(r, 12);
    if (!FORBIDDEN_KEYS.has(key)) obj[key] = randValue(r, depth, limits);
  }
  return obj;
}

// randString can overshoot its length by one (a surrogate pair): keep ids within MAX_ID_LENGTH.
const randId = (r: Rng): string => randString(r, MAX_ID_LENGTH - 2) + 'x';

/** A random frame of `type` that satisfies FRAME_SPECS, with random optional and unknown fields. */
function randClientFrame(r: Rng, type: keyof typeof FRAME_SPECS): Record<string, unknown> {
  const frame: Record<string, unknown> = { t: type, id: r.int(1, Number.MAX_SAFE_INTEGER) };
  const spec = FRAME_SPECS[type];
  const value = (fs: string): unknown => {
    switch (fs) {
      case 'id': return randId(r);
      case 'string': return randString(r, 100);
      case 'seq': return r.int(0, Number.MAX_SAFE_INTEGER);
      case 'count': return r.int(1, Number.MAX_SAFE_INTEGER);
      case 'bool': return r.next() < 0.5;
      case 'ids': return Array.from({ length: r.int(1, 10) }, () => randId(r));
      case 'versions': return Array.from({ length: r.int(1, 3) }, () => r.int(1, 5));
      case 'seqMap': { const m: Record<string, number> = {}; for (let i = r.int(0, 5); i > 0; i--) m[randId(r)] = r.int(0, 1e12); return m; }
      case 'map': return randMap(r, 2, DEFAULT_FRAME_LIMITS);
      case 'kind': return r.pick(['text', 'sticker', 'image', 'file', 'location']);
      case 'role': return r.pick(['admin', 'member']);
      case 'mode': return r.pick(['lucky', 'equal']);
      default: throw new Error(`no generator for field spec ${fs}`);
    }
  };
  for (const [name, fs] of Object.entries(spec.required)) frame[name] = value(fs);
  for (const [name, fs] of Object.entries(spec.optional ?? {})) if (r.next() < 0.5) frame[name] = value(fs);
  if (r.next() < 0.2) frame['x-future'] = randString(r, 10); // unknown fields are ignored
  return frame;
}

const reference = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// ---------------------------------------------------------------- properties

/** Structural equality that tells -0 from 0 and Uint8Array from arrays, without tap's per-call cost. */
function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

t.test(`random frames round-trip (seed ${SEED})`, async (t) => {
  const r = rng(SEED);
  const bad: string[] = [];
  let deepest = 0;
  for (let i = 0; i < 3000; i++) {
    const frame = randMap(r, 1, DEFAULT_FRAME_LIMITS);
    const bytes = encodeFrame(frame);
    if (bytes.byteLength > DEFAULT_FRAME_LIMITS.maxFrameBytes) continue;
    try {
      if (!sameValue(decodeFrame(bytes), frame)) bad.push(hex(bytes));
    } catch (err) {
      bad.push(`${(err as Error).message}: ${hex(bytes).slice(0, 200)}`);
    }
    deepest = Math.max(deepest, depthOf(frame));
  }
  t.same(bad.slice(0, 3), [], '3000 random frames decode to what was encoded');
  t.equal(deepest, DEFAULT_FRAME_LIMITS.maxDepth, 'some frames reach maxDepth');
});

function depthOf(v: unknown): number {
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return 0;
  return 1 + Math.max(0, ...Object.values(v).map(depthOf));
}

t.test(`random client frames round-trip and pass validation (seed ${SEED})`, async (t) => {
  const r = rng(SEED + 1);
  const types = Object.keys(FRAME_SPECS) as Array<keyof typeof FRAME_SPECS>;
  const bad: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const frame = randClientFrame(r, types[i % types.length]!);
    const bytes = encodeFrame(frame);
    try {
      const back = parseClientFrame(decodeFrame(bytes));
      const standard = reference.unpack(bytes) as unknown;
      if (!sameValue(back, frame) || !sameValue(standard, frame)) bad.push(hex(bytes));
    } catch (err) {
      bad.push(`${(err as Error).message}: ${hex(bytes)}`);
    }
  }
  t.same(bad.slice(0, 3), [], 'every frame decodes, validates and reads the same with an independent msgpack decoder');
});

/** Calls decodeFrame+parseClientFrame and reports anything thrown that is not a LanternError. */
function foreignError(bytes: Uint8Array): string | undefined {
  try {
    parseClientFrame(decodeFrame(bytes));
  } catch (err) {
    if (!(err instanceof LanternError)) return `${(err as Error)?.name}: ${(err as Error)?.message} on ${hex(bytes).slice(0, 200)}`;
  }
  return undefined;
}

t.test(`random bytes never throw anything but LanternError (seed ${SEED})`, async (t) => {
  const r = rng(SEED + 2);
  const problems: string[] = [];
  for (let i = 0; i < 10000; i++) {
    const bytes = Uint8Array.from({ length: r.int(0, 64) }, () => r.int(0, 255));
    if (r.next() < 0.7 && bytes.length > 0) bytes[0] = r.pick([0x80, 0x81, 0x82, 0x83, 0x8f, 0xde, 0xdf]); // get past the map check
    const p = foreignError(bytes);
    if (p !== undefined) problems.push(p);
  }
  t.same(problems.slice(0, 3), []);
});

t.test(`mutated valid frames never throw anything but LanternError (seed ${SEED})`, async (t) => {
  const r = rng(SEED + 3);
  const types = Object.keys(FRAME_SPECS) as Array<keyof typeof FRAME_SPECS>;
  const problems: string[] = [];
  let rejected = 0;
  for (let i = 0; i < 6000; i++) {
    const good = encodeFrame(randClientFrame(r, r.pick(types)));
    let bytes: Uint8Array;
    switch (r.int(0, 3)) {
      case 0: bytes = good.slice(0, r.int(0, good.length - 1)); break; // truncate
      case 1: bytes = good.slice(); for (let k = r.int(1, 4); k > 0; k--) bytes[r.int(0, bytes.length - 1)] = r.int(0, 255); break; // overwrite
      case 2: { const at = r.int(0, good.length); bytes = Uint8Array.from([...good.subarray(0, at), r.int(0, 255), ...good.subarray(at)]); break; } // insert
      default: { const at = r.int(0, good.length - 1); bytes = Uint8Array.from([...good.subarray(0, at), ...good.subarray(at + 1)]); } // delete
    }
    const p = foreignError(bytes);
    if (p !== undefined) problems.push(p);
    try { decodeFrame(bytes); } catch { rejected++; }
  }
  t.same(problems.slice(0, 3), []);
  t.ok(rejected > 3000, `most mutations are caught by the decoder (${rejected}/6000)`);
});

// ---------------------------------------------------------------- limits at the boundary

/** The error decodeFrame throws for `bytes`, or undefined when it accepts them. */
function rejection(bytes: Uint8Array, limits: FrameLimits): unknown {
  try {
    decodeFrame(bytes, limits);
  } catch (err) {
    return err;
  }
  return undefined;
}
const badFrame = (reason: RegExp) => ({ name: 'LanternError', error: 'bad_frame', message: reason });

const L = DEFAULT_FRAME_LIMITS;
function nest(depth: number, kind: 'map' | 'array'): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = kind === 'map' ? { a: v } : [v];
  return v;
}

t.test('maxFrameBytes: exactly the limit passes, one byte more is rejected', async (t) => {
  const chunk = 'x'.repeat(L.maxStringLength);
  const frame = (pad: number) => ({ t: 'ping', id: 1, a: chunk, b: chunk, c: chunk, d: 'y'.repeat(pad) });
  const base = encodeFrame(frame(0)).byteLength;
  let pad = L.maxFrameBytes - base;
  // The str header grows with the string; step back until the frame is exactly the limit.
  while (encodeFrame(frame(pad)).byteLength > L.maxFrameBytes) pad--;
  const exact = encodeFrame(frame(pad));
  t.equal(exact.byteLength, L.maxFrameBytes);
  t.equal(decodeFrame(exact)['d'], 'y'.repeat(pad));
  const over = Uint8Array.from([...exact, 0]);
  t.match(rejection(over, L), badFrame(/maxFrameBytes/), 'maxFrameBytes + 1');
});

t.test('maxDepth: the frame is depth 1; maps and arrays both count', async (t) => {
  for (const kind of ['map', 'array'] as const) {
    const ok = { t: 'ping', id: 1, v: nest(L.maxDepth - 1, kind) };
    t.strictSame(decodeFrame(encodeFrame(ok)), ok, `${kind}s nested to depth ${L.maxDepth}`);
    t.match(rejection(encodeFrame({ t: 'ping', id: 1, v: nest(L.maxDepth, kind) }), L), badFrame(/maxDepth/), `${kind}s nested to depth ${L.maxDepth + 1}`);
  }
  const small: FrameLimits = { ...L, maxDepth: 2 };
  t.ok(decodeFrame(encodeFrame({ a: {} }), small));
  t.match(rejection(encodeFrame({ a: { b: {} } }), small), badFrame(/maxDepth/), 'depth 3 with maxDepth 2');
});

t.test('maxStringLength counts UTF-16 code units, for values and keys', async (t) => {
  const n = L.maxStringLength;
  t.equal((decodeFrame(encodeFrame({ s: 'a'.repeat(n) }))['s'] as string).length, n);
  t.match(rejection(encodeFrame({ s: 'a'.repeat(n + 1) }), L), badFrame(/maxStringLength/), 'ascii string of limit+1');
  // 3 bytes per character: over the limit in bytes, within it in characters.
  const wide = '中'.repeat(Math.floor(n / 2));
  t.equal(decodeFrame(encodeFrame({ s: wide }))['s'], wide);
  t.equal((decodeFrame(encodeFrame({ s: '😀'.repeat(n / 2) }))['s'] as string).length, n, 'surrogate pairs count as 2');
  t.match(rejection(encodeFrame({ s: '😀'.repeat(n / 2) + 'a' }), L), badFrame(/maxStringLength/), 'emoji string of limit+1 units');
  t.match(rejection(encodeFrame({ ['k'.repeat(n + 1)]: 1 }), L), badFrame(/maxStringLength/), 'key of limit+1');
});

t.test('maxArrayLength', async (t) => {
  const n = L.maxArrayLength;
  t.equal((decodeFrame(encodeFrame({ a: new Array(n).fill(0) }))['a'] as unknown[]).length, n);
  t.match(rejection(encodeFrame({ a: new Array(n + 1).fill(0) }), L), badFrame(/maxArrayLength/), 'array of limit+1');
});

t.test('maxMapKeys', async (t) => {
  const n = L.maxMapKeys;
  const map = (k: number) => Object.fromEntries(Array.from({ length: k }, (_, i) => [`k${i}`, 0]));
  t.equal(Object.keys(decodeFrame(encodeFrame({ m: map(n) }))['m'] as object).length, n);
  t.match(rejection(encodeFrame({ m: map(n + 1) }), L), badFrame(/maxMapKeys/), 'map of limit+1 keys');
});

t.test('maxBinaryBytes', async (t) => {
  const n = L.maxBinaryBytes;
  t.equal((decodeFrame(encodeFrame({ b: new Uint8Array(n) }))['b'] as Uint8Array).byteLength, n);
  t.match(rejection(encodeFrame({ b: new Uint8Array(n + 1) }), L), badFrame(/maxBinaryBytes/), 'binary of limit+1');
});

t.test('safe integer range is the boundary for int64/uint64', async (t) => {
  for (const n of [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 32)]) t.equal(decodeFrame(encodeFrame({ n }))['n'], n);
  const u64 = (hi: number, lo: number) => Uint8Array.from([0x81, 0xa1, 0x6e, 0xcf, hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff]);
  t.equal(decodeFrame(u64(0, 5))['n'], 5, 'a small value in uint64 form is an ordinary number');
  t.equal(decodeFrame(u64(0x1fffff, 0xffffffff))['n'], Number.MAX_SAFE_INTEGER);
  t.match(rejection(u64(0x200000, 0), L), badFrame(/safe range/), '2^53 as uint64');
});

// ---------------------------------------------------------------- encoder form

t.test('integers use the smallest msgpack int form, never float', async (t) => {
  const cases: Array<[number, string]> = [
    [0, '00'], [0x7f, '7f'], [0x80, 'cc80'], [0xff, 'ccff'], [0x100, 'cd0100'], [0xffff, 'cdffff'], [0x10000, 'ce00010000'],
    [0xffffffff, 'ceffffffff'], [0x100000000, 'cf0000000100000000'], [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
    [-1, 'ff'], [-32, 'e0'], [-33, 'd0df'], [-128, 'd080'], [-129, 'd1ff7f'], [-32768, 'd18000'], [-32769, 'd2ffff7fff'],
    [-(2 ** 31), 'd280000000'], [-(2 ** 31) - 1, 'd3ffffffff7fffffff'], [1.5, 'cb3ff8000000000000'], [2 ** 53, 'cb4340000000000000'],
  ];
  for (const [n, h] of cases) t.equal(hex(encodeFrame({ n })), `81a16e${h}`, String(n));
});

t.test('strings, arrays and maps use the smallest header', async (t) => {
  const s = (n: number) => hex(encodeFrame({ s: 'a'.repeat(n) })).slice(6, 12);
  t.equal(s(31).slice(0, 2), 'bf');
  t.equal(s(32).slice(0, 4), 'd920');
  t.equal(s(256).slice(0, 6), 'da0100');
  t.equal(s(65536).slice(0, 2), 'db');
  t.equal(hex(encodeFrame({ a: new Array(15).fill(0) })).slice(6, 8), '9f');
  t.equal(hex(encodeFrame({ a: new Array(16).fill(0) })).slice(6, 12), 'dc0010');
  t.equal(hex(encodeFrame(Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, 0])))).slice(0, 6), 'de0010');
  t.equal(hex(encodeFrame({ b: new Uint8Array(2) })), '81a162c4020000');
});

t.test('undefined map values are omitted; key order is insertion order', async (t) => {
  t.equal(hex(encodeFrame({ a: undefined, b: 1 })), '81a16201');
  t.equal(hex(encodeFrame({ b: 1, a: 2 })), '82a16201a16102');
  t.strictSame(decodeFrame(encodeFrame({ t: 'x', opt: undefined })), { t: 'x' });
});

t.test('the encoder refuses values the protocol cannot carry', async (t) => {
  for (const v of [NaN, Infinity, -Infinity, 10n, new Date(0), new Map(), () => 1, Symbol('s')]) {
    t.throws(() => encodeFrame({ v }), TypeError, String(typeof v === 'symbol' ? 'symbol' : v));
  }
});

t.test('decoded binary does not alias the input buffer', async (t) => {
  const bytes = encodeFrame({ b: Uint8Array.from([1, 2, 3]) });
  const b = decodeFrame(bytes)['b'] as Uint8Array;
  bytes.fill(0);
  t.strictSame([...b], [1, 2, 3]);
});

t.test('decodes frames at any offset of a larger buffer', async (t) => {
  const inner = encodeFrame({ t: 'read', id: 7, conv: 'g:1', seq: 2 ** 40 });
  const big = new Uint8Array(inner.length + 10);
  big.set(inner, 5);
  t.strictSame(decodeFrame(big.subarray(5, 5 + inner.length)), { t: 'read', id: 7, conv: 'g:1', seq: 2 ** 40 });
});
