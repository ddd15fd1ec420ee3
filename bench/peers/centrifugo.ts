// Centrifugo as a peer baseline: the pinned server (bench/peers/install-centrifugo.sh) on a free
// loopback port with a generated config, and a minimal Node client for its bidirectional
// WebSocket JSON protocol (v2). A 1:1 message is a client publish to the peer's own channel,
// a group message a client publish to the group's channel; the sender gets its own copy of a
// group message, as in a Lantern group.
//
// The config keeps Centrifugo to what the other peers do: one in-memory node, HS256 connection
// JWTs, one namespace `bench` where any connected client may subscribe and publish, no presence,
// no join/leave, no history or recovery, Lantern's frame limit and slow-consumer queue, no usage
// stats (they would phone home). Centrifugo's JSON protocol carries JSON, not bytes: a payload
// travels as a JSON string of its latin1 characters, one per byte (the stamp text is ASCII).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { DEFAULT_FRAME_LIMITS } from '../../protocol/limits.ts';
import { closeSockets, openSocket } from '../loadgen/socket.ts';
import type { PeerClient, PeerDelivery } from './peer-client.ts';

const run = promisify(execFile);
const INSTALL_SCRIPT = fileURLToPath(new URL('./install-centrifugo.sh', import.meta.url));

export const NAMESPACE = 'bench';
/** Same bound as Lantern's slowConsumerBytes: past it Centrifugo disconnects the slow client. */
const QUEUE_MAX_BYTES = 1024 * 1024;
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_TAIL_CHARS = 4_000;

/** Runs the install script (a `go install` the first time: minutes) and returns the binary's path. */
export async function installCentrifugo(timeoutMs = 15 * 60_000): Promise<string> {
  try {
    const { stdout } = await run('bash', [INSTALL_SCRIPT], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`bench/peers/install-centrifugo.sh failed: ${e.stderr?.trim() || e.message}`);
  }
}

export interface CentrifugoOptions {
  /** The binary; default: whatever installCentrifugo() returns. */
  bin?: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
}

export interface CentrifugoServer {
  port: number;
  host: string;
  /** The bidirectional WebSocket endpoint. */
  url: string;
  /** The HMAC secret its connection tokens are signed with. */
  secret: string;
  pid: number;
  /** A connection JWT for `user`. */
  tokenFor(user: string, ttlSec?: number): Promise<string>;
  close(): Promise<void>;
}

/** The generated config: only what differs from Centrifugo's defaults, or matters to the comparison. */
export function centrifugoConfig(host: string, port: number, secret: string): Record<string, unknown> {
  return {
    http_server: { address: host, port },
    log: { level: 'warn' },
    usage_stats: { disabled: true },
    health: { enabled: true },
    shutdown: { timeout: '2s' },
    websocket: { message_size_limit: DEFAULT_FRAME_LIMITS.maxFrameBytes, compression: false },
    client: {
      token: { hmac_secret_key: secret },
      queue_max_size: QUEUE_MAX_BYTES,
    },
    channel: {
      namespaces: [{
        name: NAMESPACE,
        allow_subscribe_for_client: true,
        allow_publish_for_client: true,
        presence: false,
        join_leave: false,
        history_size: 0,
        history_ttl: '0s',
        force_recovery: false,
        allow_recovery: false,
      }],
    },
  };
}

export async function startCentrifugo(options: CentrifugoOptions = {}): Promise<CentrifugoServer> {
  const bin = options.bin ?? await installCentrifugo();
  const host = options.host ?? '127.0.0.1';
  const port = options.port || await freePort(host);
  const secret = randomBytes(32).toString('hex');
  const dir = await mkdtemp(join(tmpdir(), 'lantern-centrifugo-'));
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, JSON.stringify(centrifugoConfig(host, port, secret), null, 2));

  // The cwd is the temp dir so nothing Centrifugo might write lands in the work tree.
  const child = spawn(bin, ['-c', configPath], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let logTail = '';
  const keepTail = (chunk: Buffer): void => { logTail = (logTail + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS); };
  child.stdout!.on('data', keepTail);
  child.stderr!.on('data', keepTail);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  // A bench or test process that exits without close() must not leave Centrifugo running.
  const killOnExit = (): void => { child.kill('SIGKILL'); };
  process.once('exit', killOnExit);
  const cleanup = async (): Promise<void> => {
    process.off('exit', killOnExit);
    await stopProcess(child, exited);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitUntilHealthy(host, port, exited, spawnError, () => logTail);
  } catch (err) {
    await cleanup();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    port,
    host,
    url: `ws://${host}:${port}/connection/websocket`,
    secret,
    pid: child.pid!,
    tokenFor: (user, ttlSec = 3600) => connectionToken(secret, user, ttlSec),
    close: () => (closing ??= cleanup()),
  };
}

/** An HS256 connection JWT: `sub` is the user, which Centrifugo reports as the publisher. */
export function connectionToken(secret: string, user: string, ttlSec = 3600): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec)
    .sign(new TextEncoder().encode(secret));
}

