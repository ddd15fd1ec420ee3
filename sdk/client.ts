// LanternClient: the connection lifecycle (connect, reconnect with backoff per close code,
// token refresh), the resync loop after every welcome, live message ordering, and the outbox.
// Request helpers for each protocol call live in api.ts (LanternClient extends it).
import { closeAdvice, CloseCodes } from '../protocol/errors.ts';
import type {
  ClientMessageKind, Message, MessageBody, RequestParams, RequestResult, RequestType, ServerEvent, WelcomeFrame,
} from '../protocol/frames.ts';
import { LanternApi } from './api.ts';
import { Backoff, jitteredDelay } from './backoff.ts';
import { Connection } from './connection.ts';
import { TypedEmitter, type Handler } from './emitter.ts';
import { LanternClientError, toError } from './errors.ts';
import type { ClientEvents, Welcome } from './events.ts';
import { randomCid } from './ids.ts';
import { resolveOptions, type LanternClientOptions, type ResolvedOptions } from './options.ts';
import { Outbox, type SendResult } from './outbox.ts';
import { CursorPersistence } from './persistence.ts';
import { SyncState } from './sync-state.ts';

/** idle: never connected; backoff: waiting to reconnect; stopped: close() or a terminal close code. */
export type ClientStatus = 'idle' | 'connecting' | 'ready' | 'backoff' | 'stopped';
type Phase = ClientStatus;

/** Sync rounds in a row that end with a gap and deliver nothing before we report it. */
const MAX_STALLED_SYNC_ROUNDS = 3;

interface Waiter<T> { resolve(value: T): void; reject(error: Error): void; timer?: ReturnType<typeof setTimeout> }

