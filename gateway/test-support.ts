// Shared by the gateway tests: a fake Engine, a gateway on an ephemeral port, and a small
// msgpack WebSocket client that waits on frames and closes (never on fixed sleeps).
import WebSocket from 'ws';
import type { DeviceSession, Engine } from '../engine/api.ts';
import type { Logger } from '../engine/ports.ts';
import { decodeFrame, encodeFrame } from '../protocol/codec.ts';
import { LanternError } from '../protocol/errors.ts';
import { createTokenVerifier, mintToken } from './auth.ts';
import { loadSettings, type Settings } from './config.ts';
import { createGateway, type Gateway } from './server.ts';

export const TEST_SECRET = 'test-secret-0123456789abcdef-0123456789';

export class FakeEngine implements Engine {
  readonly epoch = 'epoch-test';
  readonly connectedLog: DeviceSession[] = [];
  readonly disconnectedLog: DeviceSession[] = [];
  readonly requests: Array<{ who: DeviceSession; type: string; params: unknown }> = [];
  closed = false;

  async request(who: DeviceSession, type: string, params: unknown): Promise<never> {
    this.requests.push({ who, type, params });
    switch (type) {
      case 'ping':
        return { ts: Date.now() } as never;
      case 'typing':
        return { echo: params, user: who.user } as never; // lets tests see the params the gateway passed
      case 'conv.info':
        throw new LanternError('not_found', 'no such conversation', { field: 'conv' });
      case 'send':
        throw new Error('disk on fire');
      default:
        throw new LanternError('unknown_type', `fake engine does not serve ${type}`);
    }
  }

  async connected(who: DeviceSession): Promise<void> { this.connectedLog.push(who); }
  async disconnected(who: DeviceSession): Promise<void> { this.disconnectedLog.push(who); }
  async close(): Promise<void> { this.closed = true; }
}

export interface LogEntry { level: string; obj: object; msg: string | undefined }

export function captureLogger(): Logger & { entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at = (level: string) => (obj: object, msg?: string) => { entries.push({ level, obj, msg }); };
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export interface TestServer {
  gateway: Gateway;
  engine: FakeEngine;
  settings: Settings;
  url: string;
  httpUrl: string;
  log: ReturnType<typeof captureLogger>;
  token(user: string, ttlSec?: number): Promise<string>;
  close(): Promise<void>;
}

export async function startTestServer(overrides: Partial<Settings> = {}): Promise<TestServer> {
  const settings = loadSettings({ overrides: { port: 0, jwtSecret: TEST_SECRET, logLevel: 'silent', ...overrides } });
  const log = captureLogger();
  const verifier = createTokenVerifier({
    secret: settings.jwtSecret, publicKey: settings.jwtPublicKey,
    audience: settings.jwtAudience, clockToleranceSec: settings.jwtClockToleranceSec,
  });
  const gateway = createGateway({ settings, verifier, log });
  const engine = new FakeEngine();
  gateway.attachEngine(engine);
  const port = await gateway.listen();
  return {
    gateway, engine, settings, log,
    url: `ws://127.0.0.1:${port}/ws`,
    httpUrl: `http://127.0.0.1:${port}`,
    token: (user, ttlSec = 300) => mintToken({ secret: TEST_SECRET, user, ttlSec, audience: settings.jwtAudience }),
    close: () => gateway.close(),
  };
}

export type Frame = Record<string, unknown>;

/** A WebSocket client that buffers decoded frames and records how it closed. */
export class TestClient {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  closeCode: number | undefined;
  private waiters: Array<() => void> = [];
  private nextId = 1;
  readonly opened: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => { /* surfaced through closeCode / waitClose */ });
    this.ws.on('message', (data, isBinary) => {
      if (!isBinary) throw new Error('server sent a text message');
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      this.frames.push(decodeFrame(buf, { ...limitsForTests }));
      this.wake();
    });
    this.ws.on('close', (code) => { this.closeCode = code; this.wake(); });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when `check` returns a value (re-checked on every frame/close), or rejects after timeoutMs. */
  async until<T>(what: string, check: () => T | undefined, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(this.frames.slice(-5))}, close: ${this.closeCode}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  /** The first buffered frame matching `pred`, removed from the buffer. */
  async take(pred: (f: Frame) => boolean, what = 'a frame', timeoutMs?: number): Promise<Frame> {
    return this.until(what, () => {
      const i = this.frames.findIndex(pred);
      return i === -1 ? undefined : this.frames.splice(i, 1)[0];
    }, timeoutMs);
  }

  reply(id: number, timeoutMs?: number): Promise<Frame> {
    return this.take((f) => f['id'] === id && (f['t'] === 'res' || f['t'] === 'err' || f['t'] === 'welcome'), `reply to ${id}`, timeoutMs);
  }

  waitClose(timeoutMs?: number): Promise<number> {
    return this.until('close', () => this.closeCode, timeoutMs);
  }

  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data);
  }

  send(frame: Frame): number {
    const id = typeof frame['id'] === 'number' ? frame['id'] : this.nextId++;
    this.ws.send(encodeFrame({ ...frame, id }));
    return id;
  }

  async request(t: string, params: Frame = {}): Promise<Frame> {
    const id = this.nextId++;
    this.ws.send(encodeFrame({ t, id, ...params }));
    return this.reply(id);
  }

  async hello(token: string, device = 'laptop', v: number[] = [1]): Promise<Frame> {
    await this.opened;
    return this.request('hello', { v, token, device });
  }

  close(): void {
    this.ws.close();
  }
}

// Server frames may be bigger than client limits (e.g. events in slow-consumer tests).
const limitsForTests = { maxFrameBytes: 64 * 1024 * 1024, maxDepth: 16, maxStringLength: 64 * 1024 * 1024, maxArrayLength: 1_000_000, maxMapKeys: 1_000_000, maxBinaryBytes: 64 * 1024 * 1024 };

/** Connect and complete hello; returns the client and its welcome frame. */
export async function connectUser(server: TestServer, user: string, device = 'laptop'): Promise<{ client: TestClient; welcome: Frame }> {
  const client = new TestClient(server.url);
  const welcome = await client.hello(await server.token(user), device);
  if (welcome['t'] !== 'welcome') throw new Error(`expected welcome, got ${JSON.stringify(welcome)}`);
  return { client, welcome };
}
