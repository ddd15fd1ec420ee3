// A raw protocol client for end-to-end tests: `ws` + the protocol codec, no SDK logic, so the
// tests check the server against the spec rather than against our own SDK.
import WebSocket from 'ws';
import { SignJWT } from 'jose';
import { decodeFrame, encodeFrame } from '../../protocol/codec.ts';
import type { ErrorFrame, RequestParams, RequestResult, RequestType, ServerEvent, ServerFrame, WelcomeFrame } from '../../protocol/frames.ts';

export async function mintToken(secret: string, user: string, ttlSec = 3600, audience = 'lantern'): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setAudience(audience)
    .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec).sign(new TextEncoder().encode(secret));
}

export class WireError extends Error {
  override readonly name = 'WireError';
  constructor(readonly frame: ErrorFrame) { super(`${frame.error} (${frame.code}): ${frame.msg}`); }
  get error(): string { return this.frame.error; }
}

type Waiter = { pred: (e: ServerFrame) => boolean; resolve: (e: ServerFrame) => void; reject: (err: Error) => void; timer: NodeJS.Timeout };

export class WireClient {
  readonly frames: ServerFrame[] = [];
  welcome!: WelcomeFrame;
  closed: Promise<{ code: number; reason: string }>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private waiters: Waiter[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => this.onFrame(decodeFrame(data) as unknown as ServerFrame));
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      for (const p of this.pending.values()) p.reject(new Error(`closed ${code}`));
      this.pending.clear();
      // Nothing more can arrive: fail the waiters now instead of at their timeout.
      for (const w of this.waiters) { clearTimeout(w.timer); w.reject(new Error(`closed ${code} while waiting for a frame`)); }
      this.waiters = [];
      resolve({ code, reason: reason.toString() });
    }));
  }

  /** Open a socket without saying hello. */
  static async open(url: string): Promise<WireClient> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    return new WireClient(ws);
  }

  static async connect(url: string, token: string, device = 'phone'): Promise<WireClient> {
    const c = await WireClient.open(url);
    await c.hello(token, device);
    return c;
  }

  async hello(token: string, device: string): Promise<WelcomeFrame> {
    const id = this.nextId++;
    this.sendFrame({ t: 'hello', id, v: [1], token, device });
    const f = await this.waitFor((e) => (e.t === 'welcome' || e.t === 'err') && e.id === id);
    if (f.t === 'err') throw new WireError(f);
    this.welcome = f as WelcomeFrame;
    return this.welcome;
  }

  sendFrame(frame: object): void { this.ws.send(encodeFrame(frame)); }
  sendRaw(bytes: Uint8Array | string): void { this.ws.send(bytes); }

  req<T extends RequestType>(t: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.sendFrame({ t, id, ...params });
    });
  }

  text(conv: string, text: string, cid = `${Date.now()}-${Math.random()}`): Promise<RequestResult<'send'>> {
    return this.req('send', { conv, cid, kind: 'text', body: { text } });
  }

  events<T extends ServerEvent['t']>(t: T): Array<Extract<ServerEvent, { t: T }>> {
    return this.frames.filter((f): f is Extract<ServerEvent, { t: T }> => f.t === t);
  }

  /** Resolve with the first frame (already received or future) matching `pred`. */
  waitFor(pred: (e: ServerFrame) => boolean, timeoutMs = 5000): Promise<ServerFrame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a frame`));
      }, timeoutMs);
      this.waiters.push({ pred, resolve, reject, timer });
    });
  }

  /** Wait until `count` frames match. */
  async waitForCount(pred: (e: ServerFrame) => boolean, count: number, timeoutMs = 10000): Promise<ServerFrame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.frames.filter(pred);
      if (got.length >= count) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out: ${got.length}/${count} frames`);
      await this.waitFor((e) => pred(e) && !got.includes(e), left).catch(() => undefined);
    }
  }

  /** The close, or a rejection after `timeoutMs`: a test fails fast instead of hanging until tap's timeout. */
  closedWithin(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.closed, timeout]).finally(() => clearTimeout(timer));
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }

  private onFrame(f: ServerFrame): void {
    if (f.t === 'res' || (f.t === 'err' && f.id !== 0 && this.pending.has(f.id))) {
      const p = this.pending.get(f.id);
      if (p) {
        this.pending.delete(f.id);
        if (f.t === 'res') p.resolve(f.data); else p.reject(new WireError(f));
        return;
      }
    }
    this.frames.push(f);
    for (const w of [...this.waiters]) {
      if (w.pred(f)) {
        clearTimeout(w.timer);
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(f);
      }
    }
  }
}
