// Client options: checked once in the constructor with messages that name the option, then frozen.
import { MAX_ID_LENGTH } from '../protocol/schema.ts';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../protocol/limits.ts';
import { resolveBackoffOptions, type BackoffOptions } from './backoff.ts';
import type { WebSocketConstructor } from './connection.ts';
import { MemoryCursorStore, type CursorStore } from './sync-state.ts';

export const SDK_VERSION = '0.1.0';

/** A token, or a function that returns a fresh one (called before every connection attempt). */
export type TokenSource = string | (() => string | Promise<string>);

/** One gateway URL, or several: the client moves to the next one (round robin) on every
 *  reconnect attempt, so a dead gateway's clients fail over to the others. */
export type UrlSource = string | readonly string[];

export interface LanternClientOptions {
  /** e.g. "ws://127.0.0.1:8080/ws", or ["wss://gw1.example.com/ws", "wss://gw2.example.com/ws"]. */
  url: UrlSource;
  token: TokenSource;
  /** A stable id of this device (1..128 chars), e.g. "phone" or "laptop-3f2a". */
  device: string;
  /** WebSocket constructor; defaults to globalThis.WebSocket. In Node 20 pass `WebSocket` from 'ws'. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect and send-retry backoff: full jitter over an exponential ceiling. */
  backoff?: Partial<BackoffOptions>;
  /** How long a request waits for its reply (and for a connection, if none is open). Default 10000. */
  requestTimeoutMs?: number;
  /** After this long without any frame from the server, probe with `ping`; if that gets no reply
   *  within requestTimeoutMs, drop the connection and reconnect. Default 30000; 0 disables. */
  heartbeatMs?: number;
  /** Messages per sync page (the server caps it, default 200, max 1000). */
  syncLimit?: number;
  /** Where per-conversation cursors persist; default in memory. */
  state?: CursorStore;
  /** Sent in hello.client; default "lantern-sdk-ts/<version>". */
  clientName?: string;
  /** Limits applied when decoding server frames. Server replies (sync pages, contact lists) can
   *  be far larger than what the server accepts from clients, hence the generous defaults. */
  frameLimits?: Partial<FrameLimits>;
  /** Random source in [0, 1) for backoff jitter; override in tests. */
  random?: () => number;
}

export interface ResolvedOptions {
  /** Gateway URLs in rotation order (at least one). */
  readonly urls: readonly string[];
  readonly token: TokenSource;
  readonly device: string;
  readonly WebSocket: WebSocketConstructor;
  readonly backoff: BackoffOptions;
  readonly requestTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly syncLimit: number | undefined;
  readonly state: CursorStore;
  readonly clientName: string;
  readonly frameLimits: FrameLimits;
  readonly random: () => number;
}

export const CLIENT_FRAME_LIMITS: FrameLimits = Object.freeze({
  ...DEFAULT_FRAME_LIMITS,
  maxFrameBytes: 16 * 1024 * 1024,
  maxDepth: 16,
  maxStringLength: 1024 * 1024,
  maxArrayLength: 100_000,
  maxMapKeys: 100_000,
  maxBinaryBytes: 1024 * 1024,
});

function resolveUrls(source: UrlSource): readonly string[] {
  const list = typeof source === 'string' ? [source] : source;
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(`options.url must be a ws:// or wss:// URL or a non-empty array of them, got ${JSON.stringify(source)}`);
  }
  return Object.freeze(list.map((raw: unknown, i: number) => {
    const name = typeof source === 'string' ? 'options.url' : `options.url[${i}]`;
    let url: URL;
    try {
      url = new URL(raw as string);
    } catch {
      throw new TypeError(`${name} must be an absolute ws:// or wss:// URL, got ${JSON.stringify(raw)}`);
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new TypeError(`${name} must use ws: or wss:, got ${url.protocol}`);
    return url.href;
  }));
}

export function resolveOptions(opts: LanternClientOptions): ResolvedOptions {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('LanternClient options must be an object');
  const urls = resolveUrls(opts.url);
  if (typeof opts.token !== 'string' && typeof opts.token !== 'function') {
    throw new TypeError('options.token must be a string or a function returning (a promise of) a string');
  }
  if (typeof opts.device !== 'string' || opts.device.length < 1 || opts.device.length > MAX_ID_LENGTH) {
    throw new TypeError(`options.device must be a string of 1..${MAX_ID_LENGTH} characters`);
  }
  const WS = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof WS !== 'function') {
    throw new TypeError("options.WebSocket is required: this runtime has no global WebSocket (in Node 20 pass `WebSocket` from 'ws')");
  }
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  if (!(Number.isFinite(requestTimeoutMs) && requestTimeoutMs > 0)) {
    throw new TypeError(`options.requestTimeoutMs must be a positive number, got ${String(requestTimeoutMs)}`);
  }
  const heartbeatMs = opts.heartbeatMs ?? 30_000;
  if (!(Number.isFinite(heartbeatMs) && heartbeatMs >= 0)) {
    throw new TypeError(`options.heartbeatMs must be a number >= 0 (0 disables), got ${String(heartbeatMs)}`);
  }
  if (opts.syncLimit !== undefined && !(Number.isSafeInteger(opts.syncLimit) && opts.syncLimit >= 1)) {
    throw new TypeError(`options.syncLimit must be a positive integer, got ${String(opts.syncLimit)}`);
  }
  const state = opts.state ?? new MemoryCursorStore();
  if (typeof state.load !== 'function' || typeof state.save !== 'function') {
    throw new TypeError('options.state must have load() and save(state) methods');
  }
  return Object.freeze({
    urls,
    token: opts.token,
    device: opts.device,
    WebSocket: WS,
    backoff: resolveBackoffOptions(opts.backoff),
    requestTimeoutMs,
    heartbeatMs,
    syncLimit: opts.syncLimit,
    state,
    clientName: opts.clientName ?? `lantern-sdk-ts/${SDK_VERSION}`,
    frameLimits: Object.freeze({ ...CLIENT_FRAME_LIMITS, ...opts.frameLimits }),
    random: opts.random ?? Math.random,
  });
}
