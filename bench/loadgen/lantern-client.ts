// A minimal protocol v1 client for the load generator: hello/welcome, requests with ids
// for setup, and a raw event hook for the hot path. (The SDK does far more; the generator
// wants the least client-side work per message.)
import type WebSocket from 'ws';
import { SignJWT } from 'jose';
import { decodeFrame, encodeFrame } from '../../protocol/codec.ts';
import type { RequestParams, RequestResult, RequestType } from '../../protocol/frames.ts';
import { openSocket } from './socket.ts';

export class LanternRequestError extends Error {
  override readonly name = 'LanternRequestError';
  constructor(readonly request: string, readonly code: number, readonly error: string, message: string) {
    super(`${request} failed: ${error} (${code}) ${message}`);
  }
}

/** Attempts per setup request answered `unavailable` (about 10 s of backoff in all). */
const SETUP_ATTEMPTS = 14;

interface Pending { type: string; resolve(data: unknown): void; reject(err: Error): void }

/** Mints the HS256 token Lantern expects for `user`. */
export function mintToken(secret: string, audience: string, user: string, ttlSec = 3600): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec)
    .sign(new TextEncoder().encode(secret));
}

export class LanternConnection {
  /** Frames that are not answers to a request() (events, and res/err of fire-and-forget sends). */
  onFrame: (frame: Record<string, unknown>) => void = () => {};
  /** The socket failed, or closed without markClosing() first. */
  onClose: (description: string) => void = () => {};
  /** Hot path: frames this returns true for are dropped undecoded (events a client has no use for). */
  skipFrame: ((data: Buffer) => boolean) | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closing = false;

  private constructor(readonly ws: WebSocket, readonly user: string) {
    ws.on('message', (data: Buffer) => this.receive(data));
    // ws always follows 'error' with 'close': report once, on close, with the cause.
    let lastError = '';
    ws.on('error', (err) => { lastError = ` after error: ${err.message}`; });
    ws.on('close', (code, reason) => {
      const description = `${user}: closed ${code} ${reason.toString()}${lastError}`;
      for (const p of this.pending.values()) p.reject(new Error(`${p.type} unanswered: ${description}`));
      this.pending.clear();
      if (!this.closing) this.onClose(description);
    });
  }

  /** Connects and completes the handshake. */
  static async open(url: string, token: string, user: string, device: string, timeoutMs: number): Promise<LanternConnection> {
    const ws = await openSocket(url, timeoutMs);
    const conn = new LanternConnection(ws, user);
    const welcome = await withTimeout(conn.exchange('hello', { v: [1], token, device, client: 'lantern-bench' }), timeoutMs, `hello of ${user}`);
    if (welcome['t'] !== 'welcome') throw new Error(`hello of ${user}: expected welcome, got ${String(welcome['t'])}`);
    return conn;
  }

  /** A setup request; `unavailable` (no engine worker took it, e.g. a partition in handover) is retried. */
  async request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const frame = await this.exchange(type, params);
        return (frame as { data: RequestResult<T> }).data;
      } catch (err) {
        if (!(err instanceof LanternRequestError) || err.error !== 'unavailable' || attempt >= SETUP_ATTEMPTS) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  }

  /** Sends a request whose answer goes to onFrame (hot path: no bookkeeping). */
  fire(frameWithoutId: (id: number) => object): void {
    this.ws.send(encodeFrame(frameWithoutId(this.nextId++)));
  }

  markClosing(): void {
    this.closing = true;
  }

  private exchange(type: string, params: object): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { type, resolve: resolve as (data: unknown) => void, reject });
      this.ws.send(encodeFrame({ ...params, t: type, id }));
    });
  }

  private receive(data: Buffer): void {
    if (this.skipFrame?.(data)) return;
    let frame: Record<string, unknown>;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      this.onFrame({ t: 'err', id: 0, code: 0, error: 'undecodable_server_frame', msg: (err as Error).message });
      return;
    }
    const t = frame['t'];
    if (t === 'res' || t === 'err' || t === 'welcome') {
      const id = frame['id'] as number;
      const p = this.pending.get(id);
      if (p !== undefined) {
        this.pending.delete(id);
        if (t === 'err') p.reject(new LanternRequestError(p.type, frame['code'] as number, String(frame['error']), String(frame['msg'])));
        else p.resolve(frame);
        return;
      }
    }
    this.onFrame(frame);
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
