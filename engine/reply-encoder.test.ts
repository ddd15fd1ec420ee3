// Large replies are encoded on piscina threads, byte for byte as the event loop would; small ones stay inline.
import t from 'tap';
import { decodeFrame, encodeFrame } from '../protocol/codec.ts';
import { DEFAULT_FRAME_LIMITS } from '../protocol/limits.ts';
import { createReplyEncoder, inlineReplyEncoder, itemCount, ThreadedReplyEncoder } from './reply-encoder.ts';

const page = (n: number) => ({
  ok: {
    convs: [{ conv: 'g:1', head: n }],
    msgs: Array.from({ length: n }, (_, i) => ({ conv: 'g:1', seq: i + 1, from: 'alice', cid: `c${i}`, ts: 1_700_000_000_000 + i, kind: 'text', body: { text: `message ${i} ✓` } })),
    removed: [],
    more: false,
  },
});

t.test('item count reads the arrays of the result', async (t) => {
  t.equal(itemCount(page(150)), 151);
  t.equal(itemCount({ ok: null }), 0);
  t.equal(itemCount({ error: 'internal', msg: 'x' }), 0);
});

t.test('a threaded encoder gives the same bytes, offloading only large replies', async (t) => {
  const encoder = new ThreadedReplyEncoder({ threads: 1, minItems: 100 });
  t.teardown(() => encoder.close());
  const big = page(500);
  const bytes = await encoder.encode(big);
  t.ok(bytes instanceof Uint8Array);
  t.same(Buffer.from(bytes), Buffer.from(encodeFrame(big)), 'identical to an inline encode');
  t.same(decodeFrame(bytes, { ...DEFAULT_FRAME_LIMITS, maxFrameBytes: 1 << 24, maxArrayLength: 10_000 }), big);
  t.equal(encoder.offloaded, 1);
  const small = page(10);
  t.same(Buffer.from(await encoder.encode(small)), Buffer.from(encodeFrame(small)));
  t.equal(encoder.offloaded, 1, 'a small reply is encoded inline');
  const many = await Promise.all(Array.from({ length: 8 }, (_, i) => encoder.encode(page(100 + i))));
  t.same(many.map((b) => (decodeFrame(b, { ...DEFAULT_FRAME_LIMITS, maxFrameBytes: 1 << 24 }) as { ok: { msgs: unknown[] } }).ok.msgs.length), [100, 101, 102, 103, 104, 105, 106, 107], 'concurrent replies each get their own bytes');
});

t.test('0 threads means inline', async (t) => {
  t.equal(createReplyEncoder({ threads: 0, minItems: 1 }), inlineReplyEncoder);
});
