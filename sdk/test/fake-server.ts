// A small scripted Lantern server for SDK unit tests: `ws` WebSocketServer on port 0 speaking
// the protocol through protocol/codec.ts. It keeps per-conversation logs with real seq and cid
// dedupe, answers hello/sync/send/ping/read/typing, and lets a test intercept any frame.
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import { decodeFrame, encodeFrame } from '../../protocol/codec.ts';
import type { ConversationInfo, Message, MessageBody, MessageKind, WelcomeFrame } from '../../protocol/frames.ts';

export interface HelloInfo { token: string; device: string; socket: WebSocket }

/** What to do with a hello: welcome it, or close the socket with a code. */
export type HelloDecision = { welcome: true } | { close: number; reason?: string };

export interface ClientFrameRecord { socket: WebSocket; frame: Record<string, unknown> }

/** Return true to claim a frame (the default handling is skipped). */
export type Interceptor = (frame: Record<string, unknown>, socket: WebSocket) => boolean;

export class FakeServer {
  readonly wss: WebSocketServer;
  readonly user = 'alice';
  epoch = 'epoch-1';
  readonly hellos: HelloInfo[] = [];
  readonly received: ClientFrameRecord[] = [];
  readonly logs = new Map<string, Message[]>();
  readonly convEpochs = new Map<string, string>();
  /** Decides each hello; default: welcome. */
  onHello: (hello: HelloInfo) => HelloDecision = () => ({ welcome: true });
  intercept: Interceptor = () => false;
  private readonly sockets = new Set<WebSocket>();
  private readonly waiters: Array<() => void> = [];

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    wss.on('connection', (socket) => this.accept(socket));
  }

  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    return new FakeServer(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/ws`;
  }

  get connections(): number {
    return this.sockets.size;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    await new Promise<void>((resolve, reject) => this.wss.close((err) => (err ? reject(err) : resolve())));
  }

  /** Append a message the way the engine would (next seq), without pushing it. */
  append(conv: string, from: string, kind: MessageKind, body: MessageBody, cid = '', dev = 'other'): Message {
    const log = this.log(conv);
    const m: Message = { conv, seq: log.length + 1, from, dev, cid, kind, body, ts: Date.now() };
    log.push(m);
    this.notify();
    return m;
  }

  /** Append and push to every welcomed socket. */
  publish(conv: string, from: string, text: string): Message {
    const m = this.append(conv, from, 'text', { text });
    this.pushMsg(m);
    return m;
  }

  pushMsg(m: Message): void {
    this.broadcast({ t: 'msg', m });
  }

  broadcast(frame: object): void {
    const bytes = encodeFrame(frame);
    for (const s of this.sockets) s.send(bytes);
  }

  sendTo(socket: WebSocket, frame: object): void {
    socket.send(encodeFrame(frame));
  }

  closeAll(code: number, reason = ''): void {
    for (const s of this.sockets) s.close(code, reason);
  }

  framesOfType(t: string): Array<Record<string, unknown>> {
    return this.received.filter((r) => r.frame['t'] === t).map((r) => r.frame);
  }

  /** Resolve when `cond` holds, re-checked after every frame the server receives or appends. */
  async until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private log(conv: string): Message[] {
    let log = this.logs.get(conv);
    if (log === undefined) {
      log = [];
      this.logs.set(conv, log);
      this.convEpochs.set(conv, 'c1');
    }
    return log;
  }

  private accept(socket: WebSocket): void {
    let welcomed = false;
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.notify();
    });
    socket.on('message', (data: Buffer) => {
      const frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.received.push({ socket, frame });
      try {
        if (this.intercept(frame, socket)) return;
        if (frame['t'] === 'hello') {
          const hello: HelloInfo = { token: frame['token'] as string, device: frame['device'] as string, socket };
          this.hellos.push(hello);
          const decision = this.onHello(hello);
          if ('close' in decision) {
            socket.close(decision.close, decision.reason ?? '');
            return;
          }
          welcomed = true;
          this.sockets.add(socket);
          const welcome: WelcomeFrame = {
            t: 'welcome', id: frame['id'] as number, v: 1, user: this.user, device: hello.device,
            session: `s${this.hellos.length}`, epoch: this.epoch, ts: Date.now(),
            limits: { maxFrameBytes: 65536, ratePerSec: 50, rateBurst: 100, maxSyncPage: 1000, maxGroupMembers: 500 },
          };
          this.sendTo(socket, welcome);
          return;
        }
        if (!welcomed) throw new Error('request before welcome');
        this.answer(frame, socket);
      } finally {
        this.notify();
      }
    });
  }

  private answer(frame: Record<string, unknown>, socket: WebSocket): void {
    const id = frame['id'] as number;
    switch (frame['t']) {
      case 'ping':
        this.sendTo(socket, { t: 'res', id, data: { ts: Date.now() } });
        return;
      case 'sync':
        this.sendTo(socket, { t: 'res', id, data: this.sync(frame['since'] as Record<string, number>, (frame['limit'] as number | undefined) ?? 200) });
        return;
      case 'send': {
        const conv = frame['conv'] as string;
        const cid = frame['cid'] as string;
        const existing = this.log(conv).find((m) => m.from === this.user && m.cid === cid);
        if (existing !== undefined) {
          this.sendTo(socket, { t: 'res', id, data: { conv, seq: existing.seq, ts: existing.ts, dup: true } });
          return;
        }
        const m = this.append(conv, this.user, frame['kind'] as MessageKind, frame['body'] as MessageBody, cid, 'dev');
        this.sendTo(socket, { t: 'res', id, data: { conv, seq: m.seq, ts: m.ts, dup: false } });
        this.pushMsg(m);
        return;
      }
      case 'read':
        this.sendTo(socket, { t: 'res', id, data: { conv: frame['conv'], read: frame['seq'] } });
        return;
      case 'typing':
        this.sendTo(socket, { t: 'res', id, data: {} });
        return;
      default:
        this.sendTo(socket, { t: 'err', id, code: 1001, error: 'unknown_type', msg: `fake server has no ${String(frame['t'])}`, retry: false });
    }
  }

  /** Gapless sync over the logs, paged by `limit`, ordered by (conv, seq). */
  sync(since: Record<string, number>, limit: number): { convs: ConversationInfo[]; msgs: Message[]; removed: string[]; more: boolean } {
    const convs: ConversationInfo[] = [];
    const msgs: Message[] = [];
    let more = false;
    for (const conv of [...this.logs.keys()].sort()) {
      const log = this.logs.get(conv)!;
      const from = since[conv] ?? 0;
      if (log.length <= from && conv in since) continue;
      convs.push({
        conv, type: 'group', title: conv, epoch: this.convEpochs.get(conv)!, head: log.length,
        role: 'member', joined: 0, read: 0, members: 2,
      });
      for (const m of log.slice(from)) {
        if (msgs.length >= limit) {
          more = true;
          break;
        }
        msgs.push(m);
      }
      if (more) break;
    }
    const removed = Object.keys(since).filter((c) => !this.logs.has(c));
    return { convs, msgs, removed, more };
  }
}
