// A storm generator process (forked by storm-run.ts with `--import tsx`). Its sockets are bound to
// its own loopback source addresses (one address has only ~28k ephemeral ports) and it runs one of
// two storms on its share of the clients:
// - connection storm: connect every client (upgrade + hello/welcome; raw: the upgrade) at its share
//   of the ramp, or all at once, and time each from its first attempt to the welcome;
// - reconnect storm: connect the clients, put them in conversations (groups, or direct pairs), feed
//   messages into every conversation from a second device of its first member, drop the sockets
//   on `drop`, and on `reconnect` bring every dropped client back at once: welcome, then the sync
//   loop from the cursors it held (PROTOCOL.md 9) until caught up. `verify` checks every client's
//   copy against the head the feeders were told (storm-ledger.ts).
// Separate processes because each socket is a file descriptor (20,000 per process here) and one
// event loop would time its own backlog.
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../protocol/codec.ts';
import type { Message, RequestParams, RequestResult, RequestType, SyncResult, WelcomeFrame } from '../../protocol/frames.ts';
import { LatencyHistogram } from './histogram.ts';
import type { ConnectReport } from './idle-messages.ts';
import { LanternRequestError, mintToken, withTimeout } from './lantern-client.ts';
import { SETUP_CONCURRENCY } from './scenarios/scenario.ts';
import { closeSockets, mapLimit } from './socket.ts';
import { SeqLedger } from './storm-ledger.ts';
import type { ConnectStormConfig, ReconnectSetupConfig, ResyncReport, StormCommand, StormMessage, StormShare, VerifyReport } from './storm-messages.ts';

const DEVICE = 'storm';
/** The feeders are a second device of each conversation's first member, so pairs work as groups do. */
const FEEDER_DEVICE = 'storm-feeder';
const MAX_SAMPLES = 10;
/** Attempts per connection: a flooded server may refuse or close some (4103); a client would try again. */
const CONNECT_ATTEMPTS = 8;
const CONNECT_BACKOFF_MS = 250;
/** A feeder with this many sends unanswered skips its turn (the open loop must not pile up in memory). */
const FEEDER_MAX_UNANSWERED = 50;
const FEED_TICK_MS = 10;
/** Sync loops in a row that still leave a gap before a client gives up (a server that never fills it). */
const MAX_SYNC_ROUNDS = 20;
const TOKEN_CONCURRENCY = 200;

if (process.send === undefined) {
  console.error('bench/loadgen/storm-worker.ts runs as a child of storm-run.ts (it needs an IPC channel)');
  process.exit(2);
}

const epochNow = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const backoff = (attempt: number): Promise<void> => sleep(CONNECT_BACKOFF_MS * attempt + Math.random() * CONNECT_BACKOFF_MS);

function tell(message: StormMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    process.send!(message, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

async function fail(err: unknown): Promise<never> {
  const error = err instanceof Error ? err.stack ?? err.message : String(err);
  await tell({ type: 'failed', error }).catch(() => console.error('storm generator could not report its failure:', error));
  process.exit(1);
}

/** Errors worth a look, counted, with the first few kept. */
class Errors {
  count = 0;
  readonly samples: string[] = [];
  add(what: string): void {
    this.count++;
    if (this.samples.length < MAX_SAMPLES) this.samples.push(what);
  }
}

type Frame = Record<string, unknown>;

/** A socket past the upgrade (lantern: past the welcome): requests with ids; every other frame goes to `route`. */
class StormSocket {
  onGone: (description: string) => void = () => {};
  private nextId = 2; // 1 was the hello
  private readonly pending = new Map<number, { type: string; resolve(data: unknown): void; reject(err: Error): void }>();
  private leaving = false;

  constructor(readonly ws: WebSocket, readonly welcome: WelcomeFrame | undefined, private readonly route: (frame: Frame) => void) {
    ws.on('message', (data: Buffer) => this.receive(data));
    ws.on('error', () => {}); // 'close' follows with the code
    ws.on('close', (code, reason) => {
      const description = `closed ${code} ${reason.toString()}`;
      for (const p of this.pending.values()) p.reject(new Error(`${p.type} unanswered: ${description}`));
      this.pending.clear();
      if (!this.leaving) this.onGone(description);
    });
  }

  request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { type, resolve: resolve as (data: unknown) => void, reject });
      this.ws.send(encodeFrame({ ...params, t: type, id }));
    });
  }

  /** Gone as on a network loss: no close handshake. */
  drop(): void {
    this.leaving = true;
    this.ws.terminate();
  }

  markLeaving(): void {
    this.leaving = true;
  }

  private receive(data: Buffer): void {
    let frame: Frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      this.route({ t: 'err', id: 0, code: 0, error: 'undecodable_server_frame', msg: (err as Error).message });
      return;
    }
    const t = frame['t'];
    if (t === 'res' || t === 'err') {
      const p = this.pending.get(frame['id'] as number);
      if (p !== undefined) {
        this.pending.delete(frame['id'] as number);
        if (t === 'err') p.reject(new LanternRequestError(p.type, frame['code'] as number, String(frame['error']), String(frame['msg'])));
        else p.resolve(frame['data']);
        return;
      }
    }
    this.route(frame);
  }
}

