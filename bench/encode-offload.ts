// How much of the worker's event loop a large bus reply costs, encoded inline vs on a piscina
// thread (engine/reply-encoder.ts). The figure that matters is the main thread's time per reply:
// while it runs, every other request on that worker waits.
//   node --import tsx bench/encode-offload.ts [messages per reply] [replies]
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { encodeFrame } from '../protocol/codec.ts';
import { ThreadedReplyEncoder } from '../engine/reply-encoder.ts';

const size = Number(process.argv[2] ?? 1000);
const replies = Number(process.argv[3] ?? 200);
const reply = {
  ok: {
    convs: [{ conv: 'g:0b7c3a2e-1111-2222-3333-444455556666', head: size }],
    msgs: Array.from({ length: size }, (_, i) => ({
      conv: 'g:0b7c3a2e-1111-2222-3333-444455556666', seq: i + 1, from: `user-${i % 50}`, cid: `cid-${i}-abcdef`,
      ts: 1_700_000_000_000 + i, kind: 'text', body: { text: 'a chat message of ordinary length, about eighty characters long in all.' },
    })),
    removed: [], more: false,
  },
};
const bytes = encodeFrame(reply).length;

function timeInline(): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < replies; i++) encodeFrame(reply);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function timeThreaded(encoder: ThreadedReplyEncoder): Promise<{ mainMs: number; wallMs: number }> {
  let mainMs = 0;
  const t0 = process.hrtime.bigint();
  const pending: Array<Promise<Uint8Array> | Uint8Array> = [];
  for (let i = 0; i < replies; i++) {
    const s = process.hrtime.bigint();
    pending.push(encoder.encode(reply)); // the structured clone happens here, on this thread
    mainMs += Number(process.hrtime.bigint() - s) / 1e6;
    // Let the pool take results back as a real worker would between requests.
    if (pending.length >= 4) await pending.shift();
  }
  await Promise.all(pending);
  return { mainMs, wallMs: Number(process.hrtime.bigint() - t0) / 1e6 };
}

const encoder = new ThreadedReplyEncoder({ threads: 1, minItems: 1 });
await encoder.encode(reply); // start the thread and warm up both paths
timeInline();
const inlineMs = timeInline();
const threaded = await timeThreaded(encoder);
await encoder.close();
const result = {
  scenario: 'encode-offload',
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  settings: { messagesPerReply: size, replies, replyBytes: bytes, threads: 1 },
  figures: {
    inlineMainThreadMsPerReply: +(inlineMs / replies).toFixed(3),
    threadedMainThreadMsPerReply: +(threaded.mainMs / replies).toFixed(3),
    mainThreadRatio: +(threaded.mainMs / inlineMs).toFixed(3),
    threadedWallMsPerReply: +(threaded.wallMs / replies).toFixed(3),
  },
};
console.log(JSON.stringify(result, null, 2));
await writeFile(new URL('./results/encode-offload.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
