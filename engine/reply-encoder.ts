// Encoding replies that workers send over the bus. A sync page or a long history is a few hundred
// KiB of msgpack and takes milliseconds to encode; on the worker's one event loop that would delay
// every other request (sends wait behind it). Replies carrying at least `minItems` items are
// encoded on piscina threads instead: the main thread only pays V8's structured clone, about a
// third of the encode (bench/encode-offload.ts), and the encode runs on another core.
import { Piscina } from 'piscina';
import { encodeFrame } from '../protocol/codec.ts';

export interface ReplyEncoder {
  encode(reply: object): Uint8Array | Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Encodes on the calling thread (embedded mode, tests, or threads disabled). */
export const inlineReplyEncoder: ReplyEncoder = { encode: (reply) => encodeFrame(reply), close: async () => {} };

export interface ThreadedEncoderOptions {
  /** Threads in the pool (0: encode inline). */
  threads: number;
  /** Replies with at least this many array items (messages, conversations, contacts) go to a thread. */
  minItems: number;
}

export class ThreadedReplyEncoder implements ReplyEncoder {
  private readonly pool: Piscina;
  offloaded = 0;

  constructor(private readonly options: ThreadedEncoderOptions) {
    this.pool = new Piscina({
      filename: new URL('./encode-thread.mjs', import.meta.url).href,
      minThreads: options.threads,
      maxThreads: options.threads,
      // Idle threads stay: starting one (and tsx in it) costs ~100 ms.
      idleTimeout: Number.POSITIVE_INFINITY,
    });
  }

  encode(reply: object): Uint8Array | Promise<Uint8Array> {
    if (itemCount(reply) < this.options.minItems) return encodeFrame(reply);
    this.offloaded++;
    return this.pool.run(reply) as Promise<Uint8Array>;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

export function createReplyEncoder(options: ThreadedEncoderOptions): ReplyEncoder {
  return options.threads > 0 ? new ThreadedReplyEncoder(options) : inlineReplyEncoder;
}

/** Items in the arrays of a reply's result, one level down: cheap, and where bulk lives. */
export function itemCount(reply: object): number {
  const result = (reply as { ok?: unknown }).ok;
  if (result === null || typeof result !== 'object') return 0;
  let n = 0;
  for (const value of Object.values(result)) if (Array.isArray(value)) n += value.length;
  return n;
}