/**
 * One attempt: the socket once welcomed (raw: upgraded), or why not. The StormSocket (and so
 * `route`) is attached in the same tick as the welcome: frames that came in the same TCP read
 * are emitted right after it and must not be lost.
 */
function openOnce(url: string, localAddress: string, token: string | undefined, device: string, timeoutMs: number, route: (frame: Frame) => void): Promise<StormSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, localAddress });
    let settled = false;
    const settle = (result: WelcomeFrame | Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners(); // the connecting listeners: the StormSocket brings its own
      if (result instanceof Error) {
        ws.on('error', () => {});
        ws.terminate();
        reject(result);
      } else {
        resolve(new StormSocket(ws, result, route));
      }
    };
    const timer = setTimeout(() => settle(new Error(`no ${token ? 'welcome' : 'upgrade'} within ${timeoutMs} ms`)), timeoutMs);
    ws.once('error', (err) => settle(err));
    ws.once('close', (code, reason) => settle(new Error(`closed ${code} ${reason.toString()} while connecting`)));
    ws.once('open', () => {
      if (token === undefined) { settle(undefined); return; }
      ws.once('message', (data: Buffer) => {
        let frame: Frame;
        try { frame = decodeFrame(data); } catch (err) { settle(err as Error); return; }
        settle(frame['t'] === 'welcome' ? frame as unknown as WelcomeFrame : new Error(`hello answered ${String(frame['t'])} ${String(frame['error'] ?? '')}`));
      });
      ws.send(encodeFrame({ t: 'hello', id: 1, v: [1], token, device, client: 'lantern-bench-storm' }));
    });
  });
}

/** Connects with retries as a client would (backoff after each failure); the socket, or the last reason after every attempt. */
async function connectWithRetries(share: StormShare, url: string, localAddress: string, token: string | undefined, device: string, route: (frame: Frame) => void, retried: () => void): Promise<StormSocket> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await openOnce(url, localAddress, token, device, share.attemptTimeoutMs, route);
    } catch (err) {
      if (attempt >= CONNECT_ATTEMPTS) throw new Error(`${(err as Error).message} (gave up after ${attempt} attempts)`);
      retried();
      await backoff(attempt);
    }
  }
}

const userOf = (share: StormShare, k: number): string => `${share.userPrefix}${share.first + k}`;
const urlOf = (share: StormShare, k: number): string => share.urls[(share.first + k) % share.urls.length]!;
const addressOf = (share: StormShare, k: number): string => share.sourceAddresses[k % share.sourceAddresses.length]!;

/** Minted before anything is timed (raw: none). */
function tokensFor(share: StormShare): Promise<Array<string | undefined>> {
  const indices = Array.from({ length: share.count }, (_, k) => k);
  if (share.protocol === 'raw') return Promise.resolve(indices.map(() => undefined));
  return mapLimit(indices, TOKEN_CONCURRENCY, (k) => mintToken(share.secret!, share.audience!, userOf(share, k)));
}

// ---------------------------------------------------------------- connection storm

let stormConfig: ConnectStormConfig | undefined;
let stormTokens: Array<string | undefined> = [];
const held: StormSocket[] = [];

async function prepareStorm(c: ConnectStormConfig): Promise<void> {
  stormConfig = c;
  stormTokens = await tokensFor(c);
  await tell({ type: 'prepared' });
}

