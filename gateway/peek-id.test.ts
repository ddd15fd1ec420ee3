import t from 'tap';
import { Packr } from 'msgpackr';
import { encodeFrame } from '../protocol/codec.ts';
import { peekFrameId } from './peek-id.ts';

t.test('reads id after leading scalar fields', async (t) => {
  t.equal(peekFrameId(encodeFrame({ t: 'ping', id: 5 })), 5);
  t.equal(peekFrameId(encodeFrame({ id: 300, t: 'send' })), 300);
  t.equal(peekFrameId(encodeFrame({ t: 'send', id: 70000, conv: 'x' })), 70000);
  t.equal(peekFrameId(encodeFrame({ t: 'send', id: 4294967295 })), 4294967295);
  t.equal(peekFrameId(encodeFrame({ t: 'x'.repeat(40), n: -3, f: 1.5, b: true, z: null, id: 9 })), 0, 'only the first 4 entries are looked at');
  t.equal(peekFrameId(encodeFrame({ t: 'x'.repeat(40), f: 1.5, b: true, id: 9 })), 9);
});

t.test('returns 0 when the id is not cheaply readable', async (t) => {
  t.equal(peekFrameId(encodeFrame({ body: { a: 1 }, id: 5 })), 0, 'behind a map');
  t.equal(peekFrameId(encodeFrame({ t: 'ping', id: -1 })), 0);
  t.equal(peekFrameId(encodeFrame({ t: 'ping', id: 'x' })), 0);
  t.equal(peekFrameId(encodeFrame({ t: 'ping', id: 2 ** 40 })), 0);
  t.equal(peekFrameId(encodeFrame([1, 2])), 0);
  t.equal(peekFrameId(new Uint8Array([])), 0);
  t.equal(peekFrameId(new Uint8Array([0x82, 0xa1, 0x74])), 0, 'truncated');
  t.equal(peekFrameId(new Packr({ useRecords: true }).pack({ t: 'ping', id: 3 })), 0, 'msgpackr records are not maps');
});

t.test('never throws on random bytes', async (t) => {
  for (let i = 0; i < 2000; i++) {
    const bytes = new Uint8Array(1 + (i % 40)).map(() => Math.floor(Math.random() * 256));
    if (i % 2 === 0) bytes[0] = 0x80 | (i % 16);
    const id = peekFrameId(bytes);
    if (!(Number.isSafeInteger(id) && id >= 0)) t.fail(`bad id ${id}`);
  }
  t.pass('2000 random inputs');
});
