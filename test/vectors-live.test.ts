// A raw client built from `ws` and msgpackr alone (none of our codec or SDK) drives a real
// server from protocol/vectors/v1.json: every valid client vector is understood (answered with
// res or a domain error, never a framing error) and every invalid one gets its documented error.
// This is what an SDK author in another language does with the vectors. Run in each deployment
// mode: in distributed mode requests cross NATS to the workers and must be understood the same.
import t from 'tap';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { Packr, Unpackr } from 'msgpackr';
import { startDeployment, testModes } from './support/deployment.ts';

interface Vectors {
  valid: Array<{ name: string; direction: string; frame: { t: string; id?: number }; hex: string }>;
  invalid: Array<{ name: string; hex: string; expect: { error: string; field?: string } }>;
}
type Frame = { t: string; id?: number; error?: string; field?: string };

const vectors = JSON.parse(readFileSync(new URL('../protocol/vectors/v1.json', import.meta.url), 'utf8')) as Vectors;
const FRAMING = new Set(['bad_frame', 'unknown_type', 'invalid_field']);
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

class RawClient {
  private readonly frames: Frame[] = [];
  private wake: (() => void) | undefined;
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => { this.frames.push(unpackr.unpack(data) as Frame); this.wake?.(); });
  }
  static async open(url: string): Promise<RawClient> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    return new RawClient(ws);
  }
  send(bytes: Uint8Array): void { this.ws.send(bytes); }
  /** The next frame (after those already taken) matching `pred`. */
  async next(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(0, i + 1).at(-1)!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      // Clear the timer on wake: a pending one would keep the process alive after the test.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
    }
  }
  close(): void { this.ws.close(); }
}

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    t.test('vectors against a live server, from a ws + msgpackr client', async (t) => {
      const d = await startDeployment(mode, { ratePerSec: 1000, rateBurst: 1000, maxProtocolErrors: 1000 });
      t.teardown(() => d.close());
      const c = await RawClient.open(d.urls[0]!);
      t.teardown(() => c.close());
      c.send(packr.pack({ t: 'hello', id: 1, v: [1], token: await d.token('alice'), device: 'raw' }));
      t.match(await c.next((f) => f.id === 1), { t: 'welcome', user: 'alice', v: 1 });

      for (const v of vectors.valid.filter((x) => x.direction === 'client' && x.frame.t !== 'hello')) {
        c.send(Buffer.from(v.hex, 'hex'));
        const f = await c.next((x) => (x.t === 'res' || x.t === 'err') && x.id === v.frame.id);
        t.ok(f.t === 'res' || !FRAMING.has(f.error ?? ''), `${v.name}: understood (${f.t === 'err' ? f.error : 'res'})`);
      }
      for (const v of vectors.invalid) {
        c.send(Buffer.from(v.hex, 'hex'));
        const f = await c.next((x) => x.t === 'err');
        t.match(f, { error: v.expect.error, ...(v.expect.field ? { field: v.expect.field } : {}) }, v.name);
      }
      c.send(packr.pack({ t: 'ping', id: 9999 }));
      t.match(await c.next((f) => f.id === 9999), { t: 'res' }, 'still serving after every invalid vector');
    });
  });
}