async function connectStorm(startAt: number): Promise<void> {
  const c = stormConfig;
  if (c === undefined) throw new Error('go before connect-storm');
  const latency = new LatencyHistogram();
  const failures = new Errors();
  let retries = 0, closedAfterWelcome = 0;
  await sleep(startAt - epochNow());
  const t0 = performance.now();
  const startedAt = epochNow();
  const one = async (k: number): Promise<void> => {
    const began = performance.now();
    try {
      const s = await connectWithRetries(c, urlOf(c, k), addressOf(c, k), stormTokens[k], DEVICE, () => {}, () => { retries++; });
      latency.record(performance.now() - began); // what the user waits: first attempt -> welcome, retries included
      s.onGone = () => { closedAfterWelcome++; };
      held.push(s);
    } catch (err) {
      failures.add(`${userOf(c, k)} from ${addressOf(c, k)}: ${(err as Error).message}`);
    }
  };
  // The ramp: connection k starts at t0 + k / rate (late timers catch up at once); rate 0: all now.
  const interval = c.ratePerSec > 0 ? 1000 / c.ratePerSec : 0;
  const runs: Array<Promise<void>> = [];
  await new Promise<void>((resolve) => {
    let next = 0;
    const launch = (): void => {
      const due = interval === 0 ? c.count : Math.min(c.count, Math.floor((performance.now() - t0) / interval) + 1);
      while (next < due) runs.push(one(next++));
      if (next >= c.count) resolve();
      else setTimeout(launch, Math.max(1, Math.floor(interval)));
    };
    launch();
  });
  await withTimeout(Promise.all(runs), c.timeoutMs, `storm generator ${c.workerIndex}: connecting ${c.count}`);
  const report: ConnectReport & { closedAfterWelcome: number } = {
    workerIndex: c.workerIndex, held: held.length, failed: failures.count, reconnects: retries, failureSamples: failures.samples,
    latency: latency.toJSON(), startedAt, doneAt: epochNow(), closedAfterWelcome,
  };
  await tell({ type: 'stormed', report });
}

// ---------------------------------------------------------------- reconnect storm

interface StormClient {
  k: number;
  user: string;
  token: string | undefined;
  socket: StormSocket | undefined;
  /** Bumped on every drop: frames of an older socket are ignored. */
  generation: number;
  conv: string | undefined;
  /** This client's copy of each conversation it has seen (one, unless the server sends others). */
  ledgers: Map<string, SeqLedger>;
  /** welcome.epoch of the first connection: a different one on reconnect means the server's data set was replaced. */
  epoch: string | undefined;
  drops: boolean;
  /** performance.now() of the drop. */
  droppedAt: number;
  /** Live: caught up, so a message beyond a gap starts a sync at once. */
  live: boolean;
  sync: Promise<boolean> | undefined;
  syncAgain: boolean;
}

interface Feeder { conv: string; socket: StormSocket; sent: number; unanswered: number; head: number }

let setup: ReconnectSetupConfig | undefined;
const clients: StormClient[] = [];
const feeders: Feeder[] = [];
const convFirstSeq = new Map<string, number>(); // groups: the created notice is seq 1
const errors = new Errors();
const counters = { recovered: 0, syncRequests: 0, gapResyncs: 0, acked: 0, ackedAtDrop: 0, ackedAtReconnect: 0, feederErrors: 0, feederSkipped: 0 };
let feedTimer: NodeJS.Timeout | undefined;

function ledgerOf(cl: StormClient, conv: string): SeqLedger {
  let l = cl.ledgers.get(conv);
  if (l === undefined) {
    l = new SeqLedger();
    cl.ledgers.set(conv, l);
  }
  return l;
}

const anyBehind = (cl: StormClient): boolean => [...cl.ledgers.values()].some((l) => l.behind);

function routeFor(cl: StormClient): (frame: Frame) => void {
  const generation = cl.generation;
  return (frame) => {
    if (cl.generation !== generation) return;
    switch (frame['t']) {
      case 'msg': {
        const m = frame['m'] as Message;
        const l = ledgerOf(cl, m.conv);
        l.live(m.seq);
        if (cl.live && l.behind) void syncClient(cl, 'gap');
        return;
      }
      case 'lag':
        if (cl.live) void syncClient(cl, 'lag');
        return;
      case 'err':
        errors.add(`${cl.user}: ${String(frame['error'])} (${String(frame['code'])}) ${String(frame['msg'])}`);
        return;
      default:
        return; // presence, contact and receipt events
    }
  };
}