export class LanternClient extends LanternApi {
  private readonly opts: ResolvedOptions;
  private readonly events: TypedEmitter<ClientEvents>;
  private readonly backoff: Backoff;
  private readonly outbox: Outbox;
  private state = new SyncState();
  private stateLoaded: Promise<void> | undefined;
  private readonly persistence: CursorPersistence;
  private phase: Phase = 'idle';
  /** Bumped by close() and terminal stops so an attempt awaiting a token knows it is obsolete. */
  private session = 0;
  private conn: Connection | undefined;
  /** Index into opts.urls of the gateway the current (or last) attempt used. */
  private urlIndex = 0;
  private attempts = 0;
  private lastWelcome: Welcome | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectWaiters: Array<Waiter<Welcome>> = [];
  private readyWaiters: Array<Waiter<Connection>> = [];
  private closeWaiters: Array<() => void> = [];
  private syncWanted = false;
  private syncReason = 'welcome';
  private syncRunning = false;
  private syncRetryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: LanternClientOptions) {
    super();
    this.opts = resolveOptions(options);
    this.events = new TypedEmitter<ClientEvents>((error, event) => this.reportError(error, `handler:${String(event)}`));
    this.backoff = new Backoff(this.opts.backoff, this.opts.random);
    this.persistence = new CursorPersistence(this.opts.state, () => this.state.toPersisted(), (e, c) => this.reportError(e, c));
    this.outbox = new Outbox({
      transmit: (e) => this.requireConnection('send').request('send', { conv: e.conv, cid: e.cid, kind: e.kind, body: e.body }),
      retryDelay: (attempt, retryAfterMs) => Math.max(retryAfterMs ?? 0, jitteredDelay(attempt - 1, this.opts.backoff, this.opts.random)),
      reportRetry: (error, e, delayMs) => this.reportError(error, `outbox: send ${e.cid} to ${e.conv} retries in ${delayMs} ms`),
    });
  }

  // ------------------------------------------------------------------ public surface

  on<K extends keyof ClientEvents>(event: K, handler: Handler<ClientEvents[K]>): () => void {
    return this.events.on(event, handler);
  }

  once<K extends keyof ClientEvents>(event: K, handler: Handler<ClientEvents[K]>): () => void {
    return this.events.once(event, handler);
  }

  off<K extends keyof ClientEvents>(event: K, handler: Handler<ClientEvents[K]>): void {
    this.events.off(event, handler);
  }

  /** The latest welcome while connected. */
  get welcome(): Welcome | undefined {
    return this.phase === 'ready' ? this.lastWelcome : undefined;
  }

  get status(): ClientStatus {
    return this.phase;
  }

  get connected(): boolean {
    return this.phase === 'ready';
  }

  /** The gateway URL of the current (or last) connection attempt. */
  get url(): string {
    return this.opts.urls[this.urlIndex]!;
  }

  /** Unacked sends, oldest first per conversation. */
  pendingSends(): Array<{ conv: string; cid: string; attempts: number }> {
    return this.outbox.pending();
  }

  /** Highest seq delivered contiguously for a conversation. */
  cursor(conv: string): number | undefined {
    return this.state.cursor(conv);
  }

  /** Resolves with the first welcome; keeps reconnecting (with backoff) until then. Rejects if
   *  the client is closed or the server refuses it for good (close 4000-4099) before that. */
  connect(): Promise<Welcome> {
    if (this.phase === 'ready' && this.lastWelcome !== undefined) return Promise.resolve(this.lastWelcome);
    const welcomed = new Promise<Welcome>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.phase === 'idle' || this.phase === 'stopped') void this.attempt();
    return welcomed;
  }

  /** Close for good: no reconnect; pending requests and unacked sends reject. */
  async close(): Promise<void> {
    if (this.phase === 'stopped') return;
    const error = new LanternClientError('the client was closed', { code: 1000, error: 'closed', retry: false, closeCode: 1000 });
    this.halt(error);
    const conn = this.conn;
    if (conn !== undefined) {
      await new Promise<void>((resolve) => {
        this.closeWaiters.push(resolve);
        conn.close(1000, 'client closed');
      });
    }
    await this.persistence.flushed();
  }

  /** Any request, typed by RequestMap. Waits up to requestTimeoutMs for a connection if none is open. */
  async request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    const conn = await this.readyConnection(type);
    return conn.request(type, params);
  }

  /** Queue a message in the outbox; resolves with the server's ack once it is durable. Survives
   *  reconnects: re-sent with the same cid until acked or refused with a non-retryable error. */
  send(conv: string, kind: ClientMessageKind, body: MessageBody, opts: { cid?: string } = {}): Promise<SendResult> {
    if (this.phase === 'stopped') return Promise.reject(LanternClientError.unavailable('send refused: the client is closed', 'send'));
    let cid: string;
    try {
      cid = opts.cid ?? randomCid();
    } catch (error) {
      return Promise.reject(toError(error));
    }
    return this.outbox.enqueue(conv, kind, body, cid);
  }

  /** Ask for a sync now (e.g. after the app resumes from background). */
  resync(): void {
    this.requestSync('manual');
  }

  // ------------------------------------------------------------------ connection lifecycle

  private async attempt(): Promise<void> {
    const session = this.session;
    this.phase = 'connecting';
    let stage = 'token';
    try {
      await this.loadState();
      const token = typeof this.opts.token === 'string' ? this.opts.token : await this.opts.token();
      if (typeof token !== 'string' || token === '') throw new TypeError('options.token() must return a non-empty string');
      if (session !== this.session) return; // closed while we waited for the token
      stage = 'socket';
      // Every attempt after the first moves to the next gateway: the one we lost may be dead.
      if (this.attempts++ > 0) this.urlIndex = (this.urlIndex + 1) % this.opts.urls.length;
      const conn: Connection = new Connection(
        { ...this.opts, url: this.url, token },
        {
          welcome: (frame) => { if (conn === this.conn) this.onWelcome(frame); },
          event: (frame) => { if (conn === this.conn) this.onEvent(frame); },
          closed: (code, reason) => { if (conn === this.conn) this.onClosed(code, reason); },
          error: (error, context) => { if (conn === this.conn) this.reportError(error, context); },
        },
      );
      this.conn = conn;
    } catch (error) {
      if (session !== this.session) return;
      this.reportError(error, stage);
      this.scheduleReconnect(undefined, '');
    }
  }

  private onWelcome(frame: WelcomeFrame): void {
    // A welcome already on the wire when close() ran must not revive the client.
    if (this.phase === 'stopped') return;
    const { t: _t, id: _id, ...welcome } = frame;
    this.phase = 'ready';
    this.lastWelcome = welcome;
    this.backoff.reset();
    if (this.state.setServerEpoch(welcome.epoch)) this.events.emit('reset', { conv: undefined });
    this.persist();
    this.events.emit('connected', welcome);
    for (const w of this.connectWaiters.splice(0)) w.resolve(welcome);
    for (const w of this.readyWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(this.conn!);
    }
    this.requestSync('welcome');
  }

  private onClosed(code: number, reason: string): void {
    this.conn = undefined;
    this.outbox.setOnline(false);
    clearTimeout(this.syncRetryTimer);
    this.syncRetryTimer = undefined;
    if (this.phase === 'stopped') {
      // close() or a terminal stop already failed everything that was waiting.
      this.events.emit('disconnected', { code, reason, willReconnect: false });
      for (const resolve of this.closeWaiters.splice(0)) resolve();
      return;
    }
    const advice = closeAdvice(code);
    if (advice === 'stop') {
      this.stopFor(code, reason, `the server closed the connection with terminal code ${code}${reason ? ` (${reason})` : ''}: not reconnecting`);
    } else if (advice === 'refresh_token' && typeof this.opts.token === 'string') {
      this.stopFor(code, reason, `the token expired (close ${code}) and options.token is a fixed string: pass a function to refresh it`);
    } else {
      this.scheduleReconnect(code, reason);
    }
  }

  private stopFor(code: number, reason: string, message: string): void {
    const name = Object.entries(CloseCodes).find(([, c]) => c.code === code)?.[0] ?? 'closed';
    const error = new LanternClientError(message, { code, error: name, retry: false, closeCode: code });
    this.halt(error);
    this.events.emit('disconnected', { code, reason, willReconnect: false });
    this.reportError(error, 'connection');
  }

  /** Enter 'stopped' and fail everything waiting on the client. */
  private halt(error: LanternClientError): void {
    this.phase = 'stopped';
    this.session++;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.syncRetryTimer);
    this.reconnectTimer = this.syncRetryTimer = undefined;
    this.syncWanted = false;
    for (const w of this.connectWaiters.splice(0)) w.reject(error);
    for (const w of this.readyWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(error);
    }
    this.outbox.rejectAll(() => error);
  }

  private scheduleReconnect(code: number | undefined, reason: string): void {
    const delayMs = this.backoff.next();
    clearTimeout(this.reconnectTimer); // one pending attempt at a time
    this.phase = 'backoff';
    if (code !== undefined) this.events.emit('disconnected', { code, reason, willReconnect: true, delayMs });
    // A 'disconnected' handler may have called close().
    if (this.phase !== 'backoff') return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.attempt();
    }, delayMs);
  }

  private requireConnection(type: RequestType): Connection {
    if (this.conn === undefined || this.phase !== 'ready') throw LanternClientError.unavailable(`${type} not sent: not connected`, type);
    return this.conn;
  }

  private readyConnection(type: RequestType): Promise<Connection> {
    if (this.phase === 'ready' && this.conn !== undefined) return Promise.resolve(this.conn);
    if (this.phase === 'idle' || this.phase === 'stopped') {
      return Promise.reject(LanternClientError.unavailable(`${type} not sent: the client is not connected (call connect())`, type));
    }
    return new Promise<Connection>((resolve, reject) => {
      const waiter: Waiter<Connection> = { resolve, reject };
      waiter.timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        reject(LanternClientError.unavailable(`${type} not sent: no connection within ${this.opts.requestTimeoutMs} ms`, type));
      }, this.opts.requestTimeoutMs);
      this.readyWaiters.push(waiter);
    });
  }

  // ------------------------------------------------------------------ events and sync

  private onEvent(frame: ServerEvent): void {
    switch (frame.t) {
      case 'msg': {
        const r = this.state.accept(frame.m);
        this.deliver(r.deliver);
        if (r.gap) this.requestSync('gap');
        return;
      }
      case 'lag':
        this.requestSync('lag');
        return;
      case 'receipt':
        this.events.emit('receipt', { conv: frame.conv, user: frame.user, seq: frame.seq });
        return;
      case 'typing':
        this.events.emit('typing', { conv: frame.conv, user: frame.user, on: frame.on });
        return;
      case 'presence':
        this.events.emit('presence', { user: frame.user, online: frame.online, lastSeen: frame.lastSeen });
        return;
      case 'contact': {
        const { t: _t, ...change } = frame;
        this.events.emit('contact', change);
        return;
      }
      case 'envelope': {
        const { t: _t, ...update } = frame;
        this.events.emit('envelope', update);
        return;
      }
      case 'transfer':
        this.events.emit('transfer', frame.transfer);
        return;
      case 'sale': {
        const { t: _t, ...update } = frame;
        this.events.emit('sale', update);
        return;
      }
    }
  }

  private deliver(msgs: Message[]): void {
    for (const m of msgs) this.events.emit('message', m);
    if (msgs.length > 0) this.persist();
  }

  private requestSync(reason: string): void {
    if (!this.syncWanted) this.syncReason = reason;
    this.syncWanted = true;
    if (!this.syncRunning && this.syncRetryTimer === undefined && this.phase === 'ready') void this.runSync();
  }

  /** Sync until nothing is missing: pages while `more`, rounds while a gap remains. */
  private async runSync(): Promise<void> {
    const conn = this.conn;
    if (conn === undefined) return;
    this.syncRunning = true;
    const reason = this.syncReason;
    let messages = 0;
    let stalled = 0;
    const convs = new Set<string>();
    try {
      while (this.syncWanted) {
        this.syncWanted = false;
        const before = messages;
        for (let more = true; more;) {
          const params: RequestParams<'sync'> = { since: this.state.since() };
          if (this.opts.syncLimit !== undefined) params.limit = this.opts.syncLimit;
          const page = await conn.request('sync', params);
          if (conn !== this.conn) return;
          const outcome = this.state.applyPage(page);
          for (const info of page.convs) {
            convs.add(info.conv);
            this.events.emit('conversation', info);
          }
          for (const conv of outcome.removed) this.events.emit('removed', { conv });
          for (const conv of outcome.reset) this.events.emit('reset', { conv });
          this.deliver(outcome.deliver);
          messages += outcome.deliver.length;
          if (page.more && !outcome.progressed) throw new Error('sync answered more:true but the page advanced no cursor');
          if (outcome.removed.length > 0 || outcome.reset.length > 0) this.persist();
          more = page.more || outcome.reset.length > 0;
        }
        const gaps = this.state.gaps();
        if (gaps.length === 0) continue;
        // Usually a live message overtook the sync snapshot and one more round fetches the rest.
        stalled = messages === before ? stalled + 1 : 0;
        if (stalled >= MAX_STALLED_SYNC_ROUNDS) {
          const list = gaps.map((g) => `${g.conv}: have ${String(g.cursor)}, hold ${g.nextHeld}`).join('; ');
          this.reportError(new Error(`sync did not fill gaps after ${stalled} rounds (${list})`), 'sync');
          break;
        }
        this.syncWanted = true;
      }
      this.events.emit('synced', { reason, messages, conversations: convs.size });
    } catch (error) {
      if (conn !== this.conn) return; // the connection closed mid-sync; the next welcome syncs again
      this.reportError(error, 'sync');
      if (error instanceof LanternClientError && error.retry) {
        this.syncWanted = true;
        this.syncRetryTimer = setTimeout(() => {
          this.syncRetryTimer = undefined;
          this.requestSync('retry');
        }, Math.max(error.retryAfterMs ?? 0, this.backoff.next()));
      }
    } finally {
      this.syncRunning = false;
      // Resend unacked sends only after the resync of this session, so a send that did land
      // before the disconnect shows up as its message first and the resend is acked dup:true.
      if (conn === this.conn) this.outbox.setOnline(true);
      // A sync asked for while this loop was finishing (or by a newer session).
      if (this.syncWanted && this.phase === 'ready' && this.syncRetryTimer === undefined) void this.runSync();
    }
  }

  // ------------------------------------------------------------------ persistence and errors

  private loadState(): Promise<void> {
    this.stateLoaded ??= this.persistence.load().then((saved) => {
      this.state = SyncState.fromPersisted(saved);
    });
    return this.stateLoaded;
  }

  private persist(): void {
    this.persistence.save();
  }

  private reportError(error: unknown, context: string): void {
    const payload = { error: toError(error), context };
    if (this.events.listenerCount('error') > 0 && context !== 'handler:error') {
      this.events.emit('error', payload);
      return;
    }
    // Nobody listens (or the error handler itself threw): the console is the last resort.
    console.error(`[lantern-sdk] ${context}:`, payload.error);
  }
}