async function waitUntilHealthy(host: string, port: number, exited: Promise<number | null>, spawnError: Promise<Error>, logTail: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let gone: string | undefined;
  void exited.then((code) => { gone = `exited with code ${code}`; });
  void spawnError.then((err) => { gone = `could not start: ${err.message}`; });
  while (Date.now() < deadline) {
    if (gone !== undefined) throw new Error(`centrifugo ${gone}; log tail:\n${logTail()}`);
    try {
      const res = await fetch(`http://${host}:${port}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`centrifugo not healthy on ${host}:${port} after ${READY_TIMEOUT_MS} ms; log tail:\n${logTail()}`);
}

async function stopProcess(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  // No pid: it never started (the spawn error says why), and no exit event will come.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/**
 * A free port below the kernel's ephemeral range (32768+), where client sockets of the load
 * generator cannot take it between this check and Centrifugo's bind.
 */
async function freePort(host: string): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, host, () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export const inboxChannel = (user: string): string => `${NAMESPACE}:u-${user}`;
export const groupChannel = (group: string): string => `${NAMESPACE}:g-${group}`;

interface ProtocolError { code: number; message: string }
interface Reply {
  id?: number;
  error?: ProtocolError;
  push?: {
    channel?: string;
    pub?: { data?: unknown; info?: { user?: string } };
    disconnect?: { code?: number; reason?: string };
    unsubscribe?: { code?: number; reason?: string };
  };
  connect?: { client?: string; ping?: number; pong?: boolean };
  [result: string]: unknown;
}

/**
 * A Centrifugo connection: connects with a token, subscribes to its own channel (1:1 messages),
 * joins groups, publishes without waiting for the reply (errors go to onError).
 */
export class CentrifugoClient implements PeerClient {
  onDelivery: (delivery: PeerDelivery) => void = () => {};
  onError: (description: string) => void = () => {};
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (reply: Reply) => void; reject: (err: Error) => void }>();
  private answerPings = false;
  private closing = false;

  private constructor(readonly user: string, private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.receive(data));
    let lastError = '';
    ws.on('error', (err) => { lastError = ` after error: ${err.message}`; });
    ws.on('close', (code, reason) => {
      const why = `${user}: closed ${code} ${reason.toString()}${lastError}`;
      for (const p of this.pending.values()) p.reject(new Error(why));
      this.pending.clear();
      if (!this.closing) this.onError(why);
    });
  }

  static async open(url: string, token: string, user: string, timeoutMs: number): Promise<CentrifugoClient> {
    const client = new CentrifugoClient(user, await openSocket(url, timeoutMs));
    try {
      const reply = await client.request('connect', { token, name: 'lantern-bench' }, timeoutMs);
      // Protocol v2: the server sends an empty reply every `ping` s and, with `pong`, closes a
      // client that does not answer with an empty command.
      client.answerPings = reply.connect?.pong === true;
      await client.request('subscribe', { channel: inboxChannel(user) }, timeoutMs);
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  async join(group: string, timeoutMs = 10_000): Promise<void> {
    await this.request('subscribe', { channel: groupChannel(group) }, timeoutMs);
  }

  sendDirect(to: string, payload: Uint8Array): void {
    this.fire('publish', { channel: inboxChannel(to), data: payloadText(payload) });
  }

  publish(group: string, payload: Uint8Array): void {
    this.fire('publish', { channel: groupChannel(group), data: payloadText(payload) });
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  async close(): Promise<void> {
    this.closing = true;
    await closeSockets([this.ws]);
  }

  /** A command whose reply is awaited; rejects on an error reply or after timeoutMs. */
  request(method: string, params: Record<string, unknown>, timeoutMs: number): Promise<Reply> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.user}: no reply to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (reply) => { clearTimeout(timer); resolve(reply); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      });
      this.ws.send(JSON.stringify({ id, [method]: params }));
    });
  }

  /** A command whose reply only matters if it is an error (reported through onError). */
  private fire(method: string, params: Record<string, unknown>): void {
    this.ws.send(JSON.stringify({ id: ++this.nextId, [method]: params }));
  }

  private receive(data: Buffer): void {
    // One frame may hold several replies, newline-delimited.
    for (const line of data.toString('utf8').split('\n')) {
      if (line.length === 0) continue;
      let reply: Reply;
      try {
        reply = JSON.parse(line) as Reply;
      } catch {
        this.onError(`${this.user}: unparsable reply ${line.slice(0, 80)}`);
        continue;
      }
      this.handle(reply);
    }
  }

  private handle(reply: Reply): void {
    if (reply.id !== undefined && reply.id > 0) {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.error !== undefined) {
        const err = new Error(`${this.user}: centrifugo error ${reply.error.code} ${reply.error.message}`);
        if (waiting !== undefined) waiting.reject(err);
        else this.onError(err.message);
      } else {
        waiting?.resolve(reply);
      }
      return;
    }
    const push = reply.push;
    if (push === undefined) {
      if (this.answerPings) this.ws.send('{}');
      return;
    }
    if (push.pub !== undefined) {
      const channel = push.channel ?? '';
      const groupPrefix = groupChannel('');
      this.onDelivery({
        from: push.pub.info?.user ?? '',
        group: channel.startsWith(groupPrefix) ? channel.slice(groupPrefix.length) : null,
        payload: payloadBytes(push.pub.data),
      });
    } else if (push.disconnect !== undefined) {
      this.onError(`${this.user}: disconnected ${push.disconnect.code} ${push.disconnect.reason}`);
    } else if (push.unsubscribe !== undefined) {
      this.onError(`${this.user}: unsubscribed from ${push.channel} ${push.unsubscribe.code} ${push.unsubscribe.reason}`);
    }
  }
}

function payloadText(payload: Uint8Array): string {
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1');
}

function payloadBytes(data: unknown): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.alloc(0);
}