/** One sync loop: pages from the cursors until `more` is false (PROTOCOL.md 9.2). */
async function syncPages(cl: StormClient, socket: StormSocket): Promise<void> {
  for (;;) {
    const since: Record<string, number> = {};
    for (const [conv, l] of cl.ledgers) since[conv] = l.cursor;
    const reply: SyncResult = await socket.request('sync', { since });
    counters.syncRequests++;
    const seqsOf = new Map<string, number[]>();
    for (const m of reply.msgs) {
      let seqs = seqsOf.get(m.conv);
      if (seqs === undefined) seqsOf.set(m.conv, seqs = []);
      seqs.push(m.seq);
    }
    for (const [conv, seqs] of seqsOf) {
      if (conv !== cl.conv) errors.add(`${cl.user}: sync returned messages of ${conv}, not its conversation`);
      counters.recovered += ledgerOf(cl, conv).synced(since[conv] ?? 0, seqs);
    }
    if (reply.removed.length > 0) errors.add(`${cl.user}: sync says removed from ${reply.removed.join(', ')}`);
    if (!reply.more) return;
  }
}

/**
 * Syncs until no message is held beyond a gap; true when caught up. A sync asked for while one
 * runs makes it loop once more instead of running two at once.
 */
function syncClient(cl: StormClient, why: 'resync' | 'gap' | 'lag'): Promise<boolean> {
  if (why === 'gap') counters.gapResyncs++;
  if (cl.sync !== undefined) {
    cl.syncAgain = true;
    return cl.sync;
  }
  const socket = cl.socket;
  if (socket === undefined) return Promise.resolve(false);
  cl.sync = (async () => {
    try {
      for (let round = 1; ; round++) {
        cl.syncAgain = false;
        await syncPages(cl, socket);
        const gap = anyBehind(cl);
        if (!cl.syncAgain && !gap) return true;
        // A message held beyond the cursor after a complete sync: the server left a hole (PROTOCOL.md 9.4).
        if (gap) counters.gapResyncs++;
        if (round >= MAX_SYNC_ROUNDS) {
          errors.add(`${cl.user}: still a gap after ${round} sync loops`);
          return false;
        }
      }
    } catch (err) {
      errors.add(`${cl.user}: sync failed: ${(err as Error).message}`);
      return false;
    } finally {
      cl.sync = undefined;
    }
  })();
  return cl.sync;
}

async function connectClient(c: ReconnectSetupConfig, cl: StormClient, retried: () => void): Promise<StormSocket> {
  const s = await connectWithRetries(c, urlOf(c, cl.k), addressOf(c, cl.k), cl.token, DEVICE, routeFor(cl), retried);
  s.onGone = (description) => {
    if (cl.socket === s) {
      cl.socket = undefined;
      cl.live = false;
      errors.add(`${cl.user}: ${description}`);
    }
  };
  return s;
}

