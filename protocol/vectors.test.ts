// The published vectors (vectors/v1.json) are what SDKs in other languages test against, so
// they must match this codec byte for byte and cover every frame type.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Unpackr } from 'msgpackr';
import { decodeFrame, encodeFrame } from './codec.ts';
import { LanternError } from './errors.ts';
import { FRAME_SPECS, parseClientFrame } from './schema.ts';
import { buildVectors, type VectorFile } from './vectors/build.ts';
import { renderVectors, VECTORS_PATH } from './vectors/generate.ts';

const file = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as VectorFile;
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const SERVER_TYPES = ['welcome', 'res', 'err', 'msg', 'receipt', 'typing', 'presence', 'contact', 'lag', 'envelope', 'transfer', 'sale'];

t.test('v1.json is what generate.ts produces (regenerate after changing build.ts)', async (t) => {
  t.equal(readFileSync(VECTORS_PATH, 'utf8'), renderVectors());
  t.same(buildVectors(), buildVectors(), 'deterministic');
});

t.test('vector names are unique', async (t) => {
  const names = [...file.valid, ...file.invalid].map((v) => v.name);
  t.equal(new Set(names).size, names.length);
});

t.test('every valid vector encodes to its hex and decodes to its frame', async (t) => {
  for (const v of file.valid) {
    t.equal(Buffer.from(encodeFrame(v.frame)).toString('hex'), v.hex, `${v.name} encodes`);
    t.strictSame(decodeFrame(hex(v.hex)), v.frame, `${v.name} decodes`);
  }
});

t.test('valid vectors are standard msgpack (an independent decoder reads the same value)', async (t) => {
  const reference = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });
  for (const v of file.valid) t.strictSame(reference.unpack(hex(v.hex)), v.frame, v.name);
});

t.test('client vectors pass field validation; server vectors name a server frame type', async (t) => {
  for (const v of file.valid) {
    if (v.direction === 'client') t.strictSame(parseClientFrame(decodeFrame(hex(v.hex))), v.frame, v.name);
    else t.ok(SERVER_TYPES.includes(v.frame['t'] as string), `${v.name} has a server type`);
  }
});

t.test('vectors cover every client frame type and every server frame type', async (t) => {
  const client = new Set(file.valid.filter((v) => v.direction === 'client').map((v) => v.frame['t']));
  for (const type of Object.keys(FRAME_SPECS)) t.ok(client.has(type), `client frame "${type}" has a vector`);
  const server = new Set(file.valid.filter((v) => v.direction === 'server').map((v) => v.frame['t']));
  for (const type of SERVER_TYPES) t.ok(server.has(type), `server frame "${type}" has a vector`);
});

t.test('vectors cover every required invalid case', async (t) => {
  const names = new Set(file.invalid.map((v) => v.name));
  for (const n of ['reserved_c1', 'truncated_map', 'trailing_bytes', 'top_level_array', 'ext_fixext1', 'key___proto__', 'key_constructor',
    'too_deep', 'string_too_long', 'array_too_long', 'float_nan', 'uint64_2pow53', 'unknown_type', 'missing_field', 'wrong_field_type',
    'negative_seq', 'non_integer_id']) {
    t.ok(names.has(`invalid.${n}`), n);
  }
});

t.test('every invalid vector is rejected with the expected error and field', async (t) => {
  for (const v of file.invalid) {
    let caught: unknown;
    try {
      parseClientFrame(decodeFrame(hex(v.hex)));
    } catch (err) {
      caught = err;
    }
    t.type(caught, LanternError, `${v.name} is rejected`);
    const e = caught as LanternError;
    t.equal(e.error, v.expect.error, `${v.name}: ${e.message}`);
    if (v.expect.field !== undefined) t.equal(e.field, v.expect.field, `${v.name} names the field`);
  }
});
