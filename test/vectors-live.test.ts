// A raw ws client driven by protocol/vectors/v1.json against a real server: every valid client
// vector is understood (answered with res or a domain error, never a framing error) and every
// invalid one gets the documented error.
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { ServerFrame } from '../protocol/frames.ts';
import { startTestServer } from './support/server.ts';

interface Vectors {
  valid: Array<{ name: string; direction: string; frame: { t: string; id?: number }; hex: string }>;
  invalid: Array<{ name: string; hex: string; expect: { error: string; field?: string } }>;
}
const vectors = JSON.parse(readFileSync(new URL('../protocol/vectors/v1.json', import.meta.url), 'utf8')) as Vectors;
const FRAMING = new Set(['bad_frame', 'unknown_type', 'invalid_field']);

t.test('vectors against a live server', async (t) => {
  const server = await startTestServer({ ratePerSec: 1000, rateBurst: 1000, maxProtocolErrors: 1000 });
  t.teardown(() => server.close());
  const alice = await server.connect('alice');
  const reply = async (hex: string, id: number): Promise<ServerFrame> => {
    const from = alice.frames.length;
    alice.sendRaw(Buffer.from(hex, 'hex'));
    return alice.waitFor((f) => alice.frames.indexOf(f) >= from && (f.t === 'res' || f.t === 'err') && f.id === id);
  };
  for (const v of vectors.valid.filter((x) => x.direction === 'client' && x.frame.t !== 'hello')) {
    const f = await reply(v.hex, v.frame.id!);
    const verdict = f.t === 'err' ? f.error : f.t;
    t.ok(f.t === 'res' || (f.t === 'err' && !FRAMING.has(f.error)), `${v.name}: understood (${verdict})`);
  }
  for (const v of vectors.invalid) {
    const from = alice.frames.length;
    alice.sendRaw(Buffer.from(v.hex, 'hex'));
    const f = await alice.waitFor((x) => alice.frames.indexOf(x) >= from && x.t === 'err');
    t.match(f, { error: v.expect.error, ...(v.expect.field ? { field: v.expect.field } : {}) }, v.name);
  }
  t.ok((await alice.req('ping', {})).ts > 0, 'still serving after every invalid vector');
  await alice.close();
});
