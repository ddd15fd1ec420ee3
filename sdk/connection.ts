// One WebSocket session: hello/welcome handshake, request ids, replies matched to requests
// with timeouts, and events handed up. A Connection never reconnects; the client makes a new
// one per attempt, so no state of a dead socket can leak into the next session.
import { decodeFrame, encodeFrame } from '../protocol/codec.ts';
import { ErrorCodes } from '../protocol/errors.ts';
import { SUPPORTED_VERSIONS } from '../protocol/frames.ts';
import type { ErrorFrame, RequestParams, RequestResult, RequestType, ServerEvent, WelcomeFrame } from '../protocol/frames.ts';
import type { FrameLimits } from '../protocol/limits.ts';
import { LanternClientError, toError } from './errors.ts';

/** How long close() waits for the server's side of the close handshake before giving up on it. */
export const CLOSE_HANDSHAKE_MS = 1_000;

/**
 * The part of the WHATWG WebSocket that the client uses; the browser's WebSocket and the `ws`
 * package's WebSocket both satisfy it. Handlers take `any` because each implementation types
 * its event objects differently; the connection reads only `data`, `code` and `reason`.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const WS_OPEN = 1;

export interface ConnectionOptions {
  readonly url: string;
  readonly WebSocket: WebSocketConstructor;
  readonly token: string;
  readonly device: string;
  readonly clientName: string;
  readonly requestTimeoutMs: number;
  /** Silence after which the connection probes with `ping`; 0 disables. */
  readonly heartbeatMs: number;
  readonly frameLimits: FrameLimits;
}

export interface ConnectionHandlers {
  welcome(frame: WelcomeFrame): void;
  event(frame: ServerEvent): void;
  /** Called exactly once, after every pending request was rejected. */
  closed(code: number, reason: string): void;
  error(error: Error, context: string): void;
}

interface PendingRequest {
  readonly type: RequestType;
  readonly timer: ReturnType<typeof setTimeout>;
  resolve(data: unknown): void;
  reject(error: Error): void;
}

const EVENT_TYPES: ReadonlySet<string> = new Set(['msg', 'receipt', 'typing', 'presence', 'contact', 'lag', 'envelope', 'transfer', 'sale']);

export class Connection {
  private readonly ws: WebSocketLike;
  private readonly pending = new Map<number, PendingRequest>();
  private nextId = 1;
  private readonly helloId: number;
  private welcomed = false;
  private finished = false;
  /** welcome.limits.maxFrameBytes: a bigger frame would get the socket closed with 1009. */
  private maxFrameBytes = Number.POSITIVE_INFINITY;
  private lastReceived = Date.now();
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private probing = false;

  /** Opens the socket; throws synchronously if the WebSocket constructor does. */
  constructor(private readonly opts: ConnectionOptions, private readonly handlers: ConnectionHandlers) {
    this.helloId = this.nextId++;
    this.ws = new opts.WebSocket(opts.url);
    this.ws.binaryType = 'arraybuffer';
    this.ws.onopen = () => this.sendHello();
    this.ws.onmessage = (event: { data: unknown }) => this.receive(event.data);
    this.ws.onerror = (event: { error?: unknown; message?: unknown }) => {
      // Browsers give no detail; `ws` passes the underlying error. A close always follows.
      const cause = event.error ?? event.message ?? 'WebSocket error';
      this.handlers.error(toError(cause), 'socket');
    };
    this.ws.onclose = (event: { code?: number; reason?: string }) => this.finish(event.code ?? 1006, event.reason ?? '');
  }

  get isWelcomed(): boolean {
    return this.welcomed && !this.finished;
  }