async function setUp(c: ReconnectSetupConfig): Promise<void> {
  setup = c;
  if (c.count % c.groupSize !== 0) throw new RangeError(`the reconnect storm needs whole conversations of ${c.groupSize} per generator, got ${c.count} clients`);
  const tokens = await tokensFor(c);
  for (let k = 0; k < c.count; k++) {
    // Spread evenly: client k drops when the running total of the fraction passes a whole number.
    const drops = Math.floor((k + 1) * c.dropFraction) > Math.floor(k * c.dropFraction);
    clients.push({ k, user: userOf(c, k), token: tokens[k], socket: undefined, generation: 0, conv: undefined, ledgers: new Map(), epoch: undefined, drops, droppedAt: 0, live: true, sync: undefined, syncAgain: false });
  }
  const run = async (): Promise<void> => {
    await mapLimit(clients, SETUP_CONCURRENCY, async (cl) => {
      cl.socket = await connectClient(c, cl, () => {});
      cl.epoch = cl.socket.welcome?.epoch;
    });
    if (c.protocol === 'raw') return;
    const groups = Array.from({ length: c.count / c.groupSize }, (_, g) => clients.slice(g * c.groupSize, (g + 1) * c.groupSize));
    await mapLimit(groups, SETUP_CONCURRENCY, async (members) => {
      const [a, ...rest] = members as [StormClient, ...StormClient[]];
      let conv: string;
      if (c.groupSize === 2) {
        const b = rest[0]!;
        await a.socket!.request('contact.request', { user: b.user });
        await b.socket!.request('contact.accept', { user: a.user });
        conv = (await a.socket!.request('conv.direct', { user: b.user })).conv;
      } else {
        conv = (await a.socket!.request('group.create', { title: `storm ${a.user}`, members: rest.map((m) => m.user) })).conv;
        convFirstSeq.set(conv, 1);
      }
      for (const m of members) { m.conv = conv; ledgerOf(m, conv); }
      // The feeder: the first member's second device, on the next server (distributed: across gateways).
      const token = await mintToken(c.secret!, c.audience!, a.user);
      const socket = await connectWithRetries(c, urlOf(c, a.k + 1), addressOf(c, a.k), token, FEEDER_DEVICE, () => {}, () => {});
      socket.onGone = (description) => errors.add(`feeder of ${conv}: ${description}`);
      feeders.push({ conv, socket, sent: 0, unanswered: 0, head: 0 });
    });
    // Every member holds the created notice before anything is measured (seq 1 reached them live).
    const deadline = Date.now() + c.setupTimeoutMs;
    while (clients.some((cl) => cl.conv !== undefined && convFirstSeq.has(cl.conv) && cl.ledgers.get(cl.conv)!.cursor < 1)) {
      if (Date.now() > deadline) throw new Error('created notices did not reach every member');
      await sleep(20);
    }
  };
  await withTimeout(run(), c.setupTimeoutMs, `storm generator ${c.workerIndex}: setting up ${c.count} clients`);
  await tell({ type: 'set-up', clients: clients.length, conversations: feeders.length, feeders: feeders.length });
}

function feed(): void {
  const c = setup!;
  if (feeders.length === 0 || c.messagesPerSec <= 0) return;
  const began = performance.now();
  let due = 0, turn = 0;
  feedTimer = setInterval(() => {
    const target = Math.floor(((performance.now() - began) * c.messagesPerSec) / 1000);
    for (; due < target; due++) {
      const f = feeders[turn++ % feeders.length]!;
      if (f.unanswered >= FEEDER_MAX_UNANSWERED) { counters.feederSkipped++; continue; }
      f.unanswered++;
      const n = ++f.sent;
      f.socket.request('send', { conv: f.conv, cid: `feed-${n}`, kind: 'text', body: { text: `storm ${n}` } }).then(
        (ack) => { f.head = Math.max(f.head, ack.seq); counters.acked++; },
        (err: unknown) => { counters.feederErrors++; errors.add(`feeder of ${f.conv}: ${(err as Error).message}`); },
      ).finally(() => { f.unanswered--; });
    }
  }, FEED_TICK_MS);
}

async function drop(): Promise<void> {
  counters.ackedAtDrop = counters.acked;
  let dropped = 0;
  for (const cl of clients) {
    if (!cl.drops || cl.socket === undefined) continue;
    cl.generation++;
    cl.live = false;
    cl.droppedAt = performance.now();
    for (const l of cl.ledgers.values()) l.newConnection();
    cl.socket.drop();
    cl.socket = undefined;
    dropped++;
  }
  await tell({ type: 'dropped', dropped });
}

async function reconnect(): Promise<void> {
  const c = setup!;
  counters.ackedAtReconnect = counters.acked;
  const reconnectMs = new LatencyHistogram(), resyncMs = new LatencyHistogram(), dropToCaughtUp = new LatencyHistogram();
  let reconnected = 0, caughtUp = 0, retries = 0, reconnectedAt = 0, caughtUpAt = 0;
  const startedAt = epochNow();
  const away = clients.filter((cl) => cl.drops && cl.droppedAt > 0);
  // All at once: no limit on how many are in flight, as after a network blip.
  const runs = away.map(async (cl) => {
    const began = performance.now();
    try {
      const s = await connectClient(c, cl, () => { retries++; });
      cl.socket = s;
      reconnectMs.record(performance.now() - began);
      reconnected++;
      reconnectedAt = Math.max(reconnectedAt, epochNow());
      if (s.welcome !== undefined && s.welcome.epoch !== cl.epoch) errors.add(`${cl.user}: welcome.epoch changed (${cl.epoch} -> ${s.welcome.epoch}): the server's data set was replaced`);
    } catch (err) {
      errors.add(`${cl.user}: reconnect: ${(err as Error).message}`);
      return;
    }
    if (c.protocol === 'lantern' && !(await syncClient(cl, 'resync'))) return;
    cl.live = true;
    if (anyBehind(cl)) void syncClient(cl, 'gap'); // a live message beyond the cursor came after the last page
    const now = performance.now();
    resyncMs.record(now - began);
    dropToCaughtUp.record(now - cl.droppedAt);
    caughtUp++;
    caughtUpAt = Math.max(caughtUpAt, epochNow());
  });
  await withTimeout(Promise.all(runs), c.resyncTimeoutMs, `storm generator ${c.workerIndex}: reconnecting ${away.length}`).catch((err: unknown) => {
    errors.add((err as Error).message);
  });
  const report: ResyncReport = {
    workerIndex: c.workerIndex, dropped: away.length, reconnected, caughtUp, retries,
    reconnect: reconnectMs.toJSON(), resync: resyncMs.toJSON(), dropToCaughtUp: dropToCaughtUp.toJSON(),
    startedAt, reconnectedAt, caughtUpAt, recovered: counters.recovered, syncRequests: counters.syncRequests, gapResyncs: counters.gapResyncs,
    sentWhileAway: counters.ackedAtReconnect - counters.ackedAtDrop, errors: errors.count, errorSamples: [...errors.samples],
  };
  await tell({ type: 'resynced', report });
}

async function verify(waitMs: number): Promise<void> {
  const c = setup!;
  if (feedTimer !== undefined) clearInterval(feedTimer);
  const deadline = Date.now() + waitMs;
  while (feeders.some((f) => f.unanswered > 0) && Date.now() < deadline) await sleep(20);
  const heads = new Map<string, number>();
  for (const f of feeders) heads.set(f.conv, Math.max(f.head, convFirstSeq.get(f.conv) ?? 0));
  const headOf = (cl: StormClient): number => heads.get(cl.conv ?? '') ?? 0;
  const behind = (cl: StormClient): boolean => cl.conv !== undefined && (cl.ledgers.get(cl.conv)?.missing(headOf(cl)) ?? headOf(cl)) > 0;
  // The last messages are still on their way to some clients.
  while (clients.some(behind) && Date.now() < deadline) await sleep(50);
  const report: VerifyReport = {
    workerIndex: c.workerIndex, clients: clients.length, conversations: feeders.length, sent: counters.acked,
    missing: 0, duplicates: 0, skipped: 0, clientsBehind: 0, gapResyncs: counters.gapResyncs,
    feederErrors: counters.feederErrors, feederSkipped: counters.feederSkipped, errors: 0, errorSamples: [],
  };
  for (const cl of clients) {
    if (cl.conv === undefined) continue;
    for (const [conv, l] of cl.ledgers) {
      if (conv !== cl.conv) { errors.add(`${cl.user}: got messages of ${conv}, not its conversation`); continue; }
      report.missing += l.missing(headOf(cl));
      report.duplicates += l.duplicates;
      report.skipped += l.skipped;
    }
    if (behind(cl)) report.clientsBehind++;
  }
  report.errors = errors.count;
  report.errorSamples = [...errors.samples];
  await tell({ type: 'verified', report });
}

async function close(): Promise<void> {
  if (feedTimer !== undefined) clearInterval(feedTimer);
  const sockets = [...held, ...feeders.map((f) => f.socket), ...clients.flatMap((cl) => (cl.socket ? [cl.socket] : []))];
  for (const s of sockets) s.markLeaving();
  await closeSockets(sockets.map((s) => s.ws));
  await tell({ type: 'closed' });
  process.exit(0);
}

process.on('message', (command: StormCommand) => {
  switch (command.type) {
    case 'connect-storm': prepareStorm(command.config).catch(fail); return;
    case 'go': connectStorm(command.startAt).catch(fail); return;
    case 'setup': setUp(command.config).catch(fail); return;
    case 'feed': feed(); return;
    case 'drop': drop().catch(fail); return;
    case 'reconnect': reconnect().catch(fail); return;
    case 'verify': verify(command.waitMs).catch(fail); return;
    case 'close': close().catch(fail);
  }
});
// The caller went away: nobody holds the results.
process.on('disconnect', () => process.exit(1));
tell({ type: 'ready' }).catch(fail);