  request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    if (this.finished || !this.welcomed || this.ws.readyState !== WS_OPEN) {
      return Promise.reject(LanternClientError.unavailable(`${type} not sent: the connection is not open`, type));
    }
    const id = this.nextId++;
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame({ ...params, t: type, id });
    } catch (error) {
      return Promise.reject(toError(error));
    }
    if (bytes.byteLength > this.maxFrameBytes) {
      return Promise.reject(new LanternClientError(`${type} frame of ${bytes.byteLength} bytes exceeds the server's maxFrameBytes ${this.maxFrameBytes}`, {
        code: ErrorCodes.too_large.code, error: 'too_large', retry: false, request: type,
      }));
    }
    return new Promise<RequestResult<T>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(LanternClientError.timeout(type, this.opts.requestTimeoutMs));
      }, this.opts.requestTimeoutMs);
      this.pending.set(id, { type, timer, resolve: resolve as (data: unknown) => void, reject });
      this.ws.send(bytes);
    });
  }

  /** Start the close handshake; the `closed` handler runs when it completes, or after
   *  CLOSE_HANDSHAKE_MS if the server never answers it (a dead or half-open peer). */
  close(code = 1000, reason = ''): void {
    if (this.finished) return;
    this.ws.close(code, reason);
    setTimeout(() => this.finish(1006, `${reason || 'closed'}: no close handshake within ${CLOSE_HANDSHAKE_MS} ms`), CLOSE_HANDSHAKE_MS).unref?.();
  }

  private sendHello(): void {
    const hello = {
      t: 'hello', id: this.helloId, v: [...SUPPORTED_VERSIONS],
      token: this.opts.token, device: this.opts.device, client: this.opts.clientName,
    };
    this.ws.send(encodeFrame(hello));
  }

  /** Browsers hide WebSocket pings from scripts, so a half-open TCP connection would look
   *  healthy forever: after heartbeatMs of silence, ping; no reply within requestTimeoutMs
   *  means the connection is dead. */
  private startHeartbeat(): void {
    if (this.opts.heartbeatMs <= 0) return;
    this.heartbeat = setInterval(() => {
      if (this.probing || Date.now() - this.lastReceived < this.opts.heartbeatMs) return;
      this.probing = true;
      this.request('ping', {}).then(
        () => { this.probing = false; },
        (error: unknown) => {
          if (this.finished) return; // closed for another reason while probing
          this.handlers.error(new Error(`no reply to the heartbeat ping: ${toError(error).message}`, { cause: error }), 'heartbeat');
          this.abandon('heartbeat timeout');
        },
      );
    }, this.opts.heartbeatMs);
  }

  /** Give up on a dead socket now instead of waiting for a close handshake that may never come. */
  private abandon(reason: string): void {
    try {
      this.ws.close(1000, reason);
    } finally {
      this.finish(1006, reason);
    }
  }

  private receive(data: unknown): void {
    this.lastReceived = Date.now();
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else {
      this.handlers.error(new Error(`ignored a ${typeof data} WebSocket message: the protocol uses binary msgpack frames only`), 'decode');
      return;
    }
    let frame: Record<string, unknown>;
    try {
      frame = decodeFrame(bytes, this.opts.frameLimits);
    } catch (error) {
      this.handlers.error(toError(error), 'decode');
      return;
    }
    this.dispatch(frame);
  }

  private dispatch(frame: Record<string, unknown>): void {
    const t = frame['t'];
    if (t === 'res' || t === 'err') {
      this.reply(frame);
    } else if (t === 'welcome') {
      if (this.welcomed || frame['id'] !== this.helloId) {
        this.handlers.error(new Error('unexpected welcome frame'), 'protocol');
        return;
      }
      this.welcomed = true;
      const welcome = frame as unknown as WelcomeFrame;
      const max = welcome.limits?.maxFrameBytes;
      if (typeof max === 'number' && max > 0) this.maxFrameBytes = max;
      this.startHeartbeat();
      this.handlers.welcome(welcome);
    } else if (typeof t === 'string' && EVENT_TYPES.has(t)) {
      if (!this.welcomed) {
        this.handlers.error(new Error(`event ${t} arrived before welcome`), 'protocol');
        return;
      }
      const problem = eventProblem(frame);
      if (problem !== undefined) {
        this.handlers.error(new Error(`malformed ${t} event: ${problem}`), 'protocol');
        return;
      }
      this.handlers.event(frame as unknown as ServerEvent);
    } else {
      this.handlers.error(new Error(`unknown frame type ${JSON.stringify(t)}`), 'protocol');
    }
  }

  private reply(frame: Record<string, unknown>): void {
    const id = frame['id'];
    const isErr = frame['t'] === 'err';
    if (typeof id === 'number' && id === this.helloId && isErr) {
      // The server refused the hello; it will close the socket with a code saying why.
      this.handlers.error(LanternClientError.fromFrame(frame as unknown as ErrorFrame, 'hello'), 'hello');
      return;
    }
    const pending = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (pending === undefined) {
      const error = isErr
        ? LanternClientError.fromFrame(frame as unknown as ErrorFrame)
        : new Error(`reply for unknown or timed-out request id ${String(id)}`);
      this.handlers.error(error, 'reply');
      return;
    }
    this.pending.delete(id as number);
    clearTimeout(pending.timer);
    if (isErr) pending.reject(LanternClientError.fromFrame(frame as unknown as ErrorFrame, pending.type));
    else pending.resolve(frame['data']);
  }

  private finish(code: number, reason: string): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.heartbeat);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(LanternClientError.unavailable(`connection closed (${code}${reason ? ` ${reason}` : ''}) before ${p.type} was answered`, p.type, code));
    }
    this.ws.onopen = this.ws.onmessage = this.ws.onerror = this.ws.onclose = null;
    this.handlers.closed(code, reason);
  }
}

/** Minimal shape checks so a malformed server frame is reported instead of corrupting state. */
function eventProblem(frame: Record<string, unknown>): string | undefined {
  switch (frame['t']) {
    case 'msg': {
      const m = frame['m'] as Record<string, unknown> | undefined;
      if (typeof m !== 'object' || m === null) return 'missing m';
      if (typeof m['conv'] !== 'string') return 'm.conv is not a string';
      if (!Number.isSafeInteger(m['seq']) || (m['seq'] as number) < 1) return 'm.seq is not a positive integer';
      return undefined;
    }
    case 'receipt':
      return typeof frame['conv'] === 'string' && typeof frame['user'] === 'string' && Number.isSafeInteger(frame['seq']) ? undefined : 'needs conv, user, seq';
    case 'typing':
      return typeof frame['conv'] === 'string' && typeof frame['user'] === 'string' ? undefined : 'needs conv, user';
    case 'presence':
    case 'contact':
      return typeof frame['user'] === 'string' ? undefined : 'needs user';
    case 'envelope':
      return typeof frame['conv'] === 'string' && typeof frame['envelope'] === 'string' ? undefined : 'needs conv, envelope';
    case 'sale':
      return typeof frame['sale'] === 'string' && typeof frame['state'] === 'string' ? undefined : 'needs sale, state';
    case 'transfer': {
      const info = frame['transfer'] as Record<string, unknown> | undefined;
      return typeof info === 'object' && info !== null && typeof info['transfer'] === 'string' ? undefined : 'needs transfer.transfer';
    }
    default:
      return undefined;
  }
}
